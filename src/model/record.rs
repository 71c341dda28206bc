//! The parts of a job record (`registry::Record`) that the supervisor and
//! the views read and fill in: the last event, the failure, each attempt's
//! window and process, and the checkpoint for `resume`.

use super::event::EventKind;
use serde::{Deserialize, Serialize};

/// The most recent event seen for a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastEvent {
    pub event: EventKind,
    pub attempt: u32,
    pub ts: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Why a job failed: the failure kind (`error`, `hung`, ...) and a reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureInfo {
    pub kind: String,
    pub reason: String,
}

/// What the registry knows about one attempt's window and process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttemptInfo {
    pub number: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pane_pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgid: Option<i32>,
    /// The group leader's start time (`/proc/PID/stat` field 22): checked
    /// before the group is signalled, so a reused pid is never taken for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgid_start: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The agent's exit code, recorded by the wrapper before it publishes
    /// `exited`: what the wrapper saw survives a broker outage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// What a supervisor that crashes leaves for `resume`: the first attempt of
/// the current retry budget, the job deadline (from the first launch) and a
/// pending backoff, as Unix seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ResumePoint {
    pub first_attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_deadline: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_until: Option<f64>,
}
