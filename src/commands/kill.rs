//! `kill ID`: stop a job gracefully and mark it cancelled. A running
//! supervisor is asked (record flag + SIGUSR1) so it stops the window the
//! usual way; without one, this command runs the core's stop sequence
//! itself (`supervisor::stop`).

use crate::cli::IdArg;
use crate::config::Env;
use crate::error::Exit;
use crate::registry::Registry;
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

pub async fn run(args: &IdArg) -> anyhow::Result<Exit> {
    if let Some(config) = crate::fleet::remote::job_config(&args.id)? {
        return crate::fleet::remote::kill(&config, &args.id).await;
    }
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
    // No supervisor: the core's stop sequence, driven here.
    crate::supervisor::stop::stop_job(&registry, &job, "cancelled by `tmux-delegate kill`").await?;
    eprintln!("job {job}: cancelled");
    Ok(Exit::Success)
}
