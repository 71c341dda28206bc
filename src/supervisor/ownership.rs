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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env_with;

    /// A supervised record of `state` at `attempt`, with no supervisor.
    fn record(dir: &std::path::Path, id: &str, state: JobState, attempt: u32) -> Record {
        let config = Config::load(env_with(&[], dir)).expect("config");
        let flags = crate::config::job::JobFlags {
            prompt: Some("do it".into()),
            ..Default::default()
        };
        let spec = config.resolve_job(None, &flags).expect("spec");
        let agent = crate::agents::resolve(&config, &spec.agent).expect("agent");
        Record {
            state,
            attempt,
            supervised: true,
            agent: Some(agent),
            supervisor_pid: None,
            ..Record::new(&JobId::parse(id).expect("id"), spec, "00".into())
        }
    }

    /// This process, as a record names its supervisor.
    fn me() -> Option<i32> {
        i32::try_from(std::process::id()).ok()
    }

    #[test]
    fn only_a_queued_or_pending_job_without_an_attempt_never_started() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cases = [
            (JobState::Queued, 0, true),
            (JobState::Pending, 0, true),
            (JobState::Queued, 1, false),
            (JobState::Running, 0, false),
            (JobState::Completed, 0, false),
            (JobState::Retrying, 2, false),
        ];
        for (state, attempt, expected) in cases {
            let r = record(dir.path(), "j-1", state, attempt);
            assert_eq!(never_started(&r), expected, "{state:?} at {attempt}");
        }
    }

    #[test]
    fn an_unfinished_supervised_job_is_orphaned_when_its_supervisor_is_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let running = record(dir.path(), "j-1", JobState::Running, 1);
        assert!(orphaned(&running), "no supervisor at all");
        let pid_reused = Record {
            supervisor_pid: Some(1),
            ..running.clone()
        };
        assert!(orphaned(&pid_reused), "pid 1 is no tmux-delegate");
        let registered = Record {
            agent: None,
            ..running.clone()
        };
        assert!(!orphaned(&registered), "its agent reports on its own");
        let unsupervised = Record {
            supervised: false,
            ..running.clone()
        };
        assert!(!orphaned(&unsupervised));
        let finished = record(dir.path(), "j-1", JobState::Failed, 1);
        assert!(!orphaned(&finished));
        let queued = record(dir.path(), "j-1", JobState::Queued, 0);
        assert!(orphaned(&queued), "a queued job any supervisor may start");
        let between = record(dir.path(), "j-1", JobState::Running, 0);
        assert!(!orphaned(&between), "running without an attempt: not ours");
    }

    #[test]
    fn a_queued_job_is_handed_to_the_supervisor_its_record_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid = std::process::id();
        let queued = Record {
            supervisor_pid: me(),
            ..record(dir.path(), "j-1", JobState::Queued, 0)
        };
        assert!(handed_to(&queued, pid));
        assert!(!handed_to(&queued, pid + 1), "another supervisor's");
        let started = Record {
            attempt: 1,
            ..queued.clone()
        };
        assert!(!handed_to(&started, pid), "it launched already");
    }

    #[test]
    fn claim_takes_only_the_records_that_are_still_orphans_under_the_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::at(dir.path().join("state"));
        let orphan = record(dir.path(), "orphan-1", JobState::Running, 1);
        let queued = record(dir.path(), "queued-1", JobState::Queued, 0);
        let ended = record(dir.path(), "ended-1", JobState::Running, 1);
        for r in [&orphan, &queued, &ended] {
            registry.create(r).expect("create");
        }
        // It ended between the listing and the claim.
        registry
            .update(&JobId::parse("ended-1").expect("id"), |r| {
                r.state = JobState::Completed;
            })
            .expect("update");
        let claimed = claim(&registry, vec![orphan, queued, ended]);
        let ids: Vec<&str> = claimed.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["orphan-1", "queued-1"]);
        assert!(claimed.iter().all(|r| r.supervisor_pid == me()));
        let broker = BrokerSettings {
            port: 18830,
            ..test_broker()
        };
        let mut claimed = claimed;
        rebroker_never_started(&registry, &mut claimed, &broker);
        assert_eq!(claimed[1].broker.as_ref().map(|b| b.port), Some(18830));
        assert_eq!(claimed[0].broker, None, "a launched job keeps its broker");
    }

    fn test_broker() -> BrokerSettings {
        let dir = tempfile::tempdir().expect("tempdir");
        let config =
            Config::load(env_with(&[("MQTT_BROKER", "localhost")], dir.path())).expect("config");
        config
            .observer_broker()
            .expect("broker")
            .expect("configured")
    }
}
