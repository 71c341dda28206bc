//! `broker serve`: the embedded broker in the foreground, for one long-lived
//! local broker. Passwords go to 0600 files (on screen only when asked).

use crate::config::{BrokerSettings, Env};
use crate::error::Exit;
use crate::registry::{write_file, Registry};
use std::net::IpAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

pub async fn run(port: u16, bind: IpAddr, show_passwords: bool) -> anyhow::Result<Exit> {
    let env = Env::from_process()?;
    let registry = Registry::open(&env)?;
    let broker = crate::broker::embedded::start(bind, port, None).await?;
    // rumqttd only logs a port already in use: prove the listener is ours
    // before printing how to reach it.
    let probe = crate::mqtt::connect::ConnectOptions::new("probe");
    crate::mqtt::connect::connect(&broker.observer, &probe)
        .await
        .map_err(|e| {
            crate::error::broker_error(format!(
                "{} does not answer as the embedded broker: {e}",
                broker.address
            ))
            .help("another program may hold the port: pick another with --port")
        })?
        .close()
        .await;
    let dir = registry.root().join("broker");
    let observer_file = dir.join("hermes.pass");
    let worker_file = dir.join("claude-worker.pass");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    for (path, settings) in [
        (&observer_file, &broker.observer),
        (&worker_file, &broker.worker),
    ] {
        let password = settings.password.as_ref().map_or("", |p| p.expose());
        write_file(path, &format!("{password}\n"), 0o600)?;
    }
    if !bind.is_loopback() {
        eprintln!("warning: listening on {bind}: a plain-text broker reachable from the network");
    }
    println!(
        "embedded MQTT broker (3.1.1 and 5) on {} (Ctrl-C to stop)\n",
        broker.address
    );
    print_side(
        "observer (run, watch, status)",
        &broker.observer,
        &observer_file,
        show_passwords,
    );
    print_side(
        "worker (agents, publish)",
        &broker.worker,
        &worker_file,
        show_passwords,
    );
    println!(
        "or in tmux-delegate.toml:\n\n[broker]\nhost = \"{}\"\nport = {}\nusername = \"{}\"\npassword_file = \"{}\"\n\n[broker.worker]\nusername = \"{}\"\npassword_file = \"{}\"\n",
        broker.observer.host,
        broker.observer.port,
        broker.observer.username.as_deref().unwrap_or_default(),
        observer_file.display(),
        broker.worker.username.as_deref().unwrap_or_default(),
        worker_file.display()
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    eprintln!("stopping the embedded broker");
    Ok(Exit::Success)
}

fn print_side(title: &str, settings: &BrokerSettings, password_file: &Path, show: bool) {
    let password = if show {
        settings
            .password
            .as_ref()
            .map_or("", |p| p.expose())
            .to_owned()
    } else {
        format!("$(cat {})", password_file.display())
    };
    println!(
        "{title}:\n  export MQTT_BROKER={} MQTT_PORT={} MQTT_USERNAME={} MQTT_PASSWORD=\"{password}\"\n",
        settings.host,
        settings.port,
        settings.username.as_deref().unwrap_or_default()
    );
}
