//! Inside a job window, `publish` hands its (already signed) event to the
//! wrapper's open broker connection through a 0600 unix socket in the job's
//! directory: one round trip to a distant broker instead of a new TLS
//! connection (SPEC section 13). The wrapper publishes to its own job's
//! events topic only, whatever the client sends; when the socket is not
//! there or does not answer, `publish` uses its own connection.
//!
//! Protocol: one JSON line each way. Request `{"payload": "<event JSON>",
//! "retain": bool}`; answer `{"ok": true, "subscribers": bool}` or
//! `{"ok": false, "refused": bool, "error": "..."}`.

use super::client::{Delivery, Publisher};
use crate::error::{Exit, Failure};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// The variable that tells `publish` in a window where the socket is.
pub const SOCKET_VAR: &str = "DELEGATE_PUBLISH_SOCKET";
/// An event is at most 64 KiB; its request line a little more.
const MAX_LINE: u64 = 80 * 1024;
/// How long the wrapper waits for a connected client's request.
const READ_WAIT: Duration = Duration::from_secs(2);

#[derive(Serialize, Deserialize)]
struct Request {
    payload: String,
    retain: bool,
}

#[derive(Serialize, Deserialize)]
struct Answer {
    ok: bool,
    #[serde(default)]
    subscribers: bool,
    #[serde(default)]
    refused: bool,
    #[serde(default)]
    error: String,
}

/// The wrapper's end: a listening socket, removed when dropped.
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
}

impl Server {
    /// Binds `path` (a stale socket of an earlier attempt is replaced),
    /// readable and writable by the owner only.
    pub fn bind(path: &Path) -> std::io::Result<Server> {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(Server {
            listener,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn accept(&self) -> std::io::Result<UnixStream> {
        self.listener.accept().await.map(|(stream, _)| stream)
    }

    /// Answers one client: its event, published on `topic` with the
    /// wrapper's connection, and the broker's verdict back.
    pub async fn serve(stream: UnixStream, publisher: &mut Publisher, topic: &str, wait: Duration) {
        let (read, mut write) = stream.into_split();
        let mut line = String::new();
        let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_LINE));
        let request = match tokio::time::timeout(READ_WAIT, reader.read_line(&mut line)).await {
            Ok(Ok(_)) => serde_json::from_str::<Request>(&line).ok(),
            _ => None,
        };
        let answer = match request {
            None => Answer {
                ok: false,
                subscribers: false,
                refused: false,
                error: "malformed request".into(),
            },
            Some(request) => {
                let sent = publisher
                    .publish(topic, request.payload.into_bytes(), request.retain, wait)
                    .await;
                match sent {
                    Ok(delivery) => Answer {
                        ok: true,
                        subscribers: delivery == Delivery::Delivered,
                        refused: false,
                        error: String::new(),
                    },
                    Err(failure) => Answer {
                        ok: false,
                        subscribers: false,
                        refused: failure.exit == Exit::PublishRefused,
                        error: failure.to_string(),
                    },
                }
            }
        };
        let mut text = serde_json::to_string(&answer).unwrap_or_default();
        text.push('\n');
        let _ = write.write_all(text.as_bytes()).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The client's end: `None` when there is no wrapper to hand the event to
/// (then the caller connects itself), else the broker's verdict.
pub async fn publish_via(
    path: &Path,
    payload: &[u8],
    retain: bool,
    wait: Duration,
) -> Option<Result<Delivery, Failure>> {
    let exchange = async {
        let mut stream = UnixStream::connect(path).await.ok()?;
        let request = Request {
            payload: String::from_utf8(payload.to_vec()).ok()?,
            retain,
        };
        let mut text = serde_json::to_string(&request).ok()?;
        text.push('\n');
        stream.write_all(text.as_bytes()).await.ok()?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).await.ok()?;
        serde_json::from_str::<Answer>(&line).ok()
    };
    let answer = tokio::time::timeout(wait, exchange).await.ok()??;
    if answer.ok {
        return Some(Ok(if answer.subscribers {
            Delivery::Delivered
        } else {
            Delivery::NoSubscribers
        }));
    }
    // A refusal is the broker's word; anything else: try our own connection.
    answer
        .refused
        .then(|| Err(Failure::new(Exit::PublishRefused, answer.error)))
}
