//! A fleet job's wrapper saves the last capture of its own pane when the
//! attempt ends, before it reports the end: the runner puts it into the
//! job's log for `logs ID` on other hosts (SPEC section 13). The pane is
//! the agent's output; the wrapper itself never prints a secret there.

use crate::model::JobId;
use crate::registry::Registry;

/// Saves the pane's last `PANE_LIMIT` bytes in the job's directory, 0600.
pub fn save(registry: &Registry, job: &JobId, attempt: u32) {
    let text = match crate::tmux::own_pane_history() {
        Ok(text) => text,
        Err(e) => {
            tracing::warn!("cannot capture this pane for the job's log: {e:#}");
            return;
        }
    };
    registry.save_pane(job, attempt, &text);
}
