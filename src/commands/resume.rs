//! `resume`: re-adopt the unfinished jobs of a supervisor that is gone (a
//! crash, a closed terminal). Live windows are supervised on; a retained
//! `completed`/`error` decides a job that ended meanwhile; a window that is
//! gone or dead fails (or retries) its attempt by the usual rules.

use super::run::{listen_for_cancel_requests, supervise, Brokers};
use crate::config::{Config, Env};
use crate::error::{config_error, Exit};
use crate::model::JobId;
use crate::registry::{Record, Registry};

/// A supervised job left unfinished by a supervisor that no longer runs.
pub fn orphaned(record: &Record) -> bool {
    record.supervised
        && record.agent.is_some()
        && !record.state.is_finished()
        && (record.attempt > 0 || never_started(record))
        && !record
            .supervisor_pid
            .is_some_and(crate::proc::is_tmux_delegate)
}

pub use crate::supervisor::admit::never_started;

/// Claimed jobs that never launched report to this supervisor's broker: no
/// window has the old block, and an embedded broker died with the old
/// supervisor.
pub fn rebroker_never_started(
    registry: &Registry,
    records: &mut [Record],
    broker: &crate::config::BrokerSettings,
) {
    for record in records.iter_mut().filter(|r| never_started(r)) {
        let Ok(id) = JobId::parse(&record.id) else {
            continue;
        };
        match registry.update(&id, |r| r.broker = Some(broker.clone())) {
            Ok(updated) => *record = updated,
            Err(e) => eprintln!("warning: cannot update job {id}: {e:#}"),
        }
    }
}

/// Makes this process the supervisor of each orphan that is still one when
/// the registry lock is held: two supervisors starting at once never adopt
/// the same job. Returns the records claimed.
pub fn claim(registry: &Registry, orphans: Vec<Record>) -> Vec<Record> {
    let me = i32::try_from(std::process::id()).ok();
    let mut claimed = Vec::new();
    for record in orphans {
        let Ok(id) = JobId::parse(&record.id) else {
            continue;
        };
        let update = registry.update(&id, |r| {
            if orphaned(r) {
                r.supervisor_pid = me;
            }
        });
        match update {
            Ok(record) if record.supervisor_pid == me => {
                if never_started(&record) {
                    eprintln!("taking over queued job {id}");
                } else {
                    eprintln!("re-adopting job {id} (attempt {})", record.attempt);
                }
                claimed.push(record);
            }
            Ok(_) => {}
            Err(e) => eprintln!("warning: cannot re-adopt job {id}: {e:#}"),
        }
    }
    claimed
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
        // A detached `resume` (started by `add`) tells its launcher too.
        super::detach::report_ready(&config.env);
        eprintln!("nothing to resume: no unfinished job has lost its supervisor");
        return Ok(Exit::Success);
    }
    let launched = orphans.iter().any(|r| !never_started(r));
    if launched && config.observer_broker()?.is_none() {
        let failure = config_error(format!(
            "{} job(s) to resume, but no broker is configured: the embedded broker they reported to ended with their supervisor",
            orphans.len()
        ))
        .help("stop them with `tmux-delegate kill ID` and start them again with `tmux-delegate retry ID`");
        return super::detach::report_failure(&config.env, Err(failure));
    }
    let brokers = super::detach::report_failure(&config.env, Brokers::resolve(&config).await)?;
    let subscriber = super::detach::report_failure(&config.env, brokers.listen().await)?;
    let mut adopted = claim(&registry, orphans);
    rebroker_never_started(&registry, &mut adopted, &brokers.worker);
    super::detach::report_ready(&config.env);
    let json = !std::io::IsTerminal::is_terminal(&std::io::stdout());
    supervise(
        &config, &registry, &brokers, subscriber, adopted, json, true,
    )
    .await
}
