//! The attempt's own reports: its events built and signed with the job's
//! key, sent over the worker's connection (whose Last Will is `lost`) —
//! `started` with the agent's group recorded, `exited` with its code
//! recorded first, `error` when the attempt fails before or as the agent
//! starts, and a refusal of the agent's configuration read from its pane.

use super::{say, PUBACK_WAIT};
use crate::agents::AgentDef;
use crate::config::BrokerSettings;
use crate::model::event::now_ts;
use crate::model::{Event, EventKind, JobId};
use crate::mqtt::client::Publisher;
use crate::mqtt::connect::{ConnectOptions, LastWill};
use crate::mqtt::sign::EventKey;
use crate::registry::{now_rfc3339, Registry};
use anyhow::Result;

/// Builds and signs this attempt's events.
pub(super) struct Reporter {
    pub(super) job: JobId,
    pub(super) attempt: u32,
    pub(super) key: EventKey,
    pub(super) topic: String,
    pub(super) seq: u64,
    /// The window's publish socket, when the wrapper listens on one.
    pub(super) handoff: Option<std::path::PathBuf>,
}

impl Reporter {
    pub(super) fn payload(
        &mut self,
        kind: EventKind,
        message: Option<String>,
        data: Option<serde_json::Value>,
    ) -> Result<Vec<u8>> {
        self.seq += 1;
        let event = Event {
            job: self.job.to_string(),
            event: kind,
            attempt: self.attempt,
            seq: Some(self.seq),
            ts: now_ts(),
            message,
            data,
            sig: None,
        };
        crate::mqtt::event::encode(&event, Some(&self.key))
    }

    pub(super) async fn send(
        &mut self,
        publisher: &mut Publisher,
        kind: EventKind,
        message: Option<String>,
        data: Option<serde_json::Value>,
    ) -> Result<()> {
        let retain = kind.is_terminal();
        let payload = self.payload(kind, message, data)?;
        publisher
            .publish(&self.topic, payload, retain, PUBACK_WAIT)
            .await?;
        Ok(())
    }
}

/// Connects as the worker with a Last Will of `lost`, and clears the
/// previous attempt's retained terminal event.
pub(super) async fn connect_reporter(
    broker: &BrokerSettings,
    reporter: &mut Reporter,
    watch: Vec<String>,
) -> Result<Publisher> {
    let mut options = ConnectOptions::new("worker");
    options.inflight = 4;
    options.last_will = Some(LastWill {
        topic: reporter.topic.clone(),
        payload: reporter.payload(
            EventKind::Lost,
            Some("the wrapper's connection was lost".into()),
            None,
        )?,
        retain: false,
    });
    let mut publisher = Publisher::connect_watching(broker, &options, watch).await?;
    if reporter.attempt > 1 {
        // The previous attempt's retained completed/error must not outlive it.
        publisher
            .publish(&reporter.topic, Vec::new(), true, PUBACK_WAIT)
            .await?;
    }
    Ok(publisher)
}

/// Fails the attempt before the agent ran: `error` of failure kind `kind`.
pub(super) async fn report_failure(
    reporter: &mut Reporter,
    mut publisher: Publisher,
    reason: &str,
    kind: &str,
) {
    let data = serde_json::json!({ "kind": kind });
    let _ = reporter
        .send(
            &mut publisher,
            EventKind::Error,
            Some(reason.to_owned()),
            Some(data),
        )
        .await;
    publisher.close().await;
}

/// Records the agent's group (and this wrapper as the pane's process) and
/// reports `started`; a failure of either is said, never fatal.
pub(super) async fn report_start(
    registry: &Registry,
    reporter: &mut Reporter,
    publisher: &mut Publisher,
    group: crate::proc::AgentGroup,
) {
    let pid = group.pgid;
    let recorded = registry.update(&reporter.job, |r| {
        let info = r.attempt_mut(reporter.attempt);
        info.pgid = Some(pid);
        info.pgid_start = group.leader_start;
        info.pane_pid = i32::try_from(std::process::id()).ok();
        info.started = Some(now_rfc3339());
    });
    if let Err(e) = recorded {
        eprintln!("[tmux-delegate] could not record the agent's process group: {e:#}");
    }
    let data = serde_json::json!({ "pid": pid, "pgid": pid });
    if let Err(e) = reporter
        .send(publisher, EventKind::Started, None, Some(data))
        .await
    {
        eprintln!("[tmux-delegate] could not report `started`: {e}");
    }
}

/// Records the agent's exit code, then reports `exited` (after a refusal's
/// `error`, if the agent's last words were one).
pub(super) async fn report_exit(
    registry: &Registry,
    agent: &AgentDef,
    reporter: &mut Reporter,
    mut publisher: Publisher,
    code: i32,
) {
    // Durable before it is published: a broker outage or a Last Will can
    // then never turn this exit into `lost` (SPEC: what the wrapper saw wins).
    let attempt = reporter.attempt;
    if let Err(e) = registry.update(&reporter.job, |r| {
        r.attempt_mut(attempt).exit_code = Some(code);
    }) {
        eprintln!("[tmux-delegate] could not record the agent's exit: {e:#}");
    }
    report_refusal(agent, reporter, &mut publisher, code).await;
    let message = format!("the agent exited with code {code}");
    let data = serde_json::json!({ "code": code });
    if let Err(e) = reporter
        .send(
            &mut publisher,
            EventKind::Exited,
            Some(message.clone()),
            Some(data),
        )
        .await
    {
        say(&format!("tmux-delegate: could not report the exit: {e}"));
    }
    publisher.close().await;
    say(&format!("\n[tmux-delegate] {message}"));
}

/// An agent that exited refusing its configuration (its last words match
/// one of its `agent_config` screen rules) fails the attempt as kind
/// `agent_config` with those words and the fix, before `exited` is sent.
async fn report_refusal(
    agent: &AgentDef,
    reporter: &mut Reporter,
    publisher: &mut Publisher,
    code: i32,
) {
    use crate::agents::screens::{ScreenSet, ScreenState};
    if !agent.screens.iter().any(|r| {
        r.state == ScreenState::Limited || (code != 0 && r.state == ScreenState::AgentConfig)
    }) {
        return;
    }
    let Ok(rules) = ScreenSet::compile(&agent.screens) else {
        return;
    };
    let pane = match crate::tmux::own_pane_text() {
        Ok(pane) => pane,
        Err(e) => {
            eprintln!("[tmux-delegate] cannot read this pane to classify the exit: {e:#}");
            return;
        }
    };
    // A usage limit is not a failure (SPEC section 14): it comes first,
    // and is looked for at a zero exit too (Aider exits 0 after giving up
    // on a rate limit); a refusal only at a non-zero exit.
    let refusal = || (code != 0).then(|| rules.refusal(&pane)).flatten();
    let (reason, kind) = match rules.limit(&pane) {
        Some(limit) => (limit, "limited"),
        None => match refusal() {
            Some(refusal) => (refusal, "agent_config"),
            None => return,
        },
    };
    let data = serde_json::json!({ "kind": kind });
    if let Err(e) = reporter
        .send(publisher, EventKind::Error, Some(reason), Some(data))
        .await
    {
        eprintln!("[tmux-delegate] could not report the refusal: {e}");
    }
}
