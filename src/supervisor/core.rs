//! The supervisor's state machine, sans-IO (quinn-proto style): the caller
//! passes `now` with every input, asks `poll_timeout()` when the next timer
//! is due, calls `handle_timeout(now)`, and drains `poll_effect()`. No tokio,
//! no file system, no processes: the tests drive it with a fake clock.

use super::policy::{backoff_ceiling, full_jitter};
use crate::config::file::{FailureKind, Liveness, OnWaiting};
use crate::config::{RetryPolicy, Timeouts};
use crate::mqtt::event::EventKind;
use crate::mqtt::sign::Signature;
use crate::mqtt::topic::JobId;
use crate::registry::JobState;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// How long a dead pane waits for the wrapper's `exited` event (which
/// carries the exit code and follows any `completed` the agent sent) before
/// the pane's own status decides.
pub const EXIT_SETTLE: Duration = Duration::from_secs(2);

/// What the core needs to know about a job.
#[derive(Debug, Clone)]
pub struct JobConfig {
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
    pub liveness: Liveness,
    pub complete_on_exit: bool,
    pub keep_failed: bool,
    pub kill_grace: Duration,
    pub on_waiting: OnWaiting,
    pub require_signature: bool,
    /// The attempt number the first launch gets (1, or more for `retry`).
    pub first_attempt: u32,
}

/// An event received for a job, already decoded and signature-checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub kind: EventKind,
    /// `None` for senders that do not say (bare words): the current attempt.
    pub attempt: Option<u32>,
    pub message: Option<String>,
    /// The agent's exit code, for `exited`.
    pub exit_code: Option<i32>,
    pub signature: Signature,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The attempt's window exists.
    Launched {
        job: JobId,
        attempt: u32,
    },
    LaunchFailed {
        job: JobId,
        attempt: u32,
        reason: String,
    },
    Event {
        job: JobId,
        event: Incoming,
    },
    /// The pane printed something since the last look.
    Output {
        job: JobId,
        attempt: u32,
    },
    PaneDead {
        job: JobId,
        attempt: u32,
        status: Option<i32>,
    },
    WindowGone {
        job: JobId,
        attempt: u32,
    },
    /// No process is left in the attempt's agent group.
    GroupGone {
        job: JobId,
        attempt: u32,
    },
    Cancel {
        job: JobId,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Term,
    Kill,
}

/// A failure with its kind and a human reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Open the attempt's window running the wrapper.
    Launch { job: JobId, attempt: u32 },
    /// Signal the attempt's agent process group.
    Signal {
        job: JobId,
        attempt: u32,
        signal: StopSignal,
    },
    /// Kill the attempt's window, or rename and keep it.
    CloseWindow {
        job: JobId,
        attempt: u32,
        keep: bool,
    },
    Transition {
        job: JobId,
        attempt: u32,
        from: JobState,
        to: JobState,
        reason: Option<String>,
        failure: Option<Failure>,
    },
    /// Append an event to the job's history; `ignored` says why it was not acted on.
    RecordEvent {
        job: JobId,
        attempt: u32,
        event: Incoming,
        ignored: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Retry,
    Done,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Pending,
    /// Window requested; no `started` yet.
    Starting {
        since: Instant,
    },
    Running {
        last_life: Instant,
        waiting: bool,
    },
    /// Stopping the attempt's processes: SIGTERM sent, SIGKILL at `deadline`.
    Stopping {
        after: After,
        deadline: Instant,
        keep: bool,
    },
    Backoff {
        until: Instant,
    },
    Finished,
}

#[derive(Debug, Clone)]
struct Job {
    config: JobConfig,
    state: JobState,
    attempt: u32,
    phase: Phase,
    job_deadline: Option<Instant>,
    attempt_deadline: Option<Instant>,
    /// The Last Will `lost` arrived for this attempt.
    lost: bool,
    /// The pane died (or the window vanished) at this time, with this status.
    dead: Option<(Instant, Option<i32>, bool)>,
}

impl Job {
    fn attempts_used(&self) -> u32 {
        self.attempt + 1 - self.config.first_attempt.min(self.attempt + 1)
    }

    /// The earliest timer of this job, if any.
    fn next_deadline(&self) -> Option<Instant> {
        let mut deadlines: Vec<Instant> = Vec::with_capacity(4);
        match &self.phase {
            Phase::Starting { since } => {
                deadlines.push(*since + self.config.timeouts.start);
            }
            Phase::Running { last_life, waiting } => {
                if !waiting {
                    deadlines.push(*last_life + self.config.timeouts.idle);
                }
            }
            Phase::Stopping { deadline, .. } => return Some(*deadline),
            Phase::Backoff { until } => return Some(*until),
            Phase::Pending | Phase::Finished => return None,
        }
        if let Some((at, _, _)) = self.dead {
            deadlines.push(at + EXIT_SETTLE);
        }
        deadlines.extend(self.attempt_deadline);
        deadlines.extend(self.job_deadline);
        deadlines.into_iter().min()
    }

    fn is_active(&self) -> bool {
        matches!(self.phase, Phase::Starting { .. } | Phase::Running { .. })
    }
}

/// The supervisor core for any number of jobs.
pub struct Core {
    jobs: BTreeMap<JobId, Job>,
    effects: VecDeque<Effect>,
    /// Draws a number in [0, 1] for full jitter.
    jitter: Box<dyn FnMut() -> f64 + Send>,
}

impl Core {
    pub fn new(jitter: Box<dyn FnMut() -> f64 + Send>) -> Core {
        Core {
            jobs: BTreeMap::new(),
            effects: VecDeque::new(),
            jitter,
        }
    }

    /// Adds a job and launches its first attempt.
    pub fn add(&mut self, now: Instant, id: JobId, config: JobConfig) {
        let job = Job {
            attempt: config.first_attempt.saturating_sub(1),
            config,
            state: JobState::Pending,
            phase: Phase::Pending,
            job_deadline: None,
            attempt_deadline: None,
            lost: false,
            dead: None,
        };
        self.jobs.insert(id.clone(), job);
        self.launch(now, &id);
    }

    /// Takes over a job whose attempt `attempt` is already running (after a
    /// supervisor crash): no launch; its timers start now, since the old
    /// supervisor's clock is gone. A retained terminal event or the state of
    /// its window decides what happens next, as for any running attempt.
    pub fn adopt(&mut self, now: Instant, id: JobId, config: JobConfig, attempt: u32) {
        let job = Job {
            attempt,
            state: JobState::Running,
            phase: Phase::Running {
                last_life: now,
                waiting: false,
            },
            job_deadline: Some(now + config.timeouts.job),
            attempt_deadline: Some(now + config.timeouts.attempt),
            config,
            lost: false,
            dead: None,
        };
        self.jobs.insert(id, job);
    }

    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.jobs.values().filter_map(Job::next_deadline).min()
    }

    pub fn state(&self, id: &JobId) -> Option<JobState> {
        self.jobs.get(id).map(|j| j.state)
    }

    #[cfg(test)]
    pub fn attempt(&self, id: &JobId) -> Option<u32> {
        self.jobs.get(id).map(|j| j.attempt)
    }

    pub fn is_done(&self) -> bool {
        self.jobs.values().all(|j| j.phase == Phase::Finished)
    }

    pub fn job_ids(&self) -> impl Iterator<Item = &JobId> {
        self.jobs.keys()
    }

    /// Jobs whose attempt is being stopped (the driver checks their groups).
    pub fn stopping(&self) -> impl Iterator<Item = (&JobId, u32)> {
        self.jobs
            .iter()
            .filter(|(_, j)| matches!(j.phase, Phase::Stopping { .. }))
            .map(|(id, j)| (id, j.attempt))
    }

    fn transition(
        &mut self,
        id: &JobId,
        to: JobState,
        reason: Option<String>,
        failure: Option<Failure>,
    ) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        let from = job.state;
        if from == to {
            return;
        }
        job.state = to;
        self.effects.push_back(Effect::Transition {
            job: id.clone(),
            attempt: job.attempt,
            from,
            to,
            reason,
            failure,
        });
    }

    fn launch(&mut self, now: Instant, id: &JobId) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        job.attempt += 1;
        job.phase = Phase::Starting { since: now };
        job.lost = false;
        job.dead = None;
        job.attempt_deadline = Some(now + job.config.timeouts.attempt);
        if job.job_deadline.is_none() {
            job.job_deadline = Some(now + job.config.timeouts.job);
        }
        let attempt = job.attempt;
        self.transition(id, JobState::Launching, None, None);
        self.effects.push_back(Effect::Launch {
            job: id.clone(),
            attempt,
        });
    }

    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Launched { .. } => {}
            Input::LaunchFailed {
                job,
                attempt,
                reason,
            } => {
                if self.is_current(&job, attempt) {
                    self.fail(
                        now,
                        &job,
                        FailureKind::StartTimeout,
                        format!("cannot open the window: {reason}"),
                    );
                }
            }
            Input::Event { job, event } => self.on_event(now, &job, event),
            Input::Output { job, attempt } => {
                if let Some(j) = self.jobs.get_mut(&job) {
                    if j.attempt == attempt && j.config.liveness != Liveness::Events {
                        if let Phase::Running { last_life, .. } = &mut j.phase {
                            *last_life = now;
                        }
                    }
                }
            }
            Input::PaneDead {
                job,
                attempt,
                status,
            } => self.on_dead(now, &job, attempt, status, false),
            Input::WindowGone { job, attempt } => self.on_dead(now, &job, attempt, None, true),
            Input::GroupGone { job, attempt } => {
                if self.is_current(&job, attempt) {
                    self.finish_stop(now, &job, false);
                }
            }
            Input::Cancel { job, reason } => self.cancel(now, &job, reason),
        }
    }

    fn is_current(&self, id: &JobId, attempt: u32) -> bool {
        self.jobs.get(id).is_some_and(|j| j.attempt == attempt)
    }

    fn on_event(&mut self, now: Instant, id: &JobId, event: Incoming) {
        let Some(job) = self.jobs.get(id) else {
            return;
        };
        let current = job.attempt;
        let attempt = event.attempt.unwrap_or(current);
        let ignored = if attempt < current {
            Some(format!(
                "stale: from attempt {attempt}, current is {current}"
            ))
        } else if attempt > current {
            Some(format!(
                "from attempt {attempt}, which has not been launched"
            ))
        } else if job.config.require_signature && event.signature != Signature::Valid {
            Some(
                format!(
                    "signature {:?}: events.require_signature is on",
                    event.signature
                )
                .to_lowercase(),
            )
        } else if !job.is_active() {
            Some("the attempt is already over".to_owned())
        } else {
            None
        };
        let acts = ignored.is_none();
        self.effects.push_back(Effect::RecordEvent {
            job: id.clone(),
            attempt,
            event: event.clone(),
            ignored,
        });
        if acts {
            self.act_on(now, id, event);
        }
    }

    fn act_on(&mut self, now: Instant, id: &JobId, event: Incoming) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        let complete_on_exit = job.config.complete_on_exit;
        let on_waiting = job.config.on_waiting;
        match event.kind {
            EventKind::Started | EventKind::Heartbeat | EventKind::Progress => {
                let was_waiting = matches!(job.phase, Phase::Running { waiting: true, .. });
                job.phase = Phase::Running {
                    last_life: now,
                    waiting: false,
                };
                if job.state != JobState::Running {
                    let reason = was_waiting.then(|| "the agent is working again".to_owned());
                    self.transition(id, JobState::Running, reason, None);
                }
            }
            EventKind::Waiting => {
                let message = event
                    .message
                    .clone()
                    .unwrap_or_else(|| "needs a human".into());
                if on_waiting == OnWaiting::Fail {
                    self.fail(now, id, FailureKind::Error, format!("the agent is waiting for a human ({message}) and on_waiting = \"fail\""));
                    return;
                }
                job.phase = Phase::Running {
                    last_life: now,
                    waiting: true,
                };
                self.transition(id, JobState::Waiting, Some(message), None);
            }
            EventKind::Completed => self.decide(now, id, None, event.message),
            EventKind::Error => {
                let reason = event
                    .message
                    .unwrap_or_else(|| "the agent reported an error".into());
                self.fail(now, id, FailureKind::Error, reason);
            }
            EventKind::Exited => {
                let code = event.exit_code;
                if code == Some(0) && complete_on_exit {
                    self.decide(now, id, None, Some("the agent exited with code 0".into()));
                } else {
                    let code =
                        code.map_or_else(|| "an unknown code".to_owned(), |c| format!("code {c}"));
                    self.fail(
                        now,
                        id,
                        FailureKind::Exit,
                        format!("the agent exited with {code} without reporting completed"),
                    );
                }
            }
            EventKind::Lost => {
                job.lost = true;
                if job.dead.is_some() {
                    self.fail(
                        now,
                        id,
                        FailureKind::Lost,
                        "the wrapper's connection was lost (Last Will) and its pane is gone".into(),
                    );
                }
            }
            EventKind::Other(_) => {}
        }
    }

    fn on_dead(&mut self, now: Instant, id: &JobId, attempt: u32, status: Option<i32>, gone: bool) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        if job.attempt != attempt || !job.is_active() || job.dead.is_some() {
            return;
        }
        job.dead = Some((now, status, gone));
        if job.lost {
            self.fail(
                now,
                id,
                FailureKind::Lost,
                "the wrapper's connection was lost (Last Will) and its pane is gone".into(),
            );
        }
    }

    /// A dead pane whose `exited` event never came: its status decides.
    fn settle_dead(&mut self, now: Instant, id: &JobId) {
        let Some(job) = self.jobs.get(id) else {
            return;
        };
        let Some((_, status, gone)) = job.dead else {
            return;
        };
        let what = if gone {
            "the window was closed".to_owned()
        } else {
            status.map_or_else(
                || "the window's process ended".to_owned(),
                |s| format!("the window's process ended with status {s}"),
            )
        };
        if matches!(job.phase, Phase::Starting { .. }) {
            self.fail(
                now,
                id,
                FailureKind::StartTimeout,
                format!("{what} before the wrapper reported started"),
            );
        } else if status == Some(0) && job.config.complete_on_exit && !gone {
            self.decide(now, id, None, Some(format!("{what} (no exited event)")));
        } else {
            self.fail(
                now,
                id,
                FailureKind::Exit,
                format!("{what} without a completed event"),
            );
        }
    }

    fn fail(&mut self, now: Instant, id: &JobId, kind: FailureKind, reason: String) {
        self.decide(now, id, Some(Failure { kind, reason }), None);
    }

    /// Ends the current attempt: completed (`failure` None) or failed, and
    /// starts stopping its processes.
    fn decide(&mut self, now: Instant, id: &JobId, failure: Option<Failure>, note: Option<String>) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        if !job.is_active() {
            return;
        }
        let (to, after, keep) = match &failure {
            None => (JobState::Completed, After::Done, false),
            Some(f) => {
                let retryable = job.config.retry.on.contains(&f.kind)
                    && job.attempts_used() < job.config.retry.max_attempts
                    && job.job_deadline.is_none_or(|d| now < d);
                let to = if retryable {
                    JobState::Retrying
                } else if f.kind == FailureKind::Timeout {
                    JobState::TimedOut
                } else {
                    JobState::Failed
                };
                (
                    to,
                    if retryable { After::Retry } else { After::Done },
                    job.config.keep_failed,
                )
            }
        };
        job.phase = Phase::Stopping {
            after,
            deadline: now + job.config.kill_grace,
            keep,
        };
        let attempt = job.attempt;
        let reason = failure.as_ref().map(|f| f.reason.clone()).or(note);
        self.transition(id, to, reason, failure);
        self.effects.push_back(Effect::Signal {
            job: id.clone(),
            attempt,
            signal: StopSignal::Term,
        });
    }

    /// The attempt's processes are gone (or were SIGKILLed): close the
    /// window, then retry or finish.
    fn finish_stop(&mut self, now: Instant, id: &JobId, force: bool) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        let Phase::Stopping { after, keep, .. } = job.phase else {
            return;
        };
        let attempt = job.attempt;
        if force {
            self.effects.push_back(Effect::Signal {
                job: id.clone(),
                attempt,
                signal: StopSignal::Kill,
            });
        }
        self.effects.push_back(Effect::CloseWindow {
            job: id.clone(),
            attempt,
            keep,
        });
        let job = self
            .jobs
            .get_mut(id)
            .unwrap_or_else(|| unreachable!("checked above"));
        match after {
            After::Done => job.phase = Phase::Finished,
            After::Retry => {
                let ceiling = backoff_ceiling(&job.config.retry, job.attempts_used());
                let delay = full_jitter(ceiling, (self.jitter)());
                if delay.is_zero() {
                    self.launch(now, id);
                } else {
                    job.phase = Phase::Backoff { until: now + delay };
                }
            }
        }
    }

    fn cancel(&mut self, now: Instant, id: &JobId, reason: String) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        match job.phase {
            Phase::Finished => {}
            Phase::Pending | Phase::Backoff { .. } => {
                job.phase = Phase::Finished;
                self.transition(id, JobState::Cancelled, Some(reason), None);
            }
            Phase::Stopping { ref mut after, .. } => {
                *after = After::Done;
                self.transition(id, JobState::Cancelled, Some(reason), None);
            }
            Phase::Starting { .. } | Phase::Running { .. } => {
                job.phase = Phase::Stopping {
                    after: After::Done,
                    deadline: now + job.config.kill_grace,
                    keep: false,
                };
                let attempt = job.attempt;
                self.transition(id, JobState::Cancelled, Some(reason), None);
                self.effects.push_back(Effect::Signal {
                    job: id.clone(),
                    attempt,
                    signal: StopSignal::Term,
                });
            }
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.next_deadline().is_some_and(|d| d <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.expire(now, &id);
        }
    }

    fn expire(&mut self, now: Instant, id: &JobId) {
        let Some(job) = self.jobs.get(id) else {
            return;
        };
        let timeouts = job.config.timeouts.clone();
        let fmt = |d: Duration| humantime::format_duration(d).to_string();
        match job.phase.clone() {
            Phase::Stopping { deadline, .. } if deadline <= now => self.finish_stop(now, id, true),
            Phase::Backoff { until } if until <= now => self.launch(now, id),
            Phase::Starting { .. } | Phase::Running { .. } => {
                if job.job_deadline.is_some_and(|d| d <= now) {
                    self.fail(
                        now,
                        id,
                        FailureKind::Timeout,
                        format!("the job ran past timeouts.job ({})", fmt(timeouts.job)),
                    );
                } else if job.attempt_deadline.is_some_and(|d| d <= now) {
                    self.fail(
                        now,
                        id,
                        FailureKind::Timeout,
                        format!(
                            "the attempt ran past timeouts.attempt ({})",
                            fmt(timeouts.attempt)
                        ),
                    );
                } else if job.dead.is_some_and(|(at, _, _)| at + EXIT_SETTLE <= now) {
                    self.settle_dead(now, id);
                } else if let Phase::Starting { since } = job.phase {
                    if since + timeouts.start <= now {
                        self.fail(
                            now,
                            id,
                            FailureKind::StartTimeout,
                            format!(
                                "no started event within timeouts.start ({})",
                                fmt(timeouts.start)
                            ),
                        );
                    }
                } else if let Phase::Running {
                    last_life,
                    waiting: false,
                } = job.phase
                {
                    if last_life + timeouts.idle <= now {
                        let what = match job.config.liveness {
                            Liveness::Events => "no event",
                            Liveness::Output => "no pane output",
                            Liveness::Both => "no event and no pane output",
                        };
                        self.fail(
                            now,
                            id,
                            FailureKind::Hung,
                            format!("hung: {what} for {} (timeouts.idle)", fmt(timeouts.idle)),
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::FailureKind as K;

    const SEC: Duration = Duration::from_secs(1);

    fn config() -> JobConfig {
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
            },
            liveness: Liveness::Both,
            complete_on_exit: false,
            keep_failed: true,
            kill_grace: 5 * SEC,
            on_waiting: OnWaiting::Notify,
            require_signature: true,
            first_attempt: 1,
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
                .filter(|e| !matches!(e, Effect::RecordEvent { .. }))
                .collect()
        }

        fn event(&mut self, secs: f64, kind: EventKind, attempt: Option<u32>) {
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
                message: None,
                exit_code,
                signature,
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
        for (complete_on_exit, expected) in
            [(true, JobState::Completed), (false, JobState::Retrying)]
        {
            let mut cfg = config();
            cfg.complete_on_exit = complete_on_exit;
            let mut h = Harness::new(cfg);
            h.started(0.0);
            h.event_with(1.0, EventKind::Exited, None, Some(0), Signature::Valid);
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
        core.adopt(t0, job.clone(), config(), 2);
        assert!(core.poll_effect().is_none(), "adopting must not launch");
        assert_eq!(core.state(&job), Some(JobState::Running));
        assert_eq!(core.poll_timeout(), Some(t0 + 600 * SEC));
        let event = Incoming {
            kind: EventKind::Completed,
            attempt: Some(2),
            message: None,
            exit_code: None,
            signature: Signature::Valid,
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
}
