//! Continue or fresh, over a job's whole life under a fake clock: the core
//! decides when and why each attempt starts; what the attempts' admitted
//! events named decides whether the next one continues the conversation
//! (SPEC section 14). The wrapper asks `model::conversation::plan` with
//! the record the driver keeps; this recorder keeps the same facts from the
//! core's effects (a session named by an admitted event, the conversation
//! a launched attempt continued), so the two are tested together.

use super::tests::config;
use super::*;
use crate::model::conversation::{plan, ConversationPolicy, Plan};
use crate::model::record::AttemptInfo;
use crate::model::Session;

/// A core and the conversation facts of its attempts.
struct Life {
    core: Core,
    t0: Instant,
    job: JobId,
    policy: ConversationPolicy,
    attempts: Vec<AttemptInfo>,
    /// The plan of every launched attempt, in order.
    plans: Vec<(u32, Plan)>,
}

impl Life {
    fn new(policy: ConversationPolicy) -> Life {
        let t0 = Instant::now();
        let job = JobId::parse("job-1").expect("id");
        let mut core = Core::new(Box::new(|| 1.0));
        let mut cfg = config();
        cfg.retry.conversation = policy;
        core.add(t0, job.clone(), cfg);
        let mut life = Life {
            core,
            t0,
            job,
            policy,
            attempts: Vec::new(),
            plans: Vec::new(),
        };
        life.settle(0.0);
        life
    }

    fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    /// Performs the core's effects as the driver and the wrapper would:
    /// a launch is planned from the attempts so far; a stop ends at once.
    fn settle(&mut self, secs: f64) {
        while let Some(effect) = self.core.poll_effect() {
            match effect {
                Effect::Launch { job, attempt } => {
                    self.launch(attempt);
                    self.core
                        .handle(self.at(secs), Input::Launched { job, attempt });
                }
                Effect::Signal { job, attempt, .. } => {
                    self.core
                        .handle(self.at(secs), Input::GroupGone { job, attempt });
                }
                Effect::RecordEvent {
                    attempt,
                    event,
                    ignored: None,
                    ..
                } => self.note(attempt, &event),
                _ => {}
            }
        }
    }

    fn info(&mut self, attempt: u32) -> &mut AttemptInfo {
        if !self.attempts.iter().any(|a| a.number == attempt) {
            self.attempts.push(AttemptInfo {
                number: attempt,
                ..AttemptInfo::default()
            });
        }
        self.attempts
            .iter_mut()
            .find(|a| a.number == attempt)
            .expect("just added")
    }

    fn launch(&mut self, attempt: u32) {
        let planned = plan(self.policy, true, attempt, &self.attempts, false);
        if let Plan::Continue(session) = &planned {
            self.info(attempt).continued_from = Some(session.clone());
        } else {
            self.info(attempt);
        }
        self.plans.push((attempt, planned));
    }

    /// What the driver keeps of an admitted event: the session it names.
    fn note(&mut self, attempt: u32, event: &Incoming) {
        let named = event
            .data
            .as_ref()
            .and_then(|d| d["session_id"].as_str().map(str::to_owned));
        if let Some(id) = named {
            self.info(attempt).session = Some(Session {
                id,
                transcript: None,
            });
        }
    }

    fn event(&mut self, secs: f64, kind: EventKind, session: Option<&str>) {
        let event = Incoming {
            kind,
            attempt: self.core.attempt(&self.job),
            job_named: None,
            message: None,
            exit_code: None,
            failure_kind: None,
            signature: Signature::Valid,
            sent: None,
            data: session.map(|id| serde_json::json!({ "session_id": id })),
        };
        let job = self.job.clone();
        self.core.handle(self.at(secs), Input::Event { job, event });
        self.settle(secs);
    }

    /// The attempt's agent exits with `code` (its pane dies).
    fn exits(&mut self, secs: f64, code: i32) {
        let job = self.job.clone();
        let attempt = self.core.attempt(&job).expect("an attempt");
        self.core.handle(
            self.at(secs),
            Input::ExitRecorded {
                job: job.clone(),
                attempt,
                code,
            },
        );
        self.core.handle(
            self.at(secs),
            Input::PaneDead {
                job,
                attempt,
                status: Some(code),
            },
        );
        self.settle(secs);
    }

    /// Lets the fake clock run to `secs`, firing every timer on the way.
    fn run_to(&mut self, secs: f64) {
        while let Some(due) = self.core.poll_timeout() {
            if due > self.at(secs) {
                break;
            }
            let at = due.duration_since(self.t0).as_secs_f64();
            self.core.handle_timeout(due);
            self.settle(at);
        }
    }

    fn state(&self) -> JobState {
        self.core.state(&self.job).expect("job")
    }
}

#[test]
fn a_hung_attempt_is_continued_and_a_resume_that_breaks_makes_the_next_fresh() {
    let mut life = Life::new(ConversationPolicy::Continue);
    life.event(1.0, EventKind::Started, Some("s1"));
    // No sign of life for the idle timeout (600 s): hung, retried after
    // the backoff (5 s), in the same conversation.
    life.run_to(610.0);
    assert_eq!(life.core.attempt(&life.job), Some(2));
    // The resume cannot load the conversation: the agent exits 1 before
    // its first event; the next attempt (backoff 10 s) starts fresh.
    life.exits(611.0, 1);
    life.run_to(625.0);
    assert_eq!(life.core.attempt(&life.job), Some(3));
    life.event(626.0, EventKind::Started, Some("s2"));
    life.event(627.0, EventKind::Completed, None);
    assert_eq!(life.state(), JobState::Completed);
    assert_eq!(
        life.plans,
        vec![
            (1, Plan::Fresh(None)),
            (2, Plan::Continue("s1".into())),
            (
                3,
                Plan::Fresh(Some(
                    "attempt 2 continued conversation s1 and failed before its first event".into()
                ))
            ),
        ]
    );
}

#[test]
fn a_resumed_attempt_that_named_its_conversation_is_continued_again() {
    let mut life = Life::new(ConversationPolicy::Continue);
    life.event(1.0, EventKind::Started, Some("s1"));
    // Attempt 1 exits without completing (exit 3): continued.
    life.exits(2.0, 3);
    life.run_to(10.0);
    // Claude Code's SessionStart names the same conversation on resume;
    // then the attempt hangs: attempt 3 continues it too (not a loop:
    // each resume loaded it).
    life.event(11.0, EventKind::Started, Some("s1"));
    life.run_to(11.0 + 600.0 + 10.0);
    assert_eq!(life.core.attempt(&life.job), Some(3));
    assert_eq!(
        life.plans
            .iter()
            .map(|(_, p)| p.clone())
            .collect::<Vec<_>>(),
        vec![
            Plan::Fresh(None),
            Plan::Continue("s1".into()),
            Plan::Continue("s1".into()),
        ]
    );
}

#[test]
fn with_policy_fresh_every_attempt_starts_a_new_conversation() {
    let mut life = Life::new(ConversationPolicy::Fresh);
    life.event(1.0, EventKind::Started, Some("s1"));
    life.run_to(610.0);
    assert_eq!(life.core.attempt(&life.job), Some(2));
    life.event(611.0, EventKind::Started, Some("s2"));
    life.exits(612.0, 1);
    life.run_to(625.0);
    assert_eq!(life.core.attempt(&life.job), Some(3));
    assert!(
        life.plans.iter().all(|(_, p)| *p == Plan::Fresh(None)),
        "{:?}",
        life.plans
    );
}

#[test]
fn a_timed_out_attempt_is_continued_but_a_late_event_of_the_old_one_names_nothing() {
    let mut life = Life::new(ConversationPolicy::Continue);
    life.event(1.0, EventKind::Started, Some("s1"));
    // Heartbeats keep it alive past the attempt timeout (7200 s).
    for t in (60..7200).step_by(60) {
        life.event(f64::from(t), EventKind::Heartbeat, None);
    }
    life.run_to(7200.0 + 6.0);
    assert_eq!(life.core.attempt(&life.job), Some(2));
    // Attempt 1's agent, stopped, still gets an event out naming another
    // conversation: refused (stale attempt), it names nothing for attempt 2.
    let stale = Incoming {
        kind: EventKind::Started,
        attempt: Some(1),
        job_named: None,
        message: None,
        exit_code: None,
        failure_kind: None,
        signature: Signature::Valid,
        sent: None,
        data: Some(serde_json::json!({"session_id": "s-stale"})),
    };
    let job = life.job.clone();
    life.core
        .handle(life.at(7207.0), Input::Event { job, event: stale });
    life.settle(7207.0);
    assert_eq!(
        life.attempts
            .iter()
            .find(|a| a.number == 1)
            .and_then(|a| a.session.as_ref())
            .map(|s| s.id.as_str()),
        Some("s1"),
        "a refused event names no conversation"
    );
    assert_eq!(life.plans[1], (2, Plan::Continue("s1".into())));
}
