//! The supervisor's state machine, sans-IO (quinn-proto style): the caller
//! passes `now` with every input, asks `poll_timeout()` when the next timer
//! is due, calls `handle_timeout(now)`, and drains `poll_effect()`. No tokio,
//! no file system, no processes: the tests drive it with a fake clock.

use super::policy::{backoff_ceiling, full_jitter};
use crate::model::{
    admit, Claim, EventKind, EventPolicy, FailureKind, JobId, JobState, LimitPolicy, Liveness,
    Meaning, OnLimit, OnWaiting, RetryPolicy, Signature, Timeouts,
};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// How long a dead pane waits for the wrapper's `exited` event (which
/// carries the exit code and follows any `completed` the agent sent) before
/// the pane's own status decides.
pub const EXIT_SETTLE: Duration = Duration::from_secs(2);
/// An attempt with no event for this long may be stuck at a screen no hook
/// reports (a dialog): its pane is worth a look (jobs with screen rules).
pub const SCREEN_QUIET: Duration = Duration::from_secs(2);

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
    /// What a usage limit does (SPEC section 14).
    pub limits: LimitPolicy,
}

/// An event received for a job, already decoded and signature-checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub kind: EventKind,
    /// `None` for senders that do not say (bare words): the current attempt.
    pub attempt: Option<u32>,
    /// The job the payload names (`None` for bare words): an event naming
    /// another job than its topic's is never acted on.
    pub job_named: Option<String>,
    pub message: Option<String>,
    /// The agent's exit code, for `exited`.
    pub exit_code: Option<i32>,
    /// For `error`: the failure kind the wrapper named (`data.kind`, e.g.
    /// `setup`); `None` is kind `error`.
    pub failure_kind: Option<FailureKind>,
    pub signature: Signature,
    /// The sender's timestamp (`ts`), kept in the history to measure delays.
    pub sent: Option<f64>,
    /// The event's `data`, kept in the history; the driver reads the
    /// agent's conversation from it (`driver/conversation.rs`).
    pub data: Option<serde_json::Value>,
    /// For an `error` of kind `limited`: when the limit resets, as the
    /// driver read it from the message (`None`: it did not say).
    pub limit_resets: Option<Instant>,
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
    /// The wrapper recorded the agent's exit code in the registry (it does
    /// so before publishing `exited`): what the wrapper saw wins over a
    /// lost connection or a Last Will.
    ExitRecorded {
        job: JobId,
        attempt: u32,
        code: i32,
    },
    Cancel {
        job: JobId,
        reason: String,
    },
    /// The attempt's pane shows a screen a rule recognises: the agent waits
    /// for a human. `keys` (maybe empty) answers it.
    Screen {
        job: JobId,
        attempt: u32,
        message: String,
        keys: Vec<String>,
    },
    /// A look at the pane found no such screen (any more).
    ScreenGone {
        job: JobId,
        attempt: u32,
    },
    /// The attempt's transcript shows it spent more than its budget.
    OverBudget {
        job: JobId,
        attempt: u32,
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

/// What a crashed supervisor leaves for the next one (kept in the job
/// record): the first attempt of the job's retry budget, the job deadline
/// (from the first launch) and a pending backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub first_attempt: u32,
    pub job_deadline: Option<Instant>,
    pub backoff_until: Option<Instant>,
    /// The wait is a usage limit's (the job is `limited`), not a backoff.
    pub limited: bool,
    /// Attempts that met a usage limit: not charged to `max_attempts`.
    pub uncharged: u32,
}

/// How an orphaned job is taken over: its current attempt, and the job
/// deadline and pending backoff its checkpoint kept (`config.first_attempt`
/// is the checkpoint's, so the retry budget is not reset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adoption {
    pub attempt: u32,
    pub job_deadline: Option<Instant>,
    /// The attempt had failed and the next one was waiting out its backoff.
    pub backoff_until: Option<Instant>,
    /// That wait is a usage limit's: the job is `limited` until then.
    pub limited: bool,
    /// Attempts that met a usage limit (the checkpoint's).
    pub uncharged: u32,
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
    /// Type `keys` into the attempt's pane (a screen rule's answer).
    SendKeys {
        job: JobId,
        attempt: u32,
        keys: Vec<String>,
    },
    /// Append an event to the job's history; `ignored` says why it was not acted on.
    RecordEvent {
        job: JobId,
        attempt: u32,
        event: Incoming,
        ignored: Option<String>,
    },
    /// Persist what a later `resume` needs (on each launch and backoff).
    Checkpoint { job: JobId, checkpoint: Checkpoint },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Retry,
    Done,
    /// A usage limit: the next attempt waits until the reset.
    Limited {
        until: Instant,
    },
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
    /// Between attempts: a retry's backoff, or (`limited`) a usage limit's
    /// wait for its reset.
    Backoff {
        until: Instant,
        limited: bool,
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
    /// When the attempt last acted on an event (or was launched).
    last_event: Option<Instant>,
    /// The message of the screen the pane shows, while it shows one.
    screen: Option<String>,
    /// The agent's exit code as the wrapper recorded it.
    exit: Option<i32>,
    /// Attempts that met a usage limit: not charged to `max_attempts`.
    uncharged: u32,
    /// Usage limits met one after the other (the fallback wait doubles).
    limits_in_a_row: u32,
    /// Why the queue holds the job back, as last said.
    queued_reason: Option<String>,
}

impl Job {
    fn new(config: JobConfig) -> Job {
        Job {
            attempt: config.first_attempt.saturating_sub(1),
            config,
            state: JobState::Pending,
            phase: Phase::Pending,
            job_deadline: None,
            attempt_deadline: None,
            lost: false,
            dead: None,
            last_event: None,
            screen: None,
            exit: None,
            uncharged: 0,
            limits_in_a_row: 0,
            queued_reason: None,
        }
    }

    fn attempts_used(&self) -> u32 {
        (self.attempt + 1 - self.config.first_attempt.min(self.attempt + 1))
            .saturating_sub(self.uncharged)
    }

    /// The earliest timer of this job, if any.
    fn next_deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Starting { .. } | Phase::Running { .. } => {}
            Phase::Stopping { deadline, .. } => return Some(*deadline),
            Phase::Backoff { until, .. } => return Some(*until),
            Phase::Pending | Phase::Finished => return None,
        }
        [
            self.life_deadline(),
            self.attempt_deadline,
            self.job_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The start or idle deadline of an active attempt; once its pane is
    /// dead, the end of the wait for its `exited` event instead (an agent
    /// that ended is neither a late start nor a hang).
    fn life_deadline(&self) -> Option<Instant> {
        if let Some((at, _, _)) = self.dead {
            return Some(at + EXIT_SETTLE);
        }
        match self.phase {
            Phase::Starting { since } => Some(since + self.config.timeouts.start),
            Phase::Running {
                last_life,
                waiting: false,
            } => Some(last_life + self.config.timeouts.idle),
            _ => None,
        }
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
    #[cfg(test)]
    pub fn add(&mut self, now: Instant, id: JobId, config: JobConfig) {
        self.jobs.insert(id.clone(), Job::new(config));
        self.launch(now, &id);
    }

    /// Adds a job that waits for the queue (a slot, its dependencies): no
    /// launch until [`Core::start`]; it stays `pending` until the queue
    /// says it must wait ([`Core::mark_queued`]).
    pub fn enqueue(&mut self, id: JobId, config: JobConfig) {
        self.jobs.insert(id, Job::new(config));
    }

    /// A job the queue holds back: `queued`, with a reason; once, and
    /// again only when the reason changes (a slot it waited for is now a
    /// usage limit's hold), so `status` says what it waits for now.
    pub fn mark_queued(&mut self, id: &JobId, reason: Option<String>) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        let said = job.state == JobState::Queued && job.queued_reason == reason;
        if job.phase != Phase::Pending || said {
            return;
        }
        job.queued_reason.clone_from(&reason);
        if job.state == JobState::Queued {
            let attempt = job.attempt;
            self.effects.push_back(Effect::Transition {
                job: id.clone(),
                attempt,
                from: JobState::Queued,
                to: JobState::Queued,
                reason,
                failure: None,
            });
        } else {
            self.transition(id, JobState::Queued, reason, None);
        }
    }

    /// The queue let a waiting job go: its first attempt launches.
    pub fn start(&mut self, now: Instant, id: &JobId) {
        if self.jobs.get(id).is_some_and(|j| j.phase == Phase::Pending) {
            self.launch(now, id);
        }
    }

    /// A waiting job whose dependency failed: it ends `skipped`, never run.
    pub fn skip(&mut self, id: &JobId, reason: String) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        if job.phase != Phase::Pending {
            return;
        }
        job.phase = Phase::Finished;
        self.transition(id, JobState::Skipped, Some(reason), None);
    }

    /// Whether the job has ended and its processes and window are gone
    /// (when its queue slot is given back).
    pub fn is_finished(&self, id: &JobId) -> bool {
        self.jobs
            .get(id)
            .is_some_and(|j| j.phase == Phase::Finished)
    }

    /// Whether the job still waits for the queue (never launched here).
    pub fn is_waiting(&self, id: &JobId) -> bool {
        self.jobs.get(id).is_some_and(|j| j.phase == Phase::Pending)
    }

    /// Takes over a job of a supervisor that crashed: no launch. An attempt
    /// that was running runs on (its idle and attempt timers start now,
    /// since the old supervisor's clock is gone; a retained terminal event
    /// or the state of its window decides what happens next); one that was
    /// waiting out its backoff is `retrying` until the backoff ends. The job
    /// deadline and the retry budget are the checkpoint's, never restarted.
    pub fn adopt(&mut self, now: Instant, id: JobId, config: JobConfig, adoption: Adoption) {
        let (state, phase, attempt_deadline) = match adoption.backoff_until {
            Some(until) => (
                if adoption.limited {
                    JobState::Limited
                } else {
                    JobState::Retrying
                },
                Phase::Backoff {
                    until: until.max(now),
                    limited: adoption.limited,
                },
                None,
            ),
            None => (
                JobState::Running,
                Phase::Running {
                    last_life: now,
                    waiting: false,
                },
                Some(now + config.timeouts.attempt),
            ),
        };
        let job = Job {
            attempt: adoption.attempt,
            state,
            phase,
            job_deadline: Some(adoption.job_deadline.unwrap_or(now + config.timeouts.job)),
            attempt_deadline,
            last_event: Some(now),
            uncharged: adoption.uncharged,
            ..Job::new(config)
        };
        self.jobs.insert(id, job);
    }

    fn checkpoint(&mut self, id: &JobId) {
        let Some(job) = self.jobs.get(id) else {
            return;
        };
        let (backoff_until, limited) = match job.phase {
            Phase::Backoff { until, limited } => (Some(until), limited),
            _ => (None, false),
        };
        self.effects.push_back(Effect::Checkpoint {
            job: id.clone(),
            checkpoint: Checkpoint {
                first_attempt: job.config.first_attempt,
                job_deadline: job.job_deadline,
                backoff_until,
                limited,
                uncharged: job.uncharged,
            },
        });
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

    /// The dialog a screen rule found on the job's screen, while it shows.
    pub fn dialog(&self, id: &JobId) -> Option<&str> {
        self.jobs.get(id).and_then(|j| j.screen.as_deref())
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
        job.last_event = Some(now);
        job.screen = None;
        job.exit = None;
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
        self.checkpoint(id);
    }

    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Launched { .. } => {}
            Input::OverBudget {
                job,
                attempt,
                reason,
            } => {
                if self.is_current(&job, attempt) {
                    self.fail(now, &job, FailureKind::Budget, reason);
                }
            }
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
            Input::Screen {
                job,
                attempt,
                message,
                keys,
            } => self.on_screen(now, &job, attempt, message, keys),
            Input::ScreenGone { job, attempt } => self.on_screen_gone(now, &job, attempt),
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
            Input::ExitRecorded { job, attempt, code } => {
                self.on_recorded_exit(now, &job, attempt, code);
            }
            Input::Cancel { job, reason } => self.cancel(now, &job, reason),
        }
    }

    /// An exit the wrapper made durable: a clean exit of an agent that
    /// completes on exit completes at once; any other code waits (as a dead
    /// pane does) for a late `completed`, then decides by this code, never
    /// by a Last Will.
    fn on_recorded_exit(&mut self, now: Instant, id: &JobId, attempt: u32, code: i32) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        if job.attempt != attempt || !job.is_active() {
            return;
        }
        job.exit = Some(code);
        if code == 0 && job.config.complete_on_exit {
            self.decide(
                now,
                id,
                None,
                Some("the agent exited with code 0 (recorded by the wrapper)".into()),
            );
        }
    }

    fn is_current(&self, id: &JobId, attempt: u32) -> bool {
        self.jobs.get(id).is_some_and(|j| j.attempt == attempt)
    }

    /// An event: recorded, and acted on if `model::admission` admits it
    /// under the job's policy (its current attempt, whether that attempt
    /// still runs, `require_signature`).
    fn on_event(&mut self, now: Instant, id: &JobId, event: Incoming) {
        let Some(job) = self.jobs.get(id) else {
            return;
        };
        let policy = EventPolicy {
            require_signature: job.config.require_signature,
            current_attempt: Some(job.attempt),
            attempt_active: job.is_active(),
        };
        let claim = Claim {
            kind: &event.kind,
            attempt: event.attempt,
            job_named: event.job_named.as_deref(),
            signature: event.signature,
        };
        let admission = admit(id.as_str(), &claim, &policy);
        let acts = admission.refusal().is_none();
        self.effects.push_back(Effect::RecordEvent {
            job: id.clone(),
            attempt: admission.attempt(),
            event: event.clone(),
            ignored: admission.refusal().map(ToString::to_string),
        });
        if acts {
            if let Some(job) = self.jobs.get_mut(id) {
                job.last_event = Some(now);
            }
            self.act_on(now, id, event);
        }
    }

    fn act_on(&mut self, now: Instant, id: &JobId, event: Incoming) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        let complete_on_exit = job.config.complete_on_exit;
        let on_waiting = job.config.on_waiting;
        match Meaning::of(&event.kind) {
            Meaning::Alive if job.screen.is_some() => {
                // A screen is still shown (e.g. the wrapper's `started`
                // arrived after it was seen): only its going away, seen in
                // the pane, ends this wait.
                if let Phase::Running { last_life, .. } = &mut job.phase {
                    *last_life = now;
                }
            }
            Meaning::Alive => {
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
            Meaning::Waiting => {
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
            Meaning::Completed => self.decide(now, id, None, event.message),
            Meaning::Failed => {
                let reason = event
                    .message
                    .unwrap_or_else(|| "the agent reported an error".into());
                match event.failure_kind.unwrap_or(FailureKind::Error) {
                    FailureKind::Limited => self.limit(now, id, reason, event.limit_resets),
                    kind => self.fail(now, id, kind, reason),
                }
            }
            Meaning::Exited => {
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
            Meaning::Lost => {
                job.lost = true;
                if job.dead.is_some() && job.exit.is_none() {
                    self.fail(
                        now,
                        id,
                        FailureKind::Lost,
                        "the wrapper's connection was lost (Last Will) and its pane is gone".into(),
                    );
                }
            }
            Meaning::Unknown => {}
        }
    }

    /// Jobs whose pane is worth reading for screens now: the attempt has no
    /// `started` yet, or a screen is shown (to see it go), or it is running
    /// without waiting and without an event for `SCREEN_QUIET`. The driver
    /// reads only those of them that have screen rules, at most every 2 s.
    pub fn screen_watch(&self, now: Instant) -> Vec<(JobId, u32)> {
        self.jobs
            .iter()
            .filter(|(_, j)| match j.phase {
                Phase::Starting { .. } => true,
                Phase::Running { waiting, .. } => {
                    j.screen.is_some()
                        || (!waiting
                            && j.last_event
                                .is_none_or(|at| now.saturating_duration_since(at) >= SCREEN_QUIET))
                }
                _ => false,
            })
            .map(|(id, j)| (id.clone(), j.attempt))
            .collect()
    }

    /// A screen rule matched the pane: the agent waits for a human. A
    /// screen before `started` proves the agent is up, so the start timeout
    /// no longer applies; the idle timer pauses as for a `waiting` event.
    fn on_screen(
        &mut self,
        now: Instant,
        id: &JobId,
        attempt: u32,
        message: String,
        keys: Vec<String>,
    ) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        if job.attempt != attempt || !job.is_active() || job.screen.as_ref() == Some(&message) {
            return;
        }
        if job.config.on_waiting == OnWaiting::Fail {
            // A new attempt would show the same screen: a one-time grant
            // (trust, key, login) is configuration, not retried by default.
            self.fail(
                now,
                id,
                FailureKind::AgentConfig,
                format!("the agent shows a screen that needs a human ({message}) and on_waiting = \"fail\""),
            );
            return;
        }
        job.screen = Some(message.clone());
        job.phase = Phase::Running {
            last_life: now,
            waiting: true,
        };
        if job.state == JobState::Waiting {
            // Already waiting (another screen, or a `waiting` event): one
            // wait, one on_waiting.
        } else {
            self.transition(id, JobState::Waiting, Some(message), None);
        }
        if !keys.is_empty() {
            self.effects.push_back(Effect::SendKeys {
                job: id.clone(),
                attempt,
                keys,
            });
        }
    }

    /// The screen is gone (answered in the window, or by `keys`): running
    /// again, with a fresh idle timer.
    fn on_screen_gone(&mut self, now: Instant, id: &JobId, attempt: u32) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        if job.attempt != attempt || job.screen.is_none() || !job.is_active() {
            return;
        }
        job.screen = None;
        job.last_event = Some(now);
        job.phase = Phase::Running {
            last_life: now,
            waiting: false,
        };
        self.transition(
            id,
            JobState::Running,
            Some("the screen was answered".into()),
            None,
        );
    }

    fn on_dead(&mut self, now: Instant, id: &JobId, attempt: u32, status: Option<i32>, gone: bool) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        if job.attempt != attempt || !job.is_active() || job.dead.is_some() {
            return;
        }
        job.dead = Some((now, status, gone));
        if job.lost && job.exit.is_none() {
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
        if let Some(code) = job.exit {
            // The wrapper saw the agent end: its code decides, not the pane.
            return self.fail(
                now,
                id,
                FailureKind::Exit,
                format!("the agent exited with code {code} without reporting completed"),
            );
        }
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

    /// The agent met a usage limit (SPEC section 14). With `on_limit =
    /// "wait"` the attempt is stopped without being charged and the job is
    /// `limited` until the reset (`resets`, plus the grace; else the
    /// fallback wait, doubling with each limit in a row), then continues;
    /// the job deadline moves by the wait, so a night's limit does not
    /// time the job out. With `"fail"` the job fails, kind `limited`.
    fn limit(&mut self, now: Instant, id: &JobId, reason: String, resets: Option<Instant>) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        if !job.is_active() {
            return;
        }
        if job.config.limits.on_limit == OnLimit::Fail {
            let reason = format!("{reason} (limits.on_limit = \"fail\")");
            return self.fail(now, id, FailureKind::Limited, reason);
        }
        job.limits_in_a_row += 1;
        job.uncharged += 1;
        let wait = job.config.limits.wait_for(
            resets.map(|at| at.saturating_duration_since(now)),
            job.limits_in_a_row,
        );
        let until = now + wait;
        job.job_deadline = job.job_deadline.map(|d| d + wait);
        job.phase = Phase::Stopping {
            after: After::Limited { until },
            deadline: now + job.config.kill_grace,
            keep: false,
        };
        let attempt = job.attempt;
        self.transition(id, JobState::Limited, Some(reason), None);
        self.effects.push_back(Effect::Signal {
            job: id.clone(),
            attempt,
            signal: StopSignal::Term,
        });
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
        job.limits_in_a_row = 0;
        let (to, after, keep) = match &failure {
            None => (JobState::Completed, After::Done, false),
            Some(f) => {
                // A spent budget would be spent again, a limit met again:
                // never retried.
                let retryable = !matches!(f.kind, FailureKind::Budget | FailureKind::Limited)
                    && job.config.retry.on.contains(&f.kind)
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
            After::Limited { until } => {
                job.phase = Phase::Backoff {
                    until: until.max(now),
                    limited: true,
                };
                self.checkpoint(id);
            }
            After::Retry => {
                let ceiling = backoff_ceiling(&job.config.retry, job.attempts_used());
                let delay = full_jitter(ceiling, (self.jitter)());
                if delay.is_zero() {
                    self.launch(now, id);
                } else {
                    job.phase = Phase::Backoff {
                        until: now + delay,
                        limited: false,
                    };
                    self.checkpoint(id);
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
            Phase::Backoff { until, .. } if until <= now => self.launch(now, id),
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
                } else if let Some((at, _, _)) = job.dead {
                    // Until the settle, a dead pane waits for its `exited`
                    // event: no start or idle timeout (the agent ended).
                    if at + EXIT_SETTLE <= now {
                        self.settle_dead(now, id);
                    }
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
mod queue_tests;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod screen_tests;

#[cfg(test)]
mod conversation_tests;
