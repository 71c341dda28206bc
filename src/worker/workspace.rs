//! A worktree job's workspace before the agent starts: the attempt's
//! worktree made sure of, the agent pointed at it, and the `setup` commands
//! run in this pane.

use super::agent::{exit_code, spawn_agent};
use super::report::Reporter;
use crate::agents::AgentDef;
use crate::config::BrokerSettings;
use crate::model::EventKind;
use crate::mqtt::client::Publisher;
use crate::registry::{Record, Registry};
use std::time::Duration;

/// How often a long `setup` command reports that the wrapper is alive.
const SETUP_HEARTBEAT: Duration = Duration::from_secs(30);

/// For a worktree job: makes sure the attempt's worktree exists (a `fresh`
/// retry gets a new one), points the agent at it with `DELEGATE_WORKTREE`,
/// `DELEGATE_BRANCH` and `DELEGATE_BASE`, and runs the `setup` commands in
/// it, in this pane. The error is the reason the attempt fails (kind `setup`).
pub(super) async fn prepare_workspace(
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
