//! The fleet's faults, round two (issue 22): a frozen runner (SIGSTOP of
//! its process only, then SIGCONT), a broker SIGKILLed with
//! `persistence true` (retained states it had acknowledged are gone after
//! its restart), and a clean broker restart (SIGTERM: Mosquitto publishes
//! every runner's Last Will as it shuts down). Each on the fleet harness
//! of `tests/common/fleet.rs`; every process is stopped by a Drop guard.

mod common;

use common::fleet::*;
use common::*;
use std::time::{Duration, Instant};

/// Short keepalive and failover grace, so a test takes seconds: the
/// broker declares a silent runner gone after 1.5 × 5 s (rumqttc's least
/// keepalive), and the pool re-offers its jobs 3 s after that if it has
/// not come back.
const FAST: &[&str] = &["keepalive = \"5s\"", "failover_after = \"3s\""];

/// What `docs/reliability.md` promises as the longest overlap of two
/// attempts of one job: the newer attempt's claim reaches the old
/// attempt's wrapper (one broker round trip) and the wrapper stops its
/// agent (TERM, which the fake agent obeys at once; `kill_grace` 1 s at
/// most); a generous margin for a loaded 2-core machine.
const MAX_OVERLAP: Duration = Duration::from_secs(3);

fn fast_fleet(runners: usize) -> Fleet {
    let fleet = Fleet::new(runners);
    for host in &fleet.hosts {
        for line in FAST {
            host.fleet_setting(line);
        }
    }
    fleet
}

/// `submit FILE` (no wait): the job ids it printed.
fn submit(fleet: &Fleet, jobs: &std::path::Path) -> Vec<String> {
    let mut submit = fleet.submit(&[jobs.to_str().expect("utf-8")]);
    let status = submit.finish(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{:?}", submit.stderr);
    submit.stdout.clone()
}

/// Waits until every job of `ids` has an agent run on some host.
fn wait_all_started(fleet: &Fleet, ids: &[String]) {
    let started = wait_for(Duration::from_secs(60), || {
        ids.iter()
            .all(|id| !fleet.runs_of(id).is_empty())
            .then_some(())
    });
    assert!(started.is_some(), "not every job started: {ids:?}");
}

#[test]
fn a_frozen_runner_never_overlaps_the_newer_attempt_and_the_newest_attempt_wins() {
    let mut fleet = fast_fleet(2);
    fleet.hosts[0].start(2);
    // The short job ends during the freeze; the long one outlives it.
    let short = submit(&fleet, &fleet.agent_jobs("short", 1, "timed", "3"))[0].clone();
    let long = submit(&fleet, &fleet.agent_jobs("long", 1, "timed", "20"))[0].clone();
    wait_all_started(&fleet, &[short.clone(), long.clone()]);
    fleet.hosts[1].start(2);
    // Every event from here on, to see that the fenced attempt says nothing.
    let mut watch = Lines::spawn(td(&fleet.submitter, &[]).args(["watch", "--all", "--json"]));
    assert!(
        watch.wait_line("watching", Duration::from_secs(20)),
        "{:?}",
        watch.stderr
    );
    let pid = fleet.hosts[0].runner_pid();
    let frozen_at = Instant::now();
    signal(pid, "STOP");
    wait_state(&fleet.submitter, &long, "running", 2);
    let detected = frozen_at.elapsed();
    eprintln!("attempt 2 of the long job runs {detected:?} after r0 froze");
    wait_state(&fleet.submitter, &short, "completed", 2);
    let freeze = Duration::from_secs(20);
    std::thread::sleep(freeze.saturating_sub(frozen_at.elapsed()));
    signal(pid, "CONT");
    let thawed_at = Instant::now();
    let done = wait_state(&fleet.submitter, &long, "completed", 2);
    // Whatever the thawed runner would publish, it has had the time to.
    std::thread::sleep(Duration::from_secs(5).saturating_sub(thawed_at.elapsed()));
    for id in [&short, &long] {
        let state = fleet_state(&fleet.submitter, id).expect("a state");
        assert_eq!(
            (state["state"].as_str(), state["attempt"].as_u64()),
            (Some("completed"), Some(2)),
            "{id}: the broker's final state is not the newest attempt: {state}\nr0: {:?}",
            fleet.hosts[0].runner_stderr()
        );
        assert_eq!(state["runner"], "r1", "{state}");
    }
    assert_eq!(done["runner"], "r1", "{done}");
    for (id, what) in [(&short, "short"), (&long, "long")] {
        let runs = fleet.runs_of(id);
        let both = overlap(&runs);
        eprintln!("{what} job: runs {runs:?}, two attempts alive together for {both:?}");
        assert!(runs.iter().all(|(_, _, end)| end.is_some()), "{runs:?}");
        assert!(both <= MAX_OVERLAP, "{what}: attempts overlapped {both:?}");
    }
    // The long job's attempt 1 was fenced off by attempt 2: it stopped its
    // agent and published nothing, not even `exited`.
    watch.wait_line("never printed", Duration::from_secs(1));
    let fenced_spoke: Vec<&String> = watch
        .stdout
        .iter()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l).is_ok_and(|e| {
                e["job"] == long.as_str()
                    && e["attempt"] == 1
                    && e["event"] == "exited"
                    && e["retained"] != true
            })
        })
        .collect();
    assert!(
        fenced_spoke.is_empty(),
        "the fenced attempt reported its end: {fenced_spoke:?}"
    );
}

#[test]
fn a_broker_sigkilled_with_persistence_gets_every_state_repaired_and_submit_wait_returns() {
    let mut fleet = fast_fleet(2);
    for host in &mut fleet.hosts {
        host.start(5);
    }
    let jobs = fleet.agent_jobs("kept", 10, "timed", "8");
    let (mut waiting, ids) = fleet.submit_waiting(&jobs, "kept-9");
    for id in &ids {
        wait_state(&fleet.submitter, id, "running", 1);
    }
    // The broker saves its retained states (every job running) ...
    signal(fleet.broker.child().id(), "USR1");
    std::thread::sleep(Duration::from_millis(500));
    // ... then stops answering while every job completes, and dies: what
    // it took in since the save is gone.
    signal(fleet.broker.child().id(), "STOP");
    let all_done = wait_for(Duration::from_secs(60), || {
        fleet
            .hosts
            .iter()
            .flat_map(|h| h.status())
            .filter(|j| j["state"] == "completed")
            .count()
            .eq(&ids.len())
            .then_some(())
    });
    assert!(all_done.is_some(), "the runners did not complete every job");
    fleet.stop_broker("KILL");
    fleet.start_broker_again();
    let restarted = Instant::now();
    let repaired = wait_for(Duration::from_secs(60), || {
        ids.iter()
            .all(|id| {
                fleet_state(&fleet.submitter, id)
                    .is_some_and(|s| s["state"] == "completed" && s["attempt"] == 1)
            })
            .then(|| restarted.elapsed())
    });
    let states: Vec<_> = ids
        .iter()
        .map(|id| fleet_state(&fleet.submitter, id))
        .collect();
    let repaired = repaired.unwrap_or_else(|| panic!("states not repaired: {states:?}"));
    eprintln!("every state repaired {repaired:?} after the broker's restart");
    let status = waiting.finish(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{:?}", waiting.stderr);
    eprintln!(
        "submit --wait returned {:?} after the restart",
        restarted.elapsed()
    );
    for id in &ids {
        assert_eq!(fleet.runs_of(id).len(), 1, "{id} ran again");
    }
    // The runners' registries, not a resend of the client library, put
    // the states right.
    let repairs: usize = fleet
        .hosts
        .iter_mut()
        .map(|h| {
            h.runner_stderr()
                .iter()
                .filter(|l| l.contains("publishing its state again"))
                .count()
        })
        .sum();
    eprintln!("states republished by the runners: {repairs}");
    assert!(repairs >= 1, "no runner repaired a state");
}

#[test]
fn a_clean_broker_restart_offers_no_job_again_and_runs_none_twice() {
    let mut fleet = fast_fleet(2);
    for host in &mut fleet.hosts {
        host.start(2);
    }
    let jobs = fleet.agent_jobs("steady", 4, "timed", "12");
    let (mut waiting, ids) = fleet.submit_waiting(&jobs, "steady-3");
    for id in &ids {
        wait_state(&fleet.submitter, id, "running", 1);
    }
    // Mosquitto publishes every runner's Last Will as it shuts down.
    fleet.stop_broker("TERM");
    fleet.start_broker_again();
    let status = waiting.finish(Duration::from_secs(90));
    assert_eq!(status.code(), Some(0), "{:?}", waiting.stderr);
    for id in &ids {
        let state = fleet_state(&fleet.submitter, id).expect("a state");
        assert_eq!(state["attempt"], 1, "{id} was offered again: {state}");
        assert_eq!(fleet.runs_of(id).len(), 1, "{id}: {:?}", fleet.runs_of(id));
    }
    for host in &mut fleet.hosts {
        let stderr = host.runner_stderr();
        assert!(
            !stderr.iter().any(|l| l.contains("offering job")),
            "{} offered a job again: {stderr:?}",
            host.name
        );
    }
}
