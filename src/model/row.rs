//! One job as `status --json` shows it (SPEC section 5): the same keys with
//! the same JSON types for a local job (`Record::row`, in `registry.rs`)
//! and a fleet job (`JobStatus::row`, in `fleet/message.rs`), which adds
//! its runner and pool. Timestamps are RFC 3339 strings everywhere.

use super::record::{FailureInfo, LastEvent, Work};
use super::state::FleetState;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusRow {
    pub id: String,
    pub name: String,
    /// Absent only for a fleet job submitted without an agent, before a
    /// runner chose its default.
    pub agent: Option<String>,
    pub state: FleetState,
    pub attempt: u32,
    /// Absent only for a fleet job no runner has held yet (or whose state
    /// a runner from before this field published).
    pub max_attempts: Option<u32>,
    pub created: String,
    pub updated: String,
    pub last_event: Option<LastEvent>,
    /// Kind and reason, when the job failed.
    pub failure: Option<FailureInfo>,
    /// Why the job is in its state: a `waiting` job's question, a failure's
    /// reason, what the fleet said (a refusal, a requeue).
    pub reason: Option<String>,
    /// A `limited` job: when it continues (RFC 3339; SPEC section 14).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// `session`, `result` and `usage` (SPEC section 14).
    #[serde(flatten)]
    pub work: Work,
    /// Only in a fleet job's row.
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetPlace>,
}

/// Where a fleet job is: the runner that holds it (none while it is on
/// offer) and its pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetPlace {
    pub runner: Option<String>,
    pub pool: String,
}

/// Unix seconds as the registry writes its times (RFC 3339, milliseconds).
pub fn rfc3339(ts: f64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::try_from_secs_f64(ts).unwrap_or_default();
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn unix_seconds_become_the_registrys_timestamps() {
        assert_eq!(
            super::rfc3339(1_764_074_821.469),
            "2025-11-25T12:47:01.469Z"
        );
        assert_eq!(super::rfc3339(-1.0), "1970-01-01T00:00:00.000Z");
    }
}
