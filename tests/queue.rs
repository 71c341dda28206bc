//! The queue (SPEC section 11): `max_parallel` measured by sampling the live
//! agent processes, across two `run`s of one registry, with a SIGKILLed
//! supervisor; `after` (skipped dependents, `after_failure = "run"`,
//! unknown names and cycles); `priority`; queued jobs surviving a crash.
//! Real Mosquitto, real tmux on a private socket, the real binary, fake
//! agents that write their pid and sleep.

mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Fields drop in order: tmux and the broker stop while their directory exists.
struct Setup {
    tmux: TmuxServer,
    _broker: Mosquitto,
    home: PathBuf,
    dir: tempfile::TempDir,
}

impl Setup {
    /// A Mosquitto, a private tmux server and a project config naming both,
    /// with agents: `sleeper` (pid file, sleeps 1.5 s, exits 0), `long`
    /// (pid file, sleeps until its gate file exists), `failing` (exits 1).
    fn new(extra: &str) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = Mosquitto::start(dir.path(), "allow_anonymous true\n");
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join("pids")).expect("home");
        let tmux = TmuxServer::new(dir.path());
        let pids = home.join("pids");
        let sleeper = script(
            &dir.path().join("sleeper.sh"),
            &format!(
                "echo $$ > {pids}/$1.tmp && mv {pids}/$1.tmp {pids}/$1\n\
                 echo $1 >> {home}/order\nsleep 1.5\nexit 0",
                pids = pids.display(),
                home = home.display()
            ),
        );
        let long = script(
            &dir.path().join("long.sh"),
            &format!(
                "echo $$ > {pids}/$1.tmp && mv {pids}/$1.tmp {pids}/$1\n\
                 i=0; while [ ! -e {home}/gate ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done\nexit 0",
                pids = pids.display(),
                home = home.display()
            ),
        );
        let failing = script(&dir.path().join("failing.sh"), "exit 1");
        let config = format!(
            "[broker]\nhost = \"127.0.0.1\"\nport = {port}\n{extra}\n\
             [defaults.retry]\nmax_attempts = 1\n\
             [defaults.tmux]\nsocket = \"{socket}\"\nkeep_failed = false\nkill_grace = \"1s\"\n\
             [agents.sleeper]\ncommand = [\"{sleeper}\", \"{{prompt}}\"]\n\
             [agents.long]\ncommand = [\"{long}\", \"{{prompt}}\"]\n\
             [agents.failing]\ncommand = [\"{failing}\"]\n",
            port = broker.port,
            socket = tmux.socket,
            sleeper = sleeper.display(),
            long = long.display(),
            failing = failing.display(),
        );
        std::fs::write(home.join("tmux-delegate.toml"), config).expect("project config");
        Setup {
            dir,
            home,
            tmux,
            _broker: broker,
        }
    }

    fn td(&self) -> std::process::Command {
        let tmpdir = self.tmux.tmpdir.display().to_string();
        td(&self.home, &[("TMUX_TMPDIR", tmpdir.as_str())])
    }

    /// Writes a job file of `[[jobs]]` from `(name, agent, extra keys)`.
    fn jobs(&self, file: &str, jobs: &[(&str, &str, &str)]) -> PathBuf {
        let body: String = jobs
            .iter()
            .map(|(name, agent, extra)| {
                format!(
                    "[[jobs]]\nname = \"{name}\"\nagent = \"{agent}\"\nprompt = \"{name}\"\n{extra}\n"
                )
            })
            .collect();
        let path = self.dir.path().join(file);
        std::fs::write(&path, body).expect("job file");
        path
    }

    fn status(&self) -> Vec<Value> {
        let out = run(self.td().args(["status", "--json"]));
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("status json")
    }

    fn state_of(&self, name: &str) -> Option<String> {
        self.status()
            .into_iter()
            .find(|j| j["name"] == name)
            .and_then(|j| j["state"].as_str().map(str::to_owned))
    }

    /// The pids the agents wrote, by job name.
    fn agent_pids(&self) -> Vec<(String, i32)> {
        let Ok(entries) = std::fs::read_dir(self.home.join("pids")) else {
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

    fn alive_agents(&self) -> usize {
        self.agent_pids()
            .iter()
            .filter(|(_, pid)| alive(*pid))
            .count()
    }

    /// The order the `sleeper` agents started in.
    fn start_order(&self) -> Vec<String> {
        std::fs::read_to_string(self.home.join("order"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn registered(&self) -> usize {
        std::fs::read_dir(self.home.join("state/jobs"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        // Let gated agents end; the tmux server's drop closes the windows.
        let _ = std::fs::write(self.home.join("gate"), "");
    }
}

/// Samples the live agents every 50 ms while `until` is false; the most
/// seen alive at once.
fn sample_max_alive(setup: &Setup, limit: Duration, mut until: impl FnMut() -> bool) -> usize {
    let deadline = Instant::now() + limit;
    let mut most = 0;
    while !until() {
        assert!(Instant::now() < deadline, "not done within {limit:?}");
        most = most.max(setup.alive_agents());
        std::thread::sleep(Duration::from_millis(50));
    }
    most
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

fn exited(lines: &mut Lines) -> bool {
    lines.guard.child().try_wait().ok().flatten().is_some()
}

#[test]
fn six_jobs_with_a_cap_of_two_never_run_more_than_two_agents_and_all_complete() {
    let setup = Setup::new("");
    let names = ["j1", "j2", "j3", "j4", "j5", "j6"];
    let spec: Vec<(&str, &str, &str)> = names.iter().map(|n| (*n, "sleeper", "")).collect();
    let file = setup.jobs("six.toml", &spec);
    let mut lines = Lines::spawn(
        setup
            .td()
            .args(["run", "--json", "--max-parallel", "2"])
            .arg(&file),
    );
    let mut saw_queued_in_status = false;
    let most = sample_max_alive(&setup, Duration::from_secs(180), || {
        if !saw_queued_in_status && setup.agent_pids().len() >= 2 {
            saw_queued_in_status = setup.status().iter().any(|j| j["state"] == "queued");
        }
        exited(&mut lines)
    });
    let status = lines.finish(Duration::from_secs(30));
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
    assert_eq!(setup.agent_pids().len(), 6, "every job's agent ran");
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
    let setup = Setup::new("[defaults]\nmax_parallel = 2\n");
    let a = setup.jobs(
        "a.toml",
        &[
            ("a1", "sleeper", ""),
            ("a2", "sleeper", ""),
            ("a3", "sleeper", ""),
        ],
    );
    let b = setup.jobs(
        "b.toml",
        &[
            ("b1", "sleeper", ""),
            ("b2", "sleeper", ""),
            ("b3", "sleeper", ""),
        ],
    );
    let mut run_a = Lines::spawn(setup.td().args(["run", "--json"]).arg(&a));
    let mut run_b = Lines::spawn(setup.td().args(["run", "--json"]).arg(&b));
    let most = sample_max_alive(&setup, Duration::from_secs(180), || {
        exited(&mut run_a) && exited(&mut run_b)
    });
    for run in [&mut run_a, &mut run_b] {
        let status = run.finish(Duration::from_secs(30));
        assert_eq!(status.code(), Some(0), "{:?}\n{:?}", run.stdout, run.stderr);
    }
    assert!(
        most <= 2,
        "{most} agents were alive at once across two runs with a cap of 2"
    );
    assert_eq!(setup.agent_pids().len(), 6);
}

#[test]
fn a_sigkilled_supervisor_keeps_no_slot_and_the_other_runs_next_job_starts_within_a_second() {
    let setup = Setup::new("[defaults]\nmax_parallel = 2\n");
    let holder = setup.jobs("holder.toml", &[("h1", "long", ""), ("h2", "long", "")]);
    let waiter = setup.jobs("waiter.toml", &[("w1", "sleeper", "")]);
    let mut run_a = Lines::spawn(setup.td().args(["run", "--json"]).arg(&holder));
    assert!(
        wait_for(Duration::from_secs(60), || (setup.alive_agents() == 2)
            .then_some(()))
        .is_some(),
        "the holder's two agents started: {:?} {:?}",
        run_a.stdout,
        run_a.stderr
    );
    let mut run_b = Lines::spawn(setup.td().args(["run", "--json"]).arg(&waiter));
    assert!(
        wait_for(Duration::from_secs(60), || {
            (setup.state_of("w1").as_deref() == Some("queued")).then_some(())
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
            .state_of("w1")
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
    let setup = Setup::new("");
    let file = setup.jobs(
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
    let order = setup.start_order();
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
    let setup = Setup::new("");
    let unknown = setup.jobs("unknown.toml", &[("a", "sleeper", "after = [\"nope\"]")]);
    let out = run(setup.td().arg("run").arg(&unknown));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("`nope`"),
        "{}",
        text(&out.stderr)
    );
    let cycle = setup.jobs(
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
    assert!(setup.agent_pids().is_empty());
}

#[test]
fn priority_orders_the_queue_higher_first_then_submission_order() {
    let setup = Setup::new("");
    let file = setup.jobs(
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
    assert_eq!(setup.start_order(), ["high", "mid-1", "mid-2", "low"]);
}

#[test]
fn queued_jobs_survive_a_supervisor_crash_and_resume_runs_them_in_order() {
    let setup = Setup::new("[defaults]\nmax_parallel = 1\n");
    let file = setup.jobs(
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
            let c2_queued = setup.state_of("c2").as_deref() == Some("queued");
            (setup.alive_agents() == 1 && c2_queued).then_some(())
        })
        .is_some(),
        "c1 runs and c2 queues: {:?}",
        first.stderr
    );
    // Child::kill sends SIGKILL.
    first.guard.child().kill().expect("SIGKILL the supervisor");
    let _ = first.finish(Duration::from_secs(10));
    assert_eq!(setup.state_of("c2").as_deref(), Some("queued"));
    assert_eq!(setup.state_of("c3").as_deref(), Some("queued"));
    let mut resumed = Lines::spawn(setup.td().arg("resume"));
    assert!(
        resumed.wait_line("taking over queued job", Duration::from_secs(30)),
        "{:?}",
        resumed.stderr
    );
    // c1 still holds the only slot: nothing else may start until it ends.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(setup.alive_agents(), 1, "the cap holds after the resume");
    std::fs::write(setup.home.join("gate"), "").expect("gate");
    let status = resumed.finish(Duration::from_secs(120));
    assert_eq!(
        status.code(),
        Some(0),
        "{:?}\n{:?}",
        resumed.stdout,
        resumed.stderr
    );
    assert_eq!(
        setup.start_order(),
        ["c3", "c2"],
        "priority, then submission order"
    );
    for job in setup.status() {
        assert_eq!(job["state"], "completed", "{job}");
    }
}

#[test]
fn add_hands_jobs_to_the_live_run_where_the_cap_and_dependencies_apply() {
    let setup = Setup::new("[defaults]\nmax_parallel = 1\n");
    let first = setup.jobs("first.toml", &[("first", "long", "")]);
    let mut running = Lines::spawn(setup.td().args(["run", "--json"]).arg(&first));
    assert!(
        wait_for(Duration::from_secs(60), || (setup.alive_agents() == 1)
            .then_some(()))
        .is_some(),
        "{:?}",
        running.stderr
    );
    let later = setup.jobs("later.toml", &[("later", "sleeper", "after = [\"first\"]")]);
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
    assert_eq!(setup.alive_agents(), 1, "the cap holds for added jobs");
    std::fs::write(setup.home.join("gate"), "").expect("gate");
    let status = running.finish(Duration::from_secs(120));
    assert_eq!(
        status.code(),
        Some(0),
        "{:?}\n{:?}",
        running.stdout,
        running.stderr
    );
    assert_eq!(
        setup.start_order(),
        ["later", "quick"],
        "dependency met, then submission order"
    );
    for job in setup.status() {
        assert_eq!(job["state"], "completed", "{job}");
    }
}

#[test]
fn add_with_no_live_run_starts_a_detached_supervisor_for_its_jobs() {
    let setup = Setup::new("");
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
    assert_eq!(setup.start_order(), ["solo"]);
}

#[test]
fn the_next_run_takes_over_the_queued_jobs_of_a_crashed_supervisor() {
    let setup = Setup::new("[defaults]\nmax_parallel = 1\n");
    let file = setup.jobs("crash.toml", &[("q1", "long", ""), ("q2", "sleeper", "")]);
    let mut first = Lines::spawn(setup.td().args(["run", "--json"]).arg(&file));
    assert!(
        wait_for(Duration::from_secs(60), || {
            let q2_queued = setup.state_of("q2").as_deref() == Some("queued");
            (setup.alive_agents() == 1 && q2_queued).then_some(())
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
    let order = setup.start_order();
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
    let setup = Setup::new("");
    let sleeper = setup.dir.path().join("sleeper.sh");
    let mut config =
        std::fs::read_to_string(setup.home.join("tmux-delegate.toml")).expect("config");
    config.push_str(&format!(
        "[agents.capped]\ncommand = [\"{}\", \"{{prompt}}\"]\nmax_parallel = 1\n",
        sleeper.display()
    ));
    std::fs::write(setup.home.join("tmux-delegate.toml"), config).expect("config");
    let file = setup.jobs(
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
    let deadline = Instant::now() + Duration::from_secs(180);
    let (mut most_capped, mut most_all) = (0, 0);
    while !exited(&mut lines) {
        assert!(Instant::now() < deadline, "not done in time");
        let alive: Vec<String> = setup
            .agent_pids()
            .into_iter()
            .filter(|(_, pid)| alive(*pid))
            .map(|(name, _)| name)
            .collect();
        most_capped = most_capped.max(
            alive
                .iter()
                .filter(|n| capped.contains(&n.as_str()))
                .count(),
        );
        most_all = most_all.max(alive.len());
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = lines.finish(Duration::from_secs(30));
    assert_eq!(
        status.code(),
        Some(0),
        "{:?}\n{:?}",
        lines.stdout,
        lines.stderr
    );
    assert_eq!(most_capped, 1, "at most one `capped` agent at a time");
    assert_eq!(most_all, 2, "the other agent ran beside it");
}

#[test]
fn killing_a_queued_job_cancels_it_and_skips_its_dependents() {
    let setup = Setup::new("[defaults]\nmax_parallel = 1\n");
    let file = setup.jobs(
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
            (setup.state_of("waiting").as_deref() == Some("queued")).then_some(())
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
    assert_eq!(setup.state_of("waiting").as_deref(), Some("cancelled"));
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
        setup.start_order(),
        Vec::<String>::new(),
        "neither sleeper ran"
    );
}
