//! Starting the agent (and a worktree's setup commands): its argv for the
//! attempt, its environment (the job's, the template's, the worker's
//! `MQTT_*`, the `DELEGATE_*` variables — secrets reach only it), in its
//! own process group; and the exit code of what ended.

use super::conversation::Tracker;
use super::report::Reporter;
use crate::agents::AgentDef;
use crate::config::BrokerSettings;
use crate::model::conversation::{continuation_prompt, Plan};
use crate::model::JobId;
use crate::registry::{Record, Registry};
use anyhow::{Context, Result};
use std::collections::BTreeMap;

/// The agent's argv for this attempt, with Claude Code's hook settings
/// written next to the record when the agent reports through hooks, and
/// what the attempt knows of its conversation (recorded before launch).
pub(super) fn agent_argv(
    registry: &Registry,
    job: &JobId,
    record: &Record,
    agent: &AgentDef,
    attempt: u32,
) -> Result<(Vec<String>, Tracker)> {
    let settings = hook_settings(registry, job, agent, attempt)?;
    let asked = record.next_turn.as_ref().filter(|t| t.attempt == attempt);
    let plan = crate::model::conversation::plan(
        record.spec.retry.conversation,
        agent.continue_command.is_some(),
        attempt,
        &record.attempts,
        asked.is_some_and(|t| t.fresh),
    );
    let follow_up = asked.and_then(|t| t.text.clone());
    let continues = match &plan {
        Plan::Continue(session) => Some(session.as_str()),
        Plan::Fresh(_) => None,
    };
    let mut tracker = Tracker::new(registry, job, record, agent, attempt, continues);
    let (prompt, continued) = match &plan {
        Plan::Continue(session) => {
            // A follow-up (`send` to a finished job) is the next turn as
            // typed; else the continuation says why the last attempt ended.
            let prompt = follow_up.unwrap_or_else(|| {
                continuation_prompt(
                    attempt - 1,
                    last_end(record, attempt).as_deref(),
                    &record.spec.prompt,
                )
            });
            registry.update(job, |r| {
                r.attempt_mut(attempt).continued_from = Some(session.clone());
            })?;
            super::say(&format!(
                "[tmux-delegate] attempt {attempt} continues the agent's conversation {session}"
            ));
            (prompt, true)
        }
        Plan::Fresh(why) => {
            if let Some(why) = why {
                super::say(&format!(
                    "[tmux-delegate] attempt {attempt} starts a new conversation: {why}"
                ));
                registry.update(job, |r| {
                    r.attempt_mut(attempt).fresh_because = Some(why.clone())
                })?;
            }
            // A new conversation has no history: a follow-up comes after
            // the task.
            let prompt = match follow_up {
                Some(text) => format!("{}\n\n{text}", record.spec.prompt),
                None => record.spec.prompt.clone(),
            };
            (prompt, false)
        }
    };
    let values = crate::agents::Substitutions {
        settings: &settings,
        ..tracker.values(&prompt)
    };
    // `plan` continues only an agent with a `continue_command`.
    let argv = continued
        .then(|| agent.continue_argv(&values))
        .flatten()
        .unwrap_or_else(|| agent.argv(&values));
    tracker.launched(registry, &argv);
    Ok((argv, tracker))
}

/// Claude Code's settings file with the reporting hooks, for an agent with
/// `hooks`: its path (empty for other agents).
fn hook_settings(
    registry: &Registry,
    job: &JobId,
    agent: &AgentDef,
    attempt: u32,
) -> Result<String> {
    let Some(crate::config::file::HookStyle::Claude) = agent.hooks else {
        return Ok(String::new());
    };
    let exe = std::env::current_exe().context("locating tmux-delegate for the hook commands")?;
    let path = registry
        .job_dir(job)
        .join(format!("claude-settings-{attempt}.json"));
    crate::registry::write_atomic(&path, &crate::agents::claude_settings(&exe, agent.on_stop))?;
    Ok(path.display().to_string())
}

/// How the previous attempt ended, for the continuation message: its
/// failure's reason, else its outcome (a `retry` of a completed job).
fn last_end(record: &Record, attempt: u32) -> Option<String> {
    let previous = record.attempt_info(attempt - 1);
    if previous.and_then(|a| a.outcome.as_deref()) == Some("limited") {
        // The job waited for the limit's reset: say so, not an old failure.
        return Some("it was paused by a usage limit, which has now reset".into());
    }
    record
        .failure
        .as_ref()
        .map(|f| f.reason.clone())
        .or_else(|| {
            record
                .attempt_info(attempt - 1)
                .and_then(|a| a.outcome.clone())
                .map(|outcome| format!("it {outcome}"))
        })
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

pub(super) fn spawn_agent(
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
pub(super) fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}
