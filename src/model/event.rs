//! Events as the domain sees them: their kinds, the event object, how its
//! signature checked out, and what each kind means for the job's state.
//! The wire codec and the signing live in `mqtt/`.

use super::state::JobState;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventKind {
    Started,
    Heartbeat,
    Progress,
    Waiting,
    Completed,
    Error,
    Exited,
    Lost,
    /// A name this version does not know: recorded, otherwise ignored.
    Other(String),
}

impl EventKind {
    pub const KNOWN: [&'static str; 8] = [
        "started",
        "heartbeat",
        "progress",
        "waiting",
        "completed",
        "error",
        "exited",
        "lost",
    ];

    pub fn from_name(name: &str) -> EventKind {
        match name {
            "started" => EventKind::Started,
            "heartbeat" => EventKind::Heartbeat,
            "progress" => EventKind::Progress,
            "waiting" => EventKind::Waiting,
            "completed" => EventKind::Completed,
            "error" => EventKind::Error,
            "exited" => EventKind::Exited,
            "lost" => EventKind::Lost,
            other => EventKind::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            EventKind::Started => "started",
            EventKind::Heartbeat => "heartbeat",
            EventKind::Progress => "progress",
            EventKind::Waiting => "waiting",
            EventKind::Completed => "completed",
            EventKind::Error => "error",
            EventKind::Exited => "exited",
            EventKind::Lost => "lost",
            EventKind::Other(name) => name,
        }
    }

    /// `completed` and `error` end an attempt; they are published retained.
    pub fn is_terminal(&self) -> bool {
        matches!(self, EventKind::Completed | EventKind::Error)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|name| EventKind::from_name(&name))
    }
}

/// One event as published by tmux-delegate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub job: String,
    pub event: EventKind,
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub ts: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

/// How an event's signature checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signature {
    Valid,
    Unsigned,
    Invalid,
    /// No key is known for the job here, so nothing could be checked.
    Unchecked,
}

/// The variable that carries a job's key into its window (and nowhere else).
pub const EVENT_KEY_VAR: &str = "DELEGATE_EVENT_KEY";

/// The wall-clock time as an event's `ts` (Unix seconds). The supervisor's
/// core never calls it: its callers pass the time in.
pub fn now_ts() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What an event says about its job, before any policy (retries,
/// `on_waiting`, `complete_on_exit`) applies. The supervisor's core and
/// `watch` (for jobs no supervisor owns) both read events through this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// `started`, `heartbeat`, `progress`: the agent is working.
    Alive,
    /// The agent waits for a human.
    Waiting,
    Completed,
    /// The agent reported an error.
    Failed,
    /// The wrapper saw the agent exit (with a code in the event's data).
    Exited,
    /// The wrapper's connection was lost (its Last Will).
    Lost,
    /// A kind this version does not know: recorded, otherwise ignored.
    Unknown,
}

impl Meaning {
    pub fn of(kind: &EventKind) -> Meaning {
        match kind {
            EventKind::Started | EventKind::Heartbeat | EventKind::Progress => Meaning::Alive,
            EventKind::Waiting => Meaning::Waiting,
            EventKind::Completed => Meaning::Completed,
            EventKind::Error => Meaning::Failed,
            EventKind::Exited => Meaning::Exited,
            EventKind::Lost => Meaning::Lost,
            EventKind::Other(_) => Meaning::Unknown,
        }
    }

    /// The state the event announces on its own; `None` when it takes more
    /// than the event to decide (an exit code, a lost connection).
    pub fn state(self) -> Option<JobState> {
        match self {
            Meaning::Alive => Some(JobState::Running),
            Meaning::Waiting => Some(JobState::Waiting),
            Meaning::Completed => Some(JobState::Completed),
            Meaning::Failed => Some(JobState::Failed),
            Meaning::Exited | Meaning::Lost | Meaning::Unknown => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_kind_has_a_meaning_and_unknown_ones_move_nothing() {
        for name in EventKind::KNOWN {
            assert_ne!(
                Meaning::of(&EventKind::from_name(name)),
                Meaning::Unknown,
                "{name}"
            );
        }
        let other = Meaning::of(&EventKind::from_name("nonsense"));
        assert_eq!(other, Meaning::Unknown);
        assert_eq!(other.state(), None);
        assert_eq!(
            Meaning::of(&EventKind::Heartbeat).state(),
            Some(JobState::Running)
        );
        assert_eq!(
            Meaning::of(&EventKind::Error).state(),
            Some(JobState::Failed)
        );
    }
}
