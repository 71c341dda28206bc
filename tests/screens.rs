//! Screens no hook reports, in a real tmux server: a stand-in Claude Code
//! that shows its folder-trust dialog before any hook and waits for a key.
//! The job goes `waiting` with the dialog's question within 10 s (no start
//! or idle timeout, no retry, `on_waiting` runs), and once the dialog is
//! answered (in the window, or by a rule's opt-in `keys`) it completes.

mod common;

use common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A stand-in for Claude Code 2.1 in a folder it has not been told to
/// trust: it draws the trust dialog, waits for Enter, then runs its
/// SessionStart and Stop hooks (from --settings) as Claude Code does.
const FAKE_CLAUDE: &str = r#"#!/usr/bin/env python3
import json, os, subprocess, sys, time
args = sys.argv[1:]
settings = json.load(open(args[args.index("--settings") + 1]))["hooks"]
def fire(event, payload):
    for group in settings.get(event, []):
        for hook in group["hooks"]:
            subprocess.run(hook["command"], shell=True, input=json.dumps(payload).encode())
dialog = """
╭──────────────────────────────────────────────────────────────────────────────╮
│                                                                              │
│ Accessing workspace:                                                         │
│                                                                              │
│ {cwd}
│                                                                              │
│ Quick safety check: Is this a project you created or one you trust? (Like    │
│ your own code, a well-known open source project, or work from your team).    │
│ If not, take a moment to review what's in this folder first.                 │
│                                                                              │
│ Claude Code'll be able to read, edit, and execute files here.                │
│                                                                              │
│ ❯ 1. Yes, I trust this folder                                                │
│   2. No, exit                                                                │
│                                                                              │
╰──────────────────────────────────────────────────────────────────────────────╯
  Enter to confirm · Esc to cancel
""".replace("{cwd}", os.getcwd())
print(dialog, flush=True)
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(f"dialog {time.time()}\n")
sys.stdin.readline()
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write("answered\n")
print("\x1b[2J\x1b[H> " + args[-1], flush=True)
fire("SessionStart", {"hook_event_name": "SessionStart", "source": "startup"})
fire("Stop", {"hook_event_name": "Stop", "stop_hook_active": False})
while True:
    time.sleep(1)
"#;

/// No broker configured, the fake `claude` on PATH, short start and idle
/// timeouts (a dialog must trip neither), an `on_waiting` hook that logs
/// its input, and `config`.
fn claude_world(config: &str) -> World {
    let world = World::embedded("");
    world.install("claude", FAKE_CLAUDE);
    world.write_config(&format!(
        "{config}\n[defaults.timeouts]\nstart = \"3s\"\nidle = \"4s\"\n\
         [defaults.retry]\nmax_attempts = 3\nbackoff = \"0s\"\n\
         [hooks]\non_waiting = [\"sh\", \"-c\", \"cat >> {0}; echo >> {0}\"]\n",
        hook_log(&world).display()
    ));
    world
}

/// Where the fake `claude` writes when it drew the dialog.
fn claude_log(world: &World) -> PathBuf {
    world.scratch("claude.log")
}

fn hook_log(world: &World) -> PathBuf {
    world.scratch("waiting.log")
}

/// `run --json` of one `claude` job, its lines collected.
fn run_claude(world: &World) -> Lines {
    let log = claude_log(world).display().to_string();
    let mut command = world.td_with(&[("FAKE_LOG", &log)]);
    command.args(["run", "--json", "--agent", "claude", "--prompt", "say done"]);
    Lines::spawn(&mut command)
}

/// When the dialog was drawn (Unix seconds), once it was.
fn dialog_shown(world: &World) -> Option<f64> {
    let log = std::fs::read_to_string(claude_log(world)).ok()?;
    log.lines()
        .find_map(|l| l.strip_prefix("dialog ")?.parse().ok())
}

fn on_waiting_calls(world: &World) -> Vec<serde_json::Value> {
    std::fs::read_to_string(hook_log(world))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).expect("hook input"))
        .collect()
}

const QUESTION: &str = "Quick safety check: Is this a project you created or one you trust?";

#[test]
fn the_trust_dialog_is_reported_as_waiting_then_answered_in_the_window_and_completes() {
    let world = claude_world("");
    let mut running = run_claude(&world);
    assert!(
        running.wait_line("\"to\":\"waiting\"", Duration::from_secs(30)),
        "{:?}\n{:?}",
        running.stdout,
        running.stderr
    );
    let seen = unix_now();
    let shown = dialog_shown(&world).expect("the dialog was drawn");
    assert!(
        seen - shown < 10.0,
        "waiting reported {:.1} s after the dialog",
        seen - shown
    );
    eprintln!("waiting reported {:.2} s after the dialog", seen - shown);
    let waiting = running.stdout.last().cloned().unwrap_or_default();
    assert!(waiting.contains(QUESTION), "{waiting}");

    // Well past the start (3 s) and idle (4 s) timeouts after the recorded
    // `waiting`: still waiting, same attempt, on_waiting ran once. The
    // history at the end shows nothing came between it and the answer.
    let id = world.status()[0]["id"].as_str().expect("id").to_owned();
    let waited = world.first_transition_to(&id, "waiting");
    wait_until_unix(waited + 6.0, Duration::from_secs(30));
    let windows = world
        .tmux
        .output(&["list-panes", "-a", "-F", "#{pane_id} #{window_name}"]);
    let pane = windows
        .lines()
        .find(|l| l.contains("say-done"))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("no job window: {windows}"))
        .to_owned();
    assert!(
        !running
            .stdout
            .iter()
            .any(|l| l.contains("\"to\":\"retrying\"") || l.contains("\"to\":\"failed\"")),
        "{:?}",
        running.stdout
    );
    // The question, from a screen rule, in every view (not only in the
    // transition's history).
    let row = world.job("say-done");
    assert!(
        row["reason"]
            .as_str()
            .unwrap_or_default()
            .contains(QUESTION),
        "{row}"
    );
    let (_, table, _) = world.finish(&["status"], Duration::from_secs(10));
    assert!(
        table.contains("asks:") && table.contains(QUESTION),
        "{table}"
    );
    let calls = on_waiting_calls(&world);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(
        calls[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains(QUESTION),
        "{}",
        calls[0]
    );

    // A human answers in the window.
    world.tmux.output(&["send-keys", "-t", &pane, "Enter"]);
    let status = running.finish(Duration::from_secs(60));
    assert_eq!(
        status.code(),
        Some(0),
        "{:?}\n{:?}",
        running.stdout,
        running.stderr
    );
    let all = running.stdout.join("\n");
    assert!(all.contains("\"to\":\"completed\""), "{all}");
    assert_eq!(all.matches("\"attempt\":2").count(), 0, "retried: {all}");
    let after: Vec<(String, f64)> = world
        .transitions(&id)
        .into_iter()
        .skip_while(|(to, _)| to != "waiting")
        .collect();
    assert!(
        after.len() >= 2 && !["retrying", "failed"].contains(&after[1].0.as_str()),
        "{after:?}"
    );
    assert!(
        after[1].1 - after[0].1 > 6.0,
        "answered before the timeouts had long passed: {after:?}"
    );
}

#[test]
fn a_rule_with_keys_answers_the_dialog_and_the_job_completes() {
    let world = claude_world(
        "[[agents.claude.screens]]\nmatch = \"(Quick safety check: [^?]*\\\\?)\"\nkeys = [\"Enter\"]\n",
    );
    let started = Instant::now();
    let mut running = run_claude(&world);
    assert!(
        running.wait_line("\"to\":\"waiting\"", Duration::from_secs(30)),
        "{:?}\n{:?}",
        running.stdout,
        running.stderr
    );
    let waiting = running.stdout.last().cloned().unwrap_or_default();
    assert!(waiting.contains(QUESTION), "{waiting}");
    let status = running.finish(Duration::from_secs(60));
    assert_eq!(
        status.code(),
        Some(0),
        "{:?}\n{:?}",
        running.stdout,
        running.stderr
    );
    let log = std::fs::read_to_string(claude_log(&world)).unwrap_or_default();
    assert!(log.contains("answered"), "{log}");
    let all = running.stdout.join("\n");
    assert!(all.contains("\"to\":\"completed\""), "{all}");
    eprintln!("answered and completed in {:?}", started.elapsed());
}
