//! Outcome hooks (`[hooks]`): `on_done`, `on_failed`, `on_waiting` run in
//! the background with the job on stdin; a slow or failing hook never
//! holds up or fails supervision.

use super::Driver;
use crate::model::JobState;
use std::time::Duration;

/// How long `run` waits at its end for outcome hooks still running.
pub(super) const HOOK_GRACE: Duration = Duration::from_secs(10);

impl Driver {
    /// `on_done`, `on_failed` or `on_waiting`, for the state reached.
    pub(super) fn run_outcome_hook(
        &mut self,
        to: JobState,
        record: &crate::registry::Record,
        reason: Option<&str>,
    ) {
        let hook = match to {
            JobState::Completed => &self.hooks.on_done,
            JobState::Failed | JobState::TimedOut => &self.hooks.on_failed,
            JobState::Waiting => &self.hooks.on_waiting,
            // Once its wait is known (the checkpoint): `until` is in its row.
            JobState::Limited => &self.hooks.on_limited,
            _ => &None,
        };
        if let Some(argv) = hook {
            let task = run_hook(argv.clone(), hook_input(record, reason));
            self.hook_tasks.retain(|t| !t.is_finished());
            self.hook_tasks.push(task);
        }
    }
}

/// The job as a hook sees it on stdin (the `status --json` shape, plus why).
fn hook_input(record: &crate::registry::Record, reason: Option<&str>) -> serde_json::Value {
    let mut input = record.summary();
    input["reason"] = serde_json::json!(reason);
    input["workdir"] = serde_json::json!(record.spec.workdir);
    if let Some(workspace) = &record.workspace {
        // Where the work is (no git call here: hooks must not wait on it).
        input["workspace"] = serde_json::json!({
            "path": workspace.path,
            "branch": workspace.branch,
            "base": workspace.base,
        });
    }
    input
}

/// Runs an outcome hook (argv, no shell) with `input` on stdin, in the
/// background: a slow or failing hook is logged and never holds up or
/// fails supervision.
fn run_hook(argv: Vec<String>, input: serde_json::Value) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let spawned = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => return tracing::warn!("hook `{}` could not start: {e}", argv[0]),
        };
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input.to_string().as_bytes()).await;
        }
        match tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await {
            Ok(Ok(out)) if out.status.success() => {}
            Ok(Ok(out)) => tracing::warn!(
                "hook `{}` failed ({}): {}",
                argv[0],
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Ok(Err(e)) => tracing::warn!("hook `{}`: {e}", argv[0]),
            Err(_) => tracing::warn!("hook `{}` ran for over a minute; left running", argv[0]),
        }
    })
}
