//! `status --json` shows a local job and a fleet job in one shape (SPEC
//! section 5): the same keys, each with the same JSON type where both know
//! the value, plus `runner` and `pool` for the fleet; RFC 3339 times.
//! A real Mosquitto and the real binary: `register` makes the local job,
//! `submit` (with no runner in the pool) the fleet job.

mod common;

use common::{run, td, text, Mosquitto};
use serde_json::Value;
use std::collections::BTreeMap;

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn rows(home: &std::path::Path, args: &[&str]) -> Vec<Value> {
    let out = run(td(home, &[]).args(["status", "--json"]).args(args));
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("status --json is a JSON array")
}

#[test]
fn a_local_row_and_a_fleet_row_have_the_same_keys_and_types() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Mosquitto::start(dir.path(), "allow_anonymous true");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    std::fs::write(
        home.join("tmux-delegate.toml"),
        format!(
            "[broker]\nhost = \"127.0.0.1\"\nport = {}\n\n[fleet]\npool = \"rows\"\n",
            broker.port
        ),
    )
    .expect("config");
    let local = run(td(&home, &[]).args(["register", "--prompt", "here", "--agent", "shell"]));
    assert!(local.status.success(), "{}", text(&local.stderr));
    let fleet = run(td(&home, &[]).args(["submit", "--prompt", "there", "--agent", "shell"]));
    assert!(fleet.status.success(), "{}", text(&fleet.stderr));

    let local = rows(&home, &[]).pop().expect("the registered job");
    let fleet = rows(&home, &["--fleet"]).pop().expect("the submitted job");
    let keys = |row: &Value| -> BTreeMap<String, &'static str> {
        row.as_object()
            .expect("a row is an object")
            .iter()
            .map(|(k, v)| (k.clone(), kind(v)))
            .collect()
    };
    let (local_keys, fleet_keys) = (keys(&local), keys(&fleet));
    let mut expected: Vec<&String> = local_keys.keys().collect();
    expected.extend([&"pool".to_owned(), &"runner".to_owned()].map(|k| {
        fleet_keys
            .get_key_value(k)
            .expect("fleet rows add runner and pool")
            .0
    }));
    expected.sort();
    assert_eq!(
        fleet_keys.keys().collect::<Vec<_>>(),
        expected,
        "{local}\n{fleet}"
    );
    for (key, local_kind) in &local_keys {
        let fleet_kind = fleet_keys[key];
        // A job no runner has held yet does not know its max_attempts.
        if *local_kind != "null" && fleet_kind != "null" {
            assert_eq!(fleet_kind, *local_kind, "`{key}`: {local}\n{fleet}");
        }
    }
    for key in ["id", "name", "agent", "state", "created", "updated"] {
        assert_eq!(fleet_keys[key], "string", "`{key}`: {fleet}");
    }
    for row in [&local, &fleet] {
        for key in ["created", "updated"] {
            let time = row[key].as_str().unwrap_or_default();
            assert!(
                humantime::parse_rfc3339(time).is_ok(),
                "`{key}` is not RFC 3339: {row}"
            );
        }
    }
    assert_eq!(local["state"], "pending");
    assert_eq!(fleet["state"], "submitted");
    assert!(fleet["runner"].is_null(), "{fleet}");
}
