//! One job stopped where no supervisor runs (`kill` of an orphaned job):
//! the core's own stop sequence — SIGTERM to the agent's group, SIGKILL
//! after `kill_grace` if it is still there, the window closed, the job
//! cancelled — performed by a small sequential driver with no MQTT and no
//! tmux observation. A running supervisor performs the same effects in
//! `driver.rs`, so there is one stop sequence, tested in `core/tests.rs`.

use super::core::{Adoption, Core, Effect, Input, JobConfig, StopSignal};
use crate::model::event::now_ts;
use crate::model::{JobId, Liveness, Transition};
use crate::proc::AgentGroup;
use crate::registry::{Record, Registry};
use crate::tmux::Tmux;
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

/// How often the agent's group is looked at while it is given its grace.
const GROUP_CHECK: Duration = Duration::from_millis(20);

/// What `kill ID` did, as it tells it.
#[derive(Debug)]
pub struct Killed {
    /// Said on stderr by `kill`, logged by the MCP server's `kill`.
    pub note: String,
}

/// `kill ID` on this host: a running supervisor is asked (record flag +
/// SIGUSR1) so it stops the window the usual way; without one (or when it
/// does not within the grace and 10 s more) the core's stop sequence runs
/// here. A finished job is left as it is.
pub async fn cancel(registry: &Registry, job: &JobId) -> anyhow::Result<Killed> {
    let record = registry.update(job, |r| {
        if !r.state.is_finished() {
            r.cancel_requested = true;
        }
    })?;
    if record.state.is_finished() {
        return Ok(Killed {
            note: format!("job {job} is already {}", record.state.as_str()),
        });
    }
    let grace = record.spec.tmux.kill_grace;
    // Only a live tmux-delegate is asked: SIGUSR1 would end a stranger that
    // reused the pid of a supervisor that died.
    let asked = record
        .supervisor_pid
        .filter(|pid| crate::proc::is_tmux_delegate(*pid))
        .is_some_and(|pid| crate::proc::signal_process(pid, Signal::SIGUSR1).unwrap_or(false));
    let mut note = String::new();
    if asked {
        let deadline = Instant::now() + grace + Duration::from_secs(10);
        while Instant::now() < deadline {
            let state = registry.load(job)?.state;
            if state.is_finished() {
                return Ok(Killed {
                    note: format!("job {job}: {}", state.as_str()),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        note = format!("the supervisor did not stop job {job} in time; stopped it here\n");
    }
    // No supervisor: the core's stop sequence, driven here.
    stop_job(registry, job, "cancelled by `tmux-delegate kill`").await?;
    Ok(Killed {
        note: format!("{note}job {job}: cancelled"),
    })
}

/// Stops the current attempt of `job` and marks the job cancelled with
/// `reason`; returns once the group is gone (or killed) and the window closed.
pub async fn stop_job(registry: &Registry, job: &JobId, reason: &str) -> anyhow::Result<()> {
    let record = registry.load(job)?;
    let info = record
        .attempt_info(record.attempt)
        .cloned()
        .unwrap_or_default();
    let mut core = Core::new(Box::new(|| 0.0));
    let adoption = Adoption {
        attempt: record.attempt,
        job_deadline: None,
        backoff_until: None,
        limited: false,
        uncharged: 0,
    };
    let now = Instant::now();
    core.adopt(now, job.clone(), job_config(&record), adoption);
    core.handle(
        now,
        Input::Cancel {
            job: job.clone(),
            reason: reason.to_owned(),
        },
    );
    let stop = Stop {
        registry,
        record: &record,
        group: info.agent_group(),
        window: info.window,
        tmux: Tmux::new(&record.spec.tmux, Vec::new()),
    };
    stop.drive(&mut core, job).await
}

/// What the core needs for a job it only stops.
fn job_config(record: &Record) -> JobConfig {
    let agent = record.agent.as_ref();
    JobConfig {
        timeouts: record.spec.timeouts.clone(),
        retry: record.spec.retry.clone(),
        liveness: agent.map_or(Liveness::Events, |a| a.liveness),
        complete_on_exit: agent.is_some_and(|a| a.complete_on_exit),
        keep_failed: record.spec.tmux.keep_failed,
        kill_grace: record.spec.tmux.kill_grace,
        on_waiting: record.spec.on_waiting,
        require_signature: false,
        first_attempt: record.attempt.max(1),
        limits: record.spec.limits,
    }
}

/// The places the stop sequence acts on.
struct Stop<'a> {
    registry: &'a Registry,
    record: &'a Record,
    group: Option<AgentGroup>,
    window: Option<String>,
    tmux: Tmux,
}

impl Stop<'_> {
    /// Performs the core's effects, telling it when the group is gone or
    /// its timer (the grace) is due, until the job is finished.
    async fn drive(&self, core: &mut Core, job: &JobId) -> anyhow::Result<()> {
        let attempt = self.record.attempt;
        loop {
            while let Some(effect) = core.poll_effect() {
                if let Some(input) = self.perform(effect).await? {
                    core.handle(Instant::now(), input);
                }
            }
            if core.is_done() {
                return Ok(());
            }
            let now = Instant::now();
            if !self.group.is_some_and(crate::proc::group_alive) {
                let job = job.clone();
                core.handle(now, Input::GroupGone { job, attempt });
            } else if core.poll_timeout().is_some_and(|due| due <= now) {
                core.handle_timeout(now);
            } else {
                tokio::time::sleep(GROUP_CHECK).await;
            }
        }
    }

    /// Performs one effect; returns what it found out for the core.
    async fn perform(&self, effect: Effect) -> anyhow::Result<Option<Input>> {
        match effect {
            Effect::Signal {
                job,
                attempt,
                signal,
            } => Ok(self
                .signal(signal)
                .then_some(Input::GroupGone { job, attempt })),
            Effect::CloseWindow { keep, .. } => {
                // A cancelled attempt's window is never kept.
                if let (Some(window), false) = (&self.window, keep) {
                    self.tmux.kill_window(window).await?;
                }
                Ok(None)
            }
            Effect::Transition {
                job,
                attempt,
                to,
                reason,
                ..
            } => {
                self.record_transition(&job, attempt, to, reason)?;
                Ok(None)
            }
            // A job being cancelled launches nothing, answers no screen and
            // receives no event; no supervisor will resume it.
            Effect::Launch { .. }
            | Effect::SendKeys { .. }
            | Effect::RecordEvent { .. }
            | Effect::Checkpoint { .. } => Ok(None),
        }
    }

    /// Signals the agent's group; whether the group is known to be gone
    /// already (after a SIGTERM that found nothing to stop).
    fn signal(&self, signal: StopSignal) -> bool {
        let Some(group) = self.group else {
            // The wrapper never recorded a group: nothing to signal.
            return signal == StopSignal::Term;
        };
        let sig = match signal {
            StopSignal::Term => Signal::SIGTERM,
            StopSignal::Kill => Signal::SIGKILL,
        };
        match crate::proc::signal_group(group, sig) {
            Ok(sent) => !sent && signal == StopSignal::Term,
            Err(e) => {
                tracing::warn!("cannot signal process group {}: {e}", group.pgid);
                false
            }
        }
    }

    /// The job's new state in its record and history (with the attempt's
    /// end and outcome). `from` is the state the record held (the core
    /// adopted the job as running).
    fn record_transition(
        &self,
        job: &JobId,
        attempt: u32,
        to: crate::model::JobState,
        reason: Option<String>,
    ) -> anyhow::Result<()> {
        let transition = Transition {
            ts: now_ts(),
            attempt,
            from: self.record.state,
            to,
            reason,
            failure: None,
        };
        self.registry
            .record_transition(job, &transition, |_| {})
            .map(drop)
    }
}
