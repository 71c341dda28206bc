//! `tmux-delegate mcp` (SPEC section 15) spoken to as an MCP client does:
//! the real binary on stdio pipes, newline-delimited JSON-RPC, the
//! handshake, `tools/list` with documented input schemas, every tool's
//! call. Fake agents are scripts reporting like Claude Code's hooks; a
//! real Mosquitto, tmux on a private socket. Nothing but the protocol may
//! appear on the server's stdout.

mod common;

use common::fleet::Fleet;
use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long one request may take at most (a `run` waits for its detached
/// supervisor to report, a `kill` for the window to close).
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// An MCP client of one `tmux-delegate mcp` process.
struct Client {
    stdin: ChildStdin,
    messages: mpsc::Receiver<Value>,
    /// Lines on stdout that are not JSON-RPC messages.
    garbage: mpsc::Receiver<String>,
    /// Notifications received so far, in order.
    notifications: Vec<Value>,
    next_id: u64,
    /// The text of every tool result so far.
    said: String,
    _server: Guard,
}

impl Client {
    /// `tmux-delegate mcp` as `command` (the binary in a test's home)
    /// starts it, after the handshake.
    fn start(command: &mut std::process::Command) -> Client {
        let mut child = command
            .arg("mcp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tmux-delegate mcp");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, messages) = mpsc::channel();
        let (bad, garbage) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match serde_json::from_str::<Value>(&line) {
                    Ok(message) if message["jsonrpc"] == "2.0" => {
                        let _ = tx.send(message);
                    }
                    _ => {
                        let _ = bad.send(line);
                    }
                }
            }
        });
        let mut client = Client {
            stdin,
            messages,
            garbage,
            notifications: Vec::new(),
            next_id: 1,
            said: String::new(),
            _server: Guard(Some(child)),
        };
        let init = client.request(
            "initialize",
            json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "tests/mcp.rs", "version": "1"}
            }),
        );
        assert_eq!(
            init["result"]["serverInfo"]["name"], "tmux-delegate",
            "{init}"
        );
        assert!(
            init["result"]["capabilities"]["tools"].is_object(),
            "{init}"
        );
        client.notify("notifications/initialized", json!({}));
        client
    }

    fn send_line(&mut self, message: &Value) {
        writeln!(self.stdin, "{message}").expect("write to the server");
        self.stdin.flush().expect("flush");
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send_line(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Sends a request and returns its response; notifications that come
    /// before it are kept.
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send_line(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let deadline = Instant::now() + ANSWER_WITHIN;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self
                .messages
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to {method} within {ANSWER_WITHIN:?}"));
            if message["id"] == id {
                assert!(
                    self.garbage.try_recv().is_err(),
                    "the server printed something that is not the protocol on stdout"
                );
                return message;
            }
            if message.get("id").is_none() {
                self.notifications.push(message);
            }
        }
    }

    /// `tools/call`: whether it is a tool error, and its text.
    fn call(&mut self, tool: &str, arguments: Value) -> (bool, String) {
        self.call_with(json!({"name": tool, "arguments": arguments}))
    }

    fn call_with(&mut self, params: Value) -> (bool, String) {
        let response = self.request("tools/call", params);
        let result = &response["result"];
        assert!(result.is_object(), "not a tool result: {response}");
        let text = result["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("no text content: {response}"))
            .to_owned();
        self.said.push_str(&text);
        (result["isError"] == true, text)
    }

    /// A call that must succeed: its JSON result.
    fn ok(&mut self, tool: &str, arguments: Value) -> Value {
        let (error, text) = self.call(tool, arguments);
        assert!(!error, "{tool} failed: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{tool}: {e}: {text}"))
    }

    /// A call that must be a tool error: its text.
    fn refused(&mut self, tool: &str, arguments: Value) -> String {
        let (error, text) = self.call(tool, arguments);
        assert!(error, "{tool} should have been a tool error: {text}");
        text
    }
}

/// Every tool is listed with an input schema whose fields each say what
/// they are, the required ones marked; wrong calls are tool errors in the
/// CLI's words, and the server goes on serving after each.
#[test]
fn the_server_lists_documented_tools_and_answers_mistakes_with_tool_errors() {
    let world = World::mosquitto("");
    let mut client = Client::start(&mut world.td());
    let listed = client.request("tools/list", json!({}));
    let tools = listed["result"]["tools"].as_array().expect("tools");
    let mut names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["diff", "kill", "logs", "run", "send", "status", "wait"]
    );
    let required = |name: &str| -> Vec<String> {
        let tool = tools.iter().find(|t| t["name"] == name).expect("listed");
        let schema = &tool["inputSchema"];
        assert_eq!(schema["type"], "object", "{tool}");
        assert!(
            tool["description"].as_str().is_some_and(|d| d.len() > 20),
            "{tool}"
        );
        for (field, property) in schema["properties"].as_object().expect("properties") {
            assert!(
                property["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{name}.{field} has no description: {property}"
            );
        }
        let mut required: Vec<String> = schema["required"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|f| f.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        required.sort();
        required
    };
    assert_eq!(required("run"), ["prompt"]);
    assert_eq!(required("wait"), ["ids"]);
    assert_eq!(required("status"), Vec::<String>::new());
    for tool in ["send", "kill", "logs", "diff"] {
        assert_eq!(required(tool), ["id"], "{tool}");
    }
    let run_fields = tools.iter().find(|t| t["name"] == "run").expect("run")["inputSchema"]
        ["properties"]
        .as_object()
        .expect("run's fields")
        .keys()
        .cloned()
        .collect::<Vec<_>>();
    for field in [
        "prompt", "agent", "name", "workdir", "worktree", "after", "pool",
    ] {
        assert!(run_fields.iter().any(|f| f == field), "{run_fields:?}");
    }

    let unknown_agent = client.refused("run", json!({"prompt": "fix it", "agent": "nosuch"}));
    assert!(
        unknown_agent.starts_with("error:") && unknown_agent.contains("nosuch"),
        "{unknown_agent}"
    );
    let no_job = client.refused("status", json!({"id": "nosuch-job-1"}));
    assert!(
        no_job.contains("nosuch-job-1") && no_job.contains("help:"),
        "{no_job}"
    );
    let bad_id = client.refused("kill", json!({"id": "../../etc"}));
    assert!(bad_id.contains("invalid job id"), "{bad_id}");
    let too_long = client.refused("wait", json!({"ids": ["x-1"], "timeout_s": 4000}));
    assert!(too_long.contains("0 to 3600 seconds"), "{too_long}");
    let neither = client.refused("send", json!({"id": "x-1"}));
    assert!(neither.contains("`text` or `keys`"), "{neither}");
    let nowhere = client.refused(
        "run",
        json!({"prompt": "p", "workdir": world.scratch("missing").display().to_string()}),
    );
    assert!(nowhere.contains("is not a directory"), "{nowhere}");
    let no_fleet = client.refused("run", json!({"prompt": "p", "pool": "gpu"}));
    assert!(no_fleet.contains("no [fleet]"), "{no_fleet}");
    // A field that is not in the schema is refused, not ignored.
    let response = client.request(
        "tools/call",
        json!({"name": "status", "arguments": {"job": "x"}}),
    );
    let refused = response["error"].is_object() || response["result"]["isError"] == true;
    assert!(refused, "{response}");
    // Nothing was registered, and the server still answers.
    assert_eq!(world.registered(), 0);
    assert_eq!(client.ok("status", json!({})), json!([]));
}

/// Publishes like Claude Code's hooks: on its first attempt it waits at
/// its prompt for an answer and completes with what it heard as its
/// `result`; a follow-up attempt (a new conversation: the task, then the
/// follow-up's text) completes with the prompt's last line.
const ASKS: &str = r#"
"$TMUX_DELEGATE_BIN" publish --event started
if [ "$DELEGATE_ATTEMPT" = 1 ]; then
  "$TMUX_DELEGATE_BIN" publish --event waiting --message 'Which file next?'
  IFS= read -r answer
  printf '{"last_assistant_message":"read %s"}' "$answer" |
    "$TMUX_DELEGATE_BIN" publish --event completed --data-field last_assistant_message
else
  last=$(printf '%s\n' "$2" | tail -n 1)
  printf '{"last_assistant_message":"followed up: %s"}' "$last" |
    "$TMUX_DELEGATE_BIN" publish --event completed --data-field last_assistant_message
fi
exec sleep 30
"#;

/// run -> wait (short timeout, with progress) -> send -> wait -> the
/// agent's `result`; a follow-up; kill -> cancelled; status, logs, diff.
#[test]
fn an_orchestrator_runs_waits_answers_and_stops_jobs_through_the_server() {
    let world = World::mosquitto("");
    let asks = script(&world.scratch("asks.sh"), ASKS);
    let sleeper = script(
        &world.scratch("sleeper.sh"),
        "\"$TMUX_DELEGATE_BIN\" publish --event started\nexec sleep 120",
    );
    world.write_config(&format!(
        "[broker]\nhost = \"127.0.0.1\"\nport = {}\n\n\
         [defaults]\npass_env = [\"MY_API_KEY\"]\n\n\
         [agents.asks]\ncommand = [\"{a}\", \"--\", \"{{prompt}}\"]\ncomplete_on_exit = false\n\n\
         [agents.sleeper]\ncommand = [\"{s}\", \"{{prompt}}\"]\ncomplete_on_exit = false\n",
        world.port(),
        a = asks.display(),
        s = sleeper.display()
    ));
    // What the jobs inherit holds secrets: no tool result may show them.
    const SECRET: &str = "mcp-Secret-93a1";
    let mut client =
        Client::start(&mut world.td_with(&[("MQTT_PASSWORD", SECRET), ("MY_API_KEY", SECRET)]));
    let long = client.ok(
        "run",
        json!({"prompt": "sleep on it", "agent": "sleeper", "name": "long"}),
    );
    let long_id = long["id"].as_str().expect("id").to_owned();
    assert_eq!(long["name"], "long", "{long}");
    assert!(long["state"].is_string(), "{long}");
    let asked = client.ok(
        "run",
        json!({"prompt": "-z read the next file", "agent": "asks", "name": "asker"}),
    );
    let asker = asked["id"].as_str().expect("id").to_owned();

    // A short wait on a job that keeps running: back within its timeout,
    // with the job's current state, and progress notified on the way.
    let started = Instant::now();
    let (error, text) = client.call_with(json!({
        "name": "wait",
        "arguments": {"ids": [long_id], "timeout_s": 1.5},
        "_meta": {"progressToken": "wait-1"}
    }));
    let waited = started.elapsed();
    assert!(!error, "{text}");
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_millis(3000),
        "{waited:?}"
    );
    let rows: Value = serde_json::from_str(&text).expect("rows");
    assert_eq!(rows[0]["id"], long_id.as_str(), "{rows}");
    let state = rows[0]["state"].as_str().expect("state");
    assert!(
        ["pending", "queued", "launching", "running"].contains(&state),
        "{rows}"
    );
    let progress: Vec<&Value> = client
        .notifications
        .iter()
        .filter(|n| n["method"] == "notifications/progress")
        .collect();
    assert!(!progress.is_empty(), "{:?}", client.notifications);
    assert!(
        progress
            .iter()
            .all(|n| n["params"]["progressToken"] == "wait-1"),
        "{progress:?}"
    );
    assert!(
        progress[0]["params"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("0 of 1 finished: long")),
        "{progress:?}"
    );

    // The asker waits at its prompt; text goes to it, keys do not.
    let rows = client.ok(
        "wait",
        json!({"ids": [asker], "timeout_s": 30, "return_when_waiting": true}),
    );
    assert_eq!(rows[0]["state"], "waiting", "{rows}");
    assert_eq!(rows[0]["reason"], "Which file next?", "{rows}");
    let keys = client.refused("send", json!({"id": asker, "keys": ["Enter"]}));
    assert!(keys.contains("no dialog"), "{keys}");
    let sent = client.ok("send", json!({"id": asker, "text": "src/lib.rs"}));
    assert_eq!(sent["attempt"], 1, "{sent}");
    let rows = client.ok("wait", json!({"ids": [asker], "timeout_s": 30}));
    assert_eq!(rows[0]["state"], "completed", "{rows}");
    assert_eq!(rows[0]["result"], "read src/lib.rs", "{rows}");
    assert_eq!(world.record(&asker)["state"], "completed");

    // A follow-up: a new attempt under its own detached supervisor.
    let followed = client.ok("send", json!({"id": "asker", "text": "now the tests"}));
    assert_eq!(followed["attempt"], 2, "{followed}");
    let rows = client.ok("wait", json!({"ids": [asker], "timeout_s": 30}));
    assert_eq!(
        (&rows[0]["state"], &rows[0]["attempt"], &rows[0]["result"]),
        (
            &json!("completed"),
            &json!(2),
            &json!("followed up: now the tests")
        ),
        "{rows}"
    );

    // A job `after` the long one is held until it ends; cancelled, it
    // skips its dependent.
    let then = client.ok(
        "run",
        json!({"prompt": "then", "agent": "sleeper", "name": "then", "after": ["long"]}),
    );
    let then_row = client.ok("status", json!({"id": then["id"]}));
    assert_eq!(then_row["state"], "queued", "{then_row}");
    let killed = client.ok("kill", json!({"id": long_id}));
    assert_eq!(killed["state"], "cancelled", "{killed}");
    assert_eq!(world.record(&long_id)["state"], "cancelled");
    let rows = client.ok("wait", json!({"ids": [long_id, asker], "timeout_s": 5}));
    let states: Vec<&Value> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| &r["state"])
        .collect();
    assert_eq!(states, [&json!("cancelled"), &json!("completed")], "{rows}");

    let rows = client.ok("wait", json!({"ids": [then["id"]], "timeout_s": 10}));
    assert_eq!(rows[0]["state"], "skipped", "{rows}");
    assert!(
        rows[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("long")),
        "{rows}"
    );
    let all = client.ok("status", json!({}));
    assert_eq!(all.as_array().map(Vec::len), Some(3), "{all}");
    let one = client.ok("status", json!({"id": "asker"}));
    assert_eq!(one["id"], asker.as_str(), "{one}");
    let logs = client.ok("logs", json!({"id": asker, "lines": 3}));
    let history = logs["history"].as_array().expect("history");
    assert_eq!(history.len(), 3, "{logs}");
    assert_eq!(logs["state"], "completed", "{logs}");
    let no_worktree = client.refused("diff", json!({"id": asker}));
    assert!(no_worktree.contains("worktree"), "{no_worktree}");
    assert!(!client.said.contains(SECRET), "{}", client.said);
    assert!(!world
        .tmux
        .output(&["show-environment", "-g"])
        .contains(SECRET));
}

/// On a submitting host of a fleet (`[fleet]`, no tmux of its own needed):
/// `run` with a `pool` submits, `wait` and `status` read the fleet's
/// retained states, `logs` the runner's log, `kill` asks the runner.
#[test]
fn on_a_fleet_host_run_submits_and_wait_reads_the_fleet_states() {
    let mut fleet = Fleet::new(1);
    fleet.hosts[0].start(2);
    let mut client = Client::start(&mut td(&fleet.submitter, &[]));
    let quick = client.ok(
        "run",
        json!({"prompt": "1", "agent": "fake", "name": "remote", "pool": "default"}),
    );
    assert_eq!(
        (&quick["state"], &quick["pool"]),
        (&json!("submitted"), &json!("default")),
        "{quick}"
    );
    let quick_id = quick["id"].as_str().expect("id").to_owned();
    let slow = client.ok(
        "run",
        json!({"prompt": "60", "agent": "fake", "name": "slow", "pool": "default"}),
    );
    let slow_id = slow["id"].as_str().expect("id").to_owned();
    let rows = client.ok("wait", json!({"ids": [quick_id], "timeout_s": 60}));
    assert_eq!(
        (&rows[0]["state"], &rows[0]["runner"], &rows[0]["pool"]),
        (&json!("completed"), &json!("r0"), &json!("default")),
        "{rows}"
    );
    let started = Instant::now();
    let rows = client.ok("wait", json!({"ids": [slow_id, quick_id], "timeout_s": 2}));
    assert!(started.elapsed() < Duration::from_secs(4), "{rows}");
    assert_ne!(rows[0]["state"], "completed", "{rows}");
    assert_eq!(rows[1]["state"], "completed", "{rows}");
    let row = client.ok("status", json!({"id": quick_id}));
    assert_eq!(row["runner"], "r0", "{row}");
    let logs = client.ok("logs", json!({"id": quick_id}));
    assert_eq!(logs["runner"], "r0", "{logs}");
    assert!(
        logs["history"].as_array().is_some_and(|h| !h.is_empty()),
        "{logs}"
    );
    let killed = client.ok("kill", json!({"id": slow_id}));
    assert_eq!(killed["state"], "cancelled", "{killed}");
    let unknown = client.refused("status", json!({"id": "never-submitted-1"}));
    assert!(unknown.contains("no job never-submitted-1"), "{unknown}");
}

/// `init --mcp` prints what registers the server with each client;
/// `--write` writes each file that is not there yet, and changes none
/// that is (exit 2, with the lines to add).
#[test]
fn init_mcp_prints_and_writes_the_clients_registrations_without_overwriting() {
    let world = World::embedded("");
    let (code, out, err) = world.finish(&["init", "--mcp"], Duration::from_secs(10));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&format!("claude mcp add delegate -- {BIN} mcp")),
        "{out}"
    );
    assert!(out.contains("codex mcp add delegate --"), "{out}");
    assert!(out.contains("gemini mcp add delegate"), "{out}");
    assert!(!world.path(".mcp.json").exists(), "printing writes nothing");

    let gemini = world.path(".gemini/settings.json");
    std::fs::create_dir_all(gemini.parent().expect("dir")).expect("dir");
    std::fs::write(&gemini, "{\"theme\": \"mine\"}\n").expect("settings");
    let (code, out, err) = world.finish(&["init", "--mcp", "--write"], Duration::from_secs(10));
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(
        err.contains("not changed") && err.contains("settings.json"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&gemini).expect("settings"),
        "{\"theme\": \"mine\"}\n"
    );
    let claude: Value =
        serde_json::from_str(&std::fs::read_to_string(world.path(".mcp.json")).expect("written"))
            .expect("json");
    assert_eq!(
        claude["mcpServers"]["delegate"],
        json!({"type": "stdio", "command": BIN, "args": ["mcp"]})
    );
    let codex = std::fs::read_to_string(world.path(".codex/config.toml")).expect("written");
    assert!(codex.starts_with("[mcp_servers.delegate]\n"), "{codex}");
    let (code, _, err) = world.finish(&["init", "--mcp", "--write"], Duration::from_secs(10));
    assert_eq!(code, Some(2), "{err}");
}

/// `run` with a `workdir` (a repository under the project) and
/// `worktree: true`: the job gets its own worktree and branch, and `diff`
/// returns its changes as text (`stat` too).
#[test]
fn a_worktree_job_run_through_the_server_has_its_diff() {
    let world = World::mosquitto("");
    let repo = world.path("repo");
    std::fs::create_dir_all(&repo).expect("repo");
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["config", "user.email", "dev@example.com"]);
    git(&["config", "user.name", "Dev"]);
    std::fs::write(repo.join("notes.txt"), "original\n").expect("write");
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "initial"]);
    let editor = script(
        &world.scratch("editor.sh"),
        "printf 'edited by the agent\\n' > notes.txt\n\"$TMUX_DELEGATE_BIN\" publish --event completed",
    );
    world.write_config(&format!(
        "[broker]\nhost = \"127.0.0.1\"\nport = {}\n\n\
         [agents.editor]\ncommand = [\"{}\", \"{{prompt}}\"]\ncomplete_on_exit = true\n",
        world.port(),
        editor.display()
    ));
    let mut client = Client::start(&mut world.td());
    let job = client.ok(
        "run",
        json!({"prompt": "edit the notes", "agent": "editor", "name": "edits",
               "workdir": "repo", "worktree": true}),
    );
    let rows = client.ok("wait", json!({"ids": [job["id"]], "timeout_s": 30}));
    assert_eq!(rows[0]["state"], "completed", "{rows}");
    assert_eq!(rows[0]["workspace"]["changed"], 1, "{rows}");
    let diff = client.ok("diff", json!({"id": "edits"}));
    let patch = diff["diff"].as_str().expect("diff text");
    assert!(
        patch.contains("-original") && patch.contains("+edited by the agent"),
        "{diff}"
    );
    assert_eq!(diff["truncated"], false, "{diff}");
    let stat = client.ok("diff", json!({"id": "edits", "stat": true}));
    assert!(
        stat["diff"]
            .as_str()
            .is_some_and(|s| s.contains("notes.txt") && s.contains("1 file changed")),
        "{stat}"
    );
    // The main checkout is as it was.
    assert_eq!(
        std::fs::read_to_string(repo.join("notes.txt")).expect("notes"),
        "original\n"
    );
}
