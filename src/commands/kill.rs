//! `kill ID`: stop a job gracefully and mark it cancelled. A running
//! supervisor is asked (record flag + SIGUSR1) so it stops the window the
//! usual way; without one, this command stops the agent's group itself.

use crate::cli::IdArg;
use crate::config::Env;
use crate::error::Exit;
use crate::mqtt::event::now_ts;
use crate::mqtt::topic::JobId;
use crate::registry::{JobState, LogEntry, Registry};
use crate::tmux::Tmux;
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

pub async fn run(args: &IdArg) -> anyhow::Result<Exit> {
    let env = Env::from_process()?;
    let registry = Registry::open(&env)?;
    let (job, _) = registry.find(&args.id)?;
    let record = registry.update(&job, |r| {
        if !r.state.is_finished() {
            r.cancel_requested = true;
        }
    })?;
    if record.state.is_finished() {
        eprintln!("job {job} is already {}", record.state.as_str());
        return Ok(Exit::Success);
    }
    let grace = record.spec.tmux.kill_grace;
    // Only a live tmux-delegate is asked: SIGUSR1 would end a stranger that
    // reused the pid of a supervisor that died.
    let asked = record
        .supervisor_pid
        .filter(|pid| crate::proc::is_tmux_delegate(*pid))
        .is_some_and(|pid| crate::proc::signal_process(pid, Signal::SIGUSR1).unwrap_or(false));
    if asked {
        let deadline = Instant::now() + grace + Duration::from_secs(10);
        while Instant::now() < deadline {
            let state = registry.load(&job)?.state;
            if state.is_finished() {
                eprintln!("job {job}: {}", state.as_str());
                return Ok(Exit::Success);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!("the supervisor did not stop job {job} in time; stopping it here");
    }
    stop_here(&registry, &job, grace).await?;
    eprintln!("job {job}: cancelled");
    Ok(Exit::Success)
}

/// SIGTERM the agent's group, SIGKILL after the grace, close the window.
async fn stop_here(registry: &Registry, job: &JobId, grace: Duration) -> anyhow::Result<()> {
    let record = registry.load(job)?;
    let attempt = record
        .attempt_info(record.attempt)
        .cloned()
        .unwrap_or_default();
    if let Some(pgid) = attempt.agent_group() {
        if crate::proc::signal_group(pgid, Signal::SIGTERM).unwrap_or(false) {
            let deadline = Instant::now() + grace;
            while crate::proc::group_alive(pgid) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if crate::proc::group_alive(pgid) {
                let _ = crate::proc::signal_group(pgid, Signal::SIGKILL);
            }
        }
    }
    if let Some(window) = &attempt.window {
        let tmux = Tmux::new(&record.spec.tmux, vec!["MQTT_PASSWORD".into()]);
        tmux.kill_window(window).await?;
    }
    let from = record.state;
    registry.update(job, |r| {
        r.state = JobState::Cancelled;
        r.supervisor_pid = None;
    })?;
    registry.append(
        job,
        &LogEntry::Transition {
            ts: now_ts(),
            attempt: record.attempt,
            from,
            to: JobState::Cancelled,
            reason: Some("cancelled by `tmux-delegate kill`".into()),
        },
    )
}
