//! The queue (SPEC section 11): `max_parallel` measured from when each agent
//! run started and ended, across two `run`s of one registry, with a SIGKILLed
//! supervisor; `after` (skipped dependents, `after_failure = "run"`,
//! unknown names and cycles); `priority`; queued jobs surviving a crash.
//! Real Mosquitto, real tmux on a private socket, the real binary, fake
//! agents that write their pid and start and end times, and sleep.

mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A Mosquitto, a private tmux server and a project config naming both,
/// with agents: `sleeper` (pid file, sleeps 1.5 s, exits 0), `long` (pid
/// file, sleeps until its gate file exists), `failing` (exits 1). The
/// first two write when they start and end into `runs.log`.
fn queue_world(extra: &str) -> World {
    let world = World::mosquitto("");
    let pids = world.home.join("pids");
    std::fs::create_dir_all(&pids).expect("pids");
    let log = runs(&world);
    let sleeper = script(
        &world.scratch("sleeper.sh"),
        &format!(
            "echo $$ > {pids}/$1.tmp && mv {pids}/$1.tmp {pids}/$1\n\
             echo $1 >> {home}/order\n{start}\nsleep 1.5\n{end}\nexit 0",
            pids = pids.display(),
            home = world.home.display(),
            start = log.start("$1"),
            end = log.end("$1"),
        ),
    );
    let long = script(
        &world.scratch("long.sh"),
        &format!(
            "echo $$ > {pids}/$1.tmp && mv {pids}/$1.tmp {pids}/$1\n{start}\n\
             i=0; while [ ! -e {home}/gate ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done\n\
             {end}\nexit 0",
            pids = pids.display(),
            home = world.home.display(),
            start = log.start("$1"),
            end = log.end("$1"),
        ),
    );
    let failing = script(&world.scratch("failing.sh"), "exit 1");
    world.write_config(&format!(
        "[broker]\nhost = \"127.0.0.1\"\nport = {port}\n{extra}\n\
         [defaults.retry]\nmax_attempts = 1\n\
         [agents.sleeper]\ncommand = [\"{sleeper}\", \"{{prompt}}\"]\n\
         [agents.long]\ncommand = [\"{long}\", \"{{prompt}}\"]\n\
         [agents.failing]\ncommand = [\"{failing}\"]\n",
        port = world.port(),
        sleeper = sleeper.display(),
        long = long.display(),
        failing = failing.display(),
    ));
    world
}

/// When each `sleeper` and `long` run started and ended, by job name.
fn runs(world: &World) -> RunLog {
    RunLog::new(&world.home.join("runs.log"))
}

/// The most agents of `names` (or of any job, when empty) that ran at once.
fn peak_of(world: &World, names: &[&str]) -> usize {
    peak_overlap(
        runs(world)
            .runs()
            .into_iter()
            .filter(|r| names.is_empty() || names.contains(&r.key.as_str()))
            .map(|r| (r.start, r.end)),
    )
}

/// Writes a job file of `[[jobs]]` from `(name, agent, extra keys)`.
fn jobs(world: &World, file: &str, jobs: &[(&str, &str, &str)]) -> PathBuf {
    let body: String = jobs
        .iter()
        .map(|(name, agent, extra)| {
            format!(
                "[[jobs]]\nname = \"{name}\"\nagent = \"{agent}\"\nprompt = \"{name}\"\n{extra}\n"
            )
        })
        .collect();
    let path = world.dir.path().join(file);
    std::fs::write(&path, body).expect("job file");
    path
}

/// The pids the agents wrote, by job name.
fn agent_pids(world: &World) -> Vec<(String, i32)> {
    let Ok(entries) = std::fs::read_dir(world.home.join("pids")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".tmp"))
        .filter_map(|e| {
            let pid = std::fs::read_to_string(e.path())
                .ok()?
                .trim()
                .parse()
                .ok()?;
            Some((e.file_name().to_string_lossy().into_owned(), pid))
        })
        .collect()
}

fn alive_agents(world: &World) -> usize {
    agent_pids(world)
        .iter()
        .filter(|(_, pid)| alive(*pid))
        .count()
}

/// The order the `sleeper` agents started in.
fn start_order(world: &World) -> Vec<String> {
    std::fs::read_to_string(world.home.join("order"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn transitions_to(lines: &Lines, state: &str) -> Vec<String> {
    lines
        .stdout
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["to"] == state)
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn six_jobs_with_a_cap_of_two_never_run_more_than_two_agents_and_all_complete() {
    let setup = queue_world("");
    let names = ["j1", "j2", "j3", "j4", "j5", "j6"];
    let spec: Vec<(&str, &str, &str)> = names.iter().map(|n| (*n, "sleeper", "")).collect();
    let file = jobs(&setup, "six.toml", &spec);
    let mut lines = Lines::spawn(
        setup
            .td()
            .args(["run", "--json", "--max-parallel", "2"])
            .arg(&file),
    );
    // Two agents running means the other four wait in the queue.
    let saw_queued_in_status = wait_for(Duration::from_secs(60), || {
        (agent_pids(&setup).len() >= 2).then_some(())
    })
    .is_some()
        && setup.status().iter().any(|j| j["state"] == "queued");
    let status = lines.finish(Duration::from_secs(180));
    let most = peak_of(&setup, &[]);
    assert_eq!(
        status.code(),
        Some(0),
        "{:?}\n{:?}",
        lines.stdout,
        lines.stderr
    );
    assert!(
        most <= 2,
        "{most} agents were alive at once with a cap of 2"
    );
    assert_eq!(most, 2, "the cap of 2 was never used in full");
    assert_eq!(agent_pids(&setup).len(), 6, "every job's agent ran");
    let queued = transitions_to(&lines, "queued");
    assert!(
        queued.len() >= 4,
        "the jobs beyond the cap showed queued: {queued:?}"
    );
    assert!(saw_queued_in_status, "status --json showed queued jobs");
    for job in setup.status() {
        assert_eq!(job["state"], "completed", "{job}");
    }
}

#[test]
fn two_runs_sharing_a_registry_never_exceed_the_project_cap_together() {
    let setup = queue_world("[defaults]\nmax_parallel = 2\n");
    let a = jobs(
        &setup,
        "a.toml",
        &[
            ("a1", "sleeper", ""),
            ("a2", "sleeper", ""),
            ("a3", "sleeper", ""),
        ],
    );
    let b = jobs(
        &setup,
        "b.toml",
        &[
            ("b1", "sleeper", ""),
            ("b2", "sleeper", ""),
            ("b3", "sleeper", ""),
        ],
    );
    let mut run_a = Lines::spawn(setup.td().args(["run", "--json"]).arg(&a));
    let mut run_b = Lines::spawn(setup.td().args(["run", "--json"]).arg(&b));
    for run in [&mut run_a, &mut run_b] {
        let status = run.finish(Duration::from_secs(180));
        assert_eq!(status.code(), Some(0), "{:?}\n{:?}", run.stdout, run.stderr);
    }
    assert_eq!(
        runs(&setup).runs().len(),
        6,
        "every run's times are recorded"
    );
    let most = peak_of(&setup, &[]);
    assert!(
        most <= 2,
        "{most} agents were alive at once across two runs with a cap of 2"
    );
    assert_eq!(agent_pids(&setup).len(), 6);
}

#[test]
fn a_sigkilled_supervisor_keeps_no_slot_and_the_other_runs_next_job_starts_within_a_second() {
    let setup = queue_world("[defaults]\nmax_parallel = 2\n");
    let holder = jobs(
        &setup,
        "holder.toml",
        &[("h1", "long", ""), ("h2", "long", "")],
    );
    let waiter = jobs(&setup, "waiter.toml", &[("w1", "sleeper", "")]);
    let mut run_a = Lines::spawn(setup.td().args(["run", "--json"]).arg(&holder));
    assert!(
        wait_for(Duration::from_secs(60), || (alive_agents(&setup) == 2)
            .then_some(()))
        .is_some(),
        "the holder's two agents started: {:?} {:?}",
        run_a.stdout,
        run_a.stderr
    );
    let mut run_b = Lines::spawn(setup.td().args(["run", "--json"]).arg(&waiter));
    assert!(
        wait_for(Duration::from_secs(60), || {
            (setup.state("w1").as_deref() == Some("queued")).then_some(())
        })
        .is_some(),
        "the waiter's job queued behind the cap: {:?}",
        run_b.stderr
    );
    let killed = Instant::now();
    // Child::kill sends SIGKILL.
    run_a
        .guard
        .child()
        .kill()
        .expect("SIGKILL the holder's supervisor");
    let started = wait_for(Duration::from_secs(30), || {
        setup
            .state("w1")
            .filter(|s| s != "queued")
            .map(|_| killed.elapsed())
    })
    .expect("the waiter's job left the queue");
    eprintln!("the next job started {started:?} after the SIGKILL");
    assert!(
        started < Duration::from_secs(3),
        "took {started:?} (the slot retry is 200 ms; generous for a loaded machine)"
    );
    let status = run_b.finish(Duration::from_secs(60));
    assert_eq!(
        status.code(),
        Some(0),
        "{:?}\n{:?}",
        run_b.stdout,
        run_b.stderr
    );
}

#[test]
fn a_dependent_waits_for_completion_and_a_failed_dependency_skips_it_unless_after_failure_is_run() {
    let setup = queue_world("");
    let file = jobs(
        &setup,
        "deps.toml",
        &[
            ("second", "sleeper", "after = [\"first\"]"),
            ("first", "sleeper", ""),
            ("broken", "failing", ""),
            ("needs-broken", "sleeper", "after = [\"broken\"]"),
            (
                "after-anyway",
                "sleeper",
                "after = [\"broken\"]\nafter_failure = \"run\"",
            ),
        ],
    );
    let mut lines = Lines::spawn(setup.td().args(["run", "--json"]).arg(&file));
    let status = lines.finish(Duration::from_secs(120));
    assert_eq!(
        status.code(),
        Some(1),
        "a job failed: {:?}\n{:?}",
        lines.stdout,
        lines.stderr
    );
    let order = start_order(&setup);
    let pos = |n: &str| order.iter().position(|o| o == n);
    assert!(
        pos("first") < pos("second") && pos("second").is_some(),
        "{order:?}"
    );
    assert!(
        pos("needs-broken").is_none(),
        "a skipped job never ran: {order:?}"
    );
    assert!(
        pos("after-anyway").is_some(),
        "after_failure = \"run\" ran it: {order:?}"
    );
    let jobs = setup.status();
    let job = |n: &str| jobs.iter().find(|j| j["name"] == n).expect("job").clone();
    assert_eq!(job("second")["state"], "completed");
    assert_eq!(job("broken")["state"], "failed");
    assert_eq!(job("needs-broken")["state"], "skipped");
    assert_eq!(job("after-anyway")["state"], "completed");
    let skipped: Vec<Value> = lines
        .stdout
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["to"] == "skipped")
        .collect();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0]["reason"], "dependency `broken` failed");
    assert_eq!(
        job("needs-broken")["failure"]["reason"],
        "dependency `broken` failed"
    );
    let plain = run(setup.td().arg("status"));
    let table = text(&plain.stdout);
    assert!(
        table.contains("skipped") && table.contains("dependency `broken` failed"),
        "{table}"
    );
    // The second job's window opened only after the first one completed.
    let second_queued = transitions_to(&lines, "queued");
    assert!(
        second_queued.contains(&"second".to_owned()),
        "{second_queued:?}"
    );
    let history = |name: &str| -> Vec<Value> {
        let id = job(name)["id"].as_str().expect("id").to_owned();
        std::fs::read_to_string(setup.home.join("state/jobs").join(id).join("events.jsonl"))
            .expect("history")
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let completed_at = history("first")
        .iter()
        .find(|e| e["type"] == "transition" && e["to"] == "completed")
        .and_then(|e| e["ts"].as_f64())
        .expect("first completed");
    let opened_at = history("second")
        .iter()
        .find(|e| e["type"] == "window" && e["action"] == "opened")
        .and_then(|e| e["ts"].as_f64())
        .expect("second launched");
    assert!(opened_at >= completed_at, "{opened_at} < {completed_at}");
}

#[test]
fn an_unknown_dependency_or_a_cycle_is_exit_2_naming_it_before_anything_is_registered() {
    let setup = queue_world("");
    let unknown = jobs(
        &setup,
        "unknown.toml",
        &[("a", "sleeper", "after = [\"nope\"]")],
    );
    let out = run(setup.td().arg("run").arg(&unknown));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("`nope`"),
        "{}",
        text(&out.stderr)
    );
    let cycle = jobs(
        &setup,
        "cycle.toml",
        &[
            ("a", "sleeper", "after = [\"b\"]"),
            ("b", "sleeper", "after = [\"a\"]"),
        ],
    );
    let out = run(setup.td().arg("run").arg(&cycle));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cycle: a → b → a"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(setup.registered(), 0, "nothing was registered");
    assert!(agent_pids(&setup).is_empty());
}

#[test]
fn priority_orders_the_queue_higher_first_then_submission_order() {
    let setup = queue_world("");
    let file = jobs(
        &setup,
        "prio.toml",
        &[
            ("low", "sleeper", ""),
            ("high", "sleeper", "priority = 10"),
            ("mid-1", "sleeper", "priority = 5"),
            ("mid-2", "sleeper", "priority = 5"),
        ],
    );
    let mut lines = Lines::spawn(
        setup
            .td()
            .args(["run", "--json", "--max-parallel", "1"])
            .arg(&file),
    );
    let status = lines.finish(Duration::from_secs(120));
    assert_eq!(
        status.code(),
        Some(0),
        "{:?}\n{:?}",
        lines.stdout,
        lines.stderr
    );
    assert_eq!(start_order(&setup), ["high", "mid-1", "mid-2", "low"]);
}

#[test]
fn queued_jobs_survive_a_supervisor_crash_and_resume_runs_them_in_order() {
    let setup = queue_world("[defaults]\nmax_parallel = 1\n");
    let file = jobs(
        &setup,
        "crash.toml",
        &[
            ("c1", "long", "priority = 2"),
            ("c2", "sleeper", ""),
            ("c3", "sleeper", "priority = 1"),
        ],
    );
    let mut first = Lines::spawn(setup.td().args(["run", "--json"]).arg(&file));
    assert!(
        wait_for(Duration::from_secs(60), || {
            let c2_queued = setup.state("c2").as_deref() == Some("queued");
            (alive_agents(&setup) == 1 && c2_queued).then_some(())
        })
        .is_some(),
        "c1 runs and c2 queues: {:?}",
        first.stderr
    );
    // Child::kill sends SIGKILL.
    first.guard.child().kill().expect("SIGKILL the supervisor");
    let _ = first.finish(Duration::from_secs(10));
    assert_eq!(setup.state("c2").as_deref(), Some("queued"));
    assert_eq!(setup.state("c3").as_deref(), Some("queued"));
    let mut resumed = Lines::spawn(setup.td().arg("resume"));
    assert!(
        resumed.wait_line("taking over queued job", Duration::from_secs(30)),
        "{:?}",
        resumed.stderr
    );
    // c1 still holds the only slot: nothing else may start until it ends,
    // which the runs' recorded times show once all have run.
    std::fs::write(setup.home.join("gate"), "").expect("gate");
    let status = resumed.finish(Duration::from_secs(120));
    assert_eq!(
        peak_of(&setup, &[]),
        1,
        "the cap holds after the resume: {:?}",
        runs(&setup).runs()
    );
    assert_eq!(
        status.code(),
        Some(0),
        "{:?}\n{:?}",
        resumed.stdout,
        resumed.stderr
    );
    assert_eq!(
        start_order(&setup),
        ["c3", "c2"],
        "priority, then submission order"
    );
    for job in setup.status() {
        assert_eq!(job["state"], "completed", "{job}");
    }
}

#[test]
fn add_hands_jobs_to_the_live_run_where_the_cap_and_dependencies_apply() {
    let setup = queue_world("[defaults]\nmax_parallel = 1\n");
    let first = jobs(&setup, "first.toml", &[("first", "long", "")]);
    let mut running = Lines::spawn(setup.td().args(["run", "--json"]).arg(&first));
    assert!(
        wait_for(Duration::from_secs(60), || (alive_agents(&setup) == 1)
            .then_some(()))
        .is_some(),
        "{:?}",
        running.stderr
    );
    let later = jobs(
        &setup,
        "later.toml",
        &[("later", "sleeper", "after = [\"first\"]")],
    );
    let out = run(setup.td().arg("add").arg(&later));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out2 = run(setup.td().args([
        "add", "--agent", "sleeper", "--name", "quick", "--prompt", "quick",
    ]));
    assert!(out2.status.success(), "{}", text(&out2.stderr));
    let ids: Vec<String> = [&out, &out2]
        .iter()
        .flat_map(|o| {
            text(&o.stdout)
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(ids.len(), 2, "one id a line: {ids:?}");
    let jobs = setup.status();
    for id in &ids {
        let job = jobs
            .iter()
            .find(|j| j["id"] == id.as_str())
            .expect("added job");
        assert_eq!(job["state"], "queued", "{job}");
    }
    // The live run took both on: `later` waits for `first`, `quick` for a slot.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let queued = transitions_to(&running, "queued");
        if ["later", "quick"]
            .iter()
            .all(|n| queued.contains(&(*n).to_owned()))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the live run took the added jobs on: {:?} {:?}",
            running.stdout,
            running.stderr
        );
        running.wait_line("", Duration::from_millis(200));
    }
    assert_eq!(alive_agents(&setup), 1, "the cap holds for added jobs");
    std::fs::write(setup.home.join("gate"), "").expect("gate");
    let status = running.finish(Duration::from_secs(120));
    assert_eq!(
        peak_of(&setup, &[]),
        1,
        "the cap holds for added jobs: {:?}",
        runs(&setup).runs()
    );
    assert_eq!(
        status.code(),
        Some(0),
        "{:?}\n{:?}",
        running.stdout,
        running.stderr
    );
    assert_eq!(
        start_order(&setup),
        ["later", "quick"],
        "dependency met, then submission order"
    );
    for job in setup.status() {
        assert_eq!(job["state"], "completed", "{job}");
    }
}

#[test]
fn add_with_no_live_run_starts_a_detached_supervisor_for_its_jobs() {
    let setup = queue_world("");
    let out = run(setup.td().args([
        "add", "--agent", "sleeper", "--name", "solo", "--prompt", "solo",
    ]));
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let id = text(&out.stdout).lines().next().expect("an id").to_owned();
    assert!(
        wait_for(Duration::from_secs(90), || {
            setup
                .status()
                .into_iter()
                .find(|j| j["id"] == id.as_str() && j["state"] == "completed")
        })
        .is_some(),
        "the detached supervisor ran the job: {:?}",
        setup.status()
    );
    assert_eq!(start_order(&setup), ["solo"]);
}

#[test]
fn the_next_run_takes_over_the_queued_jobs_of_a_crashed_supervisor() {
    let setup = queue_world("[defaults]\nmax_parallel = 1\n");
    let file = jobs(
        &setup,
        "crash.toml",
        &[("q1", "long", ""), ("q2", "sleeper", "")],
    );
    let mut first = Lines::spawn(setup.td().args(["run", "--json"]).arg(&file));
    assert!(
        wait_for(Duration::from_secs(60), || {
            let q2_queued = setup.state("q2").as_deref() == Some("queued");
            (alive_agents(&setup) == 1 && q2_queued).then_some(())
        })
        .is_some(),
        "q1 runs and q2 queues: {:?}",
        first.stderr
    );
    // Child::kill sends SIGKILL.
    first.guard.child().kill().expect("SIGKILL the supervisor");
    let _ = first.finish(Duration::from_secs(10));
    std::fs::write(setup.home.join("gate"), "").expect("gate");
    let mut next = Lines::spawn(setup.td().args([
        "run", "--json", "--agent", "sleeper", "--name", "fresh", "--prompt", "fresh",
    ]));
    let status = next.finish(Duration::from_secs(120));
    assert_eq!(
        status.code(),
        Some(0),
        "{:?}\n{:?}",
        next.stdout,
        next.stderr
    );
    assert!(
        next.stderr
            .iter()
            .any(|l| l.contains("taking over queued job")),
        "{:?}",
        next.stderr
    );
    let order = start_order(&setup);
    assert!(
        order.contains(&"q2".to_owned()) && order.contains(&"fresh".to_owned()),
        "{order:?}"
    );
    for job in setup.status() {
        assert_eq!(job["state"], "completed", "{job}");
    }
}

#[test]
fn a_per_agent_cap_holds_while_other_agents_run_beside_it() {
    let setup = queue_world("");
    let sleeper = setup.dir.path().join("sleeper.sh");
    let mut config =
        std::fs::read_to_string(setup.home.join("tmux-delegate.toml")).expect("config");
    config.push_str(&format!(
        "[agents.capped]\ncommand = [\"{}\", \"{{prompt}}\"]\nmax_parallel = 1\n",
        sleeper.display()
    ));
    std::fs::write(setup.home.join("tmux-delegate.toml"), config).expect("config");
    let file = jobs(
        &setup,
        "capped.toml",
        &[
            ("k1", "capped", ""),
            ("k2", "capped", ""),
            ("k3", "capped", ""),
            ("free", "sleeper", ""),
        ],
    );
    let mut lines = Lines::spawn(setup.td().args(["run", "--json"]).arg(&file));
    let capped = ["k1", "k2", "k3"];
    let status = lines.finish(Duration::from_secs(180));
    assert_eq!(
        status.code(),
        Some(0),
        "{:?}\n{:?}",
        lines.stdout,
        lines.stderr
    );
    let (most_capped, most_all) = (peak_of(&setup, &capped), peak_of(&setup, &[]));
    assert_eq!(most_capped, 1, "at most one `capped` agent at a time");
    assert_eq!(most_all, 2, "the other agent ran beside it");
}

#[test]
fn killing_a_queued_job_cancels_it_and_skips_its_dependents() {
    let setup = queue_world("[defaults]\nmax_parallel = 1\n");
    let file = jobs(
        &setup,
        "kill.toml",
        &[
            ("holder", "long", ""),
            ("waiting", "sleeper", ""),
            ("dependent", "sleeper", "after = [\"waiting\"]"),
        ],
    );
    let mut lines = Lines::spawn(setup.td().args(["run", "--json"]).arg(&file));
    assert!(
        wait_for(Duration::from_secs(60), || {
            (setup.state("waiting").as_deref() == Some("queued")).then_some(())
        })
        .is_some(),
        "{:?}",
        lines.stderr
    );
    let id = setup
        .status()
        .into_iter()
        .find(|j| j["name"] == "waiting")
        .and_then(|j| j["id"].as_str().map(str::to_owned))
        .expect("id");
    let out = run(setup.td().args(["kill", &id]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(setup.state("waiting").as_deref(), Some("cancelled"));
    std::fs::write(setup.home.join("gate"), "").expect("gate");
    let status = lines.finish(Duration::from_secs(120));
    assert_eq!(
        status.code(),
        Some(1),
        "{:?}\n{:?}",
        lines.stdout,
        lines.stderr
    );
    let jobs = setup.status();
    let dependent = jobs.iter().find(|j| j["name"] == "dependent").expect("job");
    assert_eq!(dependent["state"], "skipped");
    assert_eq!(
        dependent["failure"]["reason"],
        "dependency `waiting` was cancelled"
    );
    assert_eq!(
        start_order(&setup),
        Vec::<String>::new(),
        "neither sleeper ran"
    );
}

/// `run --after NAME` with the dependency run by another supervisor (an
/// earlier `run --detach`): the dependent waits for it in its own
/// supervisor, which sees the end in the dependency's record, and starts
/// within a few seconds of it.
#[test]
fn after_a_job_of_another_supervisor_starts_once_that_job_completed() {
    let world = queue_world("");
    let (code, _, err) = world.finish(
        &[
            "run", "--detach", "--agent", "long", "--name", "first", "--prompt", "first",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = world.finish(
        &[
            "run", "--detach", "--agent", "sleeper", "--name", "second", "--after", "first",
            "--prompt", "second",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(world.state("second").as_deref(), Some("queued"));
    std::fs::write(world.home.join("gate"), "").expect("gate");
    let completed = wait_for(Duration::from_secs(30), || {
        (world.state("second").as_deref() == Some("completed")).then_some(())
    });
    assert!(completed.is_some(), "{:?}", world.status());
    let first_ended = world.first_transition_to(&world.id("first"), "completed");
    let second_started = world.first_transition_to(&world.id("second"), "launching");
    assert!(
        second_started >= first_ended && second_started - first_ended < 5.0,
        "first ended at {first_ended}, second started at {second_started}"
    );
}
