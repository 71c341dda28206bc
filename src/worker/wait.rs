//! Waiting for the agent: serving the window's `publish` calls over the
//! wrapper's connection meanwhile, reaping inherited orphans, and stopping
//! the agent and every descendant on SIGTERM, SIGHUP, a fleet runner gone
//! or a newer attempt of a fleet job claimed.

use super::report::Reporter;
use super::{fence, Ended, PUBACK_WAIT};
use crate::model::JobId;
use crate::mqtt::client::Publisher;
use crate::registry::Registry;
use anyhow::{Context, Result};
use std::time::Duration;

/// SIGTERM and SIGHUP, caught for the whole attempt.
pub(super) struct StopSignals {
    term: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl StopSignals {
    pub(super) fn listen() -> Result<StopSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("catching SIGTERM")?,
            hangup: signal(SignalKind::hangup()).context("catching SIGHUP")?,
        })
    }
}

/// How often orphans the wrapper inherited and that ended are reaped, and
/// a fleet job's runner is looked for (the fencing window's first part).
const REAP_EVERY: Duration = Duration::from_secs(1);
/// How often the agent's conversation is looked at while it runs (its
/// printed id, its transcript), until all of it is known.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// `publish` in the window hands its events to this wrapper's open
/// connection through a 0600 socket in the job's directory (SPEC section
/// 13): one round trip to the broker instead of a new (TLS) connection.
pub(super) fn bind_handoff(
    registry: &Registry,
    job: &JobId,
    reporter: &mut Reporter,
) -> Option<crate::mqtt::handoff::Server> {
    match crate::mqtt::handoff::Server::bind(&registry.job_dir(job).join("pub.sock")) {
        Ok(server) => {
            reporter.handoff = Some(server.path().to_path_buf());
            Some(server)
        }
        Err(e) => {
            tracing::warn!("no publish socket for the window (publish connects itself): {e}");
            None
        }
    }
}

/// What the wrapper serves while the agent runs: the window's `publish`
/// calls, over the wrapper's own connection.
pub(super) struct Window<'a> {
    pub(super) handoff: Option<&'a crate::mqtt::handoff::Server>,
    pub(super) publisher: &'a mut Publisher,
    pub(super) topic: &'a str,
    /// A fleet job's runner: the attempt ends when it is gone.
    pub(super) owner: Option<&'a crate::registry::FleetOwner>,
    /// A fleet job's fence: the attempt ends when a newer one is claimed.
    pub(super) fence: Option<fence::Watch>,
    pub(super) registry: &'a Registry,
    /// The attempt's conversation, watched for its id and transcript.
    pub(super) conversation: &'a mut super::conversation::Tracker,
}

async fn next_client(
    server: Option<&crate::mqtt::handoff::Server>,
) -> std::io::Result<tokio::net::UnixStream> {
    match server {
        Some(server) => server.accept().await,
        None => std::future::pending().await,
    }
}

/// Waits for the agent to end, serving the window's `publish` calls
/// meanwhile. A SIGTERM or SIGHUP to the wrapper, or the end of a fleet
/// job's runner (checked as often as orphans are reaped), stops it and
/// every other descendant (TERM, `grace`, KILL) first. Returns the agent's
/// status and why the wait ended.
pub(super) async fn wait_for_agent(
    child: &mut tokio::process::Child,
    pid: i32,
    grace: Duration,
    stops: &mut StopSignals,
    window: Window<'_>,
) -> Result<(std::process::ExitStatus, Ended)> {
    let mut reap = tokio::time::interval(REAP_EVERY);
    let mut look = tokio::time::interval(WATCH_EVERY);
    let mut watch = window.fence;
    let ended = loop {
        tokio::select! {
            status = child.wait() => {
                return Ok((status.context("waiting for the agent")?, Ended::Exited));
            }
            _ = stops.term.recv() => break Ended::Stopped,
            _ = stops.hangup.recv() => break Ended::HungUp,
            _ = reap.tick() => {
                crate::proc::reap_ended_children(Some(pid));
                if fence::owner_gone(window.owner) {
                    break Ended::OwnerGone;
                }
            }
            _ = look.tick() => window.conversation.watch(window.registry),
            Some(message) = fence::next(watch.as_mut()) => {
                if let Some(newer) = watch.as_ref().and_then(|w| w.superseded_by(&message)) {
                    break Ended::Superseded(newer);
                }
            }
            Ok(stream) = next_client(window.handoff) => {
                crate::mqtt::handoff::Server::serve(stream, window.publisher, window.topic, PUBACK_WAIT).await;
            }
        }
    };
    crate::proc::stop_descendants(grace, Some(pid)).await;
    let status = child.wait().await.context("waiting for the agent")?;
    Ok((status, ended))
}
