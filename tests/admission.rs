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
use std::time::Duration;

const SETTLE: Duration = Duration::from_secs(30);

/// A plain Mosquitto, a private tmux server and a project config that lets
/// unsigned events act (`require_signature = false`, the original
/// scripts' case), plus `extra`.
fn world(extra: &str) -> World {
    World::builder(Broker::Mosquitto)
        .kill_grace("1s")
        .keep_failed(false)
        .build(&events_config(extra))
}

fn events_config(extra: &str) -> String {
    format!("[events]\nrequire_signature = false\n{extra}")
}

fn key(world: &World, id: &str) -> String {
    world.record(id)["event_key"]
        .as_str()
        .expect("key")
        .to_owned()
}

/// `register --prompt x`: a job no supervisor owns; its id.
fn register(world: &World) -> String {
    let out = run(world.td().args(["register", "--prompt", "x"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

/// `watch --job ID`, once it has subscribed.
fn start_watch(world: &World, id: &str) -> Lines {
    let mut watch = Lines::spawn(world.td().args(["watch", "--job", id, "--timeout", "60"]));
    assert!(
        watch.wait_line("watching", Duration::from_secs(10)),
        "{:?}",
        watch.stderr
    );
    watch
}

/// One event, as `mosquitto_pub` (the original scripts) sends it.
fn publish_raw(world: &World, id: &str, payload: &str) {
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &world.port().to_string()])
        .args(["-q", "1", "-t", &format!("python/mqtt/jobs/{id}/events")])
        .args(["-m", payload])
        .status()
        .expect("mosquitto_pub");
    assert!(status.success());
}

/// The three forged `completed` events for a job at attempt 2.
fn publish_forgeries(world: &World, id: &str) {
    let key = key(world, id);
    publish_raw(world, id, &signed(&completed(id, None), &key));
    publish_raw(world, id, &badly_signed(&completed(id, Some(2))));
    publish_raw(world, id, &signed(&completed(id, Some(99)), &key));
}

/// Waits until the history holds the three forgeries, and returns why each
/// was ignored (in the order they were published).
fn ignored_forgeries(world: &World, id: &str) -> Vec<String> {
    wait_for(SETTLE, || {
        let ignored: Vec<String> = world
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
            world.history(id)
        )
    })
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
fn at_attempt_2(world: &World, id: &str) {
    let mut record = world.record(id);
    record["attempt"] = 2.into();
    let path = world.record_path(id);
    std::fs::write(path, record.to_string()).expect("record");
}

#[test]
fn watch_neither_ends_on_nor_records_forged_events_but_takes_the_original_scripts_ones() {
    let setup = world("");
    let forged = register(&setup);
    at_attempt_2(&setup, &forged);
    let mut watch = start_watch(&setup, &forged);
    publish_forgeries(&setup, &forged);
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
    assert_refused_as_forgeries(&ignored_forgeries(&setup, &forged));
    let record = setup.record(&forged);
    assert_eq!(record["attempt"], 2, "{record}");
    assert_eq!(record["state"], "failed", "{record}");
    assert_eq!(record["last_event"]["event"], "error", "{record}");

    // The original scripts' bare word, unsigned, to a registered job whose
    // policy allows it: it ends the watch and completes the record.
    let python = register(&setup);
    let mut watching = start_watch(&setup, &python);
    publish_raw(&setup, &python, "completed");
    assert_eq!(
        watching.finish(SETTLE).code(),
        Some(0),
        "{:?}",
        watching.stderr
    );
    assert_eq!(setup.record(&python)["state"], "completed");
    // And to a job in no registry (the original subscriber's use).
    let mut watching = start_watch(&setup, "nowhere");
    publish_raw(&setup, "nowhere", "completed");
    assert_eq!(
        watching.finish(SETTLE).code(),
        Some(0),
        "{:?}",
        watching.stderr
    );
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
    let setup = world("");
    let agent = second_attempt_agent(setup.dir.path());
    setup.write_config(&format!(
        "[broker]\nhost = \"127.0.0.1\"\nport = {}\n{}\n[agents.second]\ncommand = [\"{}\", \"{{prompt}}\"]\n\
         complete_on_exit = false\n[defaults.retry]\nmax_attempts = 2\nbackoff = \"0s\"\n",
        setup.port(),
        events_config(""),
        agent.display()
    ));
    std::fs::write(
        setup.path("jobs.toml"),
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
    let mut watch = start_watch(&setup, &forged);
    publish_forgeries(&setup, &forged);
    assert_refused_as_forgeries(&ignored_forgeries(&setup, &forged));
    // The original scripts' bare word, unsigned: the current attempt's.
    publish_raw(&setup, &python, "completed");
    assert!(
        wait_reached(&mut running, "python", "completed", 2),
        "{:?}",
        running.stdout
    );
    assert_eq!(setup.record(&forged)["state"], "running");
    std::fs::write(setup.scratch("gate-forged"), "").expect("gate");
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
