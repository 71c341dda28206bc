//! The runner's side of `logs ID` from other hosts: at each transition of a
//! job it holds, the job's history (as `logs` prints it) goes retained to
//! `<prefix>/jobs/<id>/log`; when the attempt ended, with the last capture
//! of its pane, which the window's wrapper saved in the job's directory.
//! The pane of a cancelled or timed-out attempt is saved only after the
//! transition (the agent is stopped first): the log is published again
//! when it is there.

use super::Fleet;
use crate::fleet::joblog::{keep_last, JobLog, LOG_LIMIT};
use crate::fleet::topics;
use crate::model::event::now_ts;
use crate::model::JobId;
use crate::mqtt::outbox::OutboxHandle;
use crate::registry::Registry;
use std::time::Duration;

/// How long the runner looks for the pane of an attempt that ended.
const PANE_FOLLOW_UP: Duration = Duration::from_secs(30);
const PANE_POLL: Duration = Duration::from_millis(250);

impl Fleet {
    /// Publishes the job's log as its state now stands (just published).
    pub(super) fn publish_log(&self, job: &JobId, attempt: u32) {
        let Some(status) = self.states.get(job) else {
            return;
        };
        let (omitted, lines) = history(&self.registry, job);
        let mut log = JobLog {
            job: job.to_string(),
            name: status.name.clone(),
            agent: status.agent.clone(),
            state: status.state,
            attempt: status.attempt,
            runner: self.me.name.clone(),
            ts: now_ts(),
            omitted,
            lines,
            pane: None,
        };
        let topic = topics::log_topic(&self.prefix, job);
        if !log.is_terminal() {
            return self.outbox.send(topic, encode(&log), true);
        }
        log.pane = saved_pane(&self.registry, job, attempt);
        self.outbox.send(topic.clone(), encode(&log), true);
        if log.pane.is_none() {
            let registry = Registry::at(self.registry.root().to_path_buf());
            let outbox = self.outbox.handle();
            tokio::spawn(follow_up(registry, outbox, topic, log, attempt));
        }
    }
}

fn encode(log: &JobLog) -> Vec<u8> {
    serde_json::to_vec(log).unwrap_or_default()
}

/// The job's history lines on this runner, the last `LOG_LIMIT` bytes.
fn history(registry: &Registry, job: &JobId) -> (usize, Vec<String>) {
    match registry.history(job) {
        Ok(entries) => keep_last(entries.iter().map(crate::ui::history::describe).collect()),
        Err(e) => {
            tracing::warn!("job {job}: cannot read its history for its log: {e:#}");
            (0, Vec::new())
        }
    }
}

fn saved_pane(registry: &Registry, job: &JobId, attempt: u32) -> Option<String> {
    let text = std::fs::read_to_string(registry.pane_file(job, attempt)).ok()?;
    Some(crate::registry::tail(&text, LOG_LIMIT).to_owned())
}

/// Waits for the wrapper to save the ended attempt's pane, then publishes
/// the log again with it — unless the job went on meanwhile (a retry).
async fn follow_up(
    registry: Registry,
    outbox: OutboxHandle,
    topic: String,
    mut log: JobLog,
    attempt: u32,
) {
    let Ok(job) = JobId::parse(&log.job) else {
        return;
    };
    let deadline = tokio::time::Instant::now() + PANE_FOLLOW_UP;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(PANE_POLL).await;
        let Some(pane) = saved_pane(&registry, &job, attempt) else {
            continue;
        };
        let current = registry
            .load(&job)
            .is_ok_and(|r| r.attempt == attempt && r.state.is_finished());
        if current {
            (log.omitted, log.lines) = history(&registry, &job);
            log.pane = Some(pane);
            log.ts = now_ts();
            outbox.send(topic, encode(&log), true);
        }
        return;
    }
}
