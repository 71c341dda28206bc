//! The window's wrapper (`tmux-delegate exec --job ID --attempt N`): the
//! pane's own process. It reads the 0600 job record, connects as the worker
//! with a Last Will of `lost`, clears the previous attempt's retained
//! terminal event, starts the agent argv (no shell) in its own process group
//! made the terminal's foreground group, records that group, reports
//! `started`, and when the agent ends reports `exited` with its code and
//! exits with that code. Secrets reach only the agent's environment.
//!
//! This file is that sequence; its steps live beside it: `report` (the
//! signed events), `agent` (argv, environment, spawning), `workspace` (a
//! worktree and its setup), `wait` (serving the window while the agent
//! runs), `fence` (a fleet job dies with its runner), `pane` (the pane a
//! fleet job's log carries).

use crate::agents::AgentDef;
use crate::config::BrokerSettings;
use crate::error::{config_error, Exit};
use crate::model::JobId;
use crate::mqtt::client::Publisher;
use crate::mqtt::sign::EventKey;
use crate::mqtt::topic::events_topic;
use crate::registry::{Record, Registry};
use anyhow::Result;
use std::time::Duration;

mod agent;
mod conversation;
mod fence;
mod pane;
mod report;
mod wait;
mod workspace;

use agent::{agent_argv, exit_code, spawn_agent};
use report::{connect_reporter, report_exit, report_failure, report_start, Reporter};
use wait::{bind_handoff, wait_for_agent, StopSignals, Window};
use workspace::prepare_workspace;

/// How long a report waits for the broker's PUBACK.
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
    let (mut publisher, fence) = connect_window(&broker, &mut reporter, &record).await?;
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
    let (argv, mut tracker) = agent_argv(registry, job, &record, &agent, attempt)?;
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
        fence,
        registry,
        conversation: &mut tracker,
    };
    let ended = wait_for_agent(&mut child, pid, grace, &mut stops, window).await?;
    drop(handoff);
    let ending = Ending {
        status: ended.0,
        ended: ended.1,
        conversation: &mut tracker,
    };
    let code = conclude(registry, &agent, &record, &mut reporter, publisher, ending).await;
    Ok(Exit::Raw(u8::try_from(code & 0xff).unwrap_or(1)))
}

/// The wrapper's connection. A fleet job's window also watches its job's
/// fence on it: it learns of a newer attempt even while its runner is
/// frozen.
async fn connect_window(
    broker: &BrokerSettings,
    reporter: &mut Reporter,
    record: &Record,
) -> Result<(Publisher, Option<fence::Watch>)> {
    let watch: Vec<String> = record
        .fleet_owner
        .iter()
        .map(|_| crate::mqtt::topic::fence_topic(&broker.topic_prefix, &reporter.job))
        .collect();
    let attempt = reporter.attempt;
    let mut publisher = connect_reporter(broker, reporter, watch).await?;
    let fence = record.fleet_owner.as_ref().and_then(|owner| {
        Some(fence::Watch {
            incoming: publisher.take_incoming()?,
            attempt,
            runner: owner.runner.clone(),
        })
    });
    Ok((publisher, fence))
}

/// How the agent's run ended.
struct Ending<'a> {
    status: std::process::ExitStatus,
    ended: Ended,
    conversation: &'a mut conversation::Tracker,
}

/// Ends the attempt: the agent's leftovers stopped, what it left of its
/// conversation recorded, its exit reported (unless the window was closed
/// or the attempt was fenced off). Returns the agent's exit code.
async fn conclude(
    registry: &Registry,
    agent: &AgentDef,
    record: &Record,
    reporter: &mut Reporter,
    publisher: Publisher,
    ending: Ending<'_>,
) -> i32 {
    crate::proc::take_terminal_back();
    // The attempt is over: whatever the agent left behind goes too.
    crate::proc::stop_descendants(record.spec.tmux.kill_grace, None).await;
    let code = exit_code(ending.status);
    let ended = ending.ended;
    if !matches!(ended, Ended::OwnerGone | Ended::Superseded(_)) {
        // Before `exited`: the supervisor counts the tokens on the transition.
        let exited = (ended == Ended::Exited).then_some(code);
        ending.conversation.finish(registry, exited).await;
    }
    match (ended, record.fleet_owner.as_ref()) {
        // The window is gone: nobody reads the pane, and the Last Will
        // (`lost`) reports the closed window as it always did.
        (Ended::HungUp, _) => {}
        // Fenced off: another attempt runs elsewhere; this one says nothing.
        (Ended::OwnerGone, Some(owner)) => {
            fence::stand_down(publisher).await;
            say(&fence::explain(owner, true));
        }
        // A newer attempt runs elsewhere: silent too, and the runner (alive,
        // maybe frozen) is asked to let this attempt go without a retry.
        (Ended::Superseded(newer), Some(owner)) => {
            fence::stand_down(publisher).await;
            fence::tell_runner(registry, &reporter.job, owner);
            say(&fence::explain_superseded(owner, newer));
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
    /// The job's fence names a newer attempt (this one): the agent was
    /// stopped (`fence`).
    Superseded(u32),
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

/// Writes a line to the pane, if it is still there (`eprintln!` panics
/// once the window is closed).
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
