//! Zero setup: no Mosquitto on PATH, no MQTT_* variables, no broker in any
//! config: `run` starts its embedded broker, and other terminals reach it
//! through the job record alone.

mod common;

use common::*;
use std::time::Duration;

const PATH_WITHOUT_SBIN: &str = "/usr/local/bin:/usr/bin:/bin";

#[test]
fn run_on_the_embedded_broker_is_watched_from_another_process_and_refuses_strangers() {
    let which = std::process::Command::new("sh")
        .args(["-c", "command -v mosquitto"])
        .env("PATH", PATH_WITHOUT_SBIN)
        .output()
        .expect("sh");
    assert!(
        !which.status.success(),
        "mosquitto is on {PATH_WITHOUT_SBIN}; the test needs a PATH without it"
    );

    let world = World::embedded("");
    let go = world.scratch("go");
    let agent = script(
        &world.scratch("agent.sh"),
        &format!(
            "i=0; while [ ! -e {go} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done\n\
         tmux-delegate publish --event progress --message 'half way'\n\
         tmux-delegate publish --event completed --message 'all done'\nexec sleep 30",
            go = go.display()
        ),
    );
    world.write_config(&format!(
        "[agents.demo]\ncommand = [\"{}\"]\ncomplete_on_exit = false\n",
        agent.display()
    ));
    let home = world.home.clone();
    let vars = [("PATH", PATH_WITHOUT_SBIN)];

    let mut running = Lines::spawn(world.td_with(&vars).args([
        "run", "--json", "--agent", "demo", "--name", "demo", "--prompt", "p",
    ]));
    assert!(
        running.wait_line("\"to\":\"running\"", Duration::from_secs(20)),
        "{:?}",
        running.stderr
    );
    let status = run(world.td_with(&vars).args(["status", "--json"]));
    let jobs: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status");
    let id = jobs[0]["id"].as_str().expect("id").to_owned();

    // Another terminal: its own environment, no MQTT variables, no broker config.
    let mut watch = Lines::spawn(td(&home, &[("PATH", PATH_WITHOUT_SBIN)]).args([
        "watch",
        "--job",
        &id,
        "--timeout",
        "20",
    ]));
    assert!(
        watch.wait_line("watching", Duration::from_secs(10)),
        "{:?}",
        watch.stderr
    );

    // Strangers are refused: no credentials, and wrong ones.
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(home.join(format!("state/jobs/{id}/record.json")))
            .expect("record"),
    )
    .expect("record json");
    let port = record["broker"]["port"].as_u64().expect("port").to_string();
    for creds in [
        vec![],
        vec![("MQTT_USERNAME", "intruder"), ("MQTT_PASSWORD", "guess")],
    ] {
        let mut env = vec![("MQTT_BROKER", "127.0.0.1"), ("MQTT_PORT", port.as_str())];
        env.extend(creds);
        let out = run(td(world.dir.path(), &env).args([
            "publish",
            "--job",
            "intruder",
            "--event",
            "completed",
        ]));
        assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    }

    std::fs::write(&go, "").expect("go");
    assert_eq!(
        watch.finish(Duration::from_secs(20)).code(),
        Some(0),
        "{:?}",
        watch.stderr
    );
    let seen = watch.stdout.join("\n");
    assert!(
        seen.contains("progress") && seen.contains("completed"),
        "{seen}"
    );
    assert_eq!(
        running.finish(Duration::from_secs(20)).code(),
        Some(0),
        "{:?}",
        running.stderr
    );
}

#[test]
fn broker_serve_prints_settings_keeps_passwords_in_0600_files_and_serves() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().to_string();
    let mut serve = Lines::spawn(td(dir.path(), &[]).args(["broker", "serve", "--port", &port]));
    assert!(
        serve.wait_line("or in tmux-delegate.toml", Duration::from_secs(20)),
        "{:?}",
        serve.stderr
    );
    let printed = serve.stdout.join("\n");
    assert!(printed.contains(&format!("MQTT_PORT={port}")), "{printed}");
    let observer_file = dir.path().join("state/broker/hermes.pass");
    let worker_file = dir.path().join("state/broker/claude-worker.pass");
    for file in [&observer_file, &worker_file] {
        let mode = std::fs::metadata(file)
            .expect("password file")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
        let password = std::fs::read_to_string(file).expect("read");
        assert!(!printed.contains(password.trim()), "a password was printed");
    }
    let worker_pw = std::fs::read_to_string(&worker_file).expect("pw");
    let env = [
        ("MQTT_BROKER", "127.0.0.1"),
        ("MQTT_PORT", port.as_str()),
        ("MQTT_USERNAME", "claude-worker"),
        ("MQTT_PASSWORD", worker_pw.trim()),
    ];
    let out =
        run(td(dir.path(), &env).args(["publish", "--job", "served", "--event", "completed"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(td(dir.path(), &env).args(["watch", "--job", "served", "--timeout", "10"]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "the retained completed: {}",
        text(&out.stderr)
    );
}

/// The original tool's `publish_event.py` (paho, MQTT 3.1.1 by default) in
/// a job window on the zero-setup broker: its `started` and `completed`
/// reach the supervisor and the job completes (SPEC section 3: "the
/// original scripts work there unchanged").
#[test]
fn the_original_publish_event_script_speaks_mqtt_3_1_1_to_the_embedded_broker() {
    let world = World::embedded("");
    let publish_event =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/publish_event.py");
    let log = world.scratch("publish_event.log");
    let agent = script(
        &world.scratch("agent.sh"),
        &format!(
            "py={py}; log={log}\n\
             python3 \"$py\" --job \"$DELEGATE_JOB_ID\" --event started 2>>\"$log\" || echo \"started: $?\" >>\"$log\"\n\
             python3 \"$py\" --job \"$DELEGATE_JOB_ID\" --event completed --message done 2>>\"$log\" || echo \"completed: $?\" >>\"$log\"\n\
             exec sleep 30",
            py = publish_event.display(),
            log = log.display()
        ),
    );
    // The scripts sign nothing: their events count where the policy says so.
    world.write_config(&format!(
        "[events]\nrequire_signature = false\n\n\
         [agents.legacy]\ncommand = [\"{}\"]\ncomplete_on_exit = false\n",
        agent.display()
    ));
    let out = run(world.td().args([
        "run", "--json", "--agent", "legacy", "--name", "legacy", "--prompt", "p",
    ]));
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        out.status.code(),
        Some(0),
        "run: {}\n{}\npublish_event.py: {said}",
        text(&out.stdout),
        text(&out.stderr)
    );
    eprintln!("publish_event.py said: {said:?}");
    let jobs: serde_json::Value =
        serde_json::from_slice(&run(world.td().args(["status", "--json"])).stdout).expect("status");
    assert_eq!(jobs[0]["state"], "completed", "{jobs}");
    assert_eq!(jobs[0]["attempt"], 1, "{jobs}");
    assert_eq!(jobs[0]["last_event"]["event"], "completed", "{jobs}");
    assert_eq!(jobs[0]["last_event"]["message"], "done", "{jobs}");
}
