//! `resume`: re-adopt the unfinished jobs of a supervisor that is gone (a
//! crash, a closed terminal). Live windows are supervised on; a retained
//! `completed`/`error` decides a job that ended meanwhile; a window that is
//! gone or dead fails (or retries) its attempt by the usual rules.

use super::run::{listen_for_cancel_requests, supervise, Brokers};
use crate::config::{Config, Env};
use crate::error::{config_error, Exit};
use crate::mqtt::topic::JobId;
use crate::registry::{Record, Registry};

/// A supervised job left unfinished by a supervisor that no longer runs.
fn orphaned(record: &Record) -> bool {
    record.supervised
        && record.agent.is_some()
        && !record.state.is_finished()
        && record.attempt > 0
        && !record
            .supervisor_pid
            .is_some_and(crate::proc::is_tmux_delegate)
}

pub async fn run() -> anyhow::Result<Exit> {
    listen_for_cancel_requests()?;
    let config = Config::load(Env::from_process()?)?;
    let registry = Registry::open(&config.env)?;
    let (records, corrupt) = registry.list()?;
    for bad in corrupt {
        eprintln!("warning: skipping job {}: {}", bad.id, bad.problem);
    }
    let orphans: Vec<Record> = records.into_iter().filter(orphaned).collect();
    if orphans.is_empty() {
        eprintln!("nothing to resume: no unfinished job has lost its supervisor");
        return Ok(Exit::Success);
    }
    if config.observer_broker()?.is_none() {
        return Err(config_error(format!(
            "{} job(s) to resume, but no broker is configured: the embedded broker they reported to ended with their supervisor",
            orphans.len()
        ))
        .help("stop them with `tmux-delegate kill ID` and start them again with `tmux-delegate retry ID`")
        .into());
    }
    let brokers = Brokers::resolve(&config).await?;
    let subscriber = brokers.listen().await?;
    let me = i32::try_from(std::process::id()).ok();
    let mut adopted = Vec::new();
    for record in orphans {
        let id = JobId::parse(&record.id)?;
        eprintln!("re-adopting job {id} (attempt {})", record.attempt);
        adopted.push(registry.update(&id, |r| r.supervisor_pid = me)?);
    }
    let json = !std::io::IsTerminal::is_terminal(&std::io::stdout());
    supervise(
        &config, &registry, &brokers, subscriber, adopted, json, true,
    )
    .await
}
