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
//! Only fleet jobs have an owner: a `run` job's agent outlives a dead
//! supervisor, and `resume` adopts it.

use crate::mqtt::client::Publisher;
use crate::registry::FleetOwner;
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
