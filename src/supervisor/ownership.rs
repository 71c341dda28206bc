//! Who supervises a registered job: the rules by which a job is orphaned
//! (its supervisor is gone), is claimed by a new supervisor under the
//! registry lock, or never started (it waited in a queue and any supervisor
//! may start it), and which live supervisor `add` hands new jobs to. `run`,
//! `resume`, `add` and the driver decide ownership here and nowhere else.

use crate::config::{BrokerSettings, Config, TmuxSettings};
use crate::model::{JobId, JobState};
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

/// A job that was waiting in a queue (a slot, its dependencies) and never
/// launched: it survives its supervisor and the next one starts it.
pub fn never_started(record: &Record) -> bool {
    record.attempt == 0 && matches!(record.state, JobState::Queued | JobState::Pending)
}

/// A queued job `add` registered for the supervisor `pid` (it signals
/// SIGUSR1 after writing it): that supervisor takes it on.
pub fn handed_to(record: &Record, pid: u32) -> bool {
    record.supervisor_pid == i32::try_from(pid).ok() && record.supervised && never_started(record)
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

/// Claimed jobs that never launched report to this supervisor's broker: no
/// window has the old block, and an embedded broker died with the old
/// supervisor.
pub fn rebroker_never_started(
    registry: &Registry,
    records: &mut [Record],
    broker: &BrokerSettings,
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

/// A supervisor of this registry that runs now, on this tmux server.
pub struct Owner {
    pub pid: i32,
    /// The broker its jobs report to.
    pub broker: BrokerSettings,
}

/// The supervisor of the most recently updated unfinished job on this tmux
/// server whose process still runs: `add` hands its jobs to it.
pub fn live_supervisor(config: &Config, registry: &Registry) -> Option<Owner> {
    let (mut records, _) = registry.list().ok()?;
    let tmux = TmuxSettings::resolve(&config.defaults.tmux).with_current_server(&config.env);
    records.sort_by(|a, b| b.updated.cmp(&a.updated));
    records.into_iter().find_map(|r| {
        let pid = r.supervisor_pid?;
        let usable = r.supervised
            && !r.state.is_finished()
            && r.spec.tmux.socket == tmux.socket
            && r.spec.tmux.socket_path == tmux.socket_path
            && crate::proc::is_tmux_delegate(pid);
        usable.then_some(())?;
        Some(Owner {
            pid,
            broker: r.broker?,
        })
    })
}
