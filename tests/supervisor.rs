//! `run` end to end: a real Mosquitto, a real tmux server on a private
//! socket, the real binary and small fake agents.

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;

/// `run --json ARGS` with `vars` to its end: (exit code, stdout, stderr).
fn run_json(
    world: &World,
    args: &[&str],
    vars: &[(&str, &str)],
    limit: Duration,
) -> (Option<i32>, String, String) {
    finish(
        world.td_with(vars).arg("run").arg("--json").args(args),
        limit,
    )
}

/// Reads the pids a fake agent wrote, one per line.
fn pids(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[test]
fn four_jobs_complete_retry_hang_and_fail_as_their_agents_behave() {
    four_jobs(Broker::Mosquitto);
}

#[test]
fn four_jobs_on_the_embedded_broker() {
    four_jobs(Broker::Embedded);
}

fn four_jobs(kind: Broker) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pids_file = dir.path().join("pids");
    let pidfile = pids_file.display().to_string();
    let agents = dir.path();
    // Publishes completed, then stays up like an interactive agent at its prompt.
    let ok = script(&agents.join("ok.sh"), &format!(
        "echo $$ >> {pidfile}\n\"$TMUX_DELEGATE_BIN\" publish --event completed --message done\nexec sleep 60"
    ));
    // Attempt 1 reports an error and exits 1; attempt 2 completes.
    let flaky = script(&agents.join("flaky.sh"), &format!(
        "echo $$ >> {pidfile}\nif [ \"$DELEGATE_ATTEMPT\" = 1 ]; then \"$TMUX_DELEGATE_BIN\" publish --event error --message boom; exit 1; fi\n\"$TMUX_DELEGATE_BIN\" publish --event completed"
    ));
    // Attempt 1 goes silent with its whole group ignoring SIGTERM; attempt 2 completes.
    let hang = script(&agents.join("hang.sh"), &format!(
        "echo $$ >> {pidfile}\nif [ \"$DELEGATE_ATTEMPT\" = 1 ]; then trap '' TERM; sleep 300 & echo $! >> {pidfile}; sleep 300; fi\n\"$TMUX_DELEGATE_BIN\" publish --event completed"
    ));
    // Exits non-zero every time.
    let bad = script(
        &agents.join("bad.sh"),
        &format!("echo $$ >> {pidfile}\necho failing; exit 3"),
    );
    let setup = World::on(
        kind,
        &format!(
            "[defaults.retry]\nbackoff = \"0s\"\nmax_attempts = 2\n\
         [defaults.timeouts]\nstart = \"20s\"\nidle = \"2s\"\n\
         [agents.ok]\ncommand = [\"{}\"]\ncomplete_on_exit = false\nliveness = \"events\"\n\
         [agents.flaky]\ncommand = [\"{}\"]\nliveness = \"events\"\n\
         [agents.hang]\ncommand = [\"{}\"]\nliveness = \"events\"\n\
         [agents.bad]\ncommand = [\"{}\"]\nliveness = \"events\"\n",
            ok.display(),
            flaky.display(),
            hang.display(),
            bad.display()
        ),
    );
    std::fs::write(
        setup.path("jobs.toml"),
        "[[jobs]]\nname = \"ok\"\nagent = \"ok\"\n\
         [[jobs]]\nname = \"flaky\"\nagent = \"flaky\"\n\
         [[jobs]]\nname = \"hang\"\nagent = \"hang\"\n\
         [[jobs]]\nname = \"bad\"\nagent = \"bad\"\n",
    )
    .expect("jobs.toml");

    let (code, stdout, stderr) = run_json(&setup, &["jobs.toml"], &[], Duration::from_secs(60));
    assert_eq!(
        code,
        Some(1),
        "run must fail because `bad` failed\n{stdout}\n{stderr}"
    );
    for line in stdout.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }

    let expect = [
        ("ok", "completed", 1),
        ("flaky", "completed", 2),
        ("hang", "completed", 2),
        ("bad", "failed", 2),
    ];
    for (name, state, attempt) in expect {
        let job = setup.job(name);
        assert_eq!(job["state"], state, "{name}: {job}");
        assert_eq!(job["attempt"], attempt, "{name}: {job}");
    }
    assert_eq!(setup.job("bad")["failure"]["kind"], "exit");

    // The hang was declared hung, then needed SIGKILL after the grace.
    let id = setup.job("hang")["id"].as_str().expect("id").to_owned();
    let history = std::fs::read_to_string(setup.home.join(format!("state/jobs/{id}/events.jsonl")))
        .expect("history");
    assert!(
        history.contains("\"to\":\"retrying\"") && history.contains("hung"),
        "{history}"
    );

    // No agent process survives its attempt.
    let all = pids(&pids_file);
    assert!(all.len() >= 7, "agents did not all start: {all:?}");
    let survivors: Vec<i32> = all.into_iter().filter(|p| alive(*p)).collect();
    assert!(
        survivors.is_empty(),
        "agent processes survived: {survivors:?}"
    );
    // No job window is left (keep_failed = false). With none left the
    // server may be gone too: its "no server running on /tmp/..." names
    // no window (a substring test once matched "ok" in a random temp dir).
    let windows = setup
        .tmux
        .output(&["list-windows", "-a", "-F", "#{window_name} #{pane_dead}"]);
    let names: Vec<&str> = windows
        .lines()
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("hang") || n.starts_with("ok")),
        "{windows}"
    );
}

#[test]
fn output_counts_as_life_but_silence_is_a_hang() {
    output_and_silence(Broker::Mosquitto);
}

#[test]
fn output_and_silence_on_the_embedded_broker() {
    output_and_silence(Broker::Embedded);
}

fn output_and_silence(kind: Broker) {
    let dir = tempfile::tempdir().expect("tempdir");
    let printer = script(
        &dir.path().join("printer.sh"),
        "i=0; while [ $i -lt 12 ]; do echo tick $i; i=$((i+1)); sleep 0.4; done",
    );
    let silent = script(&dir.path().join("silent.sh"), "sleep 60");
    let setup = World::on(
        kind,
        &format!(
            "[defaults.retry]\nmax_attempts = 1\n[defaults.timeouts]\nidle = \"2s\"\n\
         [agents.printer]\ncommand = [\"{}\"]\nliveness = \"both\"\n\
         [agents.silent]\ncommand = [\"{}\"]\nliveness = \"both\"\n",
            printer.display(),
            silent.display()
        ),
    );
    std::fs::write(
        setup.path("jobs.toml"),
        "[[jobs]]\nname = \"printer\"\nagent = \"printer\"\n[[jobs]]\nname = \"silent\"\nagent = \"silent\"\n",
    )
    .expect("jobs");
    let (code, stdout, stderr) = run_json(&setup, &["jobs.toml"], &[], Duration::from_secs(60));
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert_eq!(setup.job("printer")["state"], "completed", "{stdout}");
    let silent = setup.job("silent");
    assert_eq!(silent["state"], "failed");
    assert_eq!(silent["failure"]["kind"], "hung", "{silent}");
}

#[test]
fn a_stale_completed_from_an_older_attempt_does_not_complete_the_current_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = script(&dir.path().join("stale.sh"),
        "B=\"$TMUX_DELEGATE_BIN\"\n\
         if [ \"$DELEGATE_ATTEMPT\" = 1 ]; then $B publish --event error --message first; exit 1; fi\n\
         $B publish --event completed --attempt 1 --message stale\n\
         sleep 1\n\
         $B publish --event error --message second");
    let setup = World::mosquitto(&format!(
        "[defaults.retry]\nbackoff = \"0s\"\nmax_attempts = 2\n[agents.stale]\ncommand = [\"{}\"]\n",
        agent.display()
    ));
    let (code, stdout, stderr) = run_json(
        &setup,
        &["--agent", "stale", "--name", "stale", "--prompt", "x"],
        &[],
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    let job = setup.job("stale");
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["attempt"], 2);
    let id = job["id"].as_str().expect("id");
    let history = std::fs::read_to_string(setup.home.join(format!("state/jobs/{id}/events.jsonl")))
        .expect("history");
    assert!(
        history
            .lines()
            .any(|l| l.contains("\"event\":\"completed\"") && l.contains("stale")),
        "{history}"
    );
}

#[test]
fn a_prompt_full_of_shell_syntax_reaches_the_agent_verbatim_as_one_argument() {
    let dir = tempfile::tempdir().expect("tempdir");
    let canary = dir.path().join("pwned");
    let out = dir.path().join("argv");
    let agent = script(
        &dir.path().join("echo.sh"),
        &format!(
            "printf '%s' \"$#\" > {out}.count\nprintf '%s' \"$1\" > {out}",
            out = out.display()
        ),
    );
    let setup = World::mosquitto(&format!(
        "[agents.echo]\ncommand = [\"{}\", \"{{prompt}}\"]\n",
        agent.display()
    ));
    let prompt = format!(
        "$(touch {c}) `touch {c}` \"double\" 'single' ; touch {c} | & > * ?\nsecond line\twith tab \\ backslash ${{HOME}}",
        c = canary.display()
    );
    let (code, stdout, stderr) = run_json(
        &setup,
        &["--agent", "echo", "--name", "echo", "--prompt", &prompt],
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        std::fs::read_to_string(format!("{}.count", out.display())).expect("count"),
        "1"
    );
    assert_eq!(std::fs::read(&out).expect("argv"), prompt.as_bytes());
    assert!(!canary.exists(), "the prompt ran as shell code");
}

#[test]
fn the_worker_password_reaches_only_the_agent() {
    const WORKER_PW: &str = "w0rker-Secret-e41d";
    const HERMES_PW: &str = "h3rmes-Secret-77a2";
    let dir = tempfile::tempdir().expect("tempdir");
    let passwd = password_file(
        dir.path(),
        &[("claude-worker", WORKER_PW), ("hermes", HERMES_PW)],
    );
    let acl = dir.path().join("acl");
    std::fs::write(&acl, ACL).expect("acl");
    let seen = dir.path().join("seen");
    let ready = dir.path().join("ready");
    let go = dir.path().join("go");
    let agent = script(
        &dir.path().join("secret.sh"),
        &format!(
            "printf '%s' \"$MQTT_PASSWORD\" > {seen}\ntouch {ready}\n\
         i=0; while [ ! -e {go} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done\n\
         \"$TMUX_DELEGATE_BIN\" publish --event completed",
            seen = seen.display(),
            ready = ready.display(),
            go = go.display()
        ),
    );
    let setup = World::builder(Broker::Mosquitto)
        .mosquitto_conf(&format!(
            "allow_anonymous false\npassword_file {}\nacl_file {}\n",
            passwd.display(),
            acl.display()
        ))
        .build(&format!(
            "username = \"hermes\"\n\
         [broker.worker]\nusername = \"claude-worker\"\npassword_env = \"WORKER_MQTT_PASSWORD\"\n\
         [agents.secret]\ncommand = [\"{}\"]\n",
            agent.display()
        ));
    let mut command = setup.td_with(&[
        ("MQTT_PASSWORD", HERMES_PW),
        ("WORKER_MQTT_PASSWORD", WORKER_PW),
    ]);
    command.args([
        "run", "--json", "--agent", "secret", "--name", "secret", "--prompt", "p",
    ]);
    let mut run_process = Lines::spawn(&mut command);

    assert!(
        wait_for(Duration::from_secs(20), || ready.exists().then_some(())).is_some(),
        "agent never started: {:?}",
        run_process.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&seen).expect("seen"),
        WORKER_PW,
        "the agent must get the worker password"
    );

    let ps = text(
        &std::process::Command::new("ps")
            .args(["-eo", "args"])
            .output()
            .expect("ps")
            .stdout,
    );
    let global_env = setup.tmux.output(&["show-environment", "-g"]);
    let session_env = setup.tmux.output(&["show-environment", "-t", "delegate"]);
    let scrollback = setup
        .tmux
        .output(&["capture-pane", "-p", "-J", "-S", "-", "-t", "delegate:"]);
    for (place, content) in [
        ("ps", &ps),
        ("tmux global environment", &global_env),
        ("tmux session environment", &session_env),
        ("scrollback", &scrollback),
    ] {
        assert!(
            !content.contains(WORKER_PW) && !content.contains(HERMES_PW),
            "a password is visible in {place}:\n{content}"
        );
    }
    assert!(
        ps.contains("tmux-delegate exec"),
        "the wrapper should be running: {ps}"
    );

    std::fs::write(&go, "").expect("go");
    let status = run_process.finish(Duration::from_secs(30));
    assert_eq!(
        status.code(),
        Some(0),
        "{:?}\n{:?}",
        run_process.stdout,
        run_process.stderr
    );
    let logs = format!("{:?}{:?}", run_process.stdout, run_process.stderr);
    let history: String = std::fs::read_dir(setup.home.join("state/jobs"))
        .expect("jobs")
        .flatten()
        .map(|e| std::fs::read_to_string(e.path().join("events.jsonl")).unwrap_or_default())
        .collect();
    for (place, content) in [("run output", &logs), ("events.jsonl", &history)] {
        assert!(
            !content.contains(WORKER_PW) && !content.contains(HERMES_PW),
            "a password is in {place}"
        );
    }
}

#[test]
fn kill_cancels_a_running_job_logs_shows_it_and_retry_runs_a_new_attempt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("pid");
    let agent = script(&dir.path().join("long.sh"), &format!(
        "echo $$ > {}\nif [ \"$DELEGATE_ATTEMPT\" = 1 ]; then exec sleep 60; fi\necho second attempt; exit 0",
        pidfile.display()
    ));
    let setup = World::mosquitto(&format!(
        "[agents.long]\ncommand = [\"{}\"]\n",
        agent.display()
    ));
    let mut command = setup.td();
    command.args([
        "run", "--json", "--agent", "long", "--name", "long", "--prompt", "p",
    ]);
    let mut running = Lines::spawn(&mut command);
    assert!(
        running.wait_line("\"to\":\"running\"", Duration::from_secs(20)),
        "{:?}",
        running.stderr
    );
    let id = setup.job("long")["id"].as_str().expect("id").to_owned();
    let agent_pid: i32 = wait_for(Duration::from_secs(5), || {
        std::fs::read_to_string(&pidfile).ok()?.trim().parse().ok()
    })
    .expect("agent pid");

    let out = run(setup.td().args(["kill", &id]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        running.finish(Duration::from_secs(20)).code(),
        Some(1),
        "{:?}",
        running.stdout
    );
    assert_eq!(setup.job("long")["state"], "cancelled");
    assert!(
        wait_for(Duration::from_secs(5), || (!alive(agent_pid)).then_some(())).is_some(),
        "the agent survived kill"
    );

    let out = run(setup.td().args(["logs", &id]));
    let logs = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        logs.contains("pending -> launching")
            && logs.contains("-> cancelled")
            && logs.contains("window"),
        "{logs}"
    );

    let out = run(setup.td().args(["retry", &id]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let job = setup.job("long");
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["attempt"], 2);
}

#[test]
fn ctrl_c_stops_every_window_cleanly_and_exits_130() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pids");
    let agent = script(
        &dir.path().join("busy.sh"),
        &format!("echo $$ >> {}\nexec sleep 60", pid_file.display()),
    );
    let setup = World::mosquitto(&format!(
        "[agents.busy]\ncommand = [\"{}\"]\n",
        agent.display()
    ));
    std::fs::write(
        setup.path("jobs.toml"),
        "[[jobs]]\nname = \"one\"\nagent = \"busy\"\n[[jobs]]\nname = \"two\"\nagent = \"busy\"\n",
    )
    .expect("jobs");
    let mut command = setup.td();
    command.args(["run", "--json", "jobs.toml"]);
    let mut running = Lines::spawn(&mut command);
    for _ in 0..2 {
        assert!(
            running.wait_line("\"to\":\"running\"", Duration::from_secs(20)),
            "{:?}",
            running.stderr
        );
    }
    let agents = wait_for(Duration::from_secs(5), || {
        let found = pids(&pid_file);
        (found.len() == 2).then_some(found)
    })
    .expect("two agents");
    let pid = running.guard.child().id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    assert_eq!(
        running.finish(Duration::from_secs(20)).code(),
        Some(130),
        "{:?}",
        running.stdout
    );
    for name in ["one", "two"] {
        assert_eq!(setup.job(name)["state"], "cancelled");
    }
    let survivors: Vec<i32> = agents.into_iter().filter(|p| alive(*p)).collect();
    assert!(
        survivors.is_empty(),
        "agents survived Ctrl-C: {survivors:?}"
    );
}

#[test]
fn an_agent_that_cannot_start_fails_with_the_reason() {
    let setup = World::mosquitto(
        "[defaults.retry]\nmax_attempts = 1\n[agents.missing]\ncommand = [\"/nonexistent/agent\", \"{prompt}\"]\n",
    );
    let (code, stdout, stderr) = run_json(
        &setup,
        &["--agent", "missing", "--name", "missing", "--prompt", "x"],
        &[],
        Duration::from_secs(30),
    );
    // Caught before anything is registered (tests/preflight.rs covers a
    // program that vanishes after the check: kind agent_config).
    assert_eq!(code, Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("needs `/nonexistent/agent`, which is not installed"),
        "{stderr}"
    );
    assert!(setup.status().is_empty());
}

#[test]
fn on_done_and_on_failed_hooks_get_the_job_on_stdin_even_for_the_last_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let done = dir.path().join("done.json");
    let failed = dir.path().join("failed.json");
    let ok = script(&dir.path().join("ok.sh"), "exit 0");
    let bad = script(&dir.path().join("bad.sh"), "exit 5");
    let setup = World::mosquitto(&format!(
        "[defaults.retry]\nmax_attempts = 1\n\
         [hooks]\non_done = [\"sh\", \"-c\", \"sleep 0.3; cat > {}\"]\non_failed = [\"sh\", \"-c\", \"cat > {}\"]\n\
         [agents.ok]\ncommand = [\"{}\"]\n[agents.bad]\ncommand = [\"{}\"]\n",
        done.display(),
        failed.display(),
        ok.display(),
        bad.display()
    ));
    std::fs::write(
        setup.path("jobs.toml"),
        "[[jobs]]\nname = \"good\"\nagent = \"ok\"\n[[jobs]]\nname = \"broken\"\nagent = \"bad\"\n",
    )
    .expect("jobs");
    let (code, stdout, stderr) = run_json(&setup, &["jobs.toml"], &[], Duration::from_secs(30));
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    let done: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&done).expect("on_done ran")).expect("json");
    assert_eq!(done["name"], "good");
    assert_eq!(done["state"], "completed");
    let failed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&failed).expect("on_failed ran"))
            .expect("json");
    assert_eq!(failed["name"], "broken");
    assert_eq!(failed["failure"]["kind"], "exit");
}

#[test]
fn resume_re_adopts_live_windows_and_settles_jobs_that_ended_meanwhile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gate = |name: &str| dir.path().join(name);
    // Each agent waits for its gate file, then completes and exits.
    let agent = script(
        &dir.path().join("gated.sh"),
        &format!(
            "B=\"$TMUX_DELEGATE_BIN\"\n\
             i=0; while [ ! -e {}/$1 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n\
             $B publish --event completed --message \"done after $1\" && touch {0}/published-$1",
            dir.path().display()
        ),
    );
    let setup = World::mosquitto(&format!(
        "[agents.gated]\ncommand = [\"{}\", \"{{prompt}}\"]\ncomplete_on_exit = false\n",
        agent.display()
    ));
    std::fs::write(
        setup.path("jobs.toml"),
        "[[jobs]]\nname = \"live\"\nagent = \"gated\"\nprompt = \"gate-live\"\n\
         [[jobs]]\nname = \"meanwhile\"\nagent = \"gated\"\nprompt = \"gate-meanwhile\"\n",
    )
    .expect("jobs");
    let mut command = setup.td();
    command.args(["run", "--json", "jobs.toml"]);
    let mut first = Lines::spawn(&mut command);
    for _ in 0..2 {
        assert!(
            first.wait_line("\"to\":\"running\"", Duration::from_secs(20)),
            "{:?}",
            first.stderr
        );
    }
    // The supervisor crashes; its windows and agents live on.
    let pid = first.guard.child().id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .expect("kill")
        .success());
    first.finish(Duration::from_secs(10));
    // One job ends while nobody supervises it: its retained `completed` waits.
    std::fs::write(gate("gate-meanwhile"), "").expect("gate");
    // Its `completed` is out and its agent and wrapper are gone: nobody is
    // left who could record it before a supervisor resumes.
    assert!(
        wait_for(Duration::from_secs(20), || gate("published-gate-meanwhile")
            .exists()
            .then_some(()))
        .is_some(),
        "the agent did not publish `completed`"
    );
    let meanwhile = setup.id("meanwhile");
    let record = setup.record(&meanwhile);
    let window = record["attempts"][0]["window"]
        .as_str()
        .expect("window")
        .to_owned();
    assert!(
        wait_for(Duration::from_secs(20), || (!setup
            .windows()
            .contains(&format!("{window} 0")))
        .then_some(()))
        .is_some(),
        "the wrapper in {window} did not end: {}",
        setup.windows()
    );
    assert_eq!(
        setup.job("meanwhile")["state"],
        "running",
        "no supervisor should have recorded it"
    );

    let mut command = setup.td();
    command.arg("resume");
    let mut resumed = Lines::spawn(&mut command);
    assert!(
        resumed.wait_line("\"to\":\"completed\"", Duration::from_secs(20)),
        "{:?}\n{:?}",
        resumed.stdout,
        resumed.stderr
    );
    std::fs::write(gate("gate-live"), "").expect("gate");
    assert_eq!(
        resumed.finish(Duration::from_secs(30)).code(),
        Some(0),
        "{:?}\n{:?}",
        resumed.stdout,
        resumed.stderr
    );
    for name in ["live", "meanwhile"] {
        let job = setup.job(name);
        assert_eq!(job["state"], "completed", "{job}");
        assert_eq!(job["attempt"], 1, "{job}");
    }
    let out = run(setup.td().arg("resume"));
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains("nothing to resume"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn detach_runs_the_supervisor_in_its_own_window_and_returns_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = script(&dir.path().join("quick.sh"), "sleep 2; exit 0");
    let setup = World::on(
        Broker::Embedded,
        &format!("[agents.quick]\ncommand = [\"{}\"]\n", agent.display()),
    );
    const SECRET: &str = "detach-Secret-5e1f";
    let out = run(setup
        .td_with(&[("MQTT_PASSWORD", SECRET), ("MY_API_KEY", SECRET)])
        .args([
            "run", "--detach", "--agent", "quick", "--name", "detached", "--prompt", "x",
        ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("attach"),
        "{}",
        text(&out.stdout)
    );
    // While the supervisor runs, its server's environment holds no secret.
    let global_env = setup.tmux.output(&["show-environment", "-g"]);
    assert!(
        global_env.contains("PATH="),
        "the tmux server should be up: {global_env}"
    );
    assert!(
        !global_env.contains(SECRET),
        "a secret reached the tmux environment:\n{global_env}"
    );
    let state = wait_for(Duration::from_secs(30), || {
        let out = run(setup.td().args(["status", "--json"]));
        let jobs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
        let job = jobs.into_iter().find(|j| j["name"] == "detached")?;
        (job["state"] == "completed").then_some(job)
    });
    assert!(
        state.is_some(),
        "the detached supervisor did not complete the job"
    );
    let launch_files = std::fs::read_dir(setup.home.join("state/detached"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(launch_files, 0, "the 0600 launch file must be consumed");
}

#[test]
fn inside_tmux_the_windows_go_to_the_current_server_and_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let gate = dir.path().join("gate");
    let agent = script(
        &dir.path().join("gated.sh"),
        &format!(
            "i=0; while [ ! -e {} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done",
            gate.display()
        ),
    );
    // No socket configured: `auto` means the server and session we run in.
    std::fs::write(
        home.join("tmux-delegate.toml"),
        format!("[agents.gated]\ncommand = [\"{}\"]\n", agent.display()),
    )
    .expect("config");
    let user = TmuxServer::named(dir.path(), "user-server");
    let default = TmuxServer::named(dir.path(), "default");
    let rc = dir.path().join("rc");
    let command = format!(
        "cd {home} && env HOME={home} TMUX_DELEGATE_HOME={home}/state PATH={path} {bin} run --json --agent gated --name inner --prompt x > {home}/out 2>&1; echo $? > {rc}; sleep 30",
        home = home.display(),
        path = std::env::var("PATH").unwrap_or_default(),
        bin = BIN,
        rc = rc.display()
    );
    let out = user
        .command(&[
            "new-session",
            "-d",
            "-s",
            "work",
            "-x",
            "120",
            "-y",
            "30",
            &command,
        ])
        .output()
        .expect("tmux");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let windows = wait_for(Duration::from_secs(20), || {
        let names = user.output(&["list-windows", "-t", "work", "-F", "#{window_name}"]);
        names.contains("inner").then_some(names)
    });
    assert!(
        windows.is_some(),
        "no job window in the user's session: {}",
        user.output(&["list-windows", "-a"])
    );
    let sessions = default.output(&["list-sessions"]);
    assert!(
        sessions.contains("no server") || sessions.contains("error connecting"),
        "a default server was started: {sessions}"
    );
    std::fs::write(&gate, "").expect("gate");
    let code = wait_for(Duration::from_secs(20), || {
        std::fs::read_to_string(&rc).ok()
    });
    assert_eq!(
        code.as_deref().map(str::trim),
        Some("0"),
        "{}",
        std::fs::read_to_string(home.join("out")).unwrap_or_default()
    );
}

#[test]
fn a_broker_outage_mid_job_is_survived_by_the_supervisor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gate = dir.path().join("gate");
    let agent = script(
        &dir.path().join("gated.sh"),
        &format!(
            "i=0; while [ ! -e {} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done\n\
             \"$TMUX_DELEGATE_BIN\" publish --event completed --message 'after the outage'\nsleep 1",
            gate.display()
        ),
    );
    let mut broker = Mosquitto::start(dir.path(), "allow_anonymous true\n");
    let port = broker.port;
    let setup = World::without_broker(&format!(
        "[broker]\nhost = \"127.0.0.1\"\nport = {port}\n\
             [agents.gated]\ncommand = [\"{}\"]\ncomplete_on_exit = false\n",
        agent.display()
    ));
    let mut command = setup.td();
    command.args([
        "run", "--json", "--agent", "gated", "--name", "outage", "--prompt", "x",
    ]);
    let mut running = Lines::spawn(&mut command);
    assert!(
        running.wait_line("\"to\":\"running\"", Duration::from_secs(20)),
        "{:?}",
        running.stderr
    );
    broker.restart();
    std::fs::write(&gate, "").expect("gate");
    assert_eq!(
        running.finish(Duration::from_secs(30)).code(),
        Some(0),
        "{:?}\n{:?}",
        running.stdout,
        running.stderr
    );
    let job = setup.job("outage");
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["last_event"]["message"], "after the outage", "{job}");
}
