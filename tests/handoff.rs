//! Inside a job window `publish` hands its event to the wrapper's open
//! connection through a 0600 unix socket (no connection of its own), and
//! falls back to its own connection when the socket is not there.

mod common;

use common::*;
use std::time::Duration;

/// Runs one job whose agent publishes from its window; returns the
/// broker's log (connections at notice level) and what the agent saw.
fn run_job(agent_body: &str) -> (String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Mosquitto::start(dir.path(), "allow_anonymous true\nlog_type notice\n");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let tmux = TmuxServer::new(dir.path());
    let seen = home.join("seen");
    let agent = script(
        &home.join("agent.sh"),
        &agent_body.replace("{seen}", &seen.display().to_string()),
    );
    std::fs::write(
        home.join("tmux-delegate.toml"),
        format!(
            "[broker]\nhost = \"127.0.0.1\"\nport = {}\n\
             [defaults.tmux]\nsocket = \"{}\"\nkeep_failed = false\nkill_grace = \"1s\"\n\
             [agents.fake]\ncommand = [\"{}\", \"{{prompt}}\"]\ncomplete_on_exit = false\n",
            broker.port,
            tmux.socket,
            agent.display()
        ),
    )
    .expect("config");
    let tmpdir = tmux.tmpdir.display().to_string();
    let out = Guard(Some(
        td(&home, &[("TMUX_TMPDIR", tmpdir.as_str())])
            .args(["run", "--json", "--agent", "fake", "--prompt", "x"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run"),
    ))
    .wait_output(Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let log = std::fs::read_to_string(dir.path().join(format!("mosquitto-{}.log", broker.port)))
        .unwrap_or_default();
    (log, std::fs::read_to_string(&seen).unwrap_or_default())
}

#[test]
fn publish_in_a_window_uses_the_wrappers_connection() {
    let (log, seen) = run_job(
        "stat -c %a \"$DELEGATE_PUBLISH_SOCKET\" > {seen}\n\
         \"$TMUX_DELEGATE_BIN\" publish --event heartbeat --message one || exit 9\n\
         exec \"$TMUX_DELEGATE_BIN\" publish --event completed",
    );
    assert_eq!(seen.trim(), "600", "the socket's mode");
    let own = log.lines().filter(|l| l.contains("-pub-")).count();
    assert_eq!(own, 0, "publish connected itself:\n{log}");
    assert!(log.contains("-worker-"), "{log}");
}

#[test]
fn without_the_socket_publish_connects_itself() {
    let (log, _) = run_job(
        "DELEGATE_PUBLISH_SOCKET=/nonexistent/pub.sock exec \"$TMUX_DELEGATE_BIN\" publish --event completed",
    );
    let own = log
        .lines()
        .filter(|l| l.contains("New client connected") && l.contains("-pub-"))
        .count();
    assert_eq!(own, 1, "{log}");
}
