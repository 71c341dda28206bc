//! `broker setup` writes a Mosquitto bundle that a real Mosquitto runs as
//! is, and `doctor` proves the cut-over against it.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

struct Bundle {
    _dir: tempfile::TempDir,
    home: PathBuf,
    bundle: PathBuf,
    port: u16,
}

/// `broker setup` into a fresh directory, on a free loopback port.
fn setup(extra: &[&str]) -> Bundle {
    let dir = tempfile::tempdir().expect("tempdir");
    // Mosquitto started as root drops to the `mosquitto` user, which must be
    // able to walk into the bundle: the test's temp dir is 0700.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let bundle = dir.path().join("bundle");
    let port = free_port();
    let out = run(td(&home, &[])
        .args(["broker", "setup"])
        .arg(&bundle)
        .args([
            "--host",
            "localhost",
            "--add-localhost",
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .args(extra));
    assert!(out.status.success(), "setup: {}", text(&out.stderr));
    Bundle {
        _dir: dir,
        home,
        bundle,
        port,
    }
}

/// Runs Mosquitto on the bundle's own configuration, unchanged.
fn start(bundle: &Bundle) -> Guard {
    start_mosquitto_conf(&bundle.bundle.join("mosquitto/mosquitto.conf"), bundle.port)
}

fn doctor(bundle: &Bundle, vars: &[(&str, &str)]) -> std::process::Output {
    run(td(&bundle.bundle, vars)
        .env("HOME", &bundle.home)
        .arg("doctor"))
}

#[test]
fn the_generated_bundle_runs_in_mosquitto_and_doctor_passes() {
    let bundle = setup(&[]);
    let _broker = start(&bundle);
    let out = doctor(&bundle, &[]);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{report}{}", text(&out.stderr));
    assert_eq!(
        report.lines().filter(|l| l.starts_with('✓')).count(),
        5,
        "{report}"
    );
    assert!(!report.contains('✗'), "{report}");

    // mosquitto_sub with the generated observer credentials and CA works.
    let worker_pw =
        std::fs::read_to_string(bundle.bundle.join("claude-worker.pass")).expect("pass");
    let out =
        run(td(&bundle.bundle, &[]).args(["publish", "--job", "probe", "--event", "completed"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let hermes_pw = std::fs::read_to_string(bundle.bundle.join("hermes.pass")).expect("pass");
    let sub = std::process::Command::new("mosquitto_sub")
        .args(["-h", "localhost", "-p", &bundle.port.to_string()])
        .arg("--cafile")
        .arg(bundle.bundle.join("ca.crt"))
        .args([
            "-u",
            "hermes",
            "-P",
            hermes_pw.trim(),
            "-t",
            "python/mqtt/jobs/probe/events",
            "-C",
            "1",
            "-W",
            "10",
        ])
        .output()
        .expect("mosquitto_sub");
    assert!(sub.status.success(), "{}", text(&sub.stderr));
    assert!(text(&sub.stdout).contains("\"event\":\"completed\""));
    assert!(
        !report.contains(worker_pw.trim()) && !report.contains(hermes_pw.trim()),
        "a password in the report"
    );
}

#[test]
fn doctor_flags_an_open_broker_and_a_wrong_ca() {
    let bundle = setup(&[]);
    // The same listener, but anonymous access and no ACL.
    let conf = bundle.bundle.join("mosquitto/open.conf");
    let original =
        std::fs::read_to_string(bundle.bundle.join("mosquitto/mosquitto.conf")).expect("conf");
    let open: String = original
        .lines()
        .filter(|l| {
            !l.starts_with("acl_file")
                && !l.starts_with("password_file")
                && !l.starts_with("allow_anonymous")
        })
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + "allow_anonymous true\n";
    std::fs::write(&conf, open).expect("open conf");
    let _broker = start_mosquitto_conf(&conf, bundle.port);
    let out = doctor(&bundle, &[]);
    let report = text(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "{report}");
    assert!(
        report.contains("✗ a credential without write access is refused")
            && report.contains("the ACL lets the observer write"),
        "{report}"
    );

    let other = tempfile::tempdir().expect("tempdir");
    let pki = Pki::create(other.path());
    let wrong_ca = pki.ca.display().to_string();
    let out = doctor(&bundle, &[("MQTT_CA_CERTS", &wrong_ca)]);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{report}");
    assert!(
        report.contains("✗ connect as the observer") && report.contains("TLS verification failed"),
        "{report}"
    );
}

#[test]
fn with_client_certs_a_client_without_one_is_refused_and_doctor_passes() {
    let bundle = setup(&["--client-certs"]);
    let _broker = start(&bundle);
    let out = doctor(&bundle, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let pw = std::fs::read_to_string(bundle.bundle.join("claude-worker.pass")).expect("pass");
    let port = bundle.port.to_string();
    let ca = bundle.bundle.join("ca.crt").display().to_string();
    let out = run(td(
        &bundle.home,
        &[
            ("MQTT_BROKER", "localhost"),
            ("MQTT_PORT", &port),
            ("MQTT_CA_CERTS", &ca),
            ("MQTT_USERNAME", "claude-worker"),
            ("MQTT_PASSWORD", pw.trim()),
        ],
    )
    .args(["publish", "--job", "nocert", "--event", "started"]));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("requires a client certificate"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn setup_again_without_force_changes_nothing_and_exits_2() {
    let bundle = setup(&[]);
    let snapshot = |dir: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        let mut files: Vec<(PathBuf, Vec<u8>)> = walk(dir)
            .into_iter()
            .map(|p| {
                let c = std::fs::read(&p).unwrap_or_default();
                (p, c)
            })
            .collect();
        files.sort();
        files
    };
    let before = snapshot(&bundle.bundle);
    let out = run(td(&bundle.home, &[])
        .args(["broker", "setup"])
        .arg(&bundle.bundle)
        .args(["--host", "localhost"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(snapshot(&bundle.bundle), before, "the bundle changed");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
