//! Whether an event received for a job may act on it: the one decision the
//! supervisor's core (and so the driver and the fleet runner, which feed
//! it), `watch` and the record of a registered job share. Pure: the reader
//! passes what the event claims and what it knows of the job (its policy).
//!
//! The rules, in order: an event whose payload names another job, or whose
//! signature does not verify, is never acted on; one from an older attempt
//! is stale and one from a newer attempt was not launched (attempt
//! fencing); a valid signature over a payload without `attempt` would be
//! valid in every attempt, so it is refused (it could be replayed); an
//! unsigned event acts only where `events.require_signature` is off; and an
//! attempt that is over takes no more events. A job in no registry (the
//! original subscriber's `watch --job ID`) has no key and no attempt to
//! check against: its events are taken as they come.

use super::event::{EventKind, Meaning, Signature};
use std::fmt;

/// What an event claims, as received (before any policy).
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub kind: &'a EventKind,
    /// The attempt the payload names; `None` for a bare word or JSON
    /// without one (the original scripts): the current attempt.
    pub attempt: Option<u32>,
    /// The job the payload names; `None` when it names none.
    pub job_named: Option<&'a str>,
    /// How its signature checked out against the job's key.
    pub signature: Signature,
}

/// What the reader knows of the job and requires of its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPolicy {
    /// `events.require_signature`: only a valid signature acts.
    pub require_signature: bool,
    /// The newest attempt launched, which is the current one; `None` for a
    /// job no registry here knows (nothing to fence with).
    pub current_attempt: Option<u32>,
    /// Whether the current attempt still takes events (not yet decided).
    pub attempt_active: bool,
}

impl EventPolicy {
    /// A job in no registry here: no key to check, no attempt to fence
    /// with, so `watch --job ID` ends on the original scripts' events.
    pub fn unknown_job() -> EventPolicy {
        EventPolicy {
            require_signature: false,
            current_attempt: None,
            attempt_active: true,
        }
    }
}

/// Why an event is recorded but not acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The payload's `job` is not the job of the topic.
    OtherJob(String),
    /// A `sig` that is not this job's key's signature of the payload.
    BadSignature,
    Stale {
        attempt: u32,
        current: u32,
    },
    NotLaunched {
        attempt: u32,
    },
    /// Signed, but without `attempt`: valid in every attempt, so replayable.
    SignedWithoutAttempt,
    /// Unsigned (or unchecked) while `events.require_signature` is on.
    SignatureRequired(Signature),
    AttemptOver,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::OtherJob(named) => write!(f, "the payload names job {named}"),
            Refusal::BadSignature => f.write_str("bad signature: not signed with this job's key"),
            Refusal::Stale { attempt, current } => {
                write!(f, "stale: from attempt {attempt}, current is {current}")
            }
            Refusal::NotLaunched { attempt } => {
                write!(f, "from attempt {attempt}, which has not been launched")
            }
            Refusal::SignedWithoutAttempt => f.write_str(
                "a signed event must name its attempt (it could be replayed across attempts)",
            ),
            Refusal::SignatureRequired(signature) => write!(
                f,
                "{}: events.require_signature is on",
                format!("signature {signature:?}").to_lowercase()
            ),
            Refusal::AttemptOver => f.write_str("the attempt is already over"),
        }
    }
}

/// The verdict, with the attempt the event counts for (its own, else the
/// current one, else 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// The event acts, with this meaning.
    Admitted {
        attempt: u32,
        meaning: Meaning,
    },
    Ignored {
        attempt: u32,
        reason: Refusal,
    },
}

impl Admission {
    pub fn attempt(&self) -> u32 {
        match self {
            Admission::Admitted { attempt, .. } | Admission::Ignored { attempt, .. } => *attempt,
        }
    }

    /// Why it does not act, if it does not.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Admission::Admitted { .. } => None,
            Admission::Ignored { reason, .. } => Some(reason),
        }
    }

    /// The meaning of an admitted event.
    pub fn meaning(&self) -> Option<Meaning> {
        match self {
            Admission::Admitted { meaning, .. } => Some(*meaning),
            Admission::Ignored { .. } => None,
        }
    }
}

/// Decides whether the event `claim`, received on the topic of job `job`,
/// acts on it under `policy`.
pub fn admit(job: &str, claim: &Claim<'_>, policy: &EventPolicy) -> Admission {
    let attempt = claim.attempt.or(policy.current_attempt).unwrap_or(1);
    match refusal(job, claim, policy, attempt) {
        None => Admission::Admitted {
            attempt,
            meaning: Meaning::of(claim.kind),
        },
        Some(reason) => Admission::Ignored { attempt, reason },
    }
}

fn refusal(job: &str, claim: &Claim<'_>, policy: &EventPolicy, attempt: u32) -> Option<Refusal> {
    if let Some(named) = claim.job_named.filter(|named| *named != job) {
        return Some(Refusal::OtherJob(named.to_owned()));
    }
    if claim.signature == Signature::Invalid {
        return Some(Refusal::BadSignature);
    }
    if let Some(current) = policy.current_attempt {
        if attempt < current {
            return Some(Refusal::Stale { attempt, current });
        }
        if attempt > current {
            return Some(Refusal::NotLaunched { attempt });
        }
    }
    if claim.attempt.is_none() && claim.signature == Signature::Valid {
        return Some(Refusal::SignedWithoutAttempt);
    }
    if policy.require_signature && claim.signature != Signature::Valid {
        return Some(Refusal::SignatureRequired(claim.signature));
    }
    if !policy.attempt_active {
        return Some(Refusal::AttemptOver);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use Signature::{Invalid, Unchecked, Unsigned, Valid};

    const JOB: &str = "job-1";

    /// One row of the table: the case, the event's attempt, the job its
    /// payload names, its signature, the policy, the verdict (its first
    /// words) and the attempt it counts for.
    type Row = (
        &'static str,
        Option<u32>,
        Option<&'static str>,
        Signature,
        EventPolicy,
        &'static str,
        u32,
    );

    /// A registered job at attempt 2, its attempt running.
    fn at_attempt_2(require_signature: bool) -> EventPolicy {
        EventPolicy {
            require_signature,
            current_attempt: Some(2),
            attempt_active: true,
        }
    }

    /// Which refusal (by its first words), or "admitted".
    fn verdict(admission: &Admission) -> String {
        match admission.refusal() {
            None => "admitted".to_owned(),
            Some(reason) => reason.to_string(),
        }
    }

    #[test]
    fn the_admission_table() {
        let strict = at_attempt_2(true);
        let lax = at_attempt_2(false);
        let over = EventPolicy {
            attempt_active: false,
            ..strict
        };
        let unknown = EventPolicy::unknown_job();
        #[rustfmt::skip]
        let rows: [Row; 20] = [
            ("signed, current attempt", Some(2), Some(JOB), Valid, strict, "admitted", 2),
            ("stale", Some(1), Some(JOB), Valid, strict, "stale: from attempt 1, current is 2", 1),
            ("future, not launched", Some(3), Some(JOB), Valid, strict, "from attempt 3, which has not been launched", 3),
            ("attempt 99", Some(99), Some(JOB), Valid, lax, "from attempt 99, which has not been launched", 99),
            ("signed without attempt", None, Some(JOB), Valid, lax, "a signed event must name its attempt", 2),
            ("signed without attempt, strict", None, Some(JOB), Valid, strict, "a signed event must name its attempt", 2),
            ("bad signature, lax", Some(2), Some(JOB), Invalid, lax, "bad signature", 2),
            ("bad signature, strict", Some(2), Some(JOB), Invalid, strict, "bad signature", 2),
            ("bad signature without attempt", None, None, Invalid, lax, "bad signature", 2),
            ("unsigned with attempt, strict", Some(2), Some(JOB), Unsigned, strict, "signature unsigned: events.require_signature is on", 2),
            ("unsigned with attempt, lax", Some(2), Some(JOB), Unsigned, lax, "admitted", 2),
            ("bare word, strict", None, None, Unsigned, strict, "signature unsigned: events.require_signature is on", 2),
            ("bare word, lax (the original scripts)", None, None, Unsigned, lax, "admitted", 2),
            ("stale unsigned, lax", Some(1), None, Unsigned, lax, "stale: from attempt 1, current is 2", 1),
            ("no key known, strict", Some(2), Some(JOB), Unchecked, strict, "signature unchecked: events.require_signature is on", 2),
            ("foreign job name", Some(2), Some("job-2"), Valid, strict, "the payload names job job-2", 2),
            ("attempt over", Some(2), Some(JOB), Valid, over, "the attempt is already over", 2),
            ("unknown job: bare word", None, None, Unchecked, unknown, "admitted", 1),
            ("unknown job: any attempt", Some(7), Some(JOB), Unchecked, unknown, "admitted", 7),
            ("unknown job: foreign job name", None, Some("job-2"), Unchecked, unknown, "the payload names job job-2", 1),
        ];
        for (case, attempt, job_named, signature, policy, expected, counted) in rows {
            let claim = Claim {
                kind: &EventKind::Completed,
                attempt,
                job_named,
                signature,
            };
            let admission = admit(JOB, &claim, &policy);
            assert!(
                verdict(&admission).starts_with(expected),
                "{case}: {admission:?}, expected {expected}"
            );
            assert_eq!(admission.attempt(), counted, "{case}");
        }
    }

    #[test]
    fn an_admitted_event_carries_its_meaning() {
        for (kind, meaning) in [
            (EventKind::Completed, Meaning::Completed),
            (EventKind::Error, Meaning::Failed),
            (EventKind::Heartbeat, Meaning::Alive),
            (EventKind::Other("nonsense".into()), Meaning::Unknown),
        ] {
            let claim = Claim {
                kind: &kind,
                attempt: Some(2),
                job_named: None,
                signature: Valid,
            };
            let admission = admit(JOB, &claim, &at_attempt_2(true));
            assert_eq!(admission.meaning(), Some(meaning), "{kind}");
        }
        let refused = Claim {
            kind: &EventKind::Completed,
            attempt: Some(2),
            job_named: None,
            signature: Invalid,
        };
        assert_eq!(admit(JOB, &refused, &at_attempt_2(false)).meaning(), None);
    }
}
