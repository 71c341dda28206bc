//! Bad input is a configuration error (exit 2) that names the culprit, and
//! nothing reaches the registry.

mod common;

use common::*;

fn assert_config_error(out: &std::process::Output, needle: &str) {
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit 2 for {needle}: {err}"
    );
    assert!(
        err.contains(needle),
        "message does not name {needle}: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

fn no_jobs_registered(home: &std::path::Path) {
    let jobs = home.join("state/jobs");
    let count = std::fs::read_dir(&jobs).map(|d| d.count()).unwrap_or(0);
    assert_eq!(count, 0, "something was written to {}", jobs.display());
}

#[test]
fn bad_env_values_name_the_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    let cert = home.join("client.crt");
    std::fs::write(&cert, "not really").expect("write");
    let cert = cert.display().to_string();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("MQTT_PORT", "99999")], "MQTT_PORT=99999"),
        (vec![("MQTT_PORT", "0")], "MQTT_PORT=0"),
        (vec![("MQTT_TLS", "maybe")], "MQTT_TLS=maybe"),
        (
            vec![("MQTT_TLS", "1"), ("MQTT_CA_CERTS", "/nonexistent/ca.crt")],
            "MQTT_CA_CERTS",
        ),
        (
            vec![("MQTT_TLS", "1"), ("MQTT_CERTFILE", &cert)],
            "MQTT_CERTFILE is set but no client key",
        ),
    ];
    for (vars, needle) in cases {
        let mut all = vec![("MQTT_BROKER", "127.0.0.1")];
        all.extend(vars);
        for args in [
            vec!["register", "--prompt", "x"],
            vec!["publish", "--job", "j1", "--event", "started"],
            vec!["watch", "--job", "j1", "--timeout", "1"],
        ] {
            assert_config_error(&run(td(home, &all).args(&args)), needle);
        }
    }
    no_jobs_registered(home);
}

#[test]
fn job_ids_with_topic_syntax_are_rejected_before_any_topic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [("MQTT_BROKER", "127.0.0.1"), ("MQTT_PORT", "1")];
    for bad in ["a/b", "a+", "#", "x y"] {
        let out = run(td(dir.path(), &env).args(["publish", "--job", bad, "--event", "started"]));
        assert_config_error(&out, "invalid job id");
        let out = run(td(dir.path(), &env).args(["watch", "--job", bad, "--timeout", "1"]));
        assert_config_error(&out, "invalid job id");
    }
    let out = run(td(dir.path(), &env).args(["publish", "--job", "ok", "--event", "finished"]));
    assert_config_error(&out, "unknown event `finished`");
    let out = run(td(dir.path(), &env).args([
        "publish", "--job", "ok", "--event", "progress", "--data", "{oops",
    ]));
    assert_config_error(&out, "--data is not valid JSON");
}

#[test]
fn malformed_toml_and_unknown_keys_point_at_file_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    let spec = home.join("job.toml");
    std::fs::write(&spec, "name = \"x\"\nprompt = \"unterminated\n").expect("write");
    let out = run(td(home, &[]).args(["register", spec.to_str().expect("utf-8")]));
    assert_config_error(&out, &format!("{}:2:", spec.display()));

    std::fs::write(&spec, "name = \"x\"\npromt = \"typo\"\n").expect("write");
    let out = run(td(home, &[]).args(["register", spec.to_str().expect("utf-8")]));
    assert_config_error(
        &out,
        &format!("{}:2:1: unknown field `promt`", spec.display()),
    );
    assert!(text(&out.stderr).contains("a similar key exists: `prompt`"));

    let project = home.join("tmux-delegate.toml");
    std::fs::write(&project, "[broker]\nhost = \"h\"\nprot = 1883\n").expect("write");
    let out = run(td(home, &[]).args(["register", "--prompt", "x"]));
    assert_config_error(
        &out,
        &format!("{}:3:1: unknown field `prot`", project.display()),
    );
    assert!(text(&out.stderr).contains("a similar key exists: `port`"));

    std::fs::write(&project, "[broker]\nport = 99999\n").expect("write");
    let out = run(td(home, &[]).args(["status"]));
    // status reads only the registry: a broken config must not stop it.
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(td(home, &[]).args(["register", "--prompt", "x"]));
    assert_config_error(&out, &format!("{}:2:8", project.display()));
    no_jobs_registered(home);
}

#[test]
fn usage_errors_exit_2_and_help_teaches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(td(dir.path(), &[]).args(["frobnicate"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = run(td(dir.path(), &[]).args(["watch"]));
    assert_eq!(out.status.code(), Some(2), "watch needs --job or --all");
    let help = run(td(dir.path(), &[]).args(["--help"]));
    assert!(help.status.success());
    for needle in ["MQTT_BROKER", "Exit codes", "run", "doctor"] {
        assert!(text(&help.stdout).contains(needle), "--help lacks {needle}");
    }
    let completions = run(td(dir.path(), &[]).args(["completions", "bash"]));
    assert!(completions.status.success() && text(&completions.stdout).contains("tmux-delegate"));
    let man = run(td(dir.path(), &[]).args(["man"]));
    assert!(
        man.status.success() && text(&man.stdout).contains(".TH"),
        "not a man page"
    );
}

#[test]
fn run_against_an_unreachable_broker_exits_3_and_registers_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().to_string();
    let env = [("MQTT_BROKER", "127.0.0.1"), ("MQTT_PORT", port.as_str())];
    let out = run(td(dir.path(), &env).args(["run", "--agent", "shell", "--prompt", "x"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("connection refused"), "{err}");
    no_jobs_registered(dir.path());
}
