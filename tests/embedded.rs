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

    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let tmux = TmuxServer::new(dir.path());
    let go = dir.path().join("go");
    let agent = script(
        &dir.path().join("agent.sh"),
        &format!(
            "i=0; while [ ! -e {go} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done\n\
         tmux-delegate publish --event progress --message 'half way'\n\
         tmux-delegate publish --event completed --message 'all done'\nexec sleep 30",
            go = go.display()
        ),
    );
    std::fs::write(
        home.join("tmux-delegate.toml"),
        format!(
            "[defaults.tmux]\nsocket = \"{}\"\nkill_grace = \"1s\"\n[agents.demo]\ncommand = [\"{}\"]\ncomplete_on_exit = false\n",
            tmux.socket,
            agent.display()
        ),
    )
    .expect("config");
    let tmpdir = tmux.tmpdir.display().to_string();
    let vars = [
        ("TMUX_TMPDIR", tmpdir.as_str()),
        ("PATH", PATH_WITHOUT_SBIN),
    ];

    let mut running = Lines::spawn(td(&home, &vars).args([
        "run", "--json", "--agent", "demo", "--name", "demo", "--prompt", "p",
    ]));
    assert!(
        running.wait_line("\"to\":\"running\"", Duration::from_secs(20)),
        "{:?}",
        running.stderr
    );
    let status = run(td(&home, &vars).args(["status", "--json"]));
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
        let out = run(td(dir.path(), &env).args([
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
