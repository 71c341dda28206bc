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
use crate::mqtt::client::Publisher;
use crate::mqtt::connect::ConnectOptions;
use crate::mqtt::event::{now_ts, Event, EventKind};
use crate::mqtt::sign::EventKey;
use crate::mqtt::topic::{events_topic, JobId};
use crate::registry::{now_rfc3339, Record, Registry};
use anyhow::{Context, Result};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;
use rumqttc::v5::mqttbytes::v5::LastWill;
use rumqttc::v5::mqttbytes::QoS;
use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::time::Duration;

const PUBACK_WAIT: Duration = Duration::from_secs(10);

/// Runs one attempt of a job inside its window.
pub async fn run(registry: &Registry, job: &JobId, attempt: u32) -> Result<Exit> {
    if let Err(e) = crate::tmux::keep_own_pane() {
        tracing::warn!("cannot keep this pane after exit: {e:#}");
    }
    let mut record = registry.load(job)?;
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
    let mut reporter = Reporter {
        job: job.clone(),
        attempt,
        key,
        topic,
        seq: 0,
        handoff: None,
    };

    let mut options = ConnectOptions::new("worker");
    options.inflight = 4;
    options.last_will = Some(LastWill::new(
        reporter.topic.clone(),
        reporter.payload(
            EventKind::Lost,
            Some("the wrapper's connection was lost".into()),
            None,
        )?,
        QoS::AtLeastOnce,
        false,
        None,
    ));
    let mut publisher = Publisher::connect(&broker, &options).await?;
    if attempt > 1 {
        // The previous attempt's retained completed/error must not outlive it.
        publisher
            .publish(&reporter.topic, Vec::new(), true, PUBACK_WAIT)
            .await?;
    }

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
        let data = serde_json::json!({ "kind": "setup" });
        let _ = reporter
            .send(
                &mut publisher,
                EventKind::Error,
                Some(reason.clone()),
                Some(data),
            )
            .await;
        publisher.close().await;
        eprintln!("\n[tmux-delegate] {reason}");
        return Ok(Exit::Raw(1));
    }

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
    let argv = agent.argv(&crate::agents::Substitutions {
        prompt: &record.spec.prompt,
        job: job.as_str(),
        settings: &settings,
    });
    // `publish` in the window hands its events to this connection.
    let handoff = match crate::mqtt::handoff::Server::bind(&registry.job_dir(job).join("pub.sock"))
    {
        Ok(server) => Some(server),
        Err(e) => {
            tracing::warn!("no publish socket for the window (publish connects itself): {e}");
            None
        }
    };
    reporter.handoff = handoff.as_ref().map(|s| s.path().to_path_buf());
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
            let _ = reporter
                .send(
                    &mut publisher,
                    EventKind::Error,
                    Some(reason.clone()),
                    Some(serde_json::json!({ "kind": "agent_config" })),
                )
                .await;
            publisher.close().await;
            eprintln!("[tmux-delegate] {reason}");
            return Ok(Exit::Raw(127));
        }
    };
    let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
    // The agent leads its own group (process_group(0)): pgid == pid.
    hand_terminal_to(pid);
    // From here on the agent runs: nothing may end the wrapper before the
    // agent does, or the agent would be left without its reporter.
    let recorded = registry.update(job, |r| {
        let info = r.attempt_mut(attempt);
        info.pgid = Some(pid);
        info.pane_pid = i32::try_from(std::process::id()).ok();
        info.started = Some(now_rfc3339());
    });
    if let Err(e) = recorded {
        eprintln!("[tmux-delegate] could not record the agent's process group: {e:#}");
    }
    let data = serde_json::json!({ "pid": pid, "pgid": pid });
    if let Err(e) = reporter
        .send(&mut publisher, EventKind::Started, None, Some(data))
        .await
    {
        eprintln!("[tmux-delegate] could not report `started`: {e}");
    }

    let status = match &handoff {
        Some(server) => loop {
            tokio::select! {
                status = child.wait() => break status,
                client = server.accept() => {
                    if let Ok(stream) = client {
                        crate::mqtt::handoff::Server::serve(stream, &mut publisher, &reporter.topic, PUBACK_WAIT).await;
                    }
                }
            }
        },
        None => child.wait().await,
    }
    .context("waiting for the agent")?;
    drop(handoff);
    take_terminal_back();
    let code = exit_code(status);
    // Durable before it is published: a broker outage or a Last Will can
    // then never turn this exit into `lost` (SPEC: what the wrapper saw wins).
    if let Err(e) = registry.update(job, |r| r.attempt_mut(attempt).exit_code = Some(code)) {
        eprintln!("[tmux-delegate] could not record the agent's exit: {e:#}");
    }
    if code != 0 {
        report_refusal(&agent, &mut reporter, &mut publisher).await;
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
        eprintln!("tmux-delegate: could not report the exit: {e}");
    }
    publisher.close().await;
    eprintln!("\n[tmux-delegate] {message}");
    Ok(Exit::Raw(u8::try_from(code & 0xff).unwrap_or(1)))
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
        crate::mqtt::sign::EVENT_KEY_VAR.into(),
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

/// Runs `f` with SIGTTOU blocked: a process may then change the terminal's
/// foreground group even when it is not in it (as shells do).
fn with_sigttou_blocked(f: impl FnOnce()) {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTTOU);
    let mut old = SigSet::empty();
    let blocked =
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old)).is_ok();
    f();
    if blocked {
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
}

/// Makes the agent's group the terminal's foreground group, so it gets the
/// pane's keyboard signals and can use the terminal without SIGTTOU/SIGTTIN.
fn hand_terminal_to(pgid: i32) {
    if pgid <= 1 {
        return;
    }
    with_sigttou_blocked(|| {
        let stdin = std::io::stdin();
        let _ = nix::unistd::tcsetpgrp(stdin.as_fd(), Pid::from_raw(pgid));
    });
    // If the agent touched the terminal before the hand-over it was stopped:
    // let it go on.
    let _ = crate::proc::signal_group(pgid, Signal::SIGCONT);
}

fn take_terminal_back() {
    with_sigttou_blocked(|| {
        let stdin = std::io::stdin();
        let _ = nix::unistd::tcsetpgrp(stdin.as_fd(), nix::unistd::getpgrp());
    });
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
        hand_terminal_to(pid);
        // So `kill` and timeouts stop the setup command like an agent.
        let _ = registry.update(&job, |r| r.attempt_mut(attempt).pgid = Some(pid));
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                () = tokio::time::sleep(SETUP_HEARTBEAT) => {
                    let _ = reporter.send(publisher, EventKind::Heartbeat, Some(format!("setup: {shown}")), None).await;
                }
            }
        };
        take_terminal_back();
        let code = status
            .map(exit_code)
            .map_err(|e| format!("waiting for `{shown}`: {e}"))?;
        if code != 0 {
            return Err(format!("setup command `{shown}` exited with code {code}"));
        }
    }
    Ok(())
}
