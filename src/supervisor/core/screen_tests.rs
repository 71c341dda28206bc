//! Screens (pane dialogs no hook reports) and agent refusals, driven by a
//! fake clock: when the core asks for pane reads, how a screen makes the
//! attempt wait (no start timeout, no idle timeout, never retried into),
//! its answer, and `agent_config` failures that are not retried.

use super::*;
use crate::model::FailureKind as K;

const SEC: Duration = Duration::from_secs(1);

fn config() -> JobConfig {
    JobConfig {
        timeouts: Timeouts {
            start: 10 * SEC,
            idle: 30 * SEC,
            attempt: 3600 * SEC,
            job: 7200 * SEC,
        },
        retry: RetryPolicy {
            max_attempts: 3,
            backoff: SEC,
            multiplier: 2.0,
            backoff_max: 60 * SEC,
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
        liveness: Liveness::Events,
        complete_on_exit: false,
        keep_failed: false,
        kill_grace: 5 * SEC,
        on_waiting: OnWaiting::Notify,
        require_signature: true,
        first_attempt: 1,
        limits: LimitPolicy::default(),
    }
}

struct H {
    core: Core,
    t0: Instant,
    job: JobId,
}

const TRUST: &str = "Do you trust the files in this folder?";

impl H {
    fn new(config: JobConfig) -> H {
        let t0 = Instant::now();
        let job = JobId::parse("job-1").expect("id");
        let mut core = Core::new(Box::new(|| 1.0));
        core.add(t0, job.clone(), config);
        let mut h = H { core, t0, job };
        h.effects();
        h
    }

    fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    fn effects(&mut self) -> Vec<Effect> {
        std::iter::from_fn(|| self.core.poll_effect())
            .filter(|e| !matches!(e, Effect::RecordEvent { .. }))
            .collect()
    }

    /// A signed event of the current attempt (signed events name theirs).
    fn event(&mut self, secs: f64, kind: EventKind, message: Option<&str>) {
        let event = Incoming {
            kind,
            attempt: self.core.attempt(&self.job),
            job_named: None,
            message: message.map(str::to_owned),
            exit_code: None,
            signature: Signature::Valid,
            sent: None,
            data: None,
            limit_resets: None,
            failure_kind: None,
        };
        let job = self.job.clone();
        self.core.handle(self.at(secs), Input::Event { job, event });
    }

    fn screen(&mut self, secs: f64, attempt: u32, message: &str, keys: &[&str]) {
        let input = Input::Screen {
            job: self.job.clone(),
            attempt,
            message: message.to_owned(),
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        };
        self.core.handle(self.at(secs), input);
    }

    fn gone(&mut self, secs: f64, attempt: u32) {
        let input = Input::ScreenGone {
            job: self.job.clone(),
            attempt,
        };
        self.core.handle(self.at(secs), input);
    }

    fn watched(&self, secs: f64) -> bool {
        self.core
            .screen_watch(self.at(secs))
            .iter()
            .any(|(j, _)| *j == self.job)
    }

    fn state(&self) -> JobState {
        self.core.state(&self.job).expect("job")
    }
}

fn waiting_with(message: &str) -> impl Fn(&Effect) -> bool + '_ {
    move |e| matches!(e, Effect::Transition { to: JobState::Waiting, reason: Some(r), .. } if r == message)
}

#[test]
fn the_pane_is_read_before_started_and_after_a_quiet_spell_never_while_events_flow() {
    let mut h = H::new(config());
    assert!(h.watched(0.0), "before `started`");
    h.event(0.5, EventKind::Started, None);
    h.effects();
    assert!(!h.watched(1.0), "events are flowing");
    assert!(h.watched(0.5 + SCREEN_QUIET.as_secs_f64()), "quiet");
    h.event(3.0, EventKind::Heartbeat, None);
    assert!(!h.watched(4.0));
    // Waiting on an event (a Notification): nothing to look for.
    h.event(
        4.0,
        EventKind::Waiting,
        Some("Claude needs your permission"),
    );
    assert!(!h.watched(20.0));
}

#[test]
fn a_screen_after_started_makes_the_job_wait_pauses_the_idle_timer_and_is_never_retried_into() {
    let mut h = H::new(config());
    h.event(0.2, EventKind::Started, None);
    h.effects();
    h.screen(2.5, 1, TRUST, &[]);
    let effects = h.effects();
    assert_eq!(effects.len(), 1, "{effects:?}");
    assert!(waiting_with(TRUST)(&effects[0]), "{effects:?}");
    assert_eq!(h.state(), JobState::Waiting);
    // The idle timer (30 s) is paused; only the attempt deadline is left.
    assert_eq!(h.core.poll_timeout(), Some(h.at(3600.0)));
    h.core.handle_timeout(h.at(1000.0));
    assert!(h.effects().is_empty());
    assert_eq!(h.state(), JobState::Waiting);
    // The same screen seen again: no second transition (one on_waiting).
    h.screen(1002.0, 1, TRUST, &[]);
    assert!(h.effects().is_empty());
    // Still read while shown, to see it go.
    assert!(h.watched(1003.0));
    // A heartbeat while it is shown does not end the wait.
    h.event(1003.0, EventKind::Started, None);
    assert!(h.effects().is_empty());
    assert_eq!(h.state(), JobState::Waiting);
    // Answered in the window: running again, with a fresh idle timer.
    h.gone(1004.0, 1);
    let effects = h.effects();
    assert!(
        matches!(
            &effects[..],
            [Effect::Transition {
                from: JobState::Waiting,
                to: JobState::Running,
                ..
            }]
        ),
        "{effects:?}"
    );
    assert_eq!(h.core.poll_timeout(), Some(h.at(1034.0)));
    // A look that finds no screen when none was shown changes nothing.
    h.gone(1005.0, 1);
    assert!(h.effects().is_empty());
}

#[test]
fn a_screen_before_started_stops_the_start_timeout() {
    let mut h = H::new(config());
    assert_eq!(h.core.poll_timeout(), Some(h.at(10.0)));
    h.screen(3.0, 1, TRUST, &[]);
    let effects = h.effects();
    assert!(waiting_with(TRUST)(&effects[0]), "{effects:?}");
    h.core.handle_timeout(h.at(60.0));
    assert!(
        h.effects().is_empty(),
        "no start_timeout while a screen shows"
    );
    assert_eq!(h.state(), JobState::Waiting);
    // The wrapper's late `started` does not hide the screen.
    h.event(61.0, EventKind::Started, None);
    assert!(h.effects().is_empty());
    assert_eq!(h.state(), JobState::Waiting);
    h.event(62.0, EventKind::Completed, None);
    let effects = h.effects();
    assert!(
        matches!(
            &effects[0],
            Effect::Transition {
                to: JobState::Completed,
                ..
            }
        ),
        "{effects:?}"
    );
}

#[test]
fn a_screen_rule_with_keys_is_answered_once() {
    let mut h = H::new(config());
    h.event(0.2, EventKind::Started, None);
    h.effects();
    h.screen(3.0, 1, TRUST, &["Enter"]);
    let effects = h.effects();
    assert!(waiting_with(TRUST)(&effects[0]), "{effects:?}");
    assert_eq!(
        effects[1],
        Effect::SendKeys {
            job: h.job.clone(),
            attempt: 1,
            keys: vec!["Enter".into()],
        }
    );
    h.screen(5.0, 1, TRUST, &["Enter"]);
    assert!(
        h.effects().is_empty(),
        "not typed again while the same screen shows"
    );
}

#[test]
fn screens_of_another_attempt_or_a_finished_one_are_ignored() {
    let mut h = H::new(config());
    h.event(0.2, EventKind::Started, None);
    h.effects();
    h.screen(3.0, 2, TRUST, &["Enter"]);
    assert!(h.effects().is_empty());
    h.event(4.0, EventKind::Completed, None);
    h.effects();
    h.screen(5.0, 1, TRUST, &["Enter"]);
    assert!(h.effects().is_empty());
    assert!(!h.watched(10.0));
}

#[test]
fn on_waiting_fail_fails_at_a_screen_without_retrying_into_it() {
    let mut h = H::new(JobConfig {
        on_waiting: OnWaiting::Fail,
        ..config()
    });
    h.event(0.2, EventKind::Started, None);
    h.effects();
    h.screen(3.0, 1, TRUST, &[]);
    let effects = h.effects();
    assert!(
        matches!(&effects[0], Effect::Transition { to: JobState::Failed, failure: Some(Failure { kind: K::AgentConfig, reason }), .. } if reason.contains(TRUST)),
        "{effects:?}"
    );
}

#[test]
fn an_agent_config_error_fails_at_once_without_a_retry() {
    let mut h = H::new(config());
    h.event(0.2, EventKind::Started, None);
    h.effects();
    let event = Incoming {
        kind: EventKind::Error,
        attempt: Some(1),
        job_named: None,
        message: Some("Not inside a trusted directory".into()),
        exit_code: None,
        signature: Signature::Valid,
        sent: None,
        data: None,
        limit_resets: None,
        failure_kind: Some(K::AgentConfig),
    };
    let job = h.job.clone();
    h.core.handle(h.at(0.5), Input::Event { job, event });
    let effects = h.effects();
    assert!(
        matches!(&effects[0], Effect::Transition { to: JobState::Failed, failure: Some(Failure { kind: K::AgentConfig, reason }), .. } if reason == "Not inside a trusted directory"),
        "{effects:?}"
    );
    // Unsigned refusals are ignored like any unsigned event.
    let mut h = H::new(config());
    let event = Incoming {
        kind: EventKind::Error,
        attempt: Some(1),
        job_named: None,
        message: None,
        exit_code: None,
        signature: Signature::Unsigned,
        sent: None,
        data: None,
        limit_resets: None,
        failure_kind: Some(K::AgentConfig),
    };
    let job = h.job.clone();
    h.core.handle(h.at(0.5), Input::Event { job, event });
    assert!(h.effects().is_empty());
}
