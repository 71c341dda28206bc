//! Interop both ways with the Mosquitto command-line clients (and so with the
//! original Python scripts, which send the same shapes).

mod common;

use common::*;
use std::time::Duration;

fn plain_broker(dir: &std::path::Path) -> Mosquitto {
    Mosquitto::start(dir, "allow_anonymous true\n")
}

fn env_for(broker: &Mosquitto) -> [(&'static str, String); 2] {
    [
        ("MQTT_BROKER", "127.0.0.1".into()),
        ("MQTT_PORT", broker.port.to_string()),
    ]
}

fn watch(home: &std::path::Path, broker: &Mosquitto, job: &str) -> Lines {
    let env = env_for(broker);
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut lines = Lines::spawn(td(home, &vars).args(["watch", "--job", job, "--timeout", "20"]));
    assert!(
        lines.wait_line("watching", Duration::from_secs(10)),
        "{:?}",
        lines.stderr
    );
    lines
}

fn mosquitto_pub(broker: &Mosquitto, job: &str, payload: &str) {
    let status = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-q", "1"])
        .args([
            "-t",
            &format!("python/mqtt/jobs/{job}/events"),
            "-m",
            payload,
        ])
        .status()
        .expect("mosquitto_pub");
    assert!(status.success());
}

#[test]
fn bare_word_completed_ends_watch_with_0_and_json_error_with_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = plain_broker(dir.path());

    let mut done = watch(dir.path(), &broker, "job-a");
    mosquitto_pub(&broker, "job-a", "completed");
    assert_eq!(
        done.finish(Duration::from_secs(10)).code(),
        Some(0),
        "{:?}",
        done.stderr
    );
    assert!(done
        .stdout
        .iter()
        .any(|l| l.contains("job-a") && l.contains("completed")));

    let mut failed = watch(dir.path(), &broker, "job-b");
    mosquitto_pub(
        &broker,
        "job-b",
        r#"{"event":"error","message":"tests failed"}"#,
    );
    assert_eq!(
        failed.finish(Duration::from_secs(10)).code(),
        Some(1),
        "{:?}",
        failed.stderr
    );
    assert!(failed
        .stdout
        .iter()
        .any(|l| l.contains("error") && l.contains("tests failed")));
}

#[test]
fn malformed_and_oversized_payloads_are_ignored_not_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = plain_broker(dir.path());
    let mut lines = watch(dir.path(), &broker, "job-c");
    mosquitto_pub(&broker, "job-c", "{not json");
    mosquitto_pub(&broker, "job-c", &"x".repeat(70 * 1024));
    mosquitto_pub(&broker, "job-c", "completed");
    assert_eq!(
        lines.finish(Duration::from_secs(10)).code(),
        Some(0),
        "{:?}",
        lines.stderr
    );
    let log = lines.stderr.join("\n");
    assert!(log.contains("malformed payload"), "{log}");
    assert!(log.contains("over the 65536-byte limit"), "{log}");
}

#[test]
fn mosquitto_sub_decodes_what_publish_sends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = plain_broker(dir.path());
    let mut sub = Lines::spawn(
        std::process::Command::new("stdbuf")
            .args([
                "-oL",
                "mosquitto_sub",
                "-h",
                "127.0.0.1",
                "-p",
                &broker.port.to_string(),
            ])
            .args([
                "-t",
                "python/mqtt/jobs/+/events",
                "-C",
                "1",
                "-W",
                "20",
                "-d",
            ]),
    );
    assert!(sub.wait_line("SUBACK", Duration::from_secs(10)));
    let env = env_for(&broker);
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = run(td(dir.path(), &vars).args([
        "publish",
        "--job",
        "job-d",
        "--event",
        "progress",
        "--message",
        "half way",
        "--data",
        r#"{"pct":50}"#,
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(sub.finish(Duration::from_secs(10)).code(), Some(0));
    let payload = sub
        .stdout
        .iter()
        .find(|l| l.starts_with('{'))
        .expect("a payload line");
    let json: serde_json::Value = serde_json::from_str(payload).expect("JSON payload");
    assert_eq!(json["job"], "job-d");
    assert_eq!(json["event"], "progress");
    assert_eq!(json["attempt"], 1);
    assert!(json["ts"].as_f64().expect("ts is a float") > 1.7e9);
    assert_eq!(json["message"], "half way");
    assert_eq!(json["data"]["pct"], 50);
}
