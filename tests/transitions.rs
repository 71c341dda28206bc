//! A transition written where no supervisor runs is written like the
//! supervisor's (`Record::apply_transition`): `kill` of an orphaned job
//! ends its attempt in the record, with `ended` and `outcome`, and logs the
//! transition. The real binary on a private registry; the job's agent and
//! window are already gone, so nothing needs tmux or a broker.

mod common;

use common::*;
use serde_json::Value;

#[test]
fn kill_of_an_orphaned_job_ends_its_attempt_in_the_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    let out = run(td(home, &[]).args(["register", "--prompt", "x"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_owned();
    // What a supervisor that died mid-attempt leaves: a running job at
    // attempt 2 with no owner (its agent group and window already gone).
    let path = home.join("state/jobs").join(&id).join("record.json");
    let mut record: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("record")).expect("json");
    record["supervised"] = true.into();
    record["state"] = "running".into();
    record["attempt"] = 2.into();
    record["attempts"] = serde_json::json!([
        { "number": 1, "ended": "earlier", "outcome": "failed" },
        { "number": 2, "started": "2026-01-01T00:00:00Z" },
    ]);
    std::fs::write(&path, record.to_string()).expect("record");

    let out = run(td(home, &[]).args(["kill", &id]));
    assert!(out.status.success(), "{}", text(&out.stderr));

    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("record")).expect("json");
    assert_eq!(record["state"], "cancelled", "{record}");
    let second = &record["attempts"][1];
    assert_eq!(second["number"], 2, "{record}");
    assert_eq!(second["outcome"], "cancelled", "{record}");
    assert!(
        second["ended"]
            .as_str()
            .is_some_and(|t| t.starts_with("20")),
        "{record}"
    );
    assert_eq!(record["attempts"][0]["ended"], "earlier", "{record}");
    let history = std::fs::read_to_string(home.join("state/jobs").join(&id).join("events.jsonl"))
        .expect("history");
    assert!(
        history.contains("\"from\":\"running\"") && history.contains("\"to\":\"cancelled\""),
        "{history}"
    );
}
