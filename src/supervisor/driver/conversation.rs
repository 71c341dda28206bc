//! The agent's work, beside its process (SPEC section 14): the
//! conversation id and transcript an admitted event names (Claude Code's
//! SessionStart hook sends `session_id` and `transcript_path`), the final
//! answer a `completed` carries (`last_assistant_message`), and the tokens
//! the transcript reports, read when a turn or an attempt ends: from where
//! the window's wrapper said (`usage_source`: the agent's transcript in its
//! format, from this attempt's mark), else from the session's transcript.

use super::Driver;
use crate::agents::conversation::valid_session_id;
use crate::agents::transcript::Prices;
use crate::model::{EventKind, JobId, JobState, Session, UsageSource};
use crate::registry::Record;
use crate::supervisor::core::{Incoming, Input};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often a job with a budget has its tokens counted mid-turn.
const BUDGET_CHECK_EVERY: Duration = Duration::from_secs(5);
/// How long a completed agent is left running for its transcript to hold
/// the turn it finished, before it is stopped.
const TRANSCRIPT_SETTLE: Duration = Duration::from_secs(5);
const TRANSCRIPT_POLL: Duration = Duration::from_millis(50);

/// What an admitted event says of the attempt's conversation.
#[derive(Debug, Default, PartialEq)]
struct Noted {
    session: Option<Session>,
    result: Option<String>,
}

fn noted(event: &Incoming) -> Noted {
    let Some(data) = &event.data else {
        return Noted::default();
    };
    let text = |key: &str| {
        data.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let session = text("session_id")
        .filter(|id| valid_session_id(id))
        .map(|id| Session {
            id,
            agent: None,
            transcript: text("transcript_path").filter(|p| Path::new(p).is_absolute()),
        });
    // A turn's answer: the job's result when it completes, and its latest
    // answer while it waits at its prompt between turns (a Stop hook
    // reporting `waiting`); a question or a progress note is not one.
    let result = matches!(event.kind, EventKind::Completed | EventKind::Waiting)
        .then(|| text("last_assistant_message"))
        .flatten();
    Noted { session, result }
}

impl Driver {
    /// Counts the attempt's tokens again (once its agent is gone: Claude
    /// Code writes the last answer's line into its transcript after its
    /// Stop hook has run; or mid-turn). The record as written, when the
    /// attempt has a transcript; without one the record is not rewritten.
    pub(super) fn recount_tokens(&self, job: &JobId, attempt: u32) -> Option<Record> {
        let record = self.registry.load(job).ok()?;
        usage_source(&record, attempt)?;
        self.registry
            .update(job, |r| count_attempt_tokens(r, attempt, &self.prices))
            .inspect_err(|e| tracing::warn!("job {job}: cannot record its tokens: {e:#}"))
            .ok()
    }

    /// Mid-turn (a heartbeat or progress event), the tokens counted again
    /// at most every `BUDGET_CHECK_EVERY`, for a job with a budget.
    pub(super) fn count_mid_turn(&mut self, job: &JobId, attempt: u32, kind: &EventKind) {
        let mid_turn = matches!(kind, EventKind::Heartbeat | EventKind::Progress);
        let has_budget = self.jobs.get(job).is_some_and(|r| r.has_budget);
        let due = self
            .last_count
            .get(job)
            .is_none_or(|at| at.elapsed() >= BUDGET_CHECK_EVERY);
        if !(mid_turn && has_budget && due) {
            return;
        }
        self.last_count.insert(job.clone(), Instant::now());
        if let Some(record) = self.recount_tokens(job, attempt) {
            self.check_budget(&record, attempt);
        }
    }

    /// Stops the attempt (kind `budget`) once its tokens pass its budget.
    pub(super) fn check_budget(&mut self, record: &Record, attempt: u32) {
        let Some(usage) = record.attempt_info(attempt).and_then(|a| a.usage) else {
            return;
        };
        if let (Some(reason), Ok(job)) = (
            record.spec.budget.exceeded_by(&usage),
            JobId::parse(&record.id),
        ) {
            self.inputs.push_back(Input::OverBudget {
                job,
                attempt,
                reason,
            });
        }
    }

    /// Before a completed attempt's agent is stopped, waits (at most
    /// `TRANSCRIPT_SETTLE`) until its transcript holds the answer: Claude
    /// Code writes its messages there a moment after its Stop hook, and on
    /// a loaded machine a SIGTERM in between left a transcript with no
    /// message at all, a conversation `--resume` could not find.
    pub(super) async fn let_transcript_settle(&self, job: &JobId, attempt: u32) {
        let Ok(record) = self.registry.load(job) else {
            return;
        };
        let Some(source) = usage_source(&record, attempt) else {
            return;
        };
        // Only an agent that stays up after its turn (Claude Code, reporting
        // through hooks) is stopped by us at completion; one that exited
        // wrote what it wrote.
        let stays_up = record.agent.as_ref().is_some_and(|a| a.hooks.is_some());
        if record.state != JobState::Completed || !stays_up {
            return;
        }
        let transcript = source.path.clone();
        let holds_answer = || crate::agents::transcript::usage(&source, &self.prices).is_some();
        let started = Instant::now();
        let deadline = started + TRANSCRIPT_SETTLE;
        if holds_answer() {
            return;
        }
        while !holds_answer() {
            if Instant::now() >= deadline {
                tracing::warn!("job {job} attempt {attempt}: its transcript {transcript} holds no answer after {TRANSCRIPT_SETTLE:?}; stopping the agent anyway");
                return;
            }
            tokio::time::sleep(TRANSCRIPT_POLL).await;
        }
        tracing::info!(
            "job {job} attempt {attempt}: its transcript held the answer {:?} after completion",
            started.elapsed()
        );
    }

    /// Keeps what an admitted event says of the attempt's conversation.
    pub(super) fn note_conversation(&self, job: &JobId, attempt: u32, event: &Incoming) {
        let Noted { session, result } = noted(event);
        if session.is_none() && result.is_none() {
            return;
        }
        let update = self.registry.update(job, |r| {
            let agent = r.agent.as_ref().map(|a| a.name.clone());
            let info = r.attempt_mut(attempt);
            if let Some(mut session) = session {
                session.agent = agent;
                info.session = Some(session);
            }
            if result.is_some() {
                info.result = result;
            }
        });
        if let Err(e) = update {
            tracing::warn!("job {job}: cannot record its conversation: {e:#}");
        }
    }
}

/// When a turn or the attempt ends, the attempt's tokens from its
/// transcript (applied with the transition, under the registry's lock).
pub(super) fn count_tokens(record: &mut Record, attempt: u32, to: JobState, prices: &Prices) {
    let turn_ended = to.is_finished()
        || matches!(
            to,
            JobState::Retrying | JobState::Waiting | JobState::Limited
        );
    if turn_ended {
        count_attempt_tokens(record, attempt, prices);
    }
}

/// Where the attempt's tokens are: where the wrapper said, else the
/// transcript its agent named (in its template's format, whole).
fn usage_source(record: &Record, attempt: u32) -> Option<UsageSource> {
    let info = record.attempt_info(attempt)?;
    let named = info.session.as_ref().and_then(|s| s.transcript.clone());
    let earlier = attempt
        .checked_sub(1)
        .and_then(|n| record.attempt_info(n))
        .and_then(|a| a.session.as_ref()?.transcript.clone());
    // The wrapper's mark is in the transcript the attempt continued; an
    // agent that then names a transcript of its own keeps this attempt
    // there, whole.
    let moved = |source: &UsageSource| {
        earlier.as_ref() == Some(&source.path) && named.as_ref().is_some_and(|p| *p != source.path)
    };
    let marked = info.usage_source.clone().filter(|source| !moved(source));
    marked.or_else(|| {
        Some(UsageSource {
            path: named?,
            format: record
                .agent
                .as_ref()
                .map(|a| a.conversation.format)
                .unwrap_or_default(),
            from: 0,
        })
    })
}

/// The attempt's tokens (and their cost) from its transcript, if it has one.
fn count_attempt_tokens(record: &mut Record, attempt: u32, prices: &Prices) {
    let Some(source) = usage_source(record, attempt) else {
        return;
    };
    if let Some(usage) = crate::agents::transcript::usage(&source, prices) {
        record.attempt_mut(attempt).usage = Some(usage);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Signature;

    fn event(kind: EventKind, data: Value) -> Incoming {
        Incoming {
            kind,
            attempt: Some(1),
            job_named: None,
            message: None,
            exit_code: None,
            failure_kind: None,
            signature: Signature::Valid,
            sent: None,
            data: Some(data),
            limit_resets: None,
        }
    }

    #[test]
    fn a_session_start_names_the_conversation_and_a_completion_its_answer() {
        let start = event(
            EventKind::Started,
            serde_json::json!({"session_id": "5f1c-9a", "transcript_path": "/h/t.jsonl", "source": "startup"}),
        );
        assert_eq!(
            noted(&start),
            Noted {
                session: Some(Session {
                    id: "5f1c-9a".into(),
                    agent: None,
                    transcript: Some("/h/t.jsonl".into())
                }),
                result: None
            }
        );
        let done = event(
            EventKind::Completed,
            serde_json::json!({"last_assistant_message": "forty-two"}),
        );
        assert_eq!(noted(&done).result.as_deref(), Some("forty-two"));
        // Between turns (a Stop hook reporting `waiting`) the latest
        // answer is the result; a heartbeat carries none. An odd id or a
        // relative transcript path is not kept.
        let between_turns = event(
            EventKind::Waiting,
            serde_json::json!({"last_assistant_message": "Shall I go on?"}),
        );
        assert_eq!(
            noted(&between_turns).result.as_deref(),
            Some("Shall I go on?")
        );
        let heartbeat = event(
            EventKind::Heartbeat,
            serde_json::json!({"last_assistant_message": "mid-turn"}),
        );
        assert_eq!(noted(&heartbeat), Noted::default());
        let odd = event(
            EventKind::Started,
            serde_json::json!({"session_id": "a b; rm -rf", "transcript_path": "t.jsonl"}),
        );
        assert_eq!(noted(&odd), Noted::default());
        let relative = event(
            EventKind::Started,
            serde_json::json!({"session_id": "s1", "transcript_path": "t.jsonl"}),
        );
        assert_eq!(noted(&relative).session.and_then(|s| s.transcript), None);
    }
}
