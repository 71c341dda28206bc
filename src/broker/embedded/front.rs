//! The embedded broker's one public port. rumqttd needs one listener per
//! protocol version; this front reads the start of each connection's
//! CONNECT packet (fixed header, remaining length, protocol name, protocol
//! level), opens the rumqttd listener that speaks that level, replays the
//! bytes it read and splices the two sockets until either side closes.
//! Anything that is not a CONNECT goes to the MQTT 5 listener, which
//! refuses it as a direct connection would.
//!
//! It runs on its own thread and runtime, like rumqttd: a busy supervisor
//! never delays a window's events.

use crate::error::{broker_error, Failure};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// rumqttd's two listeners, on loopback.
#[derive(Debug, Clone, Copy)]
pub struct Listeners {
    pub v4: SocketAddr,
    pub v5: SocketAddr,
}

/// How long a client has to send the head of its CONNECT.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Enough of a CONNECT to reach the protocol level: 1 byte of packet type,
/// up to 4 of remaining length, 2 of name length, the name ("MQTT", or
/// "MQIsdp" for 3.1), 1 of level.
const HEAD_MAX: usize = 1 + 4 + 2 + 6 + 1;

/// Binds the public port (0: a free one).
pub fn bind(address: SocketAddr) -> Result<std::net::TcpListener, Failure> {
    let listener = std::net::TcpListener::bind(address).map_err(|e| {
        broker_error(format!(
            "the embedded broker cannot listen on {address}: {e}"
        ))
        .help("another program may hold the port; pick another with --port, or configure a broker")
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| broker_error(format!("the embedded broker's port {address}: {e}")))?;
    Ok(listener)
}

/// Serves the public port on a thread of its own for the process's life
/// (the broker behind it has no shutdown either).
pub fn serve(listener: std::net::TcpListener, listeners: Listeners) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| broker_error(format!("the embedded broker's front: {e}")))?;
    std::thread::Builder::new()
        .name("embedded-broker-front".into())
        .spawn(move || runtime.block_on(accept_forever(listener, listeners)))
        .map_err(|e| broker_error(format!("cannot start the embedded broker's front: {e}")))?;
    Ok(())
}

async fn accept_forever(listener: std::net::TcpListener, listeners: Listeners) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => return tracing::error!("the embedded broker's front cannot listen: {e}"),
    };
    loop {
        match listener.accept().await {
            Ok((client, _)) => {
                tokio::spawn(async move {
                    if let Err(e) = relay(client, listeners).await {
                        tracing::debug!("embedded broker front: {e}");
                    }
                });
            }
            // Out of file descriptors, say: wait, do not spin.
            Err(e) => {
                tracing::warn!("the embedded broker's front: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One client: its CONNECT's head read, the right listener opened, the
/// head replayed, then both directions copied.
async fn relay(mut client: TcpStream, listeners: Listeners) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let head = tokio::time::timeout(CONNECT_WAIT, read_head(&mut client))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no CONNECT in time"))??;
    let target = match protocol_level(&head) {
        Some(3 | 4) => listeners.v4,
        _ => listeners.v5,
    };
    let mut broker = TcpStream::connect(target).await?;
    broker.set_nodelay(true)?;
    broker.write_all(&head).await?;
    tokio::io::copy_bidirectional(&mut client, &mut broker).await?;
    Ok(())
}

/// Reads until the protocol level is known, the bytes cannot be a CONNECT,
/// or the client stops sending.
async fn read_head(client: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(HEAD_MAX);
    let mut buf = [0u8; HEAD_MAX];
    while head.len() < HEAD_MAX && needs_more(&head) {
        let n = client.read(&mut buf[..HEAD_MAX - head.len()]).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
}

/// Whether `head` is a prefix of a CONNECT that does not yet show its level.
fn needs_more(head: &[u8]) -> bool {
    match parse(head) {
        Parse::Level(_) | Parse::NotConnect => false,
        Parse::Short => true,
    }
}

/// The protocol level of a CONNECT's head: 4 is MQTT 3.1.1, 5 is MQTT 5,
/// 3 is MQTT 3.1.
fn protocol_level(head: &[u8]) -> Option<u8> {
    match parse(head) {
        Parse::Level(level) => Some(level),
        Parse::Short | Parse::NotConnect => None,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Parse {
    Level(u8),
    Short,
    NotConnect,
}

fn parse(head: &[u8]) -> Parse {
    let Some(&kind) = head.first() else {
        return Parse::Short;
    };
    if kind != 0x10 {
        return Parse::NotConnect;
    }
    // Remaining length: 1 to 4 bytes, the high bit says another follows.
    let mut at = 1;
    loop {
        let Some(&byte) = head.get(at) else {
            return Parse::Short;
        };
        at += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if at > 4 {
            return Parse::NotConnect;
        }
    }
    let (Some(&hi), Some(&lo)) = (head.get(at), head.get(at + 1)) else {
        return Parse::Short;
    };
    let name_len = usize::from(u16::from_be_bytes([hi, lo]));
    if name_len > 6 {
        return Parse::NotConnect;
    }
    match head.get(at + 2 + name_len) {
        Some(&level) => Parse::Level(level),
        None => Parse::Short,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head of a CONNECT of `level` with protocol name `name` and a
    /// remaining length of `remaining`.
    fn connect(name: &[u8], level: u8, remaining: usize) -> Vec<u8> {
        let mut head = vec![0x10];
        let mut left = remaining;
        loop {
            let byte = u8::try_from(left % 128).expect("7 bits");
            left /= 128;
            head.push(if left > 0 { byte | 0x80 } else { byte });
            if left == 0 {
                break;
            }
        }
        head.extend_from_slice(&u16::try_from(name.len()).expect("short").to_be_bytes());
        head.extend_from_slice(name);
        head.push(level);
        head
    }

    #[test]
    fn the_protocol_level_is_read_from_a_connect_of_any_length() {
        for (name, level) in [(&b"MQTT"[..], 4), (b"MQTT", 5), (b"MQIsdp", 3)] {
            for remaining in [12, 200, 20_000, 3_000_000] {
                let head = connect(name, level, remaining);
                assert_eq!(parse(&head), Parse::Level(level), "{head:?}");
                for cut in 0..head.len() {
                    assert_eq!(parse(&head[..cut]), Parse::Short, "{:?}", &head[..cut]);
                }
            }
        }
    }

    #[test]
    fn what_is_not_a_connect_goes_on_unread() {
        assert_eq!(parse(b"GET / HTTP/1.1"), Parse::NotConnect);
        assert_eq!(
            parse(&[0x10, 0x80, 0x80, 0x80, 0x80, 0x01]),
            Parse::NotConnect
        );
        assert_eq!(parse(&[0x10, 12, 0, 40]), Parse::NotConnect);
        assert!(!needs_more(b"\x30"));
    }
}
