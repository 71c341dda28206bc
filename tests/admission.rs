//! `watch --job ID` and `run` refuse the same forged events (one admission
//! rule, `src/model/admission.rs`): for a job at attempt 2, a correctly
//! signed `completed` without `attempt`, a `completed` with a bad
//! signature, and a signed `completed` of attempt 99 neither end `watch`
//! nor move the record, and `run`'s supervisor records and ignores them;
//! the original scripts' unsigned bare words still act where the policy
//! allows them. Real Mosquitto, real tmux on a private socket, the real
//! binary, small fake agents.

mod common;

use common::*;
use hmac::Mac;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SETTLE: Duration = Duration::from_secs(30);

/// Fields drop in order: the tmux server and the broker before the
/// directory that holds their sockets and files.
struct Setup {
    tmux: TmuxServer,
    broker: Mosquitto,
    home: PathBuf,
    dir: tempfile::TempDir,
}

impl Setup {
    /// A plain Mosquitto, a private tmux server and a project config that
    /// lets unsigned events act (`require_signature = false`, the original
    /// scripts' case), plus `extra`.
    fn new(extra: &str) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = Mosquitto::start(dir.path(), "allow_anonymous true\n");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).expect("home");
        let tmux = TmuxServer::new(dir.path());
        let config = format!(
            "[broker]\nhost = \"127.0.0.1\"\nport = {}\n[events]\nrequire_signature = false\n\
             {extra}\n[defaults.tmux]\nsocket = \"{}\"\nkeep_failed = false\nkill_grace = \"1s\"\n",
            broker.port, tmux.socket
        );
        std::fs::write(home.join("tmux-delegate.toml"), config).expect("project config");
        Setup {
            tmux,
            broker,
            home,
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn td(&self) -> Command {
        let tmpdir = self.tmux.tmpdir.display().to_string();
        td(&self.home, &[("TMUX_TMPDIR", tmpdir.as_str())])
    }

    fn job_dir(&self, id: &str) -> PathBuf {
        self.home.join("state/jobs").join(id)
    }

    fn record(&self, id: &str) -> Value {
        let text = std::fs::read_to_string(self.job_dir(id).join("record.json")).expect("record");
        serde_json::from_str(&text).expect("record json")
    }

    fn key(&self, id: &str) -> String {
        self.record(id)["event_key"]
            .as_str()
            .expect("key")
            .to_owned()
    }

    /// The job's history: every line of its events.jsonl.
    fn history(&self, id: &str) -> Vec<Value> {
        std::fs::read_to_string(self.job_dir(id).join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// `register --prompt x`: a job no supervisor owns; its id.
    fn register(&self) -> String {
        let out = run(self.td().args(["register", "--prompt", "x"]));
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    }

    /// `watch --job ID`, once it has subscribed.
    fn watch(&self, id: &str) -> Lines {
        let mut watch = Lines::spawn(self.td().args(["watch", "--job", id, "--timeout", "60"]));
        assert!(
            watch.wait_line("watching", Duration::from_secs(10)),
            "{:?}",
            watch.stderr
        );
        watch
    }

    /// One event, as `mosquitto_pub` (the original scripts) sends it.
    fn publish_raw(&self, id: &str, payload: &str) {
        let status = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &self.broker.port.to_string()])
            .args(["-q", "1", "-t", &format!("python/mqtt/jobs/{id}/events")])
            .args(["-m", payload])
            .status()
            .expect("mosquitto_pub");
        assert!(status.success());
    }

    /// The three forged `completed` events for a job at attempt 2.
    fn publish_forgeries(&self, id: &str) {
        let key = self.key(id);
        self.publish_raw(id, &signed(&completed(id, None), &key));
        self.publish_raw(id, &badly_signed(&completed(id, Some(2))));
        self.publish_raw(id, &signed(&completed(id, Some(99)), &key));
    }

    /// Waits until the history holds the three forgeries, and returns why
    /// each was ignored (in the order they were published).
    fn ignored_forgeries(&self, id: &str) -> Vec<String> {
        wait_for(SETTLE, || {
            let ignored: Vec<String> = self
                .history(id)
                .iter()
                .filter(|e| e["type"] == "event" && e["event"] == "completed")
                .map(|e| e["ignored"].as_str().unwrap_or("ACTED ON").to_owned())
                .collect();
            (ignored.len() >= 3).then_some(ignored)
        })
        .unwrap_or_else(|| {
            panic!(
                "the forgeries are not in the history: {:?}",
                self.history(id)
            )
        })
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// A `completed` payload naming the job, with or without an attempt.
fn completed(job: &str, attempt: Option<u32>) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("event".into(), "completed".into());
    object.insert("job".into(), job.into());
    object.insert("ts".into(), unix_now().into());
    if let Some(attempt) = attempt {
        object.insert("attempt".into(), attempt.into());
    }
    object
}

/// The payload signed with the job's key, as `publish` signs (HMAC-SHA256
/// over the compact JSON with sorted keys, docs/protocol.md).
fn signed(object: &Map<String, Value>, key_hex: &str) -> String {
    let key = hex::decode(key_hex).expect("hex key");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("key");
    mac.update(Value::Object(object.clone()).to_string().as_bytes());
    let mut object = object.clone();
    object.insert(
        "sig".into(),
        hex::encode(mac.finalize().into_bytes()).into(),
    );
    Value::Object(object).to_string()
}

/// The payload with a signature no key made.
fn badly_signed(object: &Map<String, Value>) -> String {
    let mut object = object.clone();
    object.insert("sig".into(), "00".repeat(32).into());
    Value::Object(object).to_string()
}

/// The reasons for the three forgeries, in the order published.
fn assert_refused_as_forgeries(ignored: &[String]) {
    let expected = [
        "a signed event must name its attempt",
        "bad signature",
        "from attempt 99, which has not been launched",
    ];
    assert_eq!(ignored.len(), 3, "{ignored:?}");
    for (why, expected) in ignored.iter().zip(expected) {
        assert!(why.starts_with(expected), "{why:?}, expected {expected:?}");
    }
}

/// Rewrites a registered job's record to attempt 2 (as after a retry).
fn at_attempt_2(setup: &Setup, id: &str) {
    let mut record = setup.record(id);
    record["attempt"] = 2.into();
    let path = setup.job_dir(id).join("record.json");
    std::fs::write(path, record.to_string()).expect("record");
}

#[test]
fn watch_neither_ends_on_nor_records_forged_events_but_takes_the_original_scripts_ones() {
    let setup = Setup::new("");
    let forged = setup.register();
    at_attempt_2(&setup, &forged);
    let mut watch = setup.watch(&forged);
    setup.publish_forgeries(&forged);
    // The one real end: signed by `publish`, attempt 2. Had any forged
    // `completed` ended the watch, it would have exited 0 before this.
    let out = run(setup.td().args([
        "publish",
        "--job",
        &forged,
        "--event",
        "error",
        "--attempt",
        "2",
        "--message",
        "real",
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let code = watch.finish(SETTLE).code();
    assert_eq!(code, Some(1), "{:?}\n{:?}", watch.stdout, watch.stderr);
    let printed = watch.stdout.join("\n");
    assert!(
        printed.contains("[BAD SIGNATURE]"),
        "printed, marked: {printed}"
    );
    assert_refused_as_forgeries(&setup.ignored_forgeries(&forged));
    let record = setup.record(&forged);
    assert_eq!(record["attempt"], 2, "{record}");
    assert_eq!(record["state"], "failed", "{record}");
    assert_eq!(record["last_event"]["event"], "error", "{record}");

    // The original scripts' bare word, unsigned, to a registered job whose
    // policy allows it: it ends the watch and completes the record.
    let python = setup.register();
    let mut watch = setup.watch(&python);
    setup.publish_raw(&python, "completed");
    assert_eq!(watch.finish(SETTLE).code(), Some(0), "{:?}", watch.stderr);
    assert_eq!(setup.record(&python)["state"], "completed");
    // And to a job in no registry (the original subscriber's use).
    let mut watch = setup.watch("nowhere");
    setup.publish_raw("nowhere", "completed");
    assert_eq!(watch.finish(SETTLE).code(), Some(0), "{:?}", watch.stderr);
}

/// An agent whose attempt 1 fails and whose attempt 2 waits for the gate
/// file `<dir>/gate-<prompt>`, then reports a (signed) error.
fn second_attempt_agent(dir: &Path) -> PathBuf {
    script(
        &dir.join("second.sh"),
        &format!(
            "B=\"$TMUX_DELEGATE_BIN\"\n\
             if [ \"$DELEGATE_ATTEMPT\" = 1 ]; then $B publish --event error --message first; exit 1; fi\n\
             i=0; while [ ! -e {}/gate-$1 ] && [ $i -lt 900 ]; do sleep 0.1; i=$((i+1)); done\n\
             $B publish --event error --message real; exit 1",
            dir.display()
        ),
    )
}

/// Reads `run --json` transition lines until job `name` reaches `to` at `attempt`.
fn wait_reached(lines: &mut Lines, name: &str, to: &str, attempt: u32) -> bool {
    let reached = |lines: &Lines| {
        lines
            .stdout
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|t| t["name"] == name && t["to"] == to && t["attempt"] == attempt)
    };
    let deadline = std::time::Instant::now() + SETTLE;
    while !reached(lines) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || !lines.wait_line("", left) {
            return false;
        }
    }
    true
}

#[test]
fn run_refuses_the_same_forged_events_and_takes_the_original_scripts_ones() {
    let setup = Setup::new("");
    let agent = second_attempt_agent(setup.dir.path());
    let config = std::fs::read_to_string(setup.home.join("tmux-delegate.toml")).expect("config");
    std::fs::write(
        setup.home.join("tmux-delegate.toml"),
        format!(
            "{config}\n[agents.second]\ncommand = [\"{}\", \"{{prompt}}\"]\ncomplete_on_exit = false\n\
             [defaults.retry]\nmax_attempts = 2\nbackoff = \"0s\"\n",
            agent.display()
        ),
    )
    .expect("config");
    std::fs::write(
        setup.home.join("jobs.toml"),
        "[[jobs]]\nname = \"forged\"\nagent = \"second\"\nprompt = \"forged\"\n\
         [[jobs]]\nname = \"python\"\nagent = \"second\"\nprompt = \"python\"\n",
    )
    .expect("jobs");
    let mut running = Lines::spawn(setup.td().args(["run", "--json", "jobs.toml"]));
    for name in ["forged", "python"] {
        assert!(
            wait_reached(&mut running, name, "running", 2),
            "{name}: {:?}\n{:?}",
            running.stdout,
            running.stderr
        );
    }
    let id = |name: &str| {
        running
            .stdout
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|t| t["name"] == name)
            .and_then(|t| t["job"].as_str().map(str::to_owned))
            .expect("job id")
    };
    let (forged, python) = (id("forged"), id("python"));
    // `watch` on the same supervised job sees the same forgeries.
    let mut watch = setup.watch(&forged);
    setup.publish_forgeries(&forged);
    assert_refused_as_forgeries(&setup.ignored_forgeries(&forged));
    // The original scripts' bare word, unsigned: the current attempt's.
    setup.publish_raw(&python, "completed");
    assert!(
        wait_reached(&mut running, "python", "completed", 2),
        "{:?}",
        running.stdout
    );
    assert_eq!(setup.record(&forged)["state"], "running");
    std::fs::write(setup.path("gate-forged"), "").expect("gate");
    assert_eq!(
        running.finish(SETTLE).code(),
        Some(1),
        "{:?}",
        running.stderr
    );
    let record = setup.record(&forged);
    assert_eq!(record["state"], "failed", "{record}");
    assert_eq!(record["attempt"], 2, "{record}");
    // `watch` ended on the real error, not on a forged `completed`.
    assert_eq!(watch.finish(SETTLE).code(), Some(1), "{:?}", watch.stdout);
}
