//! The original scripts' cut-over verification, reproduced config-only over
//! TLS with passwords and the least-privilege ACL, using env vars alone.

mod common;

use common::*;
use std::time::Duration;

const WORKER_PW: &str = "worker-secret-7f3a";
const HERMES_PW: &str = "hermes-secret-91bc";

struct Broker {
    _dir: tempfile::TempDir,
    home: std::path::PathBuf,
    pki: Pki,
    mosquitto: Mosquitto,
}

fn tls_acl_broker() -> Broker {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::create(dir.path());
    let passwd = password_file(
        dir.path(),
        &[("claude-worker", WORKER_PW), ("hermes", HERMES_PW)],
    );
    let acl = dir.path().join("acl");
    std::fs::write(&acl, ACL).expect("acl");
    let body = format!(
        "{}allow_anonymous false\npassword_file {}\nacl_file {}\n",
        pki.listener_tls(),
        passwd.display(),
        acl.display()
    );
    let mosquitto = Mosquitto::start(dir.path(), &body);
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    Broker {
        home,
        pki,
        mosquitto,
        _dir: dir,
    }
}

impl Broker {
    fn env(&self, user: &str, password: &str) -> Vec<(String, String)> {
        vec![
            ("MQTT_BROKER".into(), "localhost".into()),
            ("MQTT_PORT".into(), self.mosquitto.port.to_string()),
            ("MQTT_TLS".into(), "1".into()),
            ("MQTT_CA_CERTS".into(), self.pki.ca.display().to_string()),
            ("MQTT_USERNAME".into(), user.into()),
            ("MQTT_PASSWORD".into(), password.into()),
        ]
    }

    fn td(&self, env: &[(String, String)]) -> std::process::Command {
        let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        td(&self.home, &vars)
    }
}

#[test]
fn register_watch_publish_over_tls_with_acl_using_only_env_vars() {
    let broker = tls_acl_broker();
    let worker = broker.env("claude-worker", WORKER_PW);
    let hermes = broker.env("hermes", HERMES_PW);

    // registry.py register --prompt ...
    let out = run(broker
        .td(&worker)
        .args(["register", "--prompt", "Fix the flaky test"]));
    assert!(out.status.success(), "register: {}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_owned();
    assert!(id.starts_with("fix-the-flaky-test-"), "{id}");

    // job_subscriber.py --job JID --timeout 30, as hermes
    let mut watch =
        Lines::spawn(
            broker
                .td(&hermes)
                .args(["watch", "--job", &id, "--timeout", "30"]),
        );
    assert!(
        watch.wait_line("watching", Duration::from_secs(10)),
        "watch did not subscribe: {:?}",
        watch.stderr
    );

    // mosquitto_sub as hermes sees the same events.
    let topic = format!("python/mqtt/jobs/{id}/events");
    let mut sub = Lines::spawn(
        // stdbuf: mosquitto_sub block-buffers its output into a pipe.
        std::process::Command::new("stdbuf")
            .args([
                "-oL",
                "mosquitto_sub",
                "-h",
                "localhost",
                "-p",
                &broker.mosquitto.port.to_string(),
            ])
            .args(["--cafile", &broker.pki.ca.display().to_string()])
            .args([
                "-u", "hermes", "-P", HERMES_PW, "-t", &topic, "-q", "1", "-C", "2", "-W", "30",
                "-d",
            ]),
    );
    assert!(
        sub.wait_line("SUBACK", Duration::from_secs(10)),
        "mosquitto_sub: {:?}",
        sub.stdout
    );

    // publish_event.py --job JID --event started|completed, from the record alone.
    for event in ["started", "completed"] {
        let out = run(td(&broker.home, &[]).args(["publish", "--job", &id, "--event", event]));
        assert!(
            out.status.success(),
            "publish {event}: {}",
            text(&out.stderr)
        );
    }

    let status = watch.finish(Duration::from_secs(15));
    assert_eq!(
        status.code(),
        Some(0),
        "watch: {:?} {:?}",
        watch.stdout,
        watch.stderr
    );
    let printed = watch.stdout.join("\n");
    assert!(
        printed.contains("started") && printed.contains("completed"),
        "{printed}"
    );
    assert!(
        !printed.contains("[unsigned]"),
        "our own events are signed: {printed}"
    );

    assert_eq!(sub.finish(Duration::from_secs(15)).code(), Some(0));
    let seen: Vec<&String> = sub.stdout.iter().filter(|l| l.starts_with('{')).collect();
    assert_eq!(seen.len(), 2, "{:?}", sub.stdout);
    assert!(
        seen[0].contains("\"event\":\"started\"") && seen[1].contains("\"event\":\"completed\"")
    );

    // The observer credential has no write access: refused, exit 4, clear message.
    let out = run(broker
        .td(&hermes)
        .args(["publish", "--job", &id, "--event", "completed"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("`hermes`") && err.contains(&topic) && err.contains("0x87"),
        "{err}"
    );
    assert!(
        !err.contains(HERMES_PW) && !err.contains(WORKER_PW),
        "secret in message: {err}"
    );

    // A watch started after `completed` still gets it (retained).
    let out = run(broker
        .td(&hermes)
        .args(["watch", "--job", &id, "--timeout", "10", "--json"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let line: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().next().expect("one line")).expect("json");
    assert_eq!(line["event"], "completed");
    assert_eq!(line["retained"], true);
    assert_eq!(line["signature"], "valid");

    // status shows what watch recorded for the registered job.
    let out = run(td(&broker.home, &[]).args(["status", "--json"]));
    let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    assert_eq!(jobs[0]["id"], id.as_str());
    assert_eq!(jobs[0]["state"], "completed");
    assert_eq!(jobs[0]["last_event"]["event"], "completed");
}

#[test]
fn wrong_password_fails_fast_with_exit_3() {
    let broker = tls_acl_broker();
    let env = broker.env("hermes", "not-the-password");
    let start = std::time::Instant::now();
    let out = run(broker.td(&env).args(["watch", "--all", "--timeout", "5"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("refused user `hermes`"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn wrong_ca_fails_with_a_tls_verification_message() {
    let broker = tls_acl_broker();
    let mut env = broker.env("hermes", HERMES_PW);
    env[3].1 = broker.pki.other_ca.display().to_string();
    let out = run(broker.td(&env).args(["watch", "--all", "--timeout", "5"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("TLS verification failed") && err.contains("not signed by the CA"),
        "{err}"
    );
}
