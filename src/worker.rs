//! The window's wrapper (`tmux-delegate exec --job ID --attempt N`): the
//! pane's own process. It reads the 0600 job record, connects as the worker
//! with a Last Will of `lost`, clears the previous attempt's retained
//! terminal event, starts the agent argv (no shell) in its own process group
//! made the terminal's foreground group, records that group, reports
//! `started`, and when the agent ends reports `exited` with its code and
//! exits with that code. Secrets reach only the agent's environment.

use crate::agents::AgentDef;
use crate::config::BrokerSettings;
use crate::error::{config_error, Exit};
use crate::model::event::now_ts;
use crate::model::{Event, EventKind, JobId};
use crate::mqtt::client::Publisher;
use crate::mqtt::connect::{ConnectOptions, LastWill};
use crate::mqtt::sign::EventKey;
use crate::mqtt::topic::events_topic;
use crate::registry::{now_rfc3339, Record, Registry};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::time::Duration;

mod fence;
mod pane;

const PUBACK_WAIT: Duration = Duration::from_secs(10);

/// Runs one attempt of a job inside its window.
pub async fn run(registry: &Registry, job: &JobId, attempt: u32) -> Result<Exit> {
    if let Err(e) = crate::tmux::keep_own_pane() {
        tracing::warn!("cannot keep this pane after exit: {e:#}");
    }
    let (mut record, agent, broker, mut reporter) = load_attempt(registry, job, attempt)?;
    if let Some(owner) = record.fleet_owner.as_ref().filter(|o| !o.is_alive()) {
        say(&fence::explain(owner, false));
        return Ok(Exit::Raw(1));
    }
    let mut publisher = connect_reporter(&broker, &mut reporter).await?;
    if let Err(reason) = prepare_workspace(
        registry,
        &mut record,
        &agent,
        &broker,
        &mut reporter,
        &mut publisher,
    )
    .await
    {
        // Fails the attempt as kind `setup`; the worktree stays as it is.
        report_failure(&mut reporter, publisher, &reason, "setup").await;
        eprintln!("\n[tmux-delegate] {reason}");
        return Ok(Exit::Raw(1));
    }
    let argv = agent_argv(registry, job, &record, &agent, attempt)?;
    // Orphaned descendants of the agent (double forks, `setsid` daemons)
    // become the wrapper's children, so the end of the attempt finds them.
    if let Err(e) = crate::proc::become_subreaper() {
        tracing::warn!("cannot become a child subreaper: {e}");
    }
    // Window closed (SIGHUP) or the wrapper stopped (SIGTERM): handled, so
    // the wrapper outlives the agent long enough to stop its descendants.
    let mut stops = StopSignals::listen()?;
    let handoff = bind_handoff(registry, job, &mut reporter);
    let mut child = match spawn_agent(&argv, &record, &agent, &broker, &reporter) {
        Ok(child) => child,
        Err(e) => {
            // Tell the supervisor why, so the failure names the cause; a
            // program that cannot be started is a configuration problem,
            // which no retry fixes.
            let reason = format!(
                "cannot start the agent `{}`: {e}; {}",
                argv[0],
                crate::agents::preflight::install_help(&argv[0], &agent.name)
            );
            report_failure(&mut reporter, publisher, &reason, "agent_config").await;
            eprintln!("[tmux-delegate] {reason}");
            return Ok(Exit::Raw(127));
        }
    };
    let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
    // The agent leads its own group (process_group(0)): pgid == pid.
    let group = crate::proc::AgentGroup::led_by(pid);
    crate::proc::hand_terminal_to(group);
    // From here on the agent runs: nothing may end the wrapper before the
    // agent does, or the agent would be left without its reporter.
    report_start(registry, &mut reporter, &mut publisher, group).await;
    let grace = record.spec.tmux.kill_grace;
    let window = Window {
        handoff: handoff.as_ref(),
        publisher: &mut publisher,
        topic: &reporter.topic,
        owner: record.fleet_owner.as_ref(),
    };
    let ended = wait_for_agent(&mut child, pid, grace, &mut stops, window).await?;
    drop(handoff);
    let code = conclude(registry, &agent, &record, &mut reporter, publisher, ended).await;
    Ok(Exit::Raw(u8::try_from(code & 0xff).unwrap_or(1)))
}

/// Ends the attempt: the agent's leftovers stopped, its exit reported
/// (unless the window was closed or the attempt was fenced off). Returns
/// the agent's exit code.
async fn conclude(
    registry: &Registry,
    agent: &AgentDef,
    record: &Record,
    reporter: &mut Reporter,
    publisher: Publisher,
    (status, ended): (std::process::ExitStatus, Ended),
) -> i32 {
    crate::proc::take_terminal_back();
    // The attempt is over: whatever the agent left behind goes too.
    crate::proc::stop_descendants(record.spec.tmux.kill_grace, None).await;
    let code = exit_code(status);
    match (ended, record.fleet_owner.as_ref()) {
        // The window is gone: nobody reads the pane, and the Last Will
        // (`lost`) reports the closed window as it always did.
        (Ended::HungUp, _) => {}
        // Fenced off: another attempt runs elsewhere; this one says nothing.
        (Ended::OwnerGone, Some(owner)) => {
            fence::stand_down(publisher).await;
            say(&fence::explain(owner, true));
        }
        (_, owner) => {
            if owner.is_some() {
                // Before `exited`: the runner looks for it on the transition.
                pane::save(registry, &reporter.job, reporter.attempt);
            }
            report_exit(registry, agent, reporter, publisher, code).await;
        }
    }
    code
}

/// Why the wrapper stopped waiting for the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The agent exited by itself.
    Exited,
    /// SIGTERM to the wrapper: the agent was stopped.
    Stopped,
    /// The window was closed (SIGHUP): the agent was stopped.
    HungUp,
    /// A fleet job's runner is gone: the agent was stopped (`fence`).
    OwnerGone,
}

/// The job record and what it names for this attempt: the agent, the
/// worker's broker, and a reporter signing with the job's key.
fn load_attempt(
    registry: &Registry,
    job: &JobId,
    attempt: u32,
) -> Result<(Record, AgentDef, BrokerSettings, Reporter)> {
    let record = registry.load(job)?;
    let agent = record.agent.clone().ok_or_else(|| {
        config_error(format!(
            "the record of job {job} names no agent command; it was not created by `run`"
        ))
    })?;
    let broker = record
        .broker
        .clone()
        .ok_or_else(|| config_error(format!("the record of job {job} has no broker block")))?;
    let key = EventKey::from_hex(&record.event_key)
        .ok_or_else(|| config_error(format!("the record of job {job} has no valid event key")))?;
    let topic = events_topic(&broker.topic_prefix, job);
    let reporter = Reporter {
        job: job.clone(),
        attempt,
        key,
        topic,
        seq: 0,
        handoff: None,
    };
    Ok((record, agent, broker, reporter))
}

/// Connects as the worker with a Last Will of `lost`, and clears the
/// previous attempt's retained terminal event.
async fn connect_reporter(broker: &BrokerSettings, reporter: &mut Reporter) -> Result<Publisher> {
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
    let mut publisher = Publisher::connect(broker, &options).await?;
    if reporter.attempt > 1 {
        // The previous attempt's retained completed/error must not outlive it.
        publisher
            .publish(&reporter.topic, Vec::new(), true, PUBACK_WAIT)
            .await?;
    }
    Ok(publisher)
}

/// Fails the attempt before the agent ran: `error` of failure kind `kind`.
async fn report_failure(
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

/// The agent's argv for this attempt, with Claude Code's hook settings
/// written next to the record when the agent reports through hooks.
fn agent_argv(
    registry: &Registry,
    job: &JobId,
    record: &Record,
    agent: &AgentDef,
    attempt: u32,
) -> Result<Vec<String>> {
    let settings = match agent.hooks {
        Some(crate::config::file::HookStyle::Claude) => {
            let exe =
                std::env::current_exe().context("locating tmux-delegate for the hook commands")?;
            let path = registry
                .job_dir(job)
                .join(format!("claude-settings-{attempt}.json"));
            crate::registry::write_atomic(
                &path,
                &crate::agents::claude_settings(&exe, agent.on_stop),
            )?;
            path.display().to_string()
        }
        None => String::new(),
    };
    Ok(agent.argv(&crate::agents::Substitutions {
        prompt: &record.spec.prompt,
        job: job.as_str(),
        settings: &settings,
    }))
}

/// Records the agent's group (and this wrapper as the pane's process) and
/// reports `started`; a failure of either is said, never fatal.
async fn report_start(
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
async fn report_exit(
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
    if code != 0 {
        report_refusal(agent, reporter, &mut publisher).await;
    }
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
async fn report_refusal(agent: &AgentDef, reporter: &mut Reporter, publisher: &mut Publisher) {
    use crate::agents::screens::{ScreenSet, ScreenState};
    if !agent
        .screens
        .iter()
        .any(|r| r.state == ScreenState::AgentConfig)
    {
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
    let Some(reason) = rules.refusal(&pane) else {
        return;
    };
    let data = serde_json::json!({ "kind": "agent_config" });
    if let Err(e) = reporter
        .send(publisher, EventKind::Error, Some(reason), Some(data))
        .await
    {
        eprintln!("[tmux-delegate] could not report the refusal: {e}");
    }
}

/// Writes a line to the pane, if it is still there (`eprintln!` panics
/// once the window is closed).
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// SIGTERM and SIGHUP, caught for the whole attempt.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> Result<StopSignals> {
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

/// `publish` in the window hands its events to this wrapper's open
/// connection through a 0600 socket in the job's directory (SPEC section
/// 13): one round trip to the broker instead of a new (TLS) connection.
fn bind_handoff(
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
struct Window<'a> {
    handoff: Option<&'a crate::mqtt::handoff::Server>,
    publisher: &'a mut Publisher,
    topic: &'a str,
    /// A fleet job's runner: the attempt ends when it is gone.
    owner: Option<&'a crate::registry::FleetOwner>,
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
async fn wait_for_agent(
    child: &mut tokio::process::Child,
    pid: i32,
    grace: Duration,
    stops: &mut StopSignals,
    window: Window<'_>,
) -> Result<(std::process::ExitStatus, Ended)> {
    let mut reap = tokio::time::interval(REAP_EVERY);
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
            Ok(stream) = next_client(window.handoff) => {
                crate::mqtt::handoff::Server::serve(stream, window.publisher, window.topic, PUBACK_WAIT).await;
            }
        }
    };
    crate::proc::stop_descendants(grace, Some(pid)).await;
    let status = child.wait().await.context("waiting for the agent")?;
    Ok((status, ended))
}

/// Builds and signs this attempt's events.
struct Reporter {
    job: JobId,
    attempt: u32,
    key: EventKey,
    topic: String,
    seq: u64,
    /// The window's publish socket, when the wrapper listens on one.
    handoff: Option<std::path::PathBuf>,
}

impl Reporter {
    fn payload(
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

    async fn send(
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

/// The agent's environment: the window's, plus the job's `[env]`, the
/// template's env, the `pass_env` values from the record, the worker's
/// `MQTT_*` and the `DELEGATE_*` variables.
fn agent_env(
    record: &Record,
    agent: &AgentDef,
    broker: &BrokerSettings,
    reporter: &Reporter,
) -> BTreeMap<String, Option<String>> {
    let mut env: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (k, v) in agent
        .env
        .iter()
        .chain(&record.spec.env)
        .chain(&record.pass_env)
    {
        env.insert(k.clone(), Some(v.clone()));
    }
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
    env.insert("MQTT_BROKER".into(), Some(broker.host.clone()));
    env.insert("MQTT_PORT".into(), Some(broker.port.to_string()));
    env.insert(
        "MQTT_TLS".into(),
        Some(if broker.tls { "1" } else { "0" }.into()),
    );
    env.insert("MQTT_USERNAME".into(), broker.username.clone());
    env.insert(
        "MQTT_PASSWORD".into(),
        broker.password.as_ref().map(|p| p.expose().to_owned()),
    );
    env.insert("MQTT_CA_CERTS".into(), path(&broker.ca_certs));
    env.insert("MQTT_CERTFILE".into(), path(&broker.certfile));
    env.insert("MQTT_KEYFILE".into(), path(&broker.keyfile));
    env.insert(
        "MQTT_CLIENT_ID_PREFIX".into(),
        Some(broker.client_id_prefix.clone()),
    );
    env.insert(
        "MQTT_TOPIC_PREFIX".into(),
        Some(broker.topic_prefix.clone()),
    );
    env.insert("DELEGATE_JOB_ID".into(), Some(reporter.job.to_string()));
    env.insert(
        "DELEGATE_ATTEMPT".into(),
        Some(reporter.attempt.to_string()),
    );
    env.insert("DELEGATE_TOPIC".into(), Some(reporter.topic.clone()));
    env.insert(
        crate::mqtt::handoff::SOCKET_VAR.into(),
        reporter.handoff.as_ref().map(|p| p.display().to_string()),
    );
    env.insert(
        crate::model::event::EVENT_KEY_VAR.into(),
        Some(reporter.key.to_hex()),
    );
    if let Ok(exe) = std::env::current_exe() {
        env.insert("TMUX_DELEGATE_BIN".into(), Some(exe.display().to_string()));
        if let Some(dir) = exe.parent() {
            let current = std::env::var("PATH").unwrap_or_default();
            if !std::env::split_paths(&current).any(|p| p == dir) {
                // So `tmux-delegate publish` works in the agent even when the
                // binary is not installed on PATH; appended, never shadowing.
                let joined = std::env::join_paths(
                    std::env::split_paths(&current).chain([dir.to_path_buf()]),
                )
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or(current);
                env.insert("PATH".into(), Some(joined));
            }
        }
    }
    env
}

fn spawn_agent(
    argv: &[String],
    record: &Record,
    agent: &AgentDef,
    broker: &BrokerSettings,
    reporter: &Reporter,
) -> std::io::Result<tokio::process::Child> {
    let mut command = tokio::process::Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .current_dir(&record.spec.workdir)
        .process_group(0)
        .kill_on_drop(false);
    for (name, value) in agent_env(record, agent, broker, reporter) {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    command.spawn()
}

/// The shell convention: the code, or 128 + the signal number.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// How often a long `setup` command reports that the wrapper is alive.
const SETUP_HEARTBEAT: Duration = Duration::from_secs(30);

/// For a worktree job: makes sure the attempt's worktree exists (a `fresh`
/// retry gets a new one), points the agent at it with `DELEGATE_WORKTREE`,
/// `DELEGATE_BRANCH` and `DELEGATE_BASE`, and runs the `setup` commands in
/// it, in this pane. The error is the reason the attempt fails (kind `setup`).
async fn prepare_workspace(
    registry: &Registry,
    record: &mut Record,
    agent: &AgentDef,
    broker: &BrokerSettings,
    reporter: &mut Reporter,
    publisher: &mut Publisher,
) -> std::result::Result<(), String> {
    let Some(current) = record.workspace.clone() else {
        return Ok(());
    };
    let job = reporter.job.clone();
    let attempt = reporter.attempt;
    let worktrees = crate::workspace::worktrees_dir(registry.root());
    let (workspace, changed) =
        crate::workspace::for_attempt(&current, &record.spec, attempt, &worktrees, job.as_str())
            .map_err(|e| format!("cannot prepare the worktree: {e:#}"))?;
    if changed {
        let stored = workspace.clone();
        registry
            .update(&job, |r| r.workspace = Some(stored))
            .map_err(|e| format!("cannot record the worktree: {e:#}"))?;
    }
    // The agent (and the setup commands) run in the worktree.
    record.spec.workdir = workspace.agent_dir();
    record.spec.env.extend(workspace.env());
    record.workspace = Some(workspace);
    for argv in record.spec.workspace.setup.clone() {
        let shown = argv.join(" ");
        eprintln!("[tmux-delegate] setup: {shown}");
        let _ = reporter
            .send(
                publisher,
                EventKind::Progress,
                Some(format!("setup: {shown}")),
                None,
            )
            .await;
        let mut child = spawn_agent(&argv, record, agent, broker, reporter)
            .map_err(|e| format!("setup command `{shown}` cannot start: {e}"))?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        let group = crate::proc::AgentGroup::led_by(pid);
        crate::proc::hand_terminal_to(group);
        // So `kill` and timeouts stop the setup command like an agent.
        let _ = registry.update(&job, |r| {
            let info = r.attempt_mut(attempt);
            info.pgid = Some(pid);
            info.pgid_start = group.leader_start;
        });
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                () = tokio::time::sleep(SETUP_HEARTBEAT) => {
                    let _ = reporter.send(publisher, EventKind::Heartbeat, Some(format!("setup: {shown}")), None).await;
                }
            }
        };
        crate::proc::take_terminal_back();
        let code = status
            .map(exit_code)
            .map_err(|e| format!("waiting for `{shown}`: {e}"))?;
        if code != 0 {
            return Err(format!("setup command `{shown}` exited with code {code}"));
        }
    }
    Ok(())
}
