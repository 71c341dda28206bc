//! Screens: reads the panes of the jobs the core says may show one (agents
//! with screen rules only, at most one read per job every
//! `SCREEN_READ_EVERY`, in the background), matches them against the
//! rules, and types a rule's answer into the pane.

use super::Driver;
use crate::model::JobId;
use crate::supervisor::core::Input;
use crate::tmux::Launched;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// At most one pane read per job this often (screen rules).
pub(super) const SCREEN_READ_EVERY: Duration = Duration::from_secs(2);

/// A pane read for screen rules: job, attempt, the visible screen.
pub(super) type ScreenRead = (JobId, u32, anyhow::Result<String>);

impl Driver {
    /// Reads the panes of jobs the core says may show a screen, for agents
    /// with screen rules: at most one read per job every SCREEN_READ_EVERY,
    /// in the background.
    pub(super) fn start_screen_reads(&mut self, results: &mpsc::UnboundedSender<ScreenRead>) {
        let now = Instant::now();
        for (job, attempt) in self.core.screen_watch(now) {
            let Some(runtime) = self.jobs.get_mut(&job) else {
                continue;
            };
            let Some((window_attempt, launched)) = &runtime.window else {
                continue;
            };
            let due = runtime
                .screen_read_at
                .is_none_or(|at| now.saturating_duration_since(at) >= SCREEN_READ_EVERY);
            if runtime.screens.is_none()
                || *window_attempt != attempt
                || runtime.screen_reading
                || !due
            {
                continue;
            }
            runtime.screen_reading = true;
            runtime.screen_read_at = Some(now);
            let target = pane_target(launched);
            let tmux = self.tmux.clone();
            let results = results.clone();
            tokio::spawn(async move {
                let screen = tmux.capture_screen(&target).await;
                let _ = results.send((job, attempt, screen));
            });
        }
    }

    /// Matches a pane read against the job's rules: a screen, or none.
    pub(super) fn apply_screen_read(&mut self, (job, attempt, screen): ScreenRead) {
        let Some(runtime) = self.jobs.get_mut(&job) else {
            return;
        };
        runtime.screen_reading = false;
        let (Some(rules), Ok(screen)) = (&runtime.screens, screen) else {
            return;
        };
        let input = match rules.waiting(&screen) {
            Some(shown) => Input::Screen {
                job,
                attempt,
                message: shown.message,
                keys: shown.keys,
            },
            None => Input::ScreenGone { job, attempt },
        };
        self.core.handle(Instant::now(), input);
    }

    /// Answers a screen: its rule's keys, typed into the attempt's pane.
    pub(super) async fn send_keys(&mut self, job: &JobId, attempt: u32, keys: &[String]) {
        let Some(runtime) = self.jobs.get(job) else {
            return;
        };
        let Some((window_attempt, launched)) = &runtime.window else {
            return;
        };
        if *window_attempt != attempt {
            return;
        }
        match self.tmux.send_keys(&pane_target(launched), keys).await {
            Ok(()) => {
                tracing::info!("job {job} attempt {attempt}: answered a screen with {keys:?}")
            }
            Err(e) => tracing::warn!("job {job}: cannot send keys to its pane: {e:#}"),
        }
    }
}

/// The pane to read or type into: its id, else (an adopted window) the
/// window's active pane.
fn pane_target(launched: &Launched) -> String {
    if launched.pane_id.is_empty() {
        launched.window_id.clone()
    } else {
        launched.pane_id.clone()
    }
}
