//! The driver's MQTT side: each message on a job's events topic decoded
//! into an event for the core (which decides, by `model::admission`,
//! whether it acts). The subscriber runs in its own task
//! (`mqtt::client::forward`).

use super::Driver;
use crate::model::{EventKind, FailureKind};
use crate::mqtt::client::Message;
use crate::mqtt::event::{decode, Decoded};
use crate::mqtt::sign::check;
use crate::mqtt::topic::job_of_topic;
use crate::supervisor::core::{Incoming, Input};
use std::time::Instant;

impl Driver {
    pub(super) fn on_message(&mut self, message: &Message) {
        let Some(job) = job_of_topic(&self.topic_prefix, &message.topic) else {
            return;
        };
        let Some(runtime) = self.jobs.get(&job) else {
            return;
        };
        let received = match decode(&message.payload) {
            Ok(Decoded::Event(event)) => event,
            Ok(Decoded::Cleared) => return,
            Err(e) => {
                tracing::warn!("job {job}: ignoring a message: {e}");
                return;
            }
        };
        // Whether the event acts (its job, attempt, signature) is the
        // core's to decide, by `model::admission`: here it is only decoded.
        let signature = check(Some(&runtime.key), received.raw.as_ref());
        let exit_code = (received.event == EventKind::Exited)
            .then(|| received.data.as_ref()?.get("code")?.as_i64())
            .flatten()
            .and_then(|c| i32::try_from(c).ok());
        // The wrapper names why it failed (`agent_config`, `setup`); a
        // usage limit is kind `limited`, or Claude Code's `rate_limit`.
        let failure_kind = (received.event == EventKind::Error)
            .then(|| failure_kind_of(received.data.as_ref()?))
            .flatten();
        let limit_resets = (failure_kind == Some(FailureKind::Limited))
            .then(|| limit_resets(received.message.as_deref()?))
            .flatten();
        let event = Incoming {
            limit_resets,
            failure_kind,
            kind: received.event,
            attempt: received.attempt,
            job_named: received.job,
            message: received.message,
            exit_code,
            signature,
            sent: received.ts,
            data: received.data,
        };
        self.core
            .handle(Instant::now(), Input::Event { job, event });
    }
}

/// Why an `error` event says the attempt failed: its `data.kind`, or
/// `limited` for Claude Code's StopFailure `error: "rate_limit"` (SPEC
/// section 14: a usage or rate limit is not a failure).
fn failure_kind_of(data: &serde_json::Value) -> Option<FailureKind> {
    if data.get("error").and_then(serde_json::Value::as_str) == Some("rate_limit") {
        return Some(FailureKind::Limited);
    }
    serde_json::from_value(data.get("kind")?.clone()).ok()
}

/// When the limit `message` names resets, on the supervisor's clock.
fn limit_resets(message: &str) -> Option<Instant> {
    let now = crate::supervisor::clock::unix_now();
    let at = crate::agents::limits::reset_at(message, now as i64)?;
    Some(crate::supervisor::clock::from_unix(
        at as f64,
        Instant::now(),
    ))
}
