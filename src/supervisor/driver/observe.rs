//! Observation: one `list-windows -a` per tick for every job, turned into
//! dead-pane, closed-window and output inputs (with the exit code the
//! wrapper recorded), and the agent groups of attempts being stopped.

use super::Driver;
use crate::model::JobId;
use crate::proc::AgentGroup;
use crate::supervisor::core::Input;
use crate::tmux::WindowInfo;
use std::collections::HashMap;
use std::time::Instant;
use tokio::sync::mpsc;

/// A `list-windows` answer and when it was asked for.
pub(super) type Observation = (Instant, anyhow::Result<Vec<WindowInfo>>);

impl Driver {
    /// One `list-windows -a` for every job: dead panes, closed windows and
    /// output activity.
    pub(super) fn start_observation(&mut self, results: &mpsc::UnboundedSender<Observation>) {
        self.observing = true;
        let tmux = self.tmux.clone();
        let results = results.clone();
        let asked = Instant::now();
        tokio::spawn(async move {
            let windows = tmux.list_windows().await;
            let _ = results.send((asked, windows));
        });
    }

    /// Turns a snapshot of every window into dead-pane, closed-window and
    /// output inputs. Windows asked for after the snapshot are not judged.
    pub(super) fn apply_observation(
        &mut self,
        asked: Instant,
        windows: anyhow::Result<Vec<WindowInfo>>,
    ) {
        let windows = match windows {
            Ok(windows) => windows,
            Err(e) => {
                tracing::warn!("cannot list tmux windows: {e:#}");
                return;
            }
        };
        let by_id: HashMap<&str, &WindowInfo> =
            windows.iter().map(|w| (w.window_id.as_str(), w)).collect();
        let now = Instant::now();
        let mut inputs = Vec::new();
        for (job, runtime) in &self.jobs {
            let Some((attempt, launched)) = &runtime.window else {
                continue;
            };
            if runtime.launched_at.is_some_and(|at| at > asked) {
                continue;
            }
            let (job, attempt) = (job.clone(), *attempt);
            match by_id.get(launched.window_id.as_str()) {
                None => {
                    inputs.extend(self.recorded_exit(&job, attempt));
                    inputs.push(Input::WindowGone { job, attempt });
                }
                Some(info) if info.dead => {
                    inputs.extend(self.recorded_exit(&job, attempt));
                    inputs.push(Input::PaneDead {
                        job,
                        attempt,
                        status: info.dead_status,
                    });
                }
                Some(info) => {
                    let seen = self
                        .activity
                        .insert(launched.window_id.clone(), info.activity);
                    if seen.is_some_and(|before| info.activity > before) {
                        inputs.push(Input::Output { job, attempt });
                    }
                }
            }
        }
        for input in inputs {
            self.core.handle(now, input);
        }
    }

    /// The exit code the wrapper recorded for a window that died: it
    /// outranks a Last Will or an `exited` event the broker lost.
    fn recorded_exit(&self, job: &JobId, attempt: u32) -> Option<Input> {
        let code = self
            .registry
            .load(job)
            .ok()?
            .attempt_info(attempt)?
            .exit_code?;
        Some(Input::ExitRecorded {
            job: job.clone(),
            attempt,
            code,
        })
    }

    /// For attempts being stopped: report the ones whose group is empty.
    pub(super) fn check_stopping(&mut self) {
        let stopping: Vec<(JobId, u32)> = self
            .core
            .stopping()
            .map(|(id, a)| (id.clone(), a))
            .collect();
        for (job, attempt) in stopping {
            if !self
                .pgid(&job, attempt)
                .is_some_and(crate::proc::group_alive)
            {
                self.core
                    .handle(Instant::now(), Input::GroupGone { job, attempt });
            }
        }
    }

    /// The attempt's agent group, as the wrapper recorded it.
    pub(super) fn pgid(&mut self, job: &JobId, attempt: u32) -> Option<AgentGroup> {
        let runtime = self.jobs.get_mut(job)?;
        if let Some(pgid) = runtime.pgid.get(&attempt) {
            return Some(*pgid);
        }
        let pgid = self
            .registry
            .load(job)
            .ok()?
            .attempt_info(attempt)?
            .agent_group()?;
        runtime.pgid.insert(attempt, pgid);
        Some(pgid)
    }
}
