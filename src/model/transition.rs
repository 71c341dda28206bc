//! A job's move from one state to another, as it is written into its record
//! and history (`Record::apply_transition`, `Registry::record_transition`):
//! the same data whoever moves it — the supervisor, the stop path of `kill`,
//! `watch` for a job no supervisor owns.

use super::record::FailureInfo;
use super::state::JobState;

#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// When it happened (Unix seconds), for the history.
    pub ts: f64,
    pub attempt: u32,
    pub from: JobState,
    pub to: JobState,
    pub reason: Option<String>,
    /// Why the job failed, for a failure (`None` keeps the record's).
    pub failure: Option<FailureInfo>,
}
