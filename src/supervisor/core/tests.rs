//! The state machine driven by a fake clock: every transition, the kill
//! sequence, and the races between events, exits and timers.

use super::*;
use crate::model::FailureKind as K;

const SEC: Duration = Duration::from_secs(1);

pub(super) fn config() -> JobConfig {
    JobConfig {
        timeouts: Timeouts {
            start: 60 * SEC,
            idle: 600 * SEC,
            attempt: 7200 * SEC,
            job: 6 * 3600 * SEC,
        },
        retry: RetryPolicy {
            max_attempts: 3,
            backoff: 5 * SEC,
            multiplier: 2.0,
            backoff_max: 300 * SEC,
            on: vec![
                K::Error,
                K::Hung,
                K::Timeout,
                K::Lost,
                K::Exit,
                K::StartTimeout,
            ],
            conversation: Default::default(),
        },
        liveness: Liveness::Both,
        complete_on_exit: false,
        keep_failed: true,
        kill_grace: 5 * SEC,
        on_waiting: OnWaiting::Notify,
        require_signature: true,
        first_attempt: 1,
        limits: LimitPolicy::default(),
    }
}

/// A core with no jitter (the full ceiling) and a fake clock.
struct Harness {
    core: Core,
    t0: Instant,
    job: JobId,
}

impl Harness {
    fn new(config: JobConfig) -> Harness {
        let t0 = Instant::now();
        let job = JobId::parse("job-1").expect("id");
        let mut core = Core::new(Box::new(|| 1.0));
        core.add(t0, job.clone(), config);
        Harness { core, t0, job }
    }

    fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    fn effects(&mut self) -> Vec<Effect> {
        std::iter::from_fn(|| self.core.poll_effect()).collect()
    }

    /// The effects, without event records (most tests look at actions).
    fn actions(&mut self) -> Vec<Effect> {
        self.effects()
            .into_iter()
            .filter(|e| !matches!(e, Effect::RecordEvent { .. } | Effect::Checkpoint { .. }))
            .collect()
    }

    /// A signed event; `None` means the current attempt (a signed event
    /// always names its attempt: see `event_with` for one that does not).
    fn event(&mut self, secs: f64, kind: EventKind, attempt: Option<u32>) {
        let attempt = attempt.or_else(|| self.core.attempt(&self.job));
        self.event_with(secs, kind, attempt, None, Signature::Valid);
    }

    fn event_with(
        &mut self,
        secs: f64,
        kind: EventKind,
        attempt: Option<u32>,
        exit_code: Option<i32>,
        signature: Signature,
    ) {
        let event = Incoming {
            kind,
            attempt,
            job_named: None,
            message: None,
            exit_code,
            failure_kind: None,
            signature,
            sent: None,
            data: None,
            limit_resets: None,
        };
        let job = self.job.clone();
        self.core.handle(self.at(secs), Input::Event { job, event });
    }

    fn input(&mut self, secs: f64, input: Input) {
        self.core.handle(self.at(secs), input);
    }

    fn tick(&mut self, secs: f64) {
        self.core.handle_timeout(self.at(secs));
    }

    fn state(&self) -> JobState {
        self.core.state(&self.job).expect("job")
    }

    fn started(&mut self, secs: f64) {
        self.event(secs, EventKind::Started, None);
        self.effects();
    }
}

fn transition(
    job: &JobId,
    attempt: u32,
    from: JobState,
    to: JobState,
) -> impl Fn(&Effect) -> bool + '_ {
    move |e| matches!(e, Effect::Transition { job: j, attempt: a, from: f, to: t, .. } if j == job && *a == attempt && *f == from && *t == to)
}

#[test]
fn a_job_that_completes_is_stopped_and_its_window_closed() {
    let mut h = Harness::new(config());
    let job = h.job.clone();
    let effects = h.actions();
    assert!(transition(&job, 1, JobState::Pending, JobState::Launching)(
        &effects[0]
    ));
    assert_eq!(
        effects[1],
        Effect::Launch {
            job: job.clone(),
            attempt: 1
        }
    );
    h.event(1.0, EventKind::Started, Some(1));
    assert_eq!(h.state(), JobState::Running);
    h.effects();
    h.event(2.0, EventKind::Completed, Some(1));
    let effects = h.actions();
    assert!(transition(&job, 1, JobState::Running, JobState::Completed)(
        &effects[0]
    ));
    assert_eq!(
        effects[1],
        Effect::Signal {
            job: job.clone(),
            attempt: 1,
            signal: StopSignal::Term
        }
    );
    h.input(
        2.1,
        Input::GroupGone {
            job: job.clone(),
            attempt: 1,
        },
    );
    assert_eq!(
        h.actions(),
        vec![Effect::CloseWindow {
            job: job.clone(),
            attempt: 1,
            keep: false
        }]
    );
    assert!(h.core.is_done());
    assert_eq!(h.core.poll_timeout(), None);
}

#[test]
fn a_hang_is_sigtermed_then_sigkilled_after_the_grace_then_retried_after_the_backoff() {
    let mut h = Harness::new(config());
    let job = h.job.clone();
    h.effects();
    h.started(0.0);
    assert_eq!(h.core.poll_timeout(), Some(h.at(600.0)));
    h.tick(599.9);
    assert!(h.actions().is_empty());
    h.tick(600.0);
    let effects = h.actions();
    assert!(matches!(
        &effects[0],
        Effect::Transition {
            to: JobState::Retrying,
            failure: Some(Failure { kind: K::Hung, .. }),
            ..
        }
    ));
    assert_eq!(
        effects[1],
        Effect::Signal {
            job: job.clone(),
            attempt: 1,
            signal: StopSignal::Term
        }
    );
    // The agent ignores SIGTERM: nothing happens until the grace ends.
    assert_eq!(h.core.poll_timeout(), Some(h.at(605.0)));
    h.tick(605.0);
    assert_eq!(
        h.actions(),
        vec![
            Effect::Signal {
                job: job.clone(),
                attempt: 1,
                signal: StopSignal::Kill
            },
            Effect::CloseWindow {
                job: job.clone(),
                attempt: 1,
                keep: true
            },
        ]
    );
    // First backoff: 5 s (no jitter in this harness).
    assert_eq!(h.core.poll_timeout(), Some(h.at(610.0)));
    h.tick(610.0);
    let effects = h.actions();
    assert!(transition(&job, 2, JobState::Retrying, JobState::Launching)(&effects[0]));
    assert_eq!(effects[1], Effect::Launch { job, attempt: 2 });
}

#[test]
fn backoff_grows_per_retry() {
    let mut h = Harness::new(config());
    let job = h.job.clone();
    let mut now = 0.0;
    let mut delays = Vec::new();
    for attempt in 1..=2 {
        h.started(now);
        h.event(now + 1.0, EventKind::Error, Some(attempt));
        h.input(
            now + 1.0,
            Input::GroupGone {
                job: job.clone(),
                attempt,
            },
        );
        h.effects();
        let next = h.core.poll_timeout().expect("backoff timer");
        delays.push(next.duration_since(h.at(now + 1.0)).as_secs());
        now = next.duration_since(h.t0).as_secs_f64();
        h.tick(now);
        h.effects();
    }
    assert_eq!(delays, vec![5, 10]);
    assert_eq!(h.core.attempt(&job), Some(3));
}

#[test]
fn retries_stop_at_max_attempts_and_the_job_fails() {
    let mut cfg = config();
    cfg.retry.max_attempts = 2;
    cfg.retry.backoff = Duration::ZERO;
    let mut h = Harness::new(cfg);
    let job = h.job.clone();
    h.effects();
    for attempt in 1..=2 {
        h.started(f64::from(attempt));
        h.event_with(
            f64::from(attempt) + 0.5,
            EventKind::Exited,
            Some(attempt),
            Some(1),
            Signature::Valid,
        );
        h.input(
            f64::from(attempt) + 0.5,
            Input::GroupGone {
                job: job.clone(),
                attempt,
            },
        );
    }
    assert_eq!(h.state(), JobState::Failed);
    assert!(h.core.is_done());
    let effects = h.effects();
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Transition {
            attempt: 2,
            to: JobState::Failed,
            failure: Some(Failure { kind: K::Exit, .. }),
            ..
        }
    )));
}

/// An `error` naming kind `setup` (a workspace setup command failed) fails
/// with that kind: not retried by default, retried when `retry.on` has it.
#[test]
fn a_setup_failure_has_its_own_kind_and_retries_only_when_asked() {
    for (on, expected) in [
        (config().retry.on, JobState::Failed),
        (vec![K::Setup], JobState::Retrying),
    ] {
        let mut cfg = config();
        cfg.retry.on = on;
        let mut h = Harness::new(cfg);
        h.effects();
        let event = Incoming {
            kind: EventKind::Error,
            attempt: Some(1),
            job_named: None,
            message: Some("setup command `npm ci` exited with code 1".into()),
            exit_code: None,
            failure_kind: Some(K::Setup),
            signature: Signature::Valid,
            sent: None,
            data: None,
            limit_resets: None,
        };
        let job = h.job.clone();
        h.core.handle(h.at(1.0), Input::Event { job, event });
        assert_eq!(h.state(), expected);
        let failure = h.effects().into_iter().find_map(|e| match e {
            Effect::Transition { failure, .. } => failure,
            _ => None,
        });
        assert_eq!(failure.expect("a failure").kind, K::Setup);
    }
}

#[test]
fn kinds_not_in_retry_on_fail_at_once() {
    let mut cfg = config();
    cfg.retry.on = vec![K::Hung];
    let mut h = Harness::new(cfg);
    h.started(0.0);
    h.event(1.0, EventKind::Error, None);
    assert_eq!(h.state(), JobState::Failed);
}

#[test]
fn a_stale_completed_from_an_older_attempt_is_recorded_and_ignored() {
    let mut cfg = config();
    cfg.retry.backoff = Duration::ZERO;
    let mut h = Harness::new(cfg);
    let job = h.job.clone();
    h.started(0.0);
    h.event(1.0, EventKind::Error, Some(1));
    h.input(
        1.0,
        Input::GroupGone {
            job: job.clone(),
            attempt: 1,
        },
    );
    h.started(1.5);
    h.effects();
    h.event(2.0, EventKind::Completed, Some(1));
    let effects = h.effects();
    assert_eq!(effects.len(), 1, "{effects:?}");
    assert!(
        matches!(&effects[0], Effect::RecordEvent { attempt: 1, ignored: Some(why), .. } if why.contains("stale"))
    );
    assert_eq!(h.state(), JobState::Running);
    // A bare `completed` (no attempt) counts for the current attempt.
    h.event(3.0, EventKind::Completed, None);
    assert_eq!(h.state(), JobState::Completed);
}

#[test]
fn an_error_and_an_exited_arriving_together_fail_the_attempt_once() {
    let mut h = Harness::new(config());
    h.started(0.0);
    h.event(1.0, EventKind::Error, Some(1));
    h.event_with(1.0, EventKind::Exited, Some(1), Some(1), Signature::Valid);
    let effects = h.effects();
    let failures = effects
        .iter()
        .filter(|e| matches!(e, Effect::Transition { .. }))
        .count();
    assert_eq!(failures, 1, "{effects:?}");
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::RecordEvent {
            event: Incoming {
                kind: EventKind::Exited,
                ..
            },
            ignored: Some(_),
            ..
        }
    )));
}

#[test]
fn completed_arriving_as_the_idle_timeout_fires_wins() {
    let mut h = Harness::new(config());
    h.started(0.0);
    h.event(600.0, EventKind::Completed, Some(1));
    h.tick(600.0);
    assert_eq!(h.state(), JobState::Completed);
    let transitions = h
        .effects()
        .into_iter()
        .filter(|e| matches!(e, Effect::Transition { .. }))
        .count();
    assert_eq!(transitions, 1);
}

#[test]
fn the_timeout_firing_first_then_a_late_completed_does_not_resurrect_the_attempt() {
    let mut cfg = config();
    cfg.retry.max_attempts = 1;
    let mut h = Harness::new(cfg);
    h.started(0.0);
    h.tick(600.0);
    assert_eq!(h.state(), JobState::Failed);
    h.event(600.0, EventKind::Completed, Some(1));
    assert_eq!(h.state(), JobState::Failed);
}

#[test]
fn unsigned_events_are_ignored_when_signatures_are_required() {
    let mut h = Harness::new(config());
    h.started(0.0);
    h.event_with(1.0, EventKind::Completed, None, None, Signature::Unsigned);
    assert_eq!(h.state(), JobState::Running);
    let mut cfg = config();
    cfg.require_signature = false;
    let mut lax = Harness::new(cfg);
    lax.started(0.0);
    lax.event_with(1.0, EventKind::Completed, None, None, Signature::Unsigned);
    assert_eq!(lax.state(), JobState::Completed);
}

#[test]
fn output_keeps_a_job_alive_unless_liveness_is_events() {
    for (liveness, hung) in [
        (Liveness::Both, false),
        (Liveness::Output, false),
        (Liveness::Events, true),
    ] {
        let mut cfg = config();
        cfg.liveness = liveness;
        let mut h = Harness::new(cfg);
        let job = h.job.clone();
        h.started(0.0);
        h.input(500.0, Input::Output { job, attempt: 1 });
        h.tick(600.0);
        assert_eq!(h.state() == JobState::Retrying, hung, "{liveness:?}");
    }
}

#[test]
fn waiting_pauses_the_idle_timer_until_the_agent_works_again() {
    let mut h = Harness::new(config());
    h.started(0.0);
    h.event(10.0, EventKind::Waiting, None);
    assert_eq!(h.state(), JobState::Waiting);
    h.tick(5000.0);
    assert_eq!(h.state(), JobState::Waiting);
    h.event(5001.0, EventKind::Heartbeat, None);
    assert_eq!(h.state(), JobState::Running);
    assert_eq!(h.core.poll_timeout(), Some(h.at(5601.0)));
}

#[test]
fn on_waiting_fail_fails_the_attempt() {
    let mut cfg = config();
    cfg.on_waiting = OnWaiting::Fail;
    cfg.retry.max_attempts = 1;
    let mut h = Harness::new(cfg);
    h.started(0.0);
    h.event(1.0, EventKind::Waiting, None);
    assert_eq!(h.state(), JobState::Failed);
}

#[test]
fn exit_zero_completes_only_with_complete_on_exit() {
    for (complete_on_exit, expected) in [(true, JobState::Completed), (false, JobState::Retrying)] {
        let mut cfg = config();
        cfg.complete_on_exit = complete_on_exit;
        let mut h = Harness::new(cfg);
        h.started(0.0);
        h.event_with(1.0, EventKind::Exited, Some(1), Some(0), Signature::Valid);
        assert_eq!(h.state(), expected);
    }
}

#[test]
fn a_dead_pane_waits_for_the_exited_event_then_decides_from_its_status() {
    let mut h = Harness::new(config());
    let job = h.job.clone();
    h.started(0.0);
    h.input(
        1.0,
        Input::PaneDead {
            job: job.clone(),
            attempt: 1,
            status: Some(3),
        },
    );
    assert_eq!(h.state(), JobState::Running);
    h.tick(1.0 + EXIT_SETTLE.as_secs_f64());
    assert_eq!(h.state(), JobState::Retrying);
    let effects = h.effects();
    assert!(effects.iter().any(|e| matches!(e, Effect::Transition { failure: Some(Failure { kind: K::Exit, reason }), .. } if reason.contains("status 3"))));
}

#[test]
fn a_wrapper_that_dies_before_started_is_a_start_timeout() {
    let mut h = Harness::new(config());
    let job = h.job.clone();
    h.effects();
    h.input(
        0.1,
        Input::PaneDead {
            job,
            attempt: 1,
            status: Some(3),
        },
    );
    h.tick(0.1 + EXIT_SETTLE.as_secs_f64());
    let effects = h.effects();
    assert!(
        effects.iter().any(|e| matches!(
            e,
            Effect::Transition {
                failure: Some(Failure {
                    kind: K::StartTimeout,
                    ..
                }),
                ..
            }
        )),
        "{effects:?}"
    );
}

#[test]
fn no_started_within_the_start_timeout_fails() {
    let mut h = Harness::new(config());
    h.effects();
    h.tick(59.0);
    assert_eq!(h.state(), JobState::Launching);
    h.tick(60.0);
    assert_eq!(h.state(), JobState::Retrying);
}

#[test]
fn lost_plus_a_dead_pane_is_lost() {
    let mut h = Harness::new(config());
    let job = h.job.clone();
    h.started(0.0);
    h.event(1.0, EventKind::Lost, None);
    assert_eq!(h.state(), JobState::Running);
    h.input(1.2, Input::WindowGone { job, attempt: 1 });
    let effects = h.effects();
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Transition {
            failure: Some(Failure { kind: K::Lost, .. }),
            ..
        }
    )));
}

#[test]
fn the_job_timeout_ends_it_as_timed_out_without_retry() {
    let mut cfg = config();
    cfg.timeouts.job = 100 * SEC;
    cfg.timeouts.idle = 1000 * SEC;
    let mut h = Harness::new(cfg);
    h.started(0.0);
    h.tick(100.0);
    assert_eq!(h.state(), JobState::TimedOut);
}

#[test]
fn the_attempt_timeout_retries_and_finally_times_out() {
    let mut cfg = config();
    cfg.timeouts.attempt = 100 * SEC;
    cfg.timeouts.idle = 1000 * SEC;
    cfg.retry.max_attempts = 1;
    let mut h = Harness::new(cfg);
    h.started(0.0);
    h.tick(100.0);
    assert_eq!(h.state(), JobState::TimedOut);
}

#[test]
fn cancel_stops_the_attempt_and_never_retries() {
    let mut h = Harness::new(config());
    let job = h.job.clone();
    h.started(0.0);
    h.input(
        1.0,
        Input::Cancel {
            job: job.clone(),
            reason: "user".into(),
        },
    );
    assert_eq!(h.state(), JobState::Cancelled);
    let effects = h.actions();
    assert_eq!(
        effects[1],
        Effect::Signal {
            job: job.clone(),
            attempt: 1,
            signal: StopSignal::Term
        }
    );
    h.input(
        1.1,
        Input::GroupGone {
            job: job.clone(),
            attempt: 1,
        },
    );
    assert_eq!(
        h.actions(),
        vec![Effect::CloseWindow {
            job,
            attempt: 1,
            keep: false
        }]
    );
    assert!(h.core.is_done());
}

#[test]
fn a_failed_launch_is_a_start_failure() {
    let mut cfg = config();
    cfg.retry.max_attempts = 1;
    let mut h = Harness::new(cfg);
    let job = h.job.clone();
    h.effects();
    h.input(
        0.0,
        Input::LaunchFailed {
            job,
            attempt: 1,
            reason: "no tmux".into(),
        },
    );
    assert_eq!(h.state(), JobState::Failed);
}

#[test]
fn an_adopted_attempt_runs_on_without_a_launch_and_ends_by_its_events() {
    let t0 = Instant::now();
    let job = JobId::parse("adopted").expect("id");
    let mut core = Core::new(Box::new(|| 1.0));
    core.adopt(
        t0,
        job.clone(),
        config(),
        Adoption {
            attempt: 2,
            job_deadline: None,
            backoff_until: None,
            limited: false,
            uncharged: 0,
        },
    );
    assert!(core.poll_effect().is_none(), "adopting must not launch");
    assert_eq!(core.state(&job), Some(JobState::Running));
    assert_eq!(core.poll_timeout(), Some(t0 + 600 * SEC));
    let event = Incoming {
        kind: EventKind::Completed,
        attempt: Some(2),
        job_named: None,
        message: None,
        exit_code: None,
        failure_kind: None,
        signature: Signature::Valid,
        sent: None,
        data: None,
        limit_resets: None,
    };
    core.handle(
        t0 + SEC,
        Input::Event {
            job: job.clone(),
            event,
        },
    );
    assert_eq!(core.state(&job), Some(JobState::Completed));
}

#[test]
fn many_jobs_share_one_timer_query() {
    let mut core = Core::new(Box::new(|| 1.0));
    let t0 = Instant::now();
    for i in 0..500 {
        let mut cfg = config();
        cfg.timeouts.start = Duration::from_secs(60 + i);
        core.add(t0, JobId::parse(&format!("j{i}")).expect("id"), cfg);
    }
    assert_eq!(core.poll_timeout(), Some(t0 + 60 * SEC));
    core.handle_timeout(t0 + 60 * SEC);
    assert_eq!(core.poll_timeout(), Some(t0 + 61 * SEC));
}

/// A core that adopts `job` (a crashed supervisor's) at `t0`.
fn adopted(config: JobConfig, adoption: Adoption) -> (Core, JobId, Instant) {
    let t0 = Instant::now();
    let job = JobId::parse("orphan").expect("id");
    let mut core = Core::new(Box::new(|| 1.0));
    core.adopt(t0, job.clone(), config, adoption);
    (core, job, t0)
}

fn drain(core: &mut Core) -> Vec<Effect> {
    std::iter::from_fn(|| core.poll_effect()).collect()
}

#[test]
fn launches_and_backoffs_leave_a_checkpoint_with_the_first_launchs_job_deadline() {
    let mut cfg = config();
    cfg.retry.max_attempts = 2;
    let mut h = Harness::new(cfg);
    let job = h.job.clone();
    let checkpoints = |effects: &[Effect]| -> Vec<Checkpoint> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Checkpoint { checkpoint, .. } => Some(*checkpoint),
                _ => None,
            })
            .collect()
    };
    let deadline = Some(h.at(6.0 * 3600.0));
    assert_eq!(
        checkpoints(&h.effects()),
        vec![Checkpoint {
            first_attempt: 1,
            job_deadline: deadline,
            backoff_until: None,
            limited: false,
            uncharged: 0,
        }]
    );
    h.started(1.0);
    h.event(10.0, EventKind::Error, Some(1));
    h.input(
        10.0,
        Input::GroupGone {
            job: job.clone(),
            attempt: 1,
        },
    );
    assert_eq!(
        checkpoints(&h.effects()),
        vec![Checkpoint {
            first_attempt: 1,
            job_deadline: deadline,
            backoff_until: Some(h.at(15.0)),
            limited: false,
            uncharged: 0,
        }]
    );
    h.tick(15.0);
    assert_eq!(
        checkpoints(&h.effects()),
        vec![Checkpoint {
            first_attempt: 1,
            job_deadline: deadline,
            backoff_until: None,
            limited: false,
            uncharged: 0,
        }],
        "the second launch keeps the first launch's job deadline"
    );
}

#[test]
fn an_adopted_job_in_backoff_resumes_as_retrying_and_launches_when_the_backoff_ends() {
    let now = Instant::now();
    let mut cfg = config();
    cfg.retry.max_attempts = 2;
    let (mut core, job, t0) = adopted(
        cfg,
        Adoption {
            attempt: 1,
            job_deadline: Some(now + 3600 * SEC),
            backoff_until: Some(now + 4 * SEC),
            limited: false,
            uncharged: 0,
        },
    );
    assert_eq!(core.state(&job), Some(JobState::Retrying));
    assert!(
        drain(&mut core).is_empty(),
        "no invented failure, no launch yet"
    );
    let backoff_end = core.poll_timeout().expect("the backoff timer");
    assert!(backoff_end >= t0 && backoff_end <= now + 4 * SEC);
    core.handle_timeout(backoff_end);
    let effects = drain(&mut core);
    assert!(transition(&job, 2, JobState::Retrying, JobState::Launching)(&effects[0]));
    assert_eq!(
        effects[1],
        Effect::Launch {
            job: job.clone(),
            attempt: 2
        }
    );
    // Attempt 2 of 2 fails: the budget kept across the crash says no more.
    core.handle(
        backoff_end + SEC,
        Input::LaunchFailed {
            job: job.clone(),
            attempt: 2,
            reason: "x".into(),
        },
    );
    assert_eq!(core.state(&job), Some(JobState::Failed));
    assert_eq!(core.attempt(&job), Some(2));
}

#[test]
fn an_adopted_job_whose_window_was_killed_with_max_attempts_1_fails_and_ends() {
    let mut cfg = config();
    cfg.retry.max_attempts = 1;
    let (mut core, job, t0) = adopted(
        cfg,
        Adoption {
            attempt: 1,
            job_deadline: None,
            backoff_until: None,
            limited: false,
            uncharged: 0,
        },
    );
    core.handle(
        t0,
        Input::WindowGone {
            job: job.clone(),
            attempt: 1,
        },
    );
    core.handle_timeout(t0 + EXIT_SETTLE);
    assert_eq!(core.state(&job), Some(JobState::Failed));
    core.handle(
        t0 + EXIT_SETTLE,
        Input::GroupGone {
            job: job.clone(),
            attempt: 1,
        },
    );
    assert!(core.is_done(), "resume must end, not wait for a retry");
    assert!(!drain(&mut core)
        .iter()
        .any(|e| matches!(e, Effect::Launch { .. })));
}

#[test]
fn an_adopted_job_keeps_its_original_job_deadline() {
    let now = Instant::now();
    let (mut core, job, _) = adopted(
        config(),
        Adoption {
            attempt: 1,
            job_deadline: Some(now + 30 * SEC),
            backoff_until: None,
            limited: false,
            uncharged: 0,
        },
    );
    assert_eq!(core.poll_timeout(), Some(now + 30 * SEC));
    core.handle_timeout(now + 30 * SEC);
    assert_eq!(core.state(&job), Some(JobState::TimedOut));
}

#[test]
fn an_adopted_job_whose_deadline_passed_meanwhile_times_out_at_once() {
    let now = Instant::now();
    let (mut core, job, t0) = adopted(
        config(),
        Adoption {
            attempt: 1,
            job_deadline: Some(now),
            backoff_until: None,
            limited: false,
            uncharged: 0,
        },
    );
    core.handle_timeout(t0);
    assert_eq!(core.state(&job), Some(JobState::TimedOut));
}

#[test]
fn a_recorded_clean_exit_completes_even_when_the_last_will_arrives() {
    let mut cfg = config();
    cfg.complete_on_exit = true;
    let mut h = Harness::new(cfg);
    let job = h.job.clone();
    h.effects();
    h.started(1.0);
    h.event(5.0, EventKind::Lost, Some(1));
    h.input(
        5.0,
        Input::ExitRecorded {
            job: job.clone(),
            attempt: 1,
            code: 0,
        },
    );
    h.input(
        5.1,
        Input::PaneDead {
            job,
            attempt: 1,
            status: Some(0),
        },
    );
    assert_eq!(h.state(), JobState::Completed);
}

#[test]
fn a_recorded_exit_beats_a_last_will_and_its_code_decides() {
    let mut cfg = config();
    cfg.retry.max_attempts = 1;
    let mut h = Harness::new(cfg);
    let job = h.job.clone();
    h.effects();
    h.started(1.0);
    h.input(
        5.0,
        Input::ExitRecorded {
            job: job.clone(),
            attempt: 1,
            code: 3,
        },
    );
    h.input(
        5.0,
        Input::PaneDead {
            job,
            attempt: 1,
            status: Some(3),
        },
    );
    h.event(5.5, EventKind::Lost, Some(1));
    assert_eq!(h.state(), JobState::Running, "waits for a late completed");
    h.tick(7.0);
    let effects = h.effects();
    assert!(
        effects.iter().any(|e| matches!(e, Effect::Transition {
            to: JobState::Failed,
            failure: Some(Failure { kind: K::Exit, reason }), ..
        } if reason.contains("code 3"))),
        "{effects:?}"
    );
}

#[test]
fn a_signed_event_without_an_attempt_is_recorded_and_ignored() {
    let mut cfg = config();
    cfg.require_signature = false;
    let mut h = Harness::new(cfg);
    h.effects();
    h.started(1.0);
    h.event_with(2.0, EventKind::Completed, None, None, Signature::Valid);
    let effects = h.effects();
    assert!(
        matches!(&effects[..], [Effect::RecordEvent { ignored: Some(why), .. }] if why.contains("attempt")),
        "{effects:?}"
    );
    assert_eq!(h.state(), JobState::Running);
    // Unsigned, without attempt (mosquitto_pub, the Python scripts): accepted.
    h.event_with(3.0, EventKind::Completed, None, None, Signature::Unsigned);
    assert_eq!(h.state(), JobState::Completed);
}

// Tests below were written for mutants cargo-mutants found uncaught in
// core.rs (docs/testing.md): each pins one comparison or guard.

#[test]
fn an_event_from_an_attempt_not_yet_launched_is_recorded_and_ignored() {
    let mut h = Harness::new(config());
    h.started(0.0);
    h.event(1.0, EventKind::Completed, Some(2));
    assert_eq!(h.state(), JobState::Running);
    let ignored = h.effects().into_iter().any(|e| {
        matches!(e, Effect::RecordEvent { ignored: Some(why), .. } if why.contains("not been launched"))
    });
    assert!(
        ignored,
        "the future attempt's event was not recorded as ignored"
    );
}

#[test]
fn inputs_about_an_older_attempt_do_not_touch_the_current_one() {
    let mut h = Harness::new(config());
    let job = h.job.clone();
    h.started(0.0);
    h.event(1.0, EventKind::Error, None);
    h.input(
        1.1,
        Input::GroupGone {
            job: job.clone(),
            attempt: 1,
        },
    );
    h.tick(1.1 + 10.0); // past the 5 s backoff ceiling: attempt 2 launches
    assert_eq!(h.core.attempt(&job), Some(2));
    h.event(12.0, EventKind::Started, Some(2));
    h.effects();
    for input in [
        Input::LaunchFailed {
            job: job.clone(),
            attempt: 1,
            reason: "old".into(),
        },
        Input::PaneDead {
            job: job.clone(),
            attempt: 1,
            status: Some(1),
        },
        Input::WindowGone {
            job: job.clone(),
            attempt: 1,
        },
        Input::GroupGone {
            job: job.clone(),
            attempt: 1,
        },
    ] {
        h.input(12.5, input);
    }
    h.tick(12.5 + 3.0); // past EXIT_SETTLE: a dead pane of attempt 2 would decide now
    assert_eq!(h.state(), JobState::Running, "{:?}", h.actions());
}

#[test]
fn the_core_lists_its_jobs_and_the_attempts_being_stopped() {
    let mut h = Harness::new(config());
    let job = h.job.clone();
    h.started(0.0);
    assert_eq!(h.core.job_ids().collect::<Vec<_>>(), vec![&job]);
    assert_eq!(h.core.stopping().count(), 0);
    assert!(!h.core.is_finished(&job));
    h.event(1.0, EventKind::Completed, None);
    assert_eq!(h.core.stopping().collect::<Vec<_>>(), vec![(&job, 1)]);
    h.input(
        1.1,
        Input::GroupGone {
            job: job.clone(),
            attempt: 1,
        },
    );
    assert_eq!(h.core.stopping().count(), 0);
    assert!(h.core.is_finished(&job));
}

#[test]
fn a_cancel_waits_the_whole_grace_before_sigkill() {
    let mut h = Harness::new(config());
    let job = h.job.clone();
    h.started(0.0);
    h.input(
        10.0,
        Input::Cancel {
            job: job.clone(),
            reason: "user".into(),
        },
    );
    h.actions();
    assert_eq!(h.core.poll_timeout(), Some(h.at(15.0)), "kill_grace is 5 s");
    h.tick(14.9);
    let kill = Effect::Signal {
        job,
        attempt: 1,
        signal: StopSignal::Kill,
    };
    assert!(
        !h.actions().contains(&kill),
        "SIGKILL before the grace ended"
    );
    h.tick(15.0);
    assert!(h.actions().contains(&kill));
}

#[test]
fn an_adopted_attempt_from_before_its_budget_uses_none_of_it() {
    // `retry` wrote the new budget (first attempt 3) but the supervisor
    // died before launching it: the old attempt 2 is adopted, its window
    // is gone, and the budget of one attempt is still whole.
    let mut cfg = config();
    cfg.retry.max_attempts = 1;
    cfg.first_attempt = 3;
    let adoption = Adoption {
        attempt: 2,
        job_deadline: None,
        backoff_until: None,
        limited: false,
        uncharged: 0,
    };
    let (mut core, job, t0) = adopted(cfg, adoption);
    core.handle(
        t0,
        Input::WindowGone {
            job: job.clone(),
            attempt: 2,
        },
    );
    core.handle_timeout(t0 + EXIT_SETTLE);
    assert_eq!(core.state(&job), Some(JobState::Retrying));
}

#[test]
fn a_dead_pane_is_due_when_its_wait_for_exited_ends() {
    let mut h = Harness::new(config());
    let job = h.job.clone();
    h.started(0.0);
    let dead = Input::PaneDead {
        job,
        attempt: 1,
        status: Some(3),
    };
    h.input(1.0, dead);
    assert_eq!(h.core.poll_timeout(), Some(h.at(1.0) + EXIT_SETTLE));
}

#[test]
fn a_dead_pane_near_the_idle_deadline_still_waits_for_its_exited_event() {
    let mut cfg = config();
    cfg.complete_on_exit = true;
    cfg.timeouts.idle = 10 * SEC;
    let mut h = Harness::new(cfg);
    let job = h.job.clone();
    h.started(0.0);
    let dead = Input::PaneDead {
        job,
        attempt: 1,
        status: Some(0),
    };
    h.input(9.5, dead);
    assert_eq!(h.core.poll_timeout(), Some(h.at(9.5) + EXIT_SETTLE));
    h.tick(10.0); // the idle deadline, inside the settle: not a hang
    assert_eq!(h.state(), JobState::Running, "{:?}", h.actions());
    h.tick(9.5 + EXIT_SETTLE.as_secs_f64());
    assert_eq!(h.state(), JobState::Completed);
}

#[test]
fn recorded_exits_of_an_older_attempt_or_not_clean_do_not_complete() {
    let mut cfg = config();
    cfg.complete_on_exit = true;
    let mut h = Harness::new(cfg);
    let job = h.job.clone();
    h.started(0.0);
    let exit = |attempt, code| Input::ExitRecorded {
        job: job.clone(),
        attempt,
        code,
    };
    h.input(1.0, exit(1, 3));
    assert_eq!(h.state(), JobState::Running, "code 3 waits for the pane");
    h.event(2.0, EventKind::Error, None);
    h.input(
        2.1,
        Input::GroupGone {
            job: job.clone(),
            attempt: 1,
        },
    );
    h.tick(2.1 + 10.0);
    h.started(13.0);
    h.input(14.0, exit(1, 0));
    assert_eq!(h.state(), JobState::Running, "attempt 1's exit, not 2's");
    let mut cfg = config();
    cfg.complete_on_exit = false;
    let mut h = Harness::new(cfg);
    h.started(0.0);
    h.input(1.0, exit(1, 0));
    assert_eq!(h.state(), JobState::Running, "no complete_on_exit");
}

#[test]
fn a_screen_gone_report_without_a_screen_changes_nothing() {
    let mut h = Harness::new(config());
    let job = h.job.clone();
    h.started(0.0);
    h.event(1.0, EventKind::Waiting, None);
    assert_eq!(h.state(), JobState::Waiting);
    h.input(2.0, Input::ScreenGone { job, attempt: 1 });
    assert_eq!(h.state(), JobState::Waiting, "only a new event ends it");
}

#[test]
fn a_dead_pane_s_status_completes_only_a_clean_exit_with_complete_on_exit() {
    let cases = [
        (true, Some(0), false, JobState::Completed),
        (true, Some(3), false, JobState::Retrying),
        (false, Some(0), false, JobState::Retrying),
        (true, None, true, JobState::Retrying),
    ];
    for (complete_on_exit, status, gone, expected) in cases {
        let mut cfg = config();
        cfg.complete_on_exit = complete_on_exit;
        let mut h = Harness::new(cfg);
        let job = h.job.clone();
        h.started(0.0);
        let input = if gone {
            Input::WindowGone { job, attempt: 1 }
        } else {
            Input::PaneDead {
                job,
                attempt: 1,
                status,
            }
        };
        h.input(1.0, input);
        h.tick(1.0 + EXIT_SETTLE.as_secs_f64());
        let case = (complete_on_exit, status, gone);
        assert_eq!(h.state(), expected, "{case:?}");
    }
}

#[test]
fn a_second_report_of_a_dead_pane_neither_delays_its_settle_nor_changes_it() {
    let mut h = Harness::new(config());
    let job = h.job.clone();
    h.started(0.0);
    let dead = |status| Input::PaneDead {
        job: job.clone(),
        attempt: 1,
        status,
    };
    h.input(1.0, dead(Some(3)));
    h.input(2.5, dead(Some(3)));
    h.input(
        2.6,
        Input::WindowGone {
            job: job.clone(),
            attempt: 1,
        },
    );
    h.tick(1.0 + EXIT_SETTLE.as_secs_f64());
    assert_eq!(h.state(), JobState::Retrying, "the settle moved");
    let effects = h.effects();
    assert!(
        effects.iter().any(|e| matches!(e, Effect::Transition { failure: Some(Failure { reason, .. }), .. } if reason.contains("status 3"))),
        "{effects:?}"
    );
}

#[test]
fn an_attempt_over_its_budget_fails_as_budget_and_is_never_retried() {
    let mut cfg = config();
    // Even listed in `retry.on`, with attempts left: a spent budget would
    // be spent again.
    cfg.retry.on.push(K::Budget);
    let mut h = Harness::new(cfg);
    h.started(0.0);
    h.effects();
    // An older attempt's report changes nothing.
    h.input(
        5.0,
        Input::OverBudget {
            job: h.job.clone(),
            attempt: 7,
            reason: "old".into(),
        },
    );
    assert_eq!(h.state(), JobState::Running);
    h.input(
        10.0,
        Input::OverBudget {
            job: h.job.clone(),
            attempt: 1,
            reason: "120000 tokens spent, over max_tokens = 100000".into(),
        },
    );
    assert_eq!(h.state(), JobState::Failed);
    let failure = h.effects().into_iter().find_map(|e| match e {
        Effect::Transition { failure, .. } => failure,
        _ => None,
    });
    let failure = failure.expect("a failure");
    assert_eq!(failure.kind, K::Budget);
    assert!(failure.reason.contains("max_tokens"), "{failure:?}");
}
