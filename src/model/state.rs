//! A job's state, as the supervisor moves it and the registry stores it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    Launching,
    Running,
    Waiting,
    Retrying,
    Completed,
    Failed,
    TimedOut,
    Cancelled,
    /// Waiting for a free slot (`max_parallel`) or for its dependencies.
    Queued,
    /// Never ran: a dependency failed or was cancelled (terminal).
    Skipped,
}

impl JobState {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Completed
                | JobState::Failed
                | JobState::TimedOut
                | JobState::Cancelled
                | JobState::Skipped
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Launching => "launching",
            JobState::Running => "running",
            JobState::Waiting => "waiting",
            JobState::Retrying => "retrying",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::TimedOut => "timed_out",
            JobState::Cancelled => "cancelled",
            JobState::Queued => "queued",
            JobState::Skipped => "skipped",
        }
    }
}
