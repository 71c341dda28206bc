//! Agent templates end to end: the `claude` template driven by a stand-in
//! `claude` that runs its --settings hooks like Claude Code does, waiting
//! detection with an on_waiting hook, and `init` found from a subdirectory.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A stand-in for Claude Code: reads `--settings`, runs each configured hook
/// command through the shell with the hook's JSON on stdin (as Claude Code
/// does), then stays at its prompt without exiting.
const FAKE_CLAUDE: &str = r#"#!/usr/bin/env python3
import json, os, subprocess, sys, time
args = sys.argv[1:]
settings = json.load(open(args[args.index("--settings") + 1]))["hooks"]
log = os.environ["FAKE_CLAUDE_LOG"]
def fire(event, payload):
    for group in settings.get(event, []):
        for hook in group["hooks"]:
            with open(log, "a") as f:
                f.write(f"{event} started\n")
            done = subprocess.run(hook["command"], shell=True, input=json.dumps(payload).encode(), capture_output=True)
            with open(log, "a") as f:
                f.write(f"{event} rc={done.returncode} stdout={done.stdout!r} stderr={done.stderr!r}\n")
fire("SessionStart", {"hook_event_name": "SessionStart", "source": "startup"})
print("fake claude got:", args[-1], flush=True)
mode = os.environ.get("FAKE_CLAUDE_MODE")
if mode == "notify":
    fire("Notification", {"hook_event_name": "Notification", "message": "Claude needs your permission to use Bash"})
elif mode == "api_error":
    # What Claude Code 2.1 sends when every API call of the turn failed.
    fire("StopFailure", {"hook_event_name": "StopFailure", "session_id": "s1", "error": "invalid_request",
         "last_assistant_message": "API Error: 400 {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"prompt is too long\"}}"})
else:
    fire("PostToolUse", {"hook_event_name": "PostToolUse", "tool_name": "Bash"})
    fire("Stop", {"hook_event_name": "Stop", "stop_hook_active": False})
while True:
    time.sleep(1)
"#;

/// No broker configured (the embedded one), `config`, and the fake
/// `claude` first on PATH.
fn claude_world(config: &str) -> World {
    let world = World::embedded(config);
    world.install("claude", FAKE_CLAUDE);
    world
}

/// Where the fake `claude` logs the hooks it ran.
fn claude_log(world: &World) -> PathBuf {
    world.scratch("claude.log")
}

fn job_spec(world: &World, mode: &str) -> PathBuf {
    let spec = world.home.join("job.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"claude-job\"\nagent = \"claude\"\nprompt = \"Fix the parser; don't touch `tests/` or $(HOME)\"\n\
             [env]\nFAKE_CLAUDE_MODE = \"{mode}\"\nFAKE_CLAUDE_LOG = \"{}\"\n",
            claude_log(world).display()
        ),
    )
    .expect("spec");
    spec
}

fn first_job(world: &World) -> serde_json::Value {
    let out = run(world.td().args(["status", "--json"]));
    serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("status")[0].clone()
}

#[test]
fn the_claude_template_completes_on_the_stop_hook_and_closes_the_window() {
    let world = claude_world("");
    let spec = job_spec(&world, "stop");
    let out = Guard(Some(
        world
            .td()
            .arg("run")
            .arg("--json")
            .arg(&spec)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run"),
    ))
    .wait_output(Duration::from_secs(60));
    let log = std::fs::read_to_string(claude_log(&world)).unwrap_or_default();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}\n{log}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // Every hook ran silently and exited 0 (stdout would reach Claude's
    // context). Stop's own line may be cut short: its `completed` makes the
    // supervisor stop the agent's whole group, hook included.
    assert!(log.contains("Stop started"), "{log}");
    for event in ["SessionStart", "PostToolUse"] {
        assert!(
            log.contains(&format!("{event} rc=0 stdout=b'' stderr=b''")),
            "{event}: {log}"
        );
    }
    let job = first_job(&world);
    assert_eq!(job["state"], "completed", "{job}");
    let windows = world
        .tmux
        .output(&["list-windows", "-a", "-F", "#{window_name}"]);
    assert!(
        !windows.contains("claude-job"),
        "the window is still open: {windows}"
    );
}

#[test]
fn a_notification_makes_the_job_wait_without_being_killed_and_runs_on_waiting_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hook_log = dir.path().join("waiting.log");
    let world = claude_world(&format!(
        "[defaults.timeouts]\nidle = \"2s\"\n[hooks]\non_waiting = [\"sh\", \"-c\", \"cat >> {0}; echo >> {0}\"]\n",
        hook_log.display()
    ));
    let spec = job_spec(&world, "notify");
    let mut command = world.td();
    command.arg("run").arg("--json").arg(&spec);
    let mut running = Lines::spawn(&mut command);
    assert!(
        running.wait_line("\"to\":\"waiting\"", Duration::from_secs(30)),
        "{:?}\n{:?}",
        running.stdout,
        running.stderr
    );
    // Well past timeouts.idle (2 s) after the recorded `waiting`: a waiting
    // job is not hung. The history below shows nothing came between it and
    // the kill's `cancelled`.
    let id = first_job(&world)["id"].as_str().expect("id").to_owned();
    let waited = world.first_transition_to(&id, "waiting");
    wait_until_unix(waited + 4.0, Duration::from_secs(30));
    let job = first_job(&world);
    assert_eq!(job["state"], "waiting", "{job}");
    assert_eq!(job["attempt"], 1, "{job}");
    assert_eq!(
        job["last_event"]["message"], "Claude needs your permission to use Bash",
        "{job}"
    );
    let calls = std::fs::read_to_string(&hook_log).unwrap_or_default();
    let calls: Vec<&str> = calls.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        calls.len(),
        1,
        "on_waiting ran {} times: {calls:?}",
        calls.len()
    );
    let input: serde_json::Value = serde_json::from_str(calls[0]).expect("hook input is JSON");
    assert_eq!(input["state"], "waiting");
    assert_eq!(input["name"], "claude-job");

    assert!(run(world.td().args(["kill", &id])).status.success());
    assert_eq!(running.finish(Duration::from_secs(20)).code(), Some(1));
    let after: Vec<(String, f64)> = world
        .transitions(&id)
        .into_iter()
        .skip_while(|(to, _)| to != "waiting")
        .collect();
    let states: Vec<&str> = after.iter().map(|(to, _)| to.as_str()).collect();
    assert_eq!(states, ["waiting", "cancelled"], "{after:?}");
    assert!(
        after[1].1 - after[0].1 > 4.0,
        "the kill came before idle had long passed: {after:?}"
    );
}

#[test]
fn init_writes_a_project_config_that_run_finds_from_a_subdirectory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let project = dir.path().join("project");
    let nested = project.join("src/deep");
    std::fs::create_dir_all(&nested).expect("dirs");
    let tmux = TmuxServer::named(dir.path(), "default");
    let tmpdir = tmux.tmpdir.display().to_string();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let in_dir = |cwd: &Path| {
        let mut command = td(&home, &[("TMUX_TMPDIR", &tmpdir)]);
        command.current_dir(cwd);
        command
    };
    let out = run(in_dir(&project).args(["init", "--agent", "shell"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(project.join("tmux-delegate.toml").is_file());
    let again = run(in_dir(&project).args(["init"]));
    assert_eq!(
        again.status.code(),
        Some(2),
        "init must refuse to overwrite"
    );

    let out = run(in_dir(&nested).args(["run", "--json", "--prompt", "hello from below"]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let status = run(in_dir(&nested).args(["status", "--json"]));
    let jobs: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status");
    assert_eq!(
        jobs[0]["agent"], "shell",
        "the project's default agent was not used: {jobs}"
    );
    assert_eq!(jobs[0]["state"], "completed");
}

#[test]
fn agents_lists_every_template_with_how_it_reports_and_whether_it_is_installed() {
    let world = claude_world("[agents.mine]\ncommand = [\"/nonexistent/agent\", \"{prompt}\"]\n");
    let out = run(world.td().arg("agents"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    for name in [
        "claude ",
        "claude-print",
        "codex",
        "aider",
        "gemini",
        "opencode",
        "shell",
        "mine",
    ] {
        assert!(listing.contains(name), "{name} missing:\n{listing}");
    }
    let line = |name: &str| {
        listing
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_owned()
    };
    // The stand-in claude is on this PATH; /nonexistent/agent is not installed.
    assert!(line("claude ").contains(" yes "), "{listing}");
    assert!(line("claude ").contains("Claude Code hooks"), "{listing}");
    assert!(
        line("mine").contains("configured") && line("mine").contains(" no "),
        "{listing}"
    );
}

#[test]
fn an_api_error_fails_the_attempt_fast_with_the_apis_words_and_the_retry_policy_decides() {
    let world = claude_world("[defaults.retry]\nmax_attempts = 2\nbackoff = \"0s\"\n");
    let spec = job_spec(&world, "api_error");
    let started = std::time::Instant::now();
    let out = Guard(Some(
        world
            .td()
            .arg("run")
            .arg("--json")
            .arg(&spec)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run"),
    ))
    .wait_output(Duration::from_secs(60));
    let stdout = text(&out.stdout);
    let log = std::fs::read_to_string(claude_log(&world)).unwrap_or_default();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}\n{log}",
        text(&out.stderr)
    );
    // Far less than any timeout: the error event ended each attempt.
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
    assert!(stdout.contains("\"to\":\"retrying\""), "{stdout}");
    assert!(!stdout.contains("\"to\":\"waiting\""), "{stdout}");
    let job = first_job(&world);
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["attempt"], 2, "{job}");
    assert_eq!(job["failure"]["kind"], "error", "{job}");
    let reason = job["failure"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("API Error: 400") && reason.contains("prompt is too long"),
        "{job}"
    );
    assert!(
        log.contains("StopFailure rc=0 stdout=b'' stderr=b''")
            || log.contains("StopFailure started"),
        "{log}"
    );
}
