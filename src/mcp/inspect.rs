//! `logs` and `diff`: what the commands show, as short JSON (the last
//! lines only; a diff cut at `DIFF_LIMIT`).

use super::params::{DiffParams, LogsParams};
use super::place::{row, Place};
use crate::error::config_error;
use serde_json::{json, Value};

/// `logs`' lines when the call gives no number, and the most it may ask.
const DEFAULT_LINES: usize = 40;
const MAX_LINES: usize = 500;
/// The most of a diff one call returns (bytes).
const DIFF_LIMIT: usize = 64 * 1024;

pub async fn logs(params: LogsParams) -> anyhow::Result<Value> {
    let lines = params.lines.unwrap_or(DEFAULT_LINES);
    if lines == 0 || lines > MAX_LINES {
        return Err(config_error(format!(
            "lines {lines} is out of range: it is 1 to {MAX_LINES}"
        ))
        .into());
    }
    let place = Place::of(&params.id)?;
    match &place {
        Place::Local {
            registry,
            job,
            record,
        } => {
            let history: Vec<String> = registry
                .history(job)?
                .iter()
                .map(crate::ui::history::describe)
                .collect();
            let pane = crate::tmux::job_window::pane_lines(record).await;
            Ok(json!({
                "id": record.id,
                "name": record.spec.name,
                "agent": record.spec.agent,
                "state": record.state.as_str(),
                "attempt": record.attempt,
                "history": last(history, lines),
                "pane": last(pane, lines),
            }))
        }
        Place::Fleet { config, job } => {
            match crate::fleet::joblog::fetch(config, job.as_str()).await? {
                Some(log) => Ok(json!({
                    "id": log.job,
                    "name": log.name,
                    "agent": log.agent,
                    "state": log.state.as_str(),
                    "attempt": log.attempt,
                    "runner": log.runner,
                    "history": last(log.lines, lines),
                    "pane": last(
                        log.pane.unwrap_or_default().lines().map(str::to_owned).collect(),
                        lines
                    ),
                })),
                None => {
                    let mut row = row(&place).await?;
                    row["history"] = json!([]);
                    row["note"] = json!("no log: no runner has started the job");
                    Ok(row)
                }
            }
        }
    }
}

/// The last `n` of `lines`.
fn last(mut lines: Vec<String>, n: usize) -> Vec<String> {
    let drop = lines.len().saturating_sub(n);
    lines.drain(..drop);
    lines
}

pub fn diff(params: &DiffParams) -> anyhow::Result<Value> {
    let record = match Place::of(&params.id)? {
        Place::Local { record, .. } => record,
        Place::Fleet { job, .. } => {
            return Err(config_error(format!(
                "job {job} is a fleet job: its worktree is on its runner's host"
            ))
            .help("ask for its diff on that host: tmux-delegate diff ID")
            .into())
        }
    };
    let mut text = crate::workspace::inspect::diff_text(record.worktree()?, params.stat)?;
    let truncated = text.len() > DIFF_LIMIT;
    if truncated {
        let mut end = DIFF_LIMIT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    Ok(json!({"id": record.id, "diff": text, "truncated": truncated}))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_last_lines_are_kept() {
        let lines: Vec<String> = (1..=5).map(|n| n.to_string()).collect();
        assert_eq!(super::last(lines.clone(), 2), ["4", "5"]);
        assert_eq!(super::last(lines, 9).len(), 5);
    }
}
