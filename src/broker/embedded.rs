//! The embedded broker: rumqttd on a loopback port with a per-run user and
//! password for each side, memory-capped, its logs filtered (FIELD-NOTES).
//! rumqttd has no shutdown API: the broker lives as long as the process.
//!
//! rumqttd serves MQTT 3.1.1 and MQTT 5 on separate listeners, and a client
//! on the wrong one is just disconnected. The original scripts (paho, 3.1.1
//! by default) and tmux-delegate (5) read the same `MQTT_PORT`, so the port
//! users see is a small front (`front.rs`) that reads each connection's
//! protocol level and splices it to the listener that speaks it.

use crate::config::{random_password, BrokerSettings, Secret};
use crate::error::{broker_error, Failure};
use crate::mqtt::topic::DEFAULT_TOPIC_PREFIX;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

mod front;

pub const OBSERVER_USER: &str = "hermes";
pub const WORKER_USER: &str = "claude-worker";

/// A running embedded broker and how each side reaches it.
pub struct Embedded {
    pub address: SocketAddr,
    pub observer: BrokerSettings,
    pub worker: BrokerSettings,
}

fn settings(
    address: SocketAddr,
    user: &str,
    password: &Secret,
    topic_prefix: &str,
) -> BrokerSettings {
    let host = match address.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        ip => ip.to_string(),
    };
    BrokerSettings {
        host,
        port: address.port(),
        tls: false,
        username: Some(user.to_owned()),
        password: Some(password.clone()),
        ca_certs: None,
        certfile: None,
        keyfile: None,
        client_id_prefix: "hermes".into(),
        topic_prefix: topic_prefix.to_owned(),
        connect_timeout: crate::config::broker::DEFAULT_CONNECT_TIMEOUT,
        embedded: true,
        origin: crate::config::broker::BrokerOrigin::default(),
    }
}

/// rumqttd's configuration: an MQTT 3.1.1 and an MQTT 5 listener (behind
/// the front) with the same static credentials, segments capped at 1 MB x 2
/// (its sample config keeps up to 1 GB).
fn config(
    listeners: &front::Listeners,
    users: &[(&str, &Secret)],
) -> Result<rumqttd::Config, Failure> {
    let auth: Vec<String> = users
        .iter()
        .map(|(user, password)| {
            format!(
                "{user} = {}",
                toml::Value::String(password.expose().to_owned())
            )
        })
        .collect();
    let auth = auth.join(", ");
    let listener = |version: &str, address: SocketAddr| {
        format!(
            r#"
[{version}.1]
name = "{version}-1"
listen = "{address}"
next_connection_delay_ms = 1
[{version}.1.connections]
connection_timeout_ms = 5000
max_payload_size = 1048576
max_inflight_count = 100
dynamic_filters = true
auth = {{ {auth} }}
"#
        )
    };
    let text = format!(
        r#"id = 0
[router]
max_connections = 10000
max_outgoing_packet_count = 200
max_segment_size = 1048576
max_segment_count = 2
{}{}"#,
        listener("v4", listeners.v4),
        listener("v5", listeners.v5)
    );
    toml::from_str(&text).map_err(|e| broker_error(format!("embedded broker configuration: {e}")))
}

/// A port the OS says is free on `ip` (rumqttd only logs a bind failure, so
/// the caller checks the broker really answers).
fn free_port(ip: IpAddr) -> Result<u16, Failure> {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| broker_error(format!("cannot find a free port on {ip}: {e}")))
}

/// Starts the broker on `ip` (`port` 0: a free one), behind its protocol
/// front, and waits until rumqttd's listeners accept connections.
pub async fn start(ip: IpAddr, port: u16, topic_prefix: Option<&str>) -> Result<Embedded, Failure> {
    // The port users see is the front's: bound first, so a port in use is
    // an error here (rumqttd would only log it).
    let public = front::bind(SocketAddr::new(ip, port))?;
    let address = public
        .local_addr()
        .map_err(|e| broker_error(format!("the embedded broker's port: {e}")))?;
    let observer_password = random_password(32);
    let worker_password = random_password(32);
    // rumqttd's own listeners: loopback, free ports, reached only through
    // the front.
    let loopback = IpAddr::from(std::net::Ipv4Addr::LOCALHOST);
    let listeners = front::Listeners {
        v4: SocketAddr::new(loopback, free_port(loopback)?),
        v5: SocketAddr::new(loopback, free_port(loopback)?),
    };
    let config = config(
        &listeners,
        &[
            (OBSERVER_USER, &observer_password),
            (WORKER_USER, &worker_password),
        ],
    )?;
    let mut broker = rumqttd::Broker::new(config);
    std::thread::Builder::new()
        .name("embedded-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!("the embedded broker stopped: {e}");
            }
        })
        .map_err(|e| broker_error(format!("cannot start the embedded broker thread: {e}")))?;
    for inner in [listeners.v4, listeners.v5] {
        wait_until_listening(inner).await?;
    }
    front::serve(public, listeners)?;
    let prefix = topic_prefix.unwrap_or(DEFAULT_TOPIC_PREFIX);
    let embedded = Embedded {
        address,
        observer: settings(address, OBSERVER_USER, &observer_password, prefix),
        worker: settings(address, WORKER_USER, &worker_password, prefix),
    };
    Ok(embedded)
}

/// Waits until the listener accepts TCP connections. Only TCP: an MQTT
/// probe that connects and disconnects makes rumqttd 0.20 free its
/// connection id and then close the next client (the supervisor) that gets
/// it. Whether the listener is really ours shows at the first MQTT connect,
/// which uses the generated credentials and fails clearly otherwise.
async fn wait_until_listening(address: SocketAddr) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let address = match address.ip() {
        ip if ip.is_unspecified() => {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), address.port())
        }
        _ => address,
    };
    loop {
        match tokio::net::TcpStream::connect(address).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(broker_error(format!(
                    "the embedded broker did not come up on {address}: {e}"
                ))
                .help("another program may hold the port; pick another with --port, or configure a broker"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}
