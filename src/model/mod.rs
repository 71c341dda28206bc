//! The vocabulary every part shares, with no I/O: job ids, events, states,
//! failure kinds, the `status --json` row, the policy data a job carries,
//! the parts of a record the supervisor fills in, and the one rule for
//! admitting an event (`admission`). The supervisor's core, the registry, the views
//! and the MQTT codec all import these from here, so none of them needs the
//! others for its types (the rules are enforced by `tests/architecture.rs`).

pub mod admission;
pub mod conversation;
pub mod event;
pub mod fence;
pub mod id;
pub mod policy;
pub mod record;
pub mod row;
pub mod state;
pub mod transition;

pub use admission::{admit, Admission, Claim, EventPolicy};
pub use event::{Event, EventKind, Meaning, Signature};
pub use fence::Fence;
pub use id::JobId;
pub use policy::{
    Budget, FailureKind, LimitPolicy, Liveness, OnLimit, OnWaiting, RetryPolicy, Timeouts,
};
pub use record::{
    AttemptInfo, FailureInfo, LastEvent, Price, ResumePoint, Session, TranscriptFormat, Usage,
    UsageSource, Work,
};
pub use row::StatusRow;
pub use state::{FleetState, JobState};
pub use transition::Transition;
