//! Whether an attempt continues the agent's own conversation or starts a
//! fresh one (SPEC section 14), decided from the record alone, so the
//! same answer comes after a retry, a `resume` of a crashed supervisor or
//! `retry ID`. Pure: the window's wrapper asks before it builds the argv.
//!
//! An attempt continues the previous attempt's conversation when the
//! policy says `continue`, the agent can continue one (its template has a
//! `continue_command`), and the previous attempt named its conversation.
//! A continued attempt that failed before its first event (no session
//! named: the resume itself broke) makes the next one fresh, so a broken
//! conversation never loops. A job run again on another host of a fleet
//! has no previous attempt there: it starts fresh.

use super::record::AttemptInfo;
use serde::{Deserialize, Serialize};

/// `retry.conversation`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationPolicy {
    /// A retry continues the agent's conversation where it can.
    #[default]
    Continue,
    /// Every attempt starts a new conversation.
    Fresh,
}

/// What `retry ID --fresh` or `send ID TEXT` (to a finished job) asks of
/// the attempt they start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextTurn {
    /// The attempt it is for (any other ignores it).
    pub attempt: u32,
    /// A new conversation, whatever the policy.
    #[serde(default)]
    pub fresh: bool,
    /// The message to start with instead of the continuation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// What attempt `n` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// A new conversation; why, when it could have been otherwise.
    Fresh(Option<String>),
    /// Continue this conversation.
    Continue(String),
}

/// The plan for attempt `attempt` of a job with `attempts` so far.
/// `fresh_asked`: `retry ID --fresh`.
pub fn plan(
    policy: ConversationPolicy,
    can_continue: bool,
    attempt: u32,
    attempts: &[AttemptInfo],
    fresh_asked: bool,
) -> Plan {
    if attempt <= 1 {
        return Plan::Fresh(None);
    }
    if fresh_asked {
        return Plan::Fresh(Some("`retry --fresh` asked for a new conversation".into()));
    }
    if policy == ConversationPolicy::Fresh {
        return Plan::Fresh(None);
    }
    let previous = attempts
        .iter()
        .filter(|a| a.number < attempt)
        .max_by_key(|a| a.number);
    let Some(previous) = previous else {
        return Plan::Fresh(Some(format!(
            "attempt {} did not run on this host: no conversation to continue",
            attempt - 1
        )));
    };
    match (&previous.session, &previous.continued_from) {
        (Some(session), _) if can_continue => Plan::Continue(session.id.clone()),
        (Some(_), _) => Plan::Fresh(Some(
            "this agent cannot continue a conversation (no `continue_command`)".into(),
        )),
        (None, Some(session)) => Plan::Fresh(Some(format!(
            "attempt {} continued conversation {session} and failed before its first event",
            previous.number
        ))),
        (None, None) => Plan::Fresh(Some(format!(
            "attempt {} named no conversation to continue",
            previous.number
        ))),
    }
}

/// The first message of a continued attempt: why the last one ended, and
/// the task again.
pub fn continuation_prompt(previous: u32, why: Option<&str>, task: &str) -> String {
    let why = why.map_or_else(String::new, |w| format!(": {w}"));
    format!(
        "Your previous attempt at this task (attempt {previous}) ended{why}. \
         Continue where you left off and finish the task. The task, as first given:\n\n{task}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Session;

    fn attempt(number: u32, session: Option<&str>, continued_from: Option<&str>) -> AttemptInfo {
        AttemptInfo {
            number,
            session: session.map(|id| Session {
                id: id.into(),
                agent: None,
                transcript: None,
            }),
            continued_from: continued_from.map(str::to_owned),
            ..AttemptInfo::default()
        }
    }

    #[test]
    fn continue_or_fresh() {
        use ConversationPolicy::{Continue, Fresh};
        let named = [attempt(1, Some("s1"), None)];
        let resumed_and_broke = [attempt(1, Some("s1"), None), attempt(2, None, Some("s1"))];
        let resumed_and_hung = [
            attempt(1, Some("s1"), None),
            attempt(2, Some("s1"), Some("s1")),
        ];
        let unnamed = [attempt(1, None, None)];
        let cont = |s: &str| Plan::Continue(s.into());
        let fresh = Plan::Fresh;
        // (policy, can continue, attempt, attempts, --fresh, plan)
        type Case<'a> = (ConversationPolicy, bool, u32, &'a [AttemptInfo], bool, Plan);
        let cases: Vec<Case> = vec![
            (Continue, true, 1, &[], false, fresh(None)),
            (Continue, true, 2, &named, false, cont("s1")),
            (Fresh, true, 2, &named, false, fresh(None)),
            (
                Continue,
                true,
                2,
                &named,
                true,
                fresh(Some("`retry --fresh` asked for a new conversation".into())),
            ),
            (
                Continue,
                false,
                2,
                &named,
                false,
                fresh(Some(
                    "this agent cannot continue a conversation (no `continue_command`)".into(),
                )),
            ),
            (
                Continue,
                true,
                3,
                &resumed_and_broke,
                false,
                fresh(Some(
                    "attempt 2 continued conversation s1 and failed before its first event".into(),
                )),
            ),
            (Continue, true, 3, &resumed_and_hung, false, cont("s1")),
            (
                Continue,
                true,
                2,
                &unnamed,
                false,
                fresh(Some("attempt 1 named no conversation to continue".into())),
            ),
            (
                Continue,
                true,
                2,
                &[],
                false,
                fresh(Some(
                    "attempt 1 did not run on this host: no conversation to continue".into(),
                )),
            ),
        ];
        for (n, (policy, can, number, attempts, asked, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                plan(policy, can, number, attempts, asked),
                expected,
                "case {n}"
            );
        }
    }

    #[test]
    fn a_continuation_says_why_and_repeats_the_task() {
        let text = continuation_prompt(1, Some("no sign of life for 10m (hung)"), "Fix the parser");
        assert!(text.contains("attempt 1"), "{text}");
        assert!(text.contains("no sign of life for 10m (hung)"), "{text}");
        assert!(text.ends_with("Fix the parser"), "{text}");
    }
}
