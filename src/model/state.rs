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
    /// Paused by a usage limit until its reset, then continued (SPEC
    /// section 14): not a failure.
    Limited,
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
            JobState::Limited => "limited",
        }
    }
}

impl JobState {
    /// Every state, for parsing and for tests that go over all of them.
    pub const ALL: [JobState; 12] = [
        JobState::Pending,
        JobState::Launching,
        JobState::Running,
        JobState::Waiting,
        JobState::Retrying,
        JobState::Completed,
        JobState::Failed,
        JobState::TimedOut,
        JobState::Cancelled,
        JobState::Queued,
        JobState::Skipped,
        JobState::Limited,
    ];

    /// The state named `name` (as `as_str` writes it).
    pub fn parse(name: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fleet job's state, as its retained state topic and `status` show it:
/// the supervisor's states on the runner that holds it (`queued` there is
/// also a claim by a runner with no free slot yet), plus the fleet's own,
/// before a runner holds it. On the wire, the same strings as ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FleetState {
    /// Published by `submit`; the offer is on its way to the pool.
    Submitted,
    /// Its runner went offline, or `retry` asked: offered again with the
    /// next attempt.
    Requeued,
    /// A runner refused the request (unknown agent, bad signature, workdir
    /// outside its root): final.
    Refused,
    /// What the supervisor on the job's runner says.
    Job(JobState),
}

impl FleetState {
    const OWN: [FleetState; 3] = [
        FleetState::Submitted,
        FleetState::Requeued,
        FleetState::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FleetState::Submitted => "submitted",
            FleetState::Requeued => "requeued",
            FleetState::Refused => "refused",
            FleetState::Job(state) => state.as_str(),
        }
    }

    pub fn parse(name: &str) -> Option<FleetState> {
        FleetState::OWN
            .into_iter()
            .find(|s| s.as_str() == name)
            .or_else(|| JobState::parse(name).map(FleetState::Job))
    }

    /// States after which nothing more happens to the job.
    pub fn is_terminal(self) -> bool {
        match self {
            FleetState::Refused => true,
            FleetState::Submitted | FleetState::Requeued => false,
            FleetState::Job(state) => state.is_finished(),
        }
    }
}

impl From<JobState> for FleetState {
    fn from(state: JobState) -> FleetState {
        FleetState::Job(state)
    }
}

impl PartialEq<JobState> for FleetState {
    fn eq(&self, other: &JobState) -> bool {
        *self == FleetState::Job(*other)
    }
}

impl std::fmt::Display for FleetState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FleetState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FleetState {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<FleetState, D::Error> {
        let name = String::deserialize(deserializer)?;
        FleetState::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown job state `{name}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_goes_over_the_wire_as_its_old_string_and_back() {
        let wire = [
            ("submitted", FleetState::Submitted),
            ("requeued", FleetState::Requeued),
            ("refused", FleetState::Refused),
            ("queued", FleetState::Job(JobState::Queued)),
        ];
        for (name, state) in wire {
            assert_eq!(serde_json::to_value(state).ok(), Some(name.into()));
            assert_eq!(serde_json::from_value(name.into()).ok(), Some(state));
        }
        for state in JobState::ALL {
            let fleet = FleetState::from(state);
            // The supervisor's states read the same as JobState's own serde.
            assert_eq!(
                serde_json::to_value(fleet).ok(),
                serde_json::to_value(state).ok()
            );
            assert_eq!(FleetState::parse(state.as_str()), Some(fleet));
            assert_eq!(fleet.is_terminal(), state.is_finished());
        }
        assert!(FleetState::Refused.is_terminal());
        assert!(!FleetState::Submitted.is_terminal() && !FleetState::Requeued.is_terminal());
        assert!(serde_json::from_value::<FleetState>("exploded".into()).is_err());
    }
}
