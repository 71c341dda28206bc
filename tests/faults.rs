//! Fault injection, one test per fault (docs/reliability.md lists them):
//! a supervisor SIGKILLed mid-run, a broker outage as the agent exits,
//! several `run`s racing to start one tmux server, a detached supervisor
//! that cannot reach its broker, records with bad ids, replayable signed
//! events, and readers that close the pipe. Real Mosquitto, real tmux on a
//! private socket, the real binary, small fake agents.

mod common;

use common::*;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Windows opened for the job, over every supervisor it had.
fn windows_opened(world: &World, id: &str) -> usize {
    world
        .history(id)
        .iter()
        .filter(|e| e["type"] == "window" && e["action"] == "opened")
        .count()
}

fn first_launch(world: &World, id: &str) -> f64 {
    world
        .history(id)
        .iter()
        .find(|e| e["type"] == "window" && e["action"] == "opened")
        .and_then(|e| e["ts"].as_f64())
        .expect("a window was opened")
}

/// An agent that waits for its gate file `<dir>/gate-<prompt>`, then
/// reports `completed` and exits 0.
fn gated_agent(dir: &Path) -> PathBuf {
    script(
        &dir.join("gated.sh"),
        &format!(
            "i=0; while [ ! -e {}/gate-$1 ] && [ $i -lt 900 ]; do sleep 0.1; i=$((i+1)); done\n\
             \"$TMUX_DELEGATE_BIN\" publish --event completed --message \"done: $1\"",
            dir.display()
        ),
    )
}

/// Reads transition lines of `run --json` until `done` holds for them.
fn wait_transitions(lines: &mut Lines, limit: Duration, done: impl Fn(&[Value]) -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let seen: Vec<Value> = lines
            .stdout
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if done(&seen) {
            return true;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || !lines.wait_line("", left) {
            return false;
        }
    }
}

fn reached(seen: &[Value], name: &str, to: &str) -> bool {
    seen.iter().any(|t| t["name"] == name && t["to"] == to)
}

fn sigkill(lines: &mut Lines) {
    let pid = lines.guard.child().id().to_string();
    assert!(Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .expect("kill")
        .success());
    lines.finish(Duration::from_secs(10));
}

#[derive(Debug, Clone, Copy)]
enum Recovery {
    Resume,
    FreshRun,
}

/// The job deadline of the `deadline` job (seconds from its first launch).
const JOB_DEADLINE: f64 = 14.0;

fn supervisor_sigkilled_mid_run(recovery: Recovery) {
    let setup = World::mosquitto("");
    let gated = gated_agent(setup.dir.path());
    let failing = script(&setup.scratch("failing.sh"), "sleep 0.3; exit 1");
    let quick = script(&setup.scratch("quick.sh"), "exit 0");
    let config = std::fs::read_to_string(setup.home.join("tmux-delegate.toml")).expect("config");
    std::fs::write(
        setup.home.join("tmux-delegate.toml"),
        format!(
            "{config}\n[agents.gated]\ncommand = [\"{}\", \"{{prompt}}\"]\ncomplete_on_exit = false\n\
             [agents.failing]\ncommand = [\"{}\"]\n[agents.quick]\ncommand = [\"{}\"]\n",
            gated.display(),
            failing.display(),
            quick.display()
        ),
    )
    .expect("config");
    std::fs::write(
        setup.home.join("jobs.toml"),
        format!(
            "[[jobs]]\nname = \"live\"\nagent = \"gated\"\nprompt = \"live\"\n\
             [[jobs]]\nname = \"meanwhile\"\nagent = \"gated\"\nprompt = \"meanwhile\"\n\
             [[jobs]]\nname = \"backoff\"\nagent = \"failing\"\nprompt = \"x\"\n\
             [jobs.retry]\nmax_attempts = 2\nbackoff = \"12s\"\nmultiplier = 1.0\nbackoff_max = \"12s\"\n\
             [[jobs]]\nname = \"killed\"\nagent = \"gated\"\nprompt = \"killed\"\n\
             [jobs.retry]\nmax_attempts = 1\n\
             [[jobs]]\nname = \"deadline\"\nagent = \"gated\"\nprompt = \"deadline\"\n\
             [jobs.timeouts]\njob = \"{JOB_DEADLINE}s\"\n"
        ),
    )
    .expect("jobs");

    let mut first = Lines::spawn(setup.td().args(["run", "--json", "jobs.toml"]));
    let all_underway = wait_transitions(&mut first, Duration::from_secs(40), |seen| {
        ["live", "meanwhile", "killed", "deadline"]
            .iter()
            .all(|n| reached(seen, n, "running"))
            && reached(seen, "backoff", "retrying")
    });
    assert!(all_underway, "{:?}\n{:?}", first.stdout, first.stderr);
    let id = |name: &str| setup.job(name)["id"].as_str().expect("id").to_owned();
    let (live, meanwhile, backoff, killed, deadline) = (
        id("live"),
        id("meanwhile"),
        id("backoff"),
        id("killed"),
        id("deadline"),
    );
    // Crash while `backoff` waits out its (jittered, up to 12 s) backoff,
    // once its checkpoint is on disk (unless the draw was tiny and attempt
    // 2 is already under way: the budget is then checked all the same).
    let in_backoff = wait_for(Duration::from_secs(10), || {
        let record = setup.record(&backoff);
        (record["resume"]["backoff_until"].is_number() || record["attempt"] == 2).then_some(())
    });
    assert!(in_backoff.is_some(), "{}", setup.record(&backoff));
    // The supervisor dies; its windows and agents live on.
    sigkill(&mut first);
    // While no supervisor runs: one agent finishes (its retained `completed`
    // waits), and one window is killed.
    std::fs::write(setup.scratch("gate-meanwhile"), "").expect("gate");
    let window = setup.record(&killed)["attempts"][0]["window"]
        .as_str()
        .expect("window id")
        .to_owned();
    let out = setup.tmux.output(&["kill-window", "-t", &window]);
    assert!(!out.contains("can't find"), "{out}");
    // Recover well after the first launch: a restarted job deadline would
    // then end the `deadline` job visibly later than the original one.
    let since_launch = unix_now() - first_launch(&setup, &deadline);
    if since_launch < 6.0 {
        std::thread::sleep(Duration::from_secs_f64(6.0 - since_launch));
    }
    let recovered_at = unix_now();

    let mut command = setup.td();
    match recovery {
        Recovery::Resume => command.args(["resume"]),
        Recovery::FreshRun => command.args([
            "run", "--json", "--agent", "quick", "--name", "fresh", "--prompt", "x",
        ]),
    };
    let mut second = Lines::spawn(&mut command);
    assert!(
        wait_transitions(&mut second, Duration::from_secs(30), |seen| reached(
            seen,
            "meanwhile",
            "completed"
        )),
        "{:?}\n{:?}",
        second.stdout,
        second.stderr
    );
    std::fs::write(setup.scratch("gate-live"), "").expect("gate");
    let code = second.finish(Duration::from_secs(60)).code();
    assert_eq!(
        code,
        Some(1),
        "some jobs failed, none hangs\n{:?}\n{:?}",
        second.stdout,
        second.stderr
    );

    let check = |name: &str, id: &str, state: &str, attempt: u64, launches: usize| {
        let job = setup.job(name);
        assert_eq!(job["state"], state, "{name}: {job}");
        assert_eq!(job["attempt"], attempt, "{name}: {job}");
        assert_eq!(
            windows_opened(&setup, id),
            launches,
            "{name}: windows opened"
        );
        assert!(
            launches as u64 <= job["max_attempts"].as_u64().expect("max"),
            "{name}"
        );
    };
    check("live", &live, "completed", 1, 1);
    check("meanwhile", &meanwhile, "completed", 1, 1);
    check("backoff", &backoff, "failed", 2, 2);
    check("killed", &killed, "failed", 1, 1);
    check("deadline", &deadline, "timed_out", 1, 1);
    if let Recovery::FreshRun = recovery {
        assert_eq!(setup.job("fresh")["state"], "completed");
    }
    // The job in backoff was charged its one real failure, not another one
    // invented from the window it no longer had.
    let failures_of_attempt_1 = setup
        .history(&backoff)
        .iter()
        .filter(|e| e["type"] == "transition" && e["attempt"] == 1)
        .filter(|e| ["retrying", "failed"].contains(&e["to"].as_str().unwrap_or_default()))
        .count();
    assert_eq!(failures_of_attempt_1, 1, "{:?}", setup.history(&backoff));
    // The original deadline, not one restarted by the recovery.
    let timed_out = setup
        .history(&deadline)
        .iter()
        .find(|e| e["type"] == "transition" && e["to"] == "timed_out")
        .and_then(|e| e["ts"].as_f64())
        .expect("a timed_out transition");
    let after_launch = timed_out - first_launch(&setup, &deadline);
    assert!(
        (JOB_DEADLINE - 0.5..JOB_DEADLINE + 3.0).contains(&after_launch),
        "timed out {after_launch:.1}s after the first launch (job deadline {JOB_DEADLINE}s; \
         recovery began {:.1}s after it)",
        recovered_at - first_launch(&setup, &deadline)
    );
}

#[test]
fn supervisor_sigkilled_mid_run_then_resume_settles_every_job_within_its_budget_and_deadline() {
    supervisor_sigkilled_mid_run(Recovery::Resume);
}

#[test]
fn supervisor_sigkilled_mid_run_then_a_fresh_run_re_adopts_and_settles_its_orphans() {
    supervisor_sigkilled_mid_run(Recovery::FreshRun);
}

#[test]
fn broker_stopped_as_the_agent_exits_0_and_restarted_3s_later_completes_5_of_5() {
    let mut setup = World::mosquitto("");
    let agent = script(
        &setup.scratch("exits.sh"),
        &format!(
            "i=0; while [ ! -e {}/gate-$1 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\nexit 0",
            setup.dir.path().display()
        ),
    );
    let config = std::fs::read_to_string(setup.home.join("tmux-delegate.toml")).expect("config");
    std::fs::write(
        setup.home.join("tmux-delegate.toml"),
        format!(
            "{config}\n[agents.exits]\ncommand = [\"{}\", \"{{prompt}}\"]\ncomplete_on_exit = true\n\
             [defaults.retry]\nmax_attempts = 1\n",
            agent.display()
        ),
    )
    .expect("config");
    let mut completed = 0;
    for trial in 1..=5 {
        let name = format!("trial-{trial}");
        let mut running = Lines::spawn(setup.td().args([
            "run", "--json", "--agent", "exits", "--name", &name, "--prompt", &name,
        ]));
        assert!(
            running.wait_line("\"to\":\"running\"", Duration::from_secs(30)),
            "{:?}",
            running.stderr
        );
        setup.mosquitto_broker().stop();
        std::fs::write(setup.scratch(&format!("gate-{name}")), "").expect("gate");
        std::thread::sleep(Duration::from_secs(3));
        setup.mosquitto_broker().start_again();
        let code = running.finish(Duration::from_secs(60)).code();
        let job = setup.job(&name);
        if code == Some(0) && job["state"] == "completed" && job["attempt"] == 1 {
            completed += 1;
        } else {
            eprintln!(
                "trial {trial}: exit {code:?}, {job}\n{:?}\n{:?}",
                running.stdout, running.stderr
            );
        }
    }
    assert_eq!(completed, 5, "a clean exit must survive the outage");
}

fn runs_at_once_on_a_cold_tmux_server(count: usize) {
    let setup = World::mosquitto("");
    let agent = script(&setup.scratch("quick.sh"), "sleep 1; exit 0");
    let config = std::fs::read_to_string(setup.home.join("tmux-delegate.toml")).expect("config");
    std::fs::write(
        setup.home.join("tmux-delegate.toml"),
        format!(
            "{config}\n[agents.quick]\ncommand = [\"{}\"]\n",
            agent.display()
        ),
    )
    .expect("config");
    let cold = setup.tmux.output(&["list-sessions"]);
    assert!(
        cold.contains("no server") || cold.contains("error connecting"),
        "{cold}"
    );
    let runs: Vec<Guard> = (0..count)
        .map(|i| {
            Guard(Some(
                setup
                    .td()
                    .args([
                        "run",
                        "--json",
                        "--agent",
                        "quick",
                        "--name",
                        &format!("cold-{i}"),
                        "--prompt",
                        "x",
                    ])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn run"),
            ))
        })
        .collect();
    for (i, run) in runs.into_iter().enumerate() {
        let out = run.wait_output(Duration::from_secs(60));
        assert_eq!(
            out.status.code(),
            Some(0),
            "run {i} of {count}:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    for i in 0..count {
        let job = setup.job(&format!("cold-{i}"));
        assert_eq!(job["state"], "completed", "{job}");
        assert_eq!(job["attempt"], 1, "{job}");
        let id = job["id"].as_str().expect("id");
        assert_eq!(windows_opened(&setup, id), 1, "{job}");
    }
}

#[test]
fn two_runs_at_once_on_a_cold_tmux_server_each_complete_once() {
    runs_at_once_on_a_cold_tmux_server(2);
}

#[test]
fn three_runs_at_once_on_a_cold_tmux_server_each_complete_once() {
    runs_at_once_on_a_cold_tmux_server(3);
}

#[test]
fn detach_with_an_unreachable_broker_exits_3_with_the_reason_and_leaves_nothing() {
    let setup = World::mosquitto("");
    let agent = script(&setup.scratch("quick.sh"), "exit 0");
    let dead_port = free_port();
    setup.write_config(&format!(
        "[broker]\nhost = \"127.0.0.1\"\nport = {dead_port}\n\
         [agents.quick]\ncommand = [\"{}\"]\n",
        agent.display()
    ));
    let out = Guard(Some(
        setup
            .td()
            .args([
                "run", "--detach", "--agent", "quick", "--name", "nowhere", "--prompt", "x",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    ))
    .wait_output(Duration::from_secs(90));
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}\n{stderr}",
        text(&out.stdout)
    );
    assert!(
        stderr.contains(&dead_port.to_string()) || stderr.contains("refused"),
        "the reason is missing: {stderr}"
    );
    assert!(
        !text(&out.stdout).contains("the supervisor runs"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(setup.status(), Vec::<Value>::new(), "nothing pending");
    let windows = wait_for(Duration::from_secs(10), || {
        let list = setup
            .tmux
            .output(&["list-windows", "-a", "-F", "#{window_name}"]);
        (!list.contains("tmux-delegate")).then_some(list)
    });
    assert!(
        windows.is_some(),
        "a window is left: {}",
        setup.tmux.output(&["list-windows", "-a"])
    );
    let left = std::fs::read_dir(setup.home.join("state/detached"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "launch or ready files left behind");
}

#[test]
fn a_record_with_a_bad_or_foreign_id_is_reported_and_skipped_and_the_others_resume() {
    let setup = World::mosquitto("");
    let gated = gated_agent(setup.dir.path());
    let config = std::fs::read_to_string(setup.home.join("tmux-delegate.toml")).expect("config");
    std::fs::write(
        setup.home.join("tmux-delegate.toml"),
        format!(
            "{config}\n[agents.gated]\ncommand = [\"{}\", \"{{prompt}}\"]\ncomplete_on_exit = false\n",
            gated.display()
        ),
    )
    .expect("config");
    std::fs::write(
        setup.home.join("jobs.toml"),
        "[[jobs]]\nname = \"good\"\nagent = \"gated\"\nprompt = \"good\"\n\
         [[jobs]]\nname = \"bad\"\nagent = \"gated\"\nprompt = \"bad\"\n\
         [[jobs]]\nname = \"foreign\"\nagent = \"gated\"\nprompt = \"foreign\"\n",
    )
    .expect("jobs");
    let mut first = Lines::spawn(setup.td().args(["run", "--json", "jobs.toml"]));
    assert!(
        wait_transitions(&mut first, Duration::from_secs(30), |seen| {
            ["good", "bad", "foreign"]
                .iter()
                .all(|n| reached(seen, n, "running"))
        }),
        "{:?}",
        first.stderr
    );
    sigkill(&mut first);
    let id = |name: &str| setup.job(name)["id"].as_str().expect("id").to_owned();
    let (good, bad, foreign) = (id("good"), id("bad"), id("foreign"));
    let rewrite = |dir_id: &str, new_id: &str| {
        let mut record = setup.record(dir_id);
        record["id"] = Value::String(new_id.to_owned());
        std::fs::write(
            setup.job_dir(dir_id).join("record.json"),
            serde_json::to_string_pretty(&record).expect("json"),
        )
        .expect("write record");
    };
    rewrite(&bad, "not a valid/id#");
    rewrite(&foreign, &good);

    let out = run(setup.td().args(["status", "--json"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], good.as_str());
    for skipped in [&bad, &foreign] {
        assert!(
            text(&out.stderr).contains(&format!("skipping job {skipped}")),
            "{}",
            text(&out.stderr)
        );
    }

    let mut resumed = Lines::spawn(setup.td().arg("resume"));
    assert!(
        resumed.wait_line(&format!("re-adopting job {good}"), Duration::from_secs(20)),
        "{:?}",
        resumed.stderr
    );
    std::fs::write(setup.scratch("gate-good"), "").expect("gate");
    let code = resumed.finish(Duration::from_secs(30)).code();
    assert_eq!(code, Some(0), "{:?}\n{:?}", resumed.stdout, resumed.stderr);
    for skipped in [&bad, &foreign] {
        assert!(
            resumed
                .stderr
                .iter()
                .any(|l| l.contains(&format!("skipping job {skipped}"))),
            "{:?}",
            resumed.stderr
        );
    }
    assert_eq!(setup.job("good")["state"], "completed");
}

/// A `completed` for `job` signed with its key but naming no attempt.
fn signed_without_attempt(job: &str, key_hex: &str) -> String {
    use hmac::Mac;
    let mut object = serde_json::Map::new();
    object.insert("event".into(), "completed".into());
    object.insert("job".into(), job.into());
    object.insert("ts".into(), unix_now().into());
    let key = hex::decode(key_hex).expect("hex key");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("key");
    mac.update(Value::Object(object.clone()).to_string().as_bytes());
    object.insert(
        "sig".into(),
        hex::encode(mac.finalize().into_bytes()).into(),
    );
    Value::Object(object).to_string()
}

#[test]
fn a_signed_event_without_attempt_is_rejected_and_logged_while_bare_words_still_work() {
    let setup = World::mosquitto("[events]\nrequire_signature = false\n");
    let gated = script(
        &setup.scratch("gated.sh"),
        &format!(
            "i=0; while [ ! -e {}/gate-$1 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\nexit 1",
            setup.dir.path().display()
        ),
    );
    let config = std::fs::read_to_string(setup.home.join("tmux-delegate.toml")).expect("config");
    std::fs::write(
        setup.home.join("tmux-delegate.toml"),
        format!(
            "{config}\n[agents.gated]\ncommand = [\"{}\", \"{{prompt}}\"]\ncomplete_on_exit = false\n\
             [defaults.retry]\nmax_attempts = 1\n",
            gated.display()
        ),
    )
    .expect("config");
    std::fs::write(
        setup.home.join("jobs.toml"),
        "[[jobs]]\nname = \"replayed\"\nagent = \"gated\"\nprompt = \"replayed\"\n\
         [[jobs]]\nname = \"python\"\nagent = \"gated\"\nprompt = \"python\"\n",
    )
    .expect("jobs");
    let mut running = Lines::spawn(setup.td().args(["run", "--json", "jobs.toml"]));
    assert!(
        wait_transitions(&mut running, Duration::from_secs(30), |seen| {
            reached(seen, "replayed", "running") && reached(seen, "python", "running")
        }),
        "{:?}",
        running.stderr
    );
    let replayed = setup.job("replayed")["id"].as_str().expect("id").to_owned();
    let python = setup.job("python")["id"].as_str().expect("id").to_owned();
    let key = setup.record(&replayed)["event_key"]
        .as_str()
        .expect("key")
        .to_owned();
    let publish = |job: &str, payload: &str| {
        let status = Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &setup.port().to_string(),
                "-q",
                "1",
            ])
            .args([
                "-t",
                &format!("python/mqtt/jobs/{job}/events"),
                "-m",
                payload,
            ])
            .status()
            .expect("mosquitto_pub");
        assert!(status.success());
    };
    publish(&replayed, &signed_without_attempt(&replayed, &key));
    // The original scripts' bare word, unsigned: still the current attempt's.
    publish(&python, "completed");
    let logged = wait_for(Duration::from_secs(20), || {
        setup
            .history(&replayed)
            .into_iter()
            .find(|e| e["type"] == "event" && e["event"] == "completed")
    })
    .expect("the event is in events.jsonl");
    assert!(
        logged["ignored"]
            .as_str()
            .is_some_and(|why| why.contains("attempt")),
        "{logged}"
    );
    assert!(
        wait_transitions(&mut running, Duration::from_secs(20), |seen| reached(
            seen,
            "python",
            "completed"
        )),
        "{:?}",
        running.stdout
    );
    assert_eq!(setup.job("replayed")["state"], "running");
    std::fs::write(setup.scratch("gate-replayed"), "").expect("gate");
    assert_eq!(running.finish(Duration::from_secs(30)).code(), Some(1));
    let job = setup.job("replayed");
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["failure"]["kind"], "exit", "{job}");
}

/// A pipe whose reading end is already closed: every write gets EPIPE.
fn closed_pipe() -> Stdio {
    let (reader, writer) = nix::unistd::pipe().expect("pipe");
    drop(reader);
    Stdio::from(writer)
}

#[test]
fn closed_stdout_or_stderr_never_panics_on_any_command() {
    let setup = World::mosquitto("");
    let out = run(setup.td().args(["register", "--prompt", "x"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_owned();
    let commands: Vec<Vec<&str>> = vec![
        vec!["completions", "fish"],
        vec!["completions", "bash"],
        vec!["completions", "zsh"],
        vec!["man"],
        vec!["agents"],
        vec!["status"],
        vec!["status", "--json"],
        vec!["status", &id],
        vec!["list"],
        vec!["logs", &id],
        vec!["kill", &id],
        vec!["status", "no-such-job"],
        vec!["publish", "--job", "x", "--event", "bogus"],
        vec!["--help"],
        vec!["--version"],
        vec!["run", "--prompt", "x", "--agent", "no-such-agent"],
    ];
    for args in &commands {
        for (which, stdout, stderr) in [
            ("stdout", closed_pipe(), Stdio::piped()),
            ("stderr", Stdio::piped(), closed_pipe()),
        ] {
            let out = setup
                .td()
                .args(args)
                .stdout(stdout)
                .stderr(stderr)
                .output()
                .expect("run");
            let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
            assert_ne!(
                out.status.code(),
                Some(101),
                "{args:?}, {which} closed: {shown}"
            );
            assert!(out.status.code().is_some(), "{args:?}: killed by a signal");
            assert!(
                !shown.contains("panicked"),
                "{args:?}, {which} closed: {shown}"
            );
        }
    }
    // `run` keeps supervising when nobody reads its output any more.
    let agent = script(&setup.scratch("quick.sh"), "exit 0");
    let config = std::fs::read_to_string(setup.home.join("tmux-delegate.toml")).expect("config");
    std::fs::write(
        setup.home.join("tmux-delegate.toml"),
        format!(
            "{config}\n[agents.quick]\ncommand = [\"{}\"]\n",
            agent.display()
        ),
    )
    .expect("config");
    let out = Guard(Some(
        setup
            .td()
            .args([
                "run", "--json", "--agent", "quick", "--name", "unread", "--prompt", "x",
            ])
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    ))
    .wait_output(Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(setup.job("unread")["state"], "completed");
}

/// The terminal under `run` closes (SIGHUP): `run` says so while it can,
/// then supervises on with its output in a 0600 log, so the failed first
/// attempt is still retried and the job completes (before: exit 129 and
/// jobs left unsupervised).
#[test]
fn sighup_to_run_keeps_supervising_and_still_retries_its_jobs() {
    let world = World::mosquitto("");
    let gate = world.scratch("gate");
    let agent = script(
        &world.scratch("hup.sh"),
        &format!(
            "if [ \"$DELEGATE_ATTEMPT\" = 1 ]; then\n\
               i=0; while [ ! -e {gate} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n\
               exit 1\n\
             fi\n\
             \"$TMUX_DELEGATE_BIN\" publish --event completed --message second",
            gate = gate.display()
        ),
    );
    world.write_config(&format!(
        "[agents.hup]\ncommand = [\"{}\"]\n\n\
         [defaults.retry]\nmax_attempts = 2\nbackoff = \"0s\"\n",
        agent.display()
    ));
    let mut running = world.spawn(&[
        "run", "--json", "--agent", "hup", "--name", "hup", "--prompt", "p",
    ]);
    assert!(
        running.wait_line("\"to\":\"running\"", Duration::from_secs(20)),
        "{:?}",
        running.stderr
    );
    let pid = running.guard.child().id();
    assert!(Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill")
        .success());
    assert!(
        running.wait_line("the terminal closed", Duration::from_secs(10)),
        "no word on the terminal it loses: {:?}",
        running.stderr
    );
    std::fs::write(&gate, "").expect("gate");
    let status = running.finish(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{:?}", running.stderr);
    let id = world.id("hup");
    let job = world.job("hup");
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["attempt"], 2, "{job}");
    // Its output after the hang-up: the log, 0600, with the transitions.
    let log = world.path(&format!("state/logs/run-{pid}.log"));
    let text = std::fs::read_to_string(&log).expect("the hung-up run's log");
    let mode = std::fs::metadata(&log).expect("log").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", log.display());
    assert!(text.contains("the terminal closed"), "{text}");
    for to in ["retrying", "completed"] {
        assert!(
            text.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .any(|t| t["job"] == id.as_str() && t["to"] == to),
            "no transition to {to} in the log: {text}"
        );
    }
}

/// A small tmpfs mounted over the registry (`home/state`), unmounted when
/// dropped; `None` (and the reason printed) where this cannot mount.
struct SmallDisk {
    at: PathBuf,
}

impl SmallDisk {
    fn mount(world: &World) -> Option<SmallDisk> {
        let at = world.path("state");
        std::fs::create_dir_all(&at).expect("state dir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs"])
            .arg(&at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!(
                "SKIPPED: mounting a tmpfs needs root (CI runs as root): the full-disk promise is not checked here"
            );
            return None;
        }
        Some(SmallDisk { at })
    }

    fn filler(&self) -> PathBuf {
        self.at.join("filler")
    }

    /// Writes zeros until the disk is full.
    fn fill(&self) {
        let out = Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", self.filler().display()))
            .output()
            .expect("dd");
        assert!(
            text(&out.stderr).contains("No space left"),
            "dd did not fill the disk: {}",
            text(&out.stderr)
        );
    }

    fn free(&self) {
        std::fs::remove_file(self.filler()).expect("remove the filler");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// A job whose agent reports `completed` once its gate opens, on a
/// registry that is full by then: `run` is at "cannot record".
fn completed_on_a_full_disk(world: &World, disk: &SmallDisk) -> Lines {
    let gate = world.scratch("gate");
    let agent = script(
        &world.scratch("full.sh"),
        &format!(
            "i=0; while [ ! -e {gate} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n\
             \"$TMUX_DELEGATE_BIN\" publish --event completed --message done\nexec sleep 60",
            gate = gate.display()
        ),
    );
    world.write_config(&format!(
        "[broker]\nhost = \"127.0.0.1\"\nport = {}\n\n\
         [agents.full]\ncommand = [\"{}\"]\ncomplete_on_exit = false\n\n\
         [defaults.retry]\nmax_attempts = 2\nbackoff = \"0s\"\n",
        world.port(),
        agent.display()
    ));
    let mut running = world.spawn(&[
        "run", "--json", "--agent", "full", "--name", "full", "--prompt", "p",
    ]);
    assert!(
        running.wait_line("\"to\":\"running\"", Duration::from_secs(20)),
        "{:?}",
        running.stderr
    );
    disk.fill();
    std::fs::write(&gate, "").expect("gate");
    assert!(
        running.wait_line("cannot record", Duration::from_secs(20)),
        "{:?}",
        running.stderr
    );
    running
}

/// No line of the job's history is torn, and no job directory is empty.
fn assert_registry_whole(world: &World, id: &str) {
    let history = std::fs::read_to_string(world.job_dir(id).join("events.jsonl")).expect("history");
    for line in history.lines().filter(|l| !l.is_empty()) {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "a torn line survived: {line:?}"
        );
    }
    for dir in std::fs::read_dir(world.path("state/jobs"))
        .expect("jobs")
        .flatten()
    {
        assert!(
            std::fs::read_dir(dir.path())
                .expect("job dir")
                .next()
                .is_some(),
            "an empty job directory: {}",
            dir.path().display()
        );
    }
    let (code, out, err) = world.finish(&["status"], Duration::from_secs(10));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!err.contains("corrupt"), "{err}");
}

/// Durable before reported: a `completed` the full registry cannot take is
/// not printed, and `run` does not end, until the space is back and the
/// write succeeds; then it completes at its first attempt.
#[test]
fn a_completion_on_a_full_disk_is_reported_only_once_it_is_recorded() {
    let world = World::mosquitto("");
    let Some(disk) = SmallDisk::mount(&world) else {
        return;
    };
    let mut running = completed_on_a_full_disk(&world, &disk);
    assert!(
        !running
            .stdout
            .iter()
            .any(|l| l.contains("\"to\":\"completed\"")),
        "reported before it was recorded: {:?}",
        running.stdout
    );
    assert!(
        running
            .guard
            .child()
            .try_wait()
            .expect("try_wait")
            .is_none(),
        "run ended with a state it could not record"
    );
    disk.free();
    let freed = std::time::Instant::now();
    let status = running.finish(Duration::from_secs(30));
    eprintln!(
        "recorded and reported {:?} after the space came back",
        freed.elapsed()
    );
    assert_eq!(status.code(), Some(0), "{:?}", running.stderr);
    assert!(
        running
            .stdout
            .iter()
            .any(|l| l.contains("\"to\":\"completed\"")),
        "{:?}",
        running.stdout
    );
    let id = world.id("full");
    let record = world.record(&id);
    assert_eq!(record["state"], "completed", "{record}");
    assert_eq!(record["attempt"], 1, "{record}");
    assert_registry_whole(&world, &id);
}

/// Stopped while the disk is still full, `run` exits 75 ("could not
/// record") naming the unsaved state; once space is back `resume` settles
/// the job from its retained `completed` and runs nothing again.
#[test]
fn a_run_stopped_on_a_full_disk_exits_75_and_resume_runs_nothing_twice() {
    let world = World::mosquitto("");
    let Some(disk) = SmallDisk::mount(&world) else {
        return;
    };
    let mut running = completed_on_a_full_disk(&world, &disk);
    let pid = running.guard.child().id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let status = running.finish(Duration::from_secs(30));
    assert_eq!(status.code(), Some(75), "{:?}", running.stderr);
    let said = running.stderr.join("\n");
    assert!(
        said.contains("stopped before these states were recorded"),
        "{said}"
    );
    assert!(said.contains("completed (attempt 1)"), "{said}");
    disk.free();
    let id = world.id("full");
    let (code, out, err) = world.finish(&["resume"], Duration::from_secs(60));
    assert_eq!(code, Some(0), "{out}\n{err}");
    let record = world.record(&id);
    assert_eq!(record["state"], "completed", "{record}");
    assert_eq!(record["attempt"], 1, "ran again: {record}");
    assert_eq!(
        windows_opened(&world, &id),
        1,
        "{}",
        world.history_text(&id)
    );
    assert_registry_whole(&world, &id);
}
