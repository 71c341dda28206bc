//! A fleet job's attempt lives and dies with its runner (SPEC section 13).
//!
//! When a runner process dies and its host and tmux server live on, the
//! pool's leader offers the runner's jobs again as the next attempt (the
//! broker fired the runner's Last Will). The old attempt's wrapper then
//! stops its agent — the same stop as on SIGTERM: the agent's group and
//! every descendant, TERM, grace, KILL — and publishes nothing more, so no
//! job has two live attempts once the fencing window (one check interval
//! plus `kill_grace`) has passed. The owner is checked by pid and start
//! time in /proc: a pid reused by another process does not keep it alive.
//!
//! A runner may also be alive and silent (frozen by SIGSTOP, cut off from
//! the broker): the pool then runs the job again as the next attempt,
//! whose runner writes the job's retained fence (`model::fence`). The
//! window watches that fence on its own broker connection and stops its
//! agent as soon as a newer attempt is claimed — within a broker round
//! trip plus `kill_grace`, whatever its runner is doing.
//!
//! Only fleet jobs have an owner: a `run` job's agent outlives a dead
//! supervisor, and `resume` adopts it.

use crate::model::fence::{supersedes, Fence};
use crate::model::JobId;
use crate::mqtt::client::{Message, Publisher};
use crate::registry::{FleetOwner, Registry};
use std::time::Duration;

/// How long a fenced wrapper waits for its clean DISCONNECT (which keeps
/// its Last Will from firing) before it leaves anyway.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Whether the job has an owner and that process is gone.
pub fn owner_gone(owner: Option<&FleetOwner>) -> bool {
    owner.is_some_and(|o| !o.is_alive())
}

/// What the pane says when the attempt is fenced off.
pub fn explain(owner: &FleetOwner, started: bool) -> String {
    let what = if started {
        "the agent and its processes were stopped"
    } else {
        "the agent was not started"
    };
    format!(
        "[tmux-delegate] runner {} (pid {}), which owns this job, is gone: {what}. \
         Another runner of the pool runs the job again as a new attempt.",
        owner.runner, owner.pid
    )
}

/// A fleet job's window watching its job's fence.
pub struct Watch {
    pub incoming: tokio::sync::mpsc::UnboundedReceiver<Message>,
    /// This window's attempt and its runner.
    pub attempt: u32,
    pub runner: String,
}

impl Watch {
    /// The newer attempt a fence message names, if it supersedes this one.
    pub fn superseded_by(&self, message: &Message) -> Option<u32> {
        let fence = Fence::decode(&message.payload)?;
        supersedes(
            fence.attempt,
            Some(&fence.runner),
            self.attempt,
            &self.runner,
        )
        .then_some(fence.attempt)
    }
}

/// The next fence message; never, without a watch (a `run` job) or once
/// the connection's task has ended.
pub async fn next(watch: Option<&mut Watch>) -> Option<Message> {
    match watch {
        Some(watch) => match watch.incoming.recv().await {
            Some(message) => Some(message),
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// What the pane says when a newer attempt took the job.
pub fn explain_superseded(owner: &FleetOwner, newer: u32) -> String {
    format!(
        "[tmux-delegate] attempt {newer} of this job was claimed in the pool while runner {} \
         (pid {}) held this one: the agent and its processes were stopped.",
        owner.runner, owner.pid
    )
}

/// Asks the runner to let the superseded attempt go (as `kill` asks a
/// supervisor: the record's flag, then SIGUSR1), so a runner that was
/// frozen does not take the stopped agent for a failure and retry it.
pub fn tell_runner(registry: &Registry, job: &JobId, owner: &FleetOwner) {
    if let Err(e) = registry.update(job, |r| r.cancel_requested = true) {
        tracing::warn!("cannot mark job {job} for its runner: {e:#}");
    }
    if owner.is_alive() && crate::proc::is_tmux_delegate(owner.pid) {
        let _ = crate::proc::signal_process(owner.pid, nix::sys::signal::Signal::SIGUSR1);
    }
}

/// Leaves the broker without a word: a clean DISCONNECT, so not even the
/// Last Will (`lost`) speaks for the fenced attempt.
pub async fn stand_down(publisher: Publisher) {
    if tokio::time::timeout(CLOSE_WAIT, publisher.close())
        .await
        .is_err()
    {
        tracing::warn!("the broker did not take the DISCONNECT in time");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_job_with_a_dead_owner_is_fenced() {
        assert!(!owner_gone(None), "a `run` job has no owner to lose");
        let me = FleetOwner::this_process("r0").expect("this process");
        assert!(me.start.is_some());
        assert!(!owner_gone(Some(&me)));
        let reused = FleetOwner {
            start: me.start.map(|s| s + 1),
            ..me.clone()
        };
        assert!(owner_gone(Some(&reused)), "a reused pid is not the owner");
        // A runner SIGKILLed and not yet reaped is a zombie: gone too.
        let mut child = std::process::Command::new("true").spawn().expect("true");
        let pid = i32::try_from(child.id()).expect("pid");
        let ended = FleetOwner {
            runner: "r1".into(),
            pid,
            start: None,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !owner_gone(Some(&ended)) {
            assert!(std::time::Instant::now() < deadline, "`true` never ended");
            std::thread::sleep(Duration::from_millis(10));
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("a zombie");
        assert!(stat.contains(") Z "), "{stat}");
        let _ = child.wait();
        assert!(owner_gone(Some(&ended)));
    }
}
