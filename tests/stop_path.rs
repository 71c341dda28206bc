//! The stop path end to end (SPEC section 5, "Kill" and "No escapees"): a
//! real Mosquitto, a real tmux server on a private socket, the real binary
//! and small fake agents that fight back — they ignore SIGTERM and SIGHUP,
//! start `setsid` children and double-forked daemons, or touch the
//! terminal. Every pid an agent writes down is checked in /proc, and killed
//! by the test's guard if it survived.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a stop may take here: kill_grace is 1-2 s, the machine is shared.
const SETTLE: Duration = Duration::from_secs(30);

/// A plain Mosquitto, a private tmux server and a project config with
/// `kill_grace` and `extra` (agents, overrides).
fn world(kill_grace: &str, extra: &str) -> World {
    World::builder(Broker::Mosquitto)
        .kill_grace(kill_grace)
        .build(extra)
}

/// `run --json` in the background, its output collected.
fn spawn_run(world: &World, args: &[&str]) -> Lines {
    let mut command = world.td();
    command.arg("run").arg("--json").args(args);
    Lines::spawn(&mut command)
}

/// The current attempt's entry in the record, once the wrapper wrote
/// the agent's group into it.
fn recorded_attempt(world: &World, id: &str) -> serde_json::Value {
    wait_for(SETTLE, || {
        let record = world.record(id);
        let attempt = record["attempt"].clone();
        record["attempts"]
            .as_array()?
            .iter()
            .find(|a| a["number"] == attempt && a["pgid"].is_i64())
            .cloned()
    })
    .expect("the wrapper recorded the agent's group")
}

/// Pids the agents wrote down, SIGKILLed on drop if still alive: a test
/// that fails must not leave its escapees behind.
struct Strays(PathBuf);

impl Strays {
    fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(&self.0)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Waits until `count` pids are written; returns them.
    fn wait(&self, count: usize) -> Vec<i32> {
        wait_for(SETTLE, || {
            let pids = self.pids();
            (pids.len() >= count).then_some(pids)
        })
        .unwrap_or_else(|| panic!("the agent wrote {:?}, not {count} pids", self.pids()))
    }

    /// The pids still alive after waiting up to `SETTLE` for all to end.
    fn survivors(&self) -> Vec<i32> {
        let _ = wait_for(SETTLE, || {
            self.pids().iter().all(|p| !alive(*p)).then_some(())
        });
        self.pids().into_iter().filter(|p| alive(*p)).collect()
    }
}

impl Drop for Strays {
    fn drop(&mut self) {
        for pid in self.pids().into_iter().filter(|p| alive(*p)) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// Field `n` (1-based, as in proc(5)) of `/proc/PID/stat`.
fn stat_field(pid: i64, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(n - 3).map(str::to_owned)
}

fn send(signal: &str, pid: i64) {
    let sent = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill -{signal} {pid}");
}

/// The recorded group is the agent's real one: pgid == the agent's pid ==
/// its process group in /proc, and the leader's start time matches.
fn assert_group_recorded(attempt: &serde_json::Value, agent: i32) {
    let pgid = attempt["pgid"].as_i64().expect("pgid");
    assert_eq!(pgid, i64::from(agent), "the agent leads its own group");
    assert_eq!(
        stat_field(pgid, 5).as_deref(),
        Some(pgid.to_string().as_str()),
        "the recorded group is not the agent's process group"
    );
    assert_eq!(
        attempt["pgid_start"].as_u64().map(|s| s.to_string()),
        stat_field(pgid, 22),
        "the recorded start time is not the agent's"
    );
}

// --- No escapees -----------------------------------------------------------

/// An agent that leaves a `setsid` child (which also ignores SIGTERM and
/// SIGHUP, so only SIGKILL ends it) and a double-forked daemon behind, then
/// either exits 0 (`finish = "exit 0"`) or sleeps (`exec sleep 300`).
fn escaping_agent(dir: &Path, pids: &Path, finish: &str) -> PathBuf {
    let daemon = dir.join("daemon.py");
    std::fs::write(
        &daemon,
        "import os, sys, time\n\
         if os.fork() == 0:\n\
         \x20   os.setsid()\n\
         \x20   if os.fork() == 0:\n\
         \x20       with open(sys.argv[1], 'a') as f:\n\
         \x20           f.write(f'{os.getpid()}\\n')\n\
         \x20       time.sleep(300)\n\
         \x20   os._exit(0)\n\
         os.wait()\n",
    )
    .expect("daemon.py");
    let orphan = pids.with_file_name("orphan");
    let pids = pids.display();
    script(
        &dir.join("escaping.sh"),
        &format!(
            "echo $$ >> {pids}\n\
             setsid sh -c 'trap \"\" TERM HUP; echo $$ >> {pids}; exec sleep 300' &\n\
             /usr/bin/python3 {daemon} {pids}\n\
             (sleep 0.5 & echo $! > {orphan})\n\
             while [ $(wc -l < {pids}) -lt 3 ]; do sleep 0.1; done\n\
             {finish}",
            daemon = daemon.display(),
            orphan = orphan.display()
        ),
    )
}

/// A host whose agent `escape` is the escaping agent ending with `finish`;
/// `extra` is more configuration. The pids go to the returned `Strays`.
/// Bind `_dir` (not `..`): it holds the agent's script and pid files.
struct Escaping {
    strays: Strays,
    setup: World,
    _dir: tempfile::TempDir,
}

fn escaping(finish: &str, extra: &str) -> Escaping {
    let dir = tempfile::tempdir().expect("tempdir");
    let strays = Strays(dir.path().join("pids"));
    let agent = escaping_agent(dir.path(), &strays.0, finish);
    let setup = world(
        "1s",
        &format!(
            "{extra}[agents.escape]\ncommand = [\"{}\"]\n",
            agent.display()
        ),
    );
    Escaping {
        strays,
        setup,
        _dir: dir,
    }
}

/// The `run` of the escaping agent as job `escape`.
const ESCAPE_RUN: &[&str] = &["--agent", "escape", "--name", "escape", "--prompt", "p"];

/// Starts a job with the escaping agent; returns the run, the job id and
/// the pids of the agent and its two escapees, after checking that the
/// escapees left the agent's session and the daemon was re-parented to the
/// wrapper (the child subreaper) when its parent exited.
fn start_escapees(setup: &World, strays: &Strays) -> (Lines, String, Vec<i32>) {
    let mut running = spawn_run(setup, ESCAPE_RUN);
    assert!(
        running.wait_line("\"to\":\"running\"", SETTLE),
        "{:?}",
        running.stderr
    );
    let pids = strays.wait(3);
    let id = setup.id("escape");
    let wrapper = recorded_attempt(setup, &id)["pane_pid"]
        .as_i64()
        .expect("pane pid");
    let agent_session = stat_field(i64::from(pids[0]), 6);
    for escapee in &pids[1..] {
        let escapee = i64::from(*escapee);
        assert_ne!(
            stat_field(escapee, 6),
            agent_session,
            "{escapee} did not leave the agent's session"
        );
    }
    let daemon = i64::from(pids[2]);
    let reparented = wait_for(SETTLE, || {
        (stat_field(daemon, 4) == Some(wrapper.to_string())).then_some(())
    });
    assert!(
        reparented.is_some(),
        "the daemon's parent is {:?}, not the wrapper {wrapper}",
        stat_field(daemon, 4)
    );
    // A short-lived orphan the wrapper inherited is reaped while the agent
    // still runs, not left a zombie until the attempt ends.
    let orphan: i32 = wait_for(SETTLE, || {
        std::fs::read_to_string(strays.0.with_file_name("orphan"))
            .ok()?
            .trim()
            .parse()
            .ok()
    })
    .expect("orphan pid");
    let reaped = wait_for(SETTLE, || {
        (!Path::new(&format!("/proc/{orphan}")).exists()).then_some(())
    });
    assert!(
        reaped.is_some() && alive(pids[0]),
        "the orphan {orphan} was not reaped while the agent ran"
    );
    (running, id, pids)
}

#[test]
fn setsid_children_and_daemons_do_not_survive_an_attempt_timeout() {
    let Escaping {
        _dir,
        strays,
        setup,
    } = escaping(
        "exec sleep 300",
        "[defaults.timeouts]\nattempt = \"8s\"\n[defaults.retry]\nmax_attempts = 1\n",
    );
    let (mut running, _, _) = start_escapees(&setup, &strays);
    let status = running.finish(Duration::from_secs(60));
    assert_eq!(setup.job("escape")["state"], "timed_out", "{status}");
    assert_eq!(strays.survivors(), Vec::<i32>::new(), "escaped the timeout");
}

#[test]
fn setsid_children_and_daemons_do_not_survive_kill() {
    let Escaping {
        _dir,
        strays,
        setup,
    } = escaping("exec sleep 300", "");
    let (mut running, id, _) = start_escapees(&setup, &strays);
    let out = run(setup.td().args(["kill", &id]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("did not stop"),
        "`kill` did not leave the stop to the supervisor: {}",
        text(&out.stderr)
    );
    running.finish(SETTLE);
    assert_eq!(setup.job("escape")["state"], "cancelled");
    assert_eq!(strays.survivors(), Vec::<i32>::new(), "escaped kill");
}

#[test]
fn setsid_children_and_daemons_do_not_survive_ctrl_c() {
    let Escaping {
        _dir,
        strays,
        setup,
    } = escaping("exec sleep 300", "");
    let (mut running, _, _) = start_escapees(&setup, &strays);
    send("INT", i64::from(running.guard.child().id()));
    assert_eq!(running.finish(SETTLE).code(), Some(130));
    assert_eq!(setup.job("escape")["state"], "cancelled");
    assert_eq!(strays.survivors(), Vec::<i32>::new(), "escaped Ctrl-C");
}

#[test]
fn setsid_children_and_daemons_do_not_survive_completion() {
    let Escaping {
        _dir,
        strays,
        setup,
    } = escaping("exit 0", "");
    let mut running = spawn_run(&setup, ESCAPE_RUN);
    assert_eq!(
        running.finish(Duration::from_secs(60)).code(),
        Some(0),
        "{:?}",
        running.stderr
    );
    assert_eq!(setup.job("escape")["state"], "completed");
    let pids = strays.wait(3);
    assert_eq!(pids.len(), 3);
    assert_eq!(strays.survivors(), Vec::<i32>::new(), "escaped completion");
}

// --- Group signals, without the wrapper's help ------------------------------

/// An agent that notes each SIGTERM, ignores SIGHUP, and goes on: only a
/// SIGKILL to its group ends it.
fn stubborn_agent(dir: &Path, pids: &Path, terms: &Path) -> PathBuf {
    script(
        &dir.join("stubborn.sh"),
        &format!(
            "echo $$ >> {}\ntrap 'echo TERM >> {}' TERM\ntrap '' HUP\n\
             while :; do sleep 1; echo tick >> {}; done",
            pids.display(),
            terms.display(),
            ticks(terms).display()
        ),
    )
}

/// Where the stubborn agent writes a line after each second it slept: a
/// trap for a signal that came during a `sleep` has run by the next line.
fn ticks(terms: &Path) -> PathBuf {
    terms.with_extension("ticks")
}

fn tick_count(terms: &Path) -> usize {
    std::fs::read_to_string(ticks(terms))
        .unwrap_or_default()
        .lines()
        .count()
}

/// A running job of the stubborn agent, its recorded group checked against
/// /proc. Returns the run, the job id, the agent's pid and its attempt entry.
fn stubborn_job(setup: &World, strays: &Strays) -> (Lines, String, i32, serde_json::Value) {
    let mut running = spawn_run(
        setup,
        &["--agent", "stubborn", "--name", "stubborn", "--prompt", "p"],
    );
    assert!(
        running.wait_line("\"to\":\"running\"", SETTLE),
        "{:?}",
        running.stderr
    );
    let agent = strays.wait(1)[0];
    let id = setup.id("stubborn");
    let attempt = recorded_attempt(setup, &id);
    assert_group_recorded(&attempt, agent);
    (running, id, agent, attempt)
}

/// SIGKILLs the attempt's wrapper, so nothing but a signal to the recorded
/// group can stop the agent; checks that the window stays with its pane
/// dead (`remain-on-exit`).
fn kill_wrapper(setup: &World, attempt: &serde_json::Value) {
    let window = attempt["window"].as_str().expect("window");
    send("KILL", attempt["pane_pid"].as_i64().expect("pane pid"));
    let dead_pane = wait_for(SETTLE, || {
        setup
            .windows()
            .contains(&format!("{window} 1"))
            .then_some(())
    });
    assert!(
        dead_pane.is_some(),
        "the window of a dead wrapper is not kept with its pane dead (remain-on-exit): {}",
        setup.windows()
    );
}

/// `stubborn_job`, then its supervisor and wrapper SIGKILLed: the job is
/// left running with nobody to stop it but `kill`.
fn orphaned_stubborn_job(setup: &World, strays: &Strays) -> (String, i32, serde_json::Value) {
    let (mut running, id, agent, attempt) = stubborn_job(setup, strays);
    running.guard.child().kill().expect("kill run");
    running.finish(SETTLE);
    kill_wrapper(setup, &attempt);
    (id, agent, attempt)
}

#[test]
fn only_the_group_sigkill_ends_an_agent_that_ignores_sigterm_and_sighup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let strays = Strays(dir.path().join("pids"));
    let terms = dir.path().join("terms");
    let agent = stubborn_agent(dir.path(), &strays.0, &terms);
    let setup = world(
        "2s",
        &format!(
            "[defaults.retry]\nmax_attempts = 1\n[agents.stubborn]\ncommand = [\"{}\"]\n",
            agent.display()
        ),
    );
    // The wrapper's death is the failure (Last Will + dead pane): the
    // supervisor then stops the group, TERM, 2 s, KILL.
    let (mut running, _, agent, attempt) = stubborn_job(&setup, &strays);
    kill_wrapper(&setup, &attempt);
    running.finish(Duration::from_secs(60));
    assert!(
        std::fs::read_to_string(&terms)
            .unwrap_or_default()
            .contains("TERM"),
        "the agent's group got no SIGTERM"
    );
    assert!(
        wait_for(SETTLE, || (!alive(agent)).then_some(())).is_some(),
        "the agent that ignores SIGTERM and SIGHUP survived: no SIGKILL to its group"
    );
    let job = setup.job("stubborn");
    assert_eq!(job["state"], "failed", "{job}");
    let window = attempt["window"].as_str().expect("window");
    assert!(
        !setup.windows().contains(&format!("{window} ")),
        "window left open: {}",
        setup.windows()
    );
}

#[test]
fn kill_without_a_supervisor_terms_waits_the_grace_kills_and_closes_the_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let strays = Strays(dir.path().join("pids"));
    let terms = dir.path().join("terms");
    let agent = stubborn_agent(dir.path(), &strays.0, &terms);
    let setup = world(
        "2s",
        &format!("[agents.stubborn]\ncommand = [\"{}\"]\n", agent.display()),
    );
    // No supervisor, no wrapper: `kill` must stop the job itself.
    let (id, agent, attempt) = orphaned_stubborn_job(&setup, &strays);
    let window = attempt["window"].as_str().expect("window");

    let asked = Instant::now();
    let out = run(setup.td().args(["kill", &id]));
    let took = asked.elapsed();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        std::fs::read_to_string(&terms)
            .unwrap_or_default()
            .contains("TERM"),
        "`kill` sent no SIGTERM to the group"
    );
    assert!(
        took >= Duration::from_millis(1900),
        "`kill` did not wait the 2 s grace before SIGKILL ({took:?})"
    );
    assert!(
        wait_for(SETTLE, || (!alive(agent)).then_some(())).is_some(),
        "the agent survived `kill`: no SIGKILL to its group"
    );
    assert!(
        !setup.windows().contains(&format!("{window} ")),
        "the window was not closed: {}",
        setup.windows()
    );
    assert_eq!(setup.job("stubborn")["state"], "cancelled");
    let history = setup.history_text(&id);
    assert!(
        history.contains("\"to\":\"cancelled\"")
            && history.contains("cancelled by `tmux-delegate kill`"),
        "{history}"
    );
}

#[test]
fn kill_leaves_the_stop_to_a_running_supervisor_with_a_10_s_grace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let strays = Strays(dir.path().join("pids"));
    let terms = dir.path().join("terms");
    let agent = stubborn_agent(dir.path(), &strays.0, &terms);
    let setup = world(
        "10s",
        &format!("[agents.stubborn]\ncommand = [\"{}\"]\n", agent.display()),
    );
    let (mut running, id, agent, _) = stubborn_job(&setup, &strays);
    // `kill` gives the supervisor kill_grace + 10 s to take the cancel (it
    // then stops the agent: TERM, 10 s, KILL); it never takes over while the
    // supervisor answers. (With 10 s, a deadline of `grace - 10 s` or
    // `10 s - grace` would make it take over at once.)
    let out = run(setup.td().args(["kill", &id]));
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        !said.contains("did not stop"),
        "`kill` took over from a running supervisor: {said}"
    );
    assert!(said.contains(": cancelled"), "{said}");
    assert!(
        wait_for(SETTLE, || (!alive(agent)).then_some(())).is_some(),
        "the agent survived the supervisor's SIGKILL"
    );
    assert_eq!(
        running.finish(SETTLE).code(),
        Some(1),
        "{:?}",
        running.stdout
    );
    assert_eq!(setup.job("stubborn")["state"], "cancelled");
}

// --- pid reuse -------------------------------------------------------------

#[test]
fn a_recorded_group_whose_leader_start_time_differs_is_never_signalled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let strays = Strays(dir.path().join("pids"));
    let terms = dir.path().join("terms");
    let agent = stubborn_agent(dir.path(), &strays.0, &terms);
    let setup = world(
        "1s",
        &format!("[agents.stubborn]\ncommand = [\"{}\"]\n", agent.display()),
    );
    let (id, agent, _) = orphaned_stubborn_job(&setup, &strays);

    // As if the agent ended and its pid went to another process: the
    // record's start time is not the one /proc shows for that pid now.
    let path = setup.record_path(&id);
    let mut record = setup.record(&id);
    let current = record["attempt"].clone();
    for attempt in record["attempts"].as_array_mut().expect("attempts") {
        if attempt["number"] == current {
            let start = attempt["pgid_start"].as_u64().expect("pgid_start");
            attempt["pgid_start"] = serde_json::json!(start + 7);
        }
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&record).expect("json")).expect("tamper");

    let out = run(setup.td().args(["kill", &id]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not the agent's"),
        "the refusal is not logged: {}",
        text(&out.stderr)
    );
    assert_eq!(setup.job("stubborn")["state"], "cancelled");
    // `kill` signals and waits the grace itself, and no supervisor or
    // wrapper is left: once it exited nothing can signal the agent. Two more
    // ticks prove the agent's shell ran on past any pending SIGTERM trap.
    let seen = tick_count(&terms);
    assert!(
        wait_for(SETTLE, || (tick_count(&terms) >= seen + 2).then_some(())).is_some(),
        "the agent stopped ticking"
    );
    assert!(
        alive(agent),
        "a process whose start time differs was killed"
    );
    assert_eq!(
        std::fs::read_to_string(&terms).unwrap_or_default(),
        "",
        "a process whose start time differs got SIGTERM"
    );
}

// --- The terminal and the retained event -------------------------------------

#[test]
fn an_agent_owns_the_terminal_it_reads_and_sets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ready = dir.path().join("ready");
    let done = dir.path().join("done");
    // From a background group, `stty` and `read` on the terminal are
    // stopped by SIGTTOU/SIGTTIN, or fail with EIO where tmux left those
    // ignored: the wrapper must make the agent's group the foreground one.
    let agent = script(
        &dir.path().join("tty.sh"),
        &format!(
            "stty -echo && stty echo || exit 3\necho $$ > {}\nIFS= read -r line || exit 4\necho \"$line\" > {}",
            ready.display(),
            done.display()
        ),
    );
    let setup = world(
        "1s",
        &format!(
            "[defaults.timeouts]\nattempt = \"20s\"\n[defaults.retry]\nmax_attempts = 1\n\
             [agents.tty]\ncommand = [\"{}\"]\n",
            agent.display()
        ),
    );
    let mut running = spawn_run(
        &setup,
        &["--agent", "tty", "--name", "tty", "--prompt", "p"],
    );
    let started = wait_for(SETTLE, || ready.exists().then_some(()));
    let id = setup.id("tty");
    let window = recorded_attempt(&setup, &id)["window"]
        .as_str()
        .expect("window")
        .to_owned();
    if started.is_some() {
        let out = setup
            .tmux
            .output(&["send-keys", "-t", &window, "-l", "typed by a human"]);
        assert!(out.trim().is_empty(), "{out}");
        let out = setup.tmux.output(&["send-keys", "-t", &window, "Enter"]);
        assert!(out.trim().is_empty(), "{out}");
    }
    let status = running.finish(Duration::from_secs(60));
    assert_eq!(
        std::fs::read_to_string(&done).unwrap_or_default().trim(),
        "typed by a human",
        "the agent could not use its terminal ({status}, {:?})",
        running.stdout
    );
    assert_eq!(setup.job("tty")["state"], "completed");
}

#[test]
fn a_retry_does_not_see_the_previous_attempt_s_retained_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let second = dir.path().join("second");
    let go = dir.path().join("go");
    let agent = script(
        &dir.path().join("flaky.sh"),
        &format!(
            "if [ \"$DELEGATE_ATTEMPT\" = 1 ]; then \"$TMUX_DELEGATE_BIN\" publish --event error --message first; exit 1; fi\n\
             echo $$ > {}\nwhile [ ! -e {} ]; do sleep 0.1; done\n\"$TMUX_DELEGATE_BIN\" publish --event completed",
            second.display(),
            go.display()
        ),
    );
    let setup = world(
        "1s",
        &format!(
            "[defaults.retry]\nmax_attempts = 2\nbackoff = \"100ms\"\n[agents.flaky]\ncommand = [\"{}\"]\n",
            agent.display()
        ),
    );
    let mut running = spawn_run(
        &setup,
        &["--agent", "flaky", "--name", "flaky", "--prompt", "p"],
    );
    assert!(
        wait_for(Duration::from_secs(60), || second.exists().then_some(())).is_some(),
        "no second attempt: {:?}",
        running.stderr
    );
    let id = setup.id("flaky");
    // What a late subscriber (resume, watch) would read now.
    let retained = std::process::Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &setup.port().to_string()])
        .args(["-t", &format!("python/mqtt/jobs/{id}/events")])
        .args(["--retained-only", "-C", "1", "-W", "3"])
        .output()
        .expect("mosquitto_sub is installed");
    std::fs::write(&go, "").expect("go");
    assert_eq!(running.finish(Duration::from_secs(60)).code(), Some(0));
    assert_eq!(
        text(&retained.stdout),
        "",
        "attempt 2 sees attempt 1's retained event"
    );
    let job = setup.job("flaky");
    assert_eq!(
        (job["state"].clone(), job["attempt"].clone()),
        ("completed".into(), 2.into())
    );
}

#[test]
fn the_wrapper_takes_the_terminal_back_when_the_agent_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let strays = Strays(dir.path().join("pids"));
    let done = dir.path().join("done");
    // A child in the agent's group that ignores SIGTERM outlives the agent:
    // the wrapper stops it (TERM, 5 s, KILL) after taking the terminal back.
    let agent = script(
        &dir.path().join("leaves.sh"),
        &format!(
            "sh -c 'trap \"\" TERM; echo $$ >> {pids}; exec sleep 60' &\n\
             while [ ! -s {pids} ]; do sleep 0.05; done\ntouch {done}",
            pids = strays.0.display(),
            done = done.display()
        ),
    );
    let setup = world(
        "5s",
        &format!("[agents.leaves]\ncommand = [\"{}\"]\n", agent.display()),
    );
    let mut running = spawn_run(
        &setup,
        &["--agent", "leaves", "--name", "leaves", "--prompt", "p"],
    );
    assert!(
        running.wait_line("\"to\":\"running\"", SETTLE),
        "{:?}",
        running.stderr
    );
    let wrapper = recorded_attempt(&setup, &setup.id("leaves"))["pane_pid"]
        .as_i64()
        .expect("pane pid");
    assert!(wait_for(SETTLE, || done.exists().then_some(())).is_some());
    // Field 8 of the wrapper's stat is its terminal's foreground group.
    let foreground = wait_for(SETTLE, || {
        (stat_field(wrapper, 8)? == stat_field(wrapper, 5)?).then_some(())
    });
    assert!(
        foreground.is_some(),
        "the dead agent's group kept the terminal while the wrapper stopped its child"
    );
    running.finish(SETTLE);
}

// --- The wrapper stopped from outside ---------------------------------------

/// Stops the escaping agent's wrapper from outside (`how` gets the job's
/// window id and the wrapper's pid) while the agent ignores SIGHUP and no
/// supervisor runs (it was SIGKILLed): the wrapper alone must stop the
/// agent and its escapees before it goes.
fn wrapper_stopped_from_outside(how: impl FnOnce(&World, &str, i64)) {
    let Escaping {
        _dir,
        strays,
        setup,
    } = escaping("trap '' HUP\nexec sleep 300", "");
    let (mut running, id, _) = start_escapees(&setup, &strays);
    let attempt = recorded_attempt(&setup, &id);
    running.guard.child().kill().expect("kill run");
    running.finish(SETTLE);
    how(
        &setup,
        attempt["window"].as_str().expect("window"),
        attempt["pane_pid"].as_i64().expect("pane pid"),
    );
    assert_eq!(
        strays.survivors(),
        Vec::<i32>::new(),
        "survived the wrapper's end"
    );
}

#[test]
fn closing_the_window_stops_an_agent_that_ignores_sighup_and_its_escapees() {
    wrapper_stopped_from_outside(|setup, window, _| {
        let out = setup.tmux.output(&["kill-window", "-t", window]);
        assert!(out.trim().is_empty(), "{out}");
    });
}

#[test]
fn sigterm_to_the_wrapper_stops_the_agent_and_its_escapees() {
    wrapper_stopped_from_outside(|_, _, wrapper| send("TERM", wrapper));
}

// --- What a kept window shows -------------------------------------------------

/// `keep_failed = true` for `setup`: a failed attempt's window is renamed
/// and kept, its dead pane left for a human to read.
fn keeping_failed(setup: &World) {
    let path = setup.home.join("tmux-delegate.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    let text = text.replace("keep_failed = false", "keep_failed = true");
    std::fs::write(&path, text).expect("config");
}

/// The text (history included) of the job's kept first-attempt window,
/// once tmux wrote its dead pane's status line (it does when it collects
/// the wrapper's exit status, which may come after the job ended).
fn kept_pane(setup: &World, id: &str) -> String {
    let record = setup.record(id);
    let window = record["attempts"][0]["window"].as_str().expect("window");
    let capture = || {
        setup
            .tmux
            .output(&["capture-pane", "-p", "-S", "-", "-t", window])
    };
    wait_for(SETTLE, || {
        let pane = capture();
        // tmux 3.3a now and then misses the SIGCHLD of a pane's process
        // (seen: the wrapper a zombie of the server for 30 s): a child of
        // its own that ends makes it reap them all.
        setup.tmux.output(&["run-shell", "true"]);
        pane.contains("Pane is dead (").then_some(pane)
    })
    .unwrap_or_else(capture)
}

/// A job of `body` (a shell script) that fails at once (`max_attempts = 1`)
/// and keeps its window; `run` is started, the setup returned.
fn kept_job(dir: &Path, body: &str) -> (World, Lines) {
    let agent = script(&dir.join("agent.sh"), body);
    let setup = world(
        "1s",
        &format!(
            "[defaults.retry]\nmax_attempts = 1\n[agents.kept]\ncommand = [\"{}\"]\n",
            agent.display()
        ),
    );
    keeping_failed(&setup);
    let running = spawn_run(
        &setup,
        &["--agent", "kept", "--name", "kept", "--prompt", "p"],
    );
    (setup, running)
}

#[test]
fn a_kept_window_shows_the_agent_s_exit_code_and_the_wrapper_exits_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (setup, mut running) = kept_job(dir.path(), "echo last words\nexit 3");
    assert_eq!(
        running.finish(SETTLE).code(),
        Some(1),
        "{:?}",
        running.stderr
    );
    assert_eq!(setup.job("kept")["state"], "failed");
    let pane = kept_pane(&setup, &setup.id("kept"));
    assert!(
        pane.contains("last words")
            && pane.contains("[tmux-delegate] the agent exited with code 3"),
        "the wrapper did not say how the agent ended: {pane}"
    );
    // tmux writes the pane's exit status (the wrapper's) under it.
    assert!(pane.contains("Pane is dead (status 3,"), "{pane}");
}

#[test]
fn a_wrapper_hung_up_on_exits_with_its_stopped_agent_s_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (setup, mut running) = kept_job(dir.path(), "exec sleep 300");
    assert!(
        running.wait_line("\"to\":\"running\"", SETTLE),
        "{:?}",
        running.stderr
    );
    let attempt = recorded_attempt(&setup, &setup.id("kept"));
    // tmux sends SIGHUP as it closes the window; sent by hand here, the
    // dead pane stays to be read. The agent dies of the wrapper's SIGTERM.
    send("HUP", attempt["pane_pid"].as_i64().expect("pane pid"));
    assert_eq!(
        running.finish(SETTLE).code(),
        Some(1),
        "{:?}",
        running.stderr
    );
    let pane = kept_pane(&setup, &setup.id("kept"));
    assert!(pane.contains("Pane is dead (status 143,"), "{pane}");
}

/// `mosquitto_sub` on every job's events topic of `setup`'s broker, once
/// the broker acknowledged the subscription (line-buffered by `stdbuf`:
/// mosquitto_sub has no option for it).
fn subscribed(setup: &World) -> Lines {
    let mut sub = Lines::spawn(
        std::process::Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub", "-d", "-h", "127.0.0.1"])
            .args(["-p", &setup.port().to_string()])
            .args(["-t", "python/mqtt/jobs/+/events"]),
    );
    assert!(sub.wait_line("SUBACK", SETTLE), "{:?}", sub.stderr);
    sub
}

#[test]
fn the_wrapper_numbers_its_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = script(&dir.path().join("agent.sh"), "exit 0");
    let setup = world(
        "1s",
        &format!(
            "[agents.numbered]\ncommand = [\"{}\"]\ncomplete_on_exit = true\n",
            agent.display()
        ),
    );
    let mut sub = subscribed(&setup);
    let mut running = spawn_run(
        &setup,
        &["--agent", "numbered", "--name", "numbered", "--prompt", "p"],
    );
    assert_eq!(
        running.finish(SETTLE).code(),
        Some(0),
        "{:?}",
        running.stderr
    );
    assert!(
        sub.wait_line("\"event\":\"exited\"", SETTLE),
        "{:?}",
        sub.stdout
    );
    let numbered: Vec<(String, u64)> = sub
        .stdout
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|e| Some((e["event"].as_str()?.to_owned(), e["seq"].as_u64()?)))
        .collect();
    // Numbered in the order sent (the Last Will, built first, took one).
    let kinds: Vec<&str> = numbered.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["started", "exited"], "{numbered:?}");
    assert!(numbered[0].1 < numbered[1].1, "{numbered:?}");
}
