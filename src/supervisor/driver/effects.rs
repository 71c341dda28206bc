//! Effects: performs what the core asks for — opening an attempt's
//! window, signalling its agent group, closing (or keeping) its window,
//! answering a screen — and feeds what it finds out back as inputs.

use super::Driver;
use crate::model::{FailureInfo, JobId};
use crate::registry::{LogEntry, Registry};
use crate::supervisor::core::{Effect, Input, StopSignal};
use crate::tmux::Tmux;
use nix::sys::signal::Signal;
use std::time::Instant;

impl Driver {
    /// Performs effects until the core has none left; inputs they produce
    /// are fed back at once.
    pub(super) async fn perform(&mut self) {
        loop {
            while let Some(input) = self.inputs.pop_front() {
                self.core.handle(Instant::now(), input);
            }
            let Some(effect) = self.core.poll_effect() else {
                if self.inputs.is_empty() {
                    return;
                }
                continue;
            };
            match effect {
                Effect::Launch { job, attempt } => self.launch(job, attempt).await,
                Effect::Signal {
                    job,
                    attempt,
                    signal,
                } => {
                    if signal == StopSignal::Term {
                        self.let_transcript_settle(&job, attempt).await;
                    }
                    self.signal(job, attempt, signal)
                }
                Effect::CloseWindow { job, attempt, keep } => {
                    self.close_window(&job, attempt, keep).await
                }
                Effect::Transition {
                    job,
                    attempt,
                    from,
                    to,
                    reason,
                    failure,
                } => {
                    self.queue_dirty = true;
                    let failure = failure.map(|f| FailureInfo {
                        kind: serde_json::to_value(f.kind)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        reason: f.reason,
                    });
                    self.record_transition(&job, attempt, from, to, reason, failure);
                }
                Effect::RecordEvent {
                    job,
                    attempt,
                    event,
                    ignored,
                } => self.record_event(&job, attempt, &event, ignored),
                Effect::SendKeys { job, attempt, keys } => {
                    self.send_keys(&job, attempt, &keys).await;
                }
                Effect::Checkpoint { job, checkpoint } => self.record_checkpoint(&job, checkpoint),
            }
        }
    }

    async fn launch(&mut self, job: JobId, attempt: u32) {
        let Some(runtime) = self.jobs.get(&job) else {
            return;
        };
        let argv: Vec<String> = vec![
            self.exe.display().to_string(),
            "exec".into(),
            "--job".into(),
            job.to_string(),
            "--attempt".into(),
            attempt.to_string(),
            "--registry".into(),
            self.registry.root().display().to_string(),
        ];
        let asked = Instant::now();
        match self
            .tmux
            .launch(&self.session, &runtime.name, &runtime.workdir, &argv)
            .await
        {
            Ok(launched) => {
                let window = launched.window_id.clone();
                self.log_window(&job, attempt, &window, "opened");
                let _ = self.registry.update(&job, |r| {
                    let info = r.attempt_mut(attempt);
                    info.window = Some(window);
                    info.pane_pid = Some(launched.pane_pid);
                });
                if let Some(runtime) = self.jobs.get_mut(&job) {
                    runtime.window = Some((attempt, launched));
                    runtime.launched_at = Some(asked);
                }
                self.inputs.push_back(Input::Launched { job, attempt });
            }
            Err(e) => self.inputs.push_back(Input::LaunchFailed {
                job,
                attempt,
                reason: format!("{e:#}"),
            }),
        }
    }

    fn signal(&mut self, job: JobId, attempt: u32, signal: StopSignal) {
        let Some(pgid) = self.pgid(&job, attempt) else {
            // The wrapper never started the agent: nothing to signal.
            if signal == StopSignal::Term {
                self.inputs.push_back(Input::GroupGone { job, attempt });
            }
            return;
        };
        let sig = match signal {
            StopSignal::Term => Signal::SIGTERM,
            StopSignal::Kill => Signal::SIGKILL,
        };
        match crate::proc::signal_group(pgid, sig) {
            Ok(true) => {
                let pgid = pgid.pgid;
                tracing::info!("job {job} attempt {attempt}: sent {sig} to process group {pgid}")
            }
            Ok(false) => {
                if signal == StopSignal::Term {
                    self.inputs.push_back(Input::GroupGone { job, attempt });
                }
            }
            Err(e) => tracing::warn!("job {job}: cannot signal process group {}: {e}", pgid.pgid),
        }
    }

    async fn close_window(&mut self, job: &JobId, attempt: u32, keep: bool) {
        let Some(runtime) = self.jobs.get_mut(job) else {
            return;
        };
        let Some((window_attempt, launched)) = runtime.window.take() else {
            return;
        };
        if window_attempt != attempt {
            runtime.window = Some((window_attempt, launched));
            return;
        }
        self.activity.remove(&launched.window_id);
        let saves_pane = runtime.saves_pane;
        if let Some(record) = self.recount_tokens(job, attempt) {
            self.report_work(job, attempt, record.state);
        }
        let Some(runtime) = self.jobs.get(job) else {
            return;
        };
        if saves_pane && !keep {
            save_pane(
                &self.tmux,
                &self.registry,
                job,
                attempt,
                &launched.window_id,
            )
            .await;
        }
        let result = if keep {
            let name = format!("{}-failed-{attempt}", runtime.name);
            self.tmux.rename_window(&launched.window_id, &name).await
        } else {
            self.tmux.kill_window(&launched.window_id).await
        };
        match result {
            Ok(()) => {
                let action = if keep { "kept" } else { "closed" };
                self.log_window(job, attempt, &launched.window_id, action);
            }
            Err(e) => tracing::warn!(
                "job {job}: cannot close window {}: {e:#}",
                launched.window_id
            ),
        }
    }

    fn log_window(&self, job: &JobId, attempt: u32, window: &str, action: &str) {
        let entry = LogEntry::Window {
            ts: crate::model::event::now_ts(),
            attempt,
            window: window.to_owned(),
            action: action.to_owned(),
        };
        if let Err(e) = self.registry.append(job, &entry) {
            tracing::warn!("job {job}: cannot append to its history: {e:#}");
        }
    }
}

/// A stopped attempt's pane, saved for the job's log unless its wrapper
/// saved it first: the wrapper of a cancelled or timed-out attempt may
/// still be stopping the agent's leftovers when the window closes, and a
/// closed window's pane cannot be read.
async fn save_pane(tmux: &Tmux, registry: &Registry, job: &JobId, attempt: u32, window: &str) {
    let path = registry.pane_file(job, attempt);
    if path.exists() {
        return;
    }
    match tmux.capture(window).await {
        Ok(text) => registry.save_pane(job, attempt, &text),
        Err(e) => tracing::warn!("job {job}: cannot capture its pane: {e:#}"),
    }
}
