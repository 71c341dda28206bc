//! Inside a job window `publish` hands its event to the wrapper's open
//! connection through a 0600 unix socket (no connection of its own), and
//! falls back to its own connection when the socket is not there.

mod common;

use common::*;
use std::time::Duration;

/// Runs one job whose agent publishes from its window; returns the
/// broker's log (connections at notice level) and what the agent saw.
fn run_job(agent_body: &str) -> (String, String) {
    let world = World::builder(Broker::Mosquitto)
        .mosquitto_conf("allow_anonymous true\nlog_type notice\n")
        .build("");
    let seen = world.path("seen");
    let agent = script(
        &world.path("agent.sh"),
        &agent_body.replace("{seen}", &seen.display().to_string()),
    );
    world.write_config(&format!(
        "[broker]\nhost = \"127.0.0.1\"\nport = {}\n\
         [agents.fake]\ncommand = [\"{}\", \"{{prompt}}\"]\ncomplete_on_exit = false\n",
        world.port(),
        agent.display()
    ));
    let (code, _, stderr) = world.finish(
        &["run", "--json", "--agent", "fake", "--prompt", "x"],
        Duration::from_secs(120),
    );
    assert_eq!(code, Some(0), "{stderr}");
    let log = std::fs::read_to_string(world.scratch(&format!("mosquitto-{}.log", world.port())))
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
