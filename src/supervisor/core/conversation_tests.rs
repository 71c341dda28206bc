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

/// A signed event of `attempt` (`kind`, naming `session` if given).
fn signed(kind: EventKind, attempt: Option<u32>, session: Option<&str>) -> Incoming {
    Incoming {
        kind,
        attempt,
        job_named: None,
        message: None,
        exit_code: None,
        failure_kind: None,
        signature: Signature::Valid,
        sent: None,
        data: session.map(|id| serde_json::json!({ "session_id": id })),
        limit_resets: None,
    }
}

/// Claude Code's StopFailure `rate_limit` for `attempt`, resetting at
/// `resets` if it says.
fn limit_event(attempt: Option<u32>, resets: Option<Instant>) -> Incoming {
    Incoming {
        message: Some("You've hit your session limit · resets 6:33pm (UTC)".into()),
        failure_kind: Some(FailureKind::Limited),
        limit_resets: resets,
        ..signed(EventKind::Error, attempt, None)
    }
}

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
        let mut cfg = config();
        cfg.retry.conversation = policy;
        Life::with(cfg)
    }

    fn with(cfg: JobConfig) -> Life {
        let policy = cfg.retry.conversation;
        let t0 = Instant::now();
        let job = JobId::parse("job-1").expect("id");
        let mut core = Core::new(Box::new(|| 1.0));
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
                agent: None,
                transcript: None,
            });
        }
    }

    fn event(&mut self, secs: f64, kind: EventKind, session: Option<&str>) {
        let event = signed(kind, self.core.attempt(&self.job), session);
        let job = self.job.clone();
        self.core.handle(self.at(secs), Input::Event { job, event });
        self.settle(secs);
    }

    /// The agent reports a usage limit (Claude Code's StopFailure
    /// `rate_limit`), resetting `resets_in` seconds from `secs` if it says.
    fn limited(&mut self, secs: f64, resets_in: Option<f64>) {
        let resets = resets_in.map(|r| self.at(secs + r));
        let event = limit_event(self.core.attempt(&self.job), resets);
        let job = self.job.clone();
        self.core.handle(self.at(secs), Input::Event { job, event });
        self.settle(secs);
    }

    fn checkpoints(&mut self) -> Vec<Checkpoint> {
        std::iter::from_fn(|| self.core.poll_effect())
            .filter_map(|e| match e {
                Effect::Checkpoint { checkpoint, .. } => Some(checkpoint),
                _ => None,
            })
            .collect()
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
    let stale = signed(EventKind::Started, Some(1), Some("s-stale"));
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

// ------------------------------------------------ usage limits (issue 24)

fn one_attempt() -> JobConfig {
    let mut cfg = config();
    cfg.retry.max_attempts = 1;
    cfg
}

#[test]
fn a_limit_is_not_charged_waits_for_the_reset_and_continues_the_conversation() {
    let mut cfg = config();
    cfg.retry.max_attempts = 2;
    let mut life = Life::with(cfg);
    life.event(1.0, EventKind::Started, Some("s1"));
    // Resets 120 s later: limited until then plus the 60 s grace.
    life.limited(10.0, Some(120.0));
    assert_eq!(life.state(), JobState::Limited);
    life.run_to(10.0 + 180.0 - 0.5);
    assert_eq!(
        life.core.attempt(&life.job),
        Some(1),
        "not before the reset"
    );
    assert_eq!(life.state(), JobState::Limited);
    life.run_to(10.0 + 180.0);
    // Attempt 2 continues the conversation the limit interrupted.
    assert_eq!(life.core.attempt(&life.job), Some(2));
    assert_eq!(life.plans[1], (2, Plan::Continue("s1".into())));
    // Two real failures are charged: max_attempts (2) counts them only, so
    // attempt 2's failure is retried (attempt 3), attempt 3's is the end.
    life.event(191.0, EventKind::Started, Some("s1"));
    life.exits(192.0, 3);
    life.run_to(250.0);
    assert_eq!(
        life.core.attempt(&life.job),
        Some(3),
        "the limit was not charged"
    );
    life.event(251.0, EventKind::Started, Some("s1"));
    life.exits(252.0, 3);
    life.run_to(400.0);
    assert_eq!(life.state(), JobState::Failed);
    assert_eq!(life.core.attempt(&life.job), Some(3));
}

#[test]
fn without_a_reset_time_the_wait_doubles_up_to_five_hours() {
    let mut cfg = one_attempt();
    cfg.timeouts.idle = Duration::from_secs(100_000);
    let mut life = Life::with(cfg);
    let mut launched_at = 0.0;
    let mut waits = Vec::new();
    for n in 1..=7 {
        life.event(launched_at + 1.0, EventKind::Started, Some("s1"));
        life.limited(launched_at + 2.0, None);
        let before = life.core.attempt(&life.job);
        // Find when the next attempt launches.
        let mut t = launched_at + 2.0;
        while life.core.attempt(&life.job) == before {
            t += 60.0;
            life.run_to(t);
        }
        waits.push(((t - (launched_at + 2.0)) / 60.0).ceil() as u32);
        launched_at = t;
        assert_eq!(life.state(), JobState::Launching, "limit {n}");
    }
    // 15 min, doubling, capped at 5 h (300 min), in minutes (rounded up
    // to the 60 s steps of this loop).
    assert_eq!(waits, vec![15, 30, 60, 120, 240, 300, 300]);
}

#[test]
fn a_limited_job_s_wait_and_uncharged_attempts_survive_a_restart() {
    let mut life = Life::with(one_attempt());
    life.event(1.0, EventKind::Started, Some("s1"));
    life.checkpoints();
    let job = life.job.clone();
    let event = limit_event(Some(1), Some(life.at(2.0 + 600.0)));
    life.core.handle(
        life.at(2.0),
        Input::Event {
            job: job.clone(),
            event,
        },
    );
    life.core.handle(
        life.at(2.0),
        Input::GroupGone {
            job: job.clone(),
            attempt: 1,
        },
    );
    let kept = life.checkpoints();
    let until = life.at(2.0 + 600.0 + 60.0);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].backoff_until, Some(until));
    assert!(kept[0].limited);
    assert_eq!(kept[0].uncharged, 1);
    // A new supervisor adopts it from the checkpoint: still limited until
    // the same moment, still one uncharged attempt.
    let mut next = Core::new(Box::new(|| 1.0));
    next.adopt(
        life.at(100.0),
        job.clone(),
        one_attempt(),
        Adoption {
            attempt: 1,
            job_deadline: kept[0].job_deadline,
            backoff_until: kept[0].backoff_until,
            limited: kept[0].limited,
            uncharged: kept[0].uncharged,
        },
    );
    assert_eq!(next.state(&job), Some(JobState::Limited));
    assert_eq!(next.poll_timeout(), Some(until));
    next.handle_timeout(until);
    assert_eq!(next.state(&job), Some(JobState::Launching));
    assert_eq!(next.attempt(&job), Some(2), "max_attempts 1, one uncharged");
}

#[test]
fn on_limit_fail_fails_the_job_as_limited_and_never_retries() {
    let mut cfg = config();
    cfg.limits.on_limit = OnLimit::Fail;
    let mut life = Life::with(cfg);
    life.event(1.0, EventKind::Started, Some("s1"));
    life.limited(2.0, Some(60.0));
    life.run_to(1000.0);
    assert_eq!(life.state(), JobState::Failed);
    assert_eq!(life.core.attempt(&life.job), Some(1), "attempts were left");
}

#[test]
fn a_limit_moves_the_job_deadline_by_its_wait() {
    let mut cfg = config();
    cfg.timeouts.job = Duration::from_secs(1800);
    let mut life = Life::with(cfg);
    life.event(1.0, EventKind::Started, Some("s1"));
    // A two-hour wait, longer than the whole job may run.
    life.limited(10.0, Some(7200.0));
    life.run_to(10.0 + 7260.0);
    assert_eq!(life.core.attempt(&life.job), Some(2));
    life.event(7271.0, EventKind::Started, Some("s1"));
    life.event(7280.0, EventKind::Completed, None);
    assert_eq!(life.state(), JobState::Completed, "not timed out");
}
