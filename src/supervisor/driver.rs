//! The tokio driver around the sans-IO core, as its event loop: one select
//! over MQTT messages, tmux observations (one `list-windows -a` per tick for
//! all jobs), screen reads, timers, signals and a fleet runner's intake,
//! each turned into the core's inputs, and the core's effects performed
//! after each. The parts it calls live beside it in `driver/`: `listen`
//! (MQTT), `observe` (tmux and agent groups), `screens`, `effects`,
//! `record` (registry writes), `hooks`, `queueing`, and `runtime` (what it
//! knows per job).

mod conversation;
mod effects;
mod hooks;
mod listen;
mod observe;
mod queueing;
mod record;
mod runtime;
mod screens;

pub use runtime::JobRuntime;

use hooks::HOOK_GRACE;
use observe::Observation;
use screens::ScreenRead;

use super::core::{Core, Input};
use super::view::View;
use crate::model::{FailureInfo, JobId, JobState, LastEvent};
use crate::mqtt::client::Subscriber;
use crate::registry::Registry;
use crate::tmux::Tmux;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often tmux is looked at (one call for all windows).
pub const OBSERVE_EVERY: Duration = Duration::from_millis(200);
/// How often the groups of attempts being stopped are checked.
const STOPPING_CHECK: Duration = Duration::from_millis(20);
/// How often waiting jobs are decided again with nothing changed here: a
/// dependency run by another supervisor (a job of another `run --detach`,
/// or of another MCP `run`) ends in its record only.
const DEPENDENCY_CHECK: Duration = Duration::from_secs(1);

pub struct Driver {
    pub core: Core,
    hooks: crate::config::file::HooksFile,
    pub registry: Registry,
    pub tmux: Tmux,
    pub session: String,
    /// argv prefix of the window's wrapper: the binary itself.
    pub exe: PathBuf,
    pub topic_prefix: String,
    /// `[pricing]`: what the agents' tokens cost.
    prices: crate::agents::transcript::Prices,
    pub jobs: HashMap<JobId, JobRuntime>,
    pub view: View,
    /// Window activity last seen, per window id.
    activity: HashMap<String, u64>,
    inputs: VecDeque<Input>,
    /// Last events not yet written to their records: written together once
    /// per observation tick (events.jsonl has every event at once).
    pending_last: HashMap<JobId, LastEvent>,
    /// A `list-windows` is under way (it runs beside the event loop).
    observing: bool,
    /// The terminal closed (SIGHUP) and the output went to a log.
    hung_up: bool,
    /// Transitions the registry could not take yet (`record.rs`).
    unsaved: record::UnsavedQueue,
    /// When each job's tokens were last counted mid-turn (`conversation.rs`).
    last_count: HashMap<JobId, Instant>,
    /// Outcome hooks still running: waited for (briefly) before `run` exits,
    /// so the last job's `on_done` is not cut off with the runtime.
    hook_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The queue (SPEC section 11): jobs not started yet, their caps, and
    /// the slots of the jobs that run.
    queue: super::queue::Queue,
    caps: HashMap<JobId, super::slots::Caps>,
    leases: HashMap<JobId, super::slots::Lease>,
    /// Whether jobs `add` registers for this process are taken on, and
    /// with which `require_signature` (None: they are not).
    added_jobs: Option<bool>,
    /// Something the queue depends on changed (a transition, a job added,
    /// the slot retry came due): look at the waiting jobs again.
    queue_dirty: bool,
    /// A fleet runner's new jobs and cancels; while open, the driver runs on
    /// with no job left (see `with_intake`).
    intake: Option<mpsc::UnboundedReceiver<Intake>>,
    /// Where every transition is reported (a fleet runner publishes them).
    notes: Option<mpsc::UnboundedSender<Note>>,
}

/// Work handed to a running driver (a fleet runner takes jobs over time).
pub enum Intake {
    /// A registered job to launch (or a finished one to run again).
    Add {
        job: JobId,
        agent: String,
        runtime: Box<JobRuntime>,
        config: Box<super::core::JobConfig>,
    },
    Cancel {
        job: JobId,
        reason: String,
    },
}

/// A transition, as the driver recorded it.
#[derive(Debug, Clone)]
pub struct Note {
    pub job: JobId,
    pub attempt: u32,
    pub to: JobState,
    pub reason: Option<String>,
    pub failure: Option<FailureInfo>,
    /// No transition: the attempt's work in the record changed after its
    /// last one (its tokens counted again once its agent was gone), and
    /// `to` is the state it stays in.
    pub work_only: bool,
}

/// The signals a supervisor acts on, caught for its whole life.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    /// `kill ID` and `add` on this host.
    cancel_check: tokio::signal::unix::Signal,
    /// The terminal closed (`hangup.rs`).
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn listen() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            cancel_check: signal(SignalKind::user_defined1())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }
}

/// How `run` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Finished,
    Interrupted,
    /// Stopped while some transition was still not in the registry.
    Unrecorded,
}

/// Where the driver acts: the registry, the tmux server and session, the
/// wrapper binary, and the topics it listens on.
pub struct Places {
    /// Commands run on outcomes (`[hooks]`).
    pub hooks: crate::config::file::HooksFile,
    pub registry: Registry,
    pub tmux: Tmux,
    pub session: String,
    pub exe: PathBuf,
    pub topic_prefix: String,
    /// `[pricing]`, for the tokens' cost.
    pub prices: crate::agents::transcript::Prices,
}

impl Driver {
    pub fn new(core: Core, places: Places, jobs: HashMap<JobId, JobRuntime>, view: View) -> Driver {
        let Places {
            hooks,
            registry,
            tmux,
            session,
            exe,
            topic_prefix,
            prices,
        } = places;
        Driver {
            core,
            hooks,
            registry,
            tmux,
            session,
            exe,
            topic_prefix,
            prices,
            jobs,
            view,
            activity: HashMap::new(),
            inputs: VecDeque::new(),
            hook_tasks: Vec::new(),
            pending_last: HashMap::new(),
            observing: false,
            hung_up: false,
            unsaved: record::UnsavedQueue::default(),
            last_count: HashMap::new(),
            queue: super::queue::Queue::default(),
            caps: HashMap::new(),
            leases: HashMap::new(),
            added_jobs: None,
            queue_dirty: true,
            intake: None,
            notes: None,
        }
    }

    /// A long-running driver: takes jobs from `intake` until it closes (or
    /// Ctrl-C), and reports every transition to `notes`.
    pub fn with_intake(
        mut self,
        intake: mpsc::UnboundedReceiver<Intake>,
        notes: mpsc::UnboundedSender<Note>,
    ) -> Driver {
        self.intake = Some(intake);
        self.notes = Some(notes);
        self
    }

    fn take(&mut self, intake: Intake) {
        let now = Instant::now();
        match intake {
            Intake::Add {
                job,
                agent,
                runtime,
                config,
            } => {
                let max_attempts = config.retry.max_attempts;
                self.view.add(&job, &runtime.name, &agent, max_attempts);
                self.jobs.insert(job.clone(), *runtime);
                // A runner's cap is the queue's local cap: no slot files.
                self.core.enqueue(job.clone(), *config);
                self.enqueue(
                    job,
                    super::queue::QueueSpec::default(),
                    super::slots::Caps::default(),
                );
            }
            Intake::Cancel { job, reason } => {
                self.core.handle(now, Input::Cancel { job, reason });
            }
        }
    }

    /// Supervises until every job is finished (or Ctrl-C has stopped them).
    pub async fn run(
        mut self,
        subscriber: Subscriber,
    ) -> anyhow::Result<(Ending, Vec<(JobId, JobState)>)> {
        // Read in its own task: its receive loop is never cancelled
        // half-way by the select below.
        let (mut messages, listening) = crate::mqtt::client::forward(subscriber);
        let mut signals = Signals::listen()?;
        let mut observe = tokio::time::interval(OBSERVE_EVERY);
        let mut dependencies = tokio::time::interval(DEPENDENCY_CHECK);
        observe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut redraw = tokio::time::interval(Duration::from_secs(1));
        // tmux answers in the background: with hundreds of windows a
        // `list-windows` takes milliseconds that events must not wait for.
        let (observed_tx, mut observed) = mpsc::unbounded_channel::<Observation>();
        let (screen_tx, mut screen_reads) = mpsc::unbounded_channel::<ScreenRead>();
        let mut ending = Ending::Finished;
        self.perform().await;
        self.settle_queue().await;
        // Nothing ends before its last transition is recorded, unless a
        // signal asks to stop (then `Ending::Unrecorded`).
        while !self.core.is_done()
            || self.intake.is_some()
            || (!self.unsaved.is_empty() && ending == Ending::Finished)
        {
            let timer = self.core.poll_timeout();
            let slot_retry = self.queue.poll_timeout();
            let stopping = self.core.stopping().next().is_some();
            tokio::select! {
                () = sleep_until(slot_retry) => {
                    self.queue.handle_timeout(Instant::now());
                    self.queue_dirty = true;
                }
                Some(message) = messages.recv() => self.on_message(&message),
                taken = next_intake(&mut self.intake) => match taken {
                    Some(intake) => self.take(intake),
                    None => self.intake = None,
                },
                _ = observe.tick(), if !self.observing => {
                    drop(self.flush_last_events());
                    self.start_observation(&observed_tx);
                    self.start_screen_reads(&screen_tx);
                }
                Some(read) = screen_reads.recv() => self.apply_screen_read(read),
                Some((asked, windows)) = observed.recv() => {
                    self.observing = false;
                    self.apply_observation(asked, windows);
                }
                () = sleep_until(timer) => self.core.handle_timeout(Instant::now()),
                () = sleep_until(self.unsaved.retry_at) => self.retry_unsaved(),
                () = tokio::time::sleep(STOPPING_CHECK), if stopping => self.check_stopping(),
                _ = redraw.tick() => self.view.refresh(),
                _ = dependencies.tick(), if !self.queue.is_empty() => self.queue_dirty = true,
                _ = signals.cancel_check.recv() => {
                    self.check_cancel_requests();
                    // `add` hands jobs over with the same signal.
                    self.admit_added();
                }
                _ = signals.interrupt.recv() => ending = self.stop_all("interrupted (Ctrl-C)"),
                _ = signals.terminate.recv() => {
                    ending = self.stop_all("the supervisor received SIGTERM");
                }
                _ = signals.hangup.recv() => self.leave_terminal(),
            }
            self.perform().await;
            self.settle_queue().await;
        }
        let states = self.wind_down(listening).await;
        Ok((self.last_try_to_record(ending), states))
    }

    /// Ctrl-C or SIGTERM: no more jobs taken, every job cancelled.
    fn stop_all(&mut self, reason: &str) -> Ending {
        self.intake = None;
        self.cancel_all(reason);
        Ending::Interrupted
    }

    /// The ending, unless some state is still not in the registry after one
    /// last try (the space may be back): then `Ending::Unrecorded`, and the
    /// states are named.
    fn last_try_to_record(&mut self, ending: Ending) -> Ending {
        if !self.unsaved.is_empty() {
            self.retry_unsaved();
        }
        if self.unsaved.is_empty() {
            return ending;
        }
        eprintln!(
            "error: stopped before these states were recorded in the registry: {}",
            self.unsaved.summary().join(", ")
        );
        Ending::Unrecorded
    }

    /// After the last job: the last events written, the broker connection
    /// closed, the view finished, the outcome hooks given their grace; the
    /// final state of every job.
    async fn wind_down(
        &mut self,
        listening: crate::mqtt::client::Forwarding,
    ) -> Vec<(JobId, JobState)> {
        if let Some(flush) = self.flush_last_events() {
            let _ = flush.await;
        }
        if !listening.close(Duration::from_secs(5)).await {
            tracing::warn!("the broker connection did not close in time");
        }
        self.view.finish();
        for task in self.hook_tasks.drain(..) {
            if tokio::time::timeout(HOOK_GRACE, task).await.is_err() {
                tracing::warn!("an outcome hook is still running; not waiting for it");
            }
        }
        self.core
            .job_ids()
            .map(|id| (id.clone(), self.core.state(id).unwrap_or(JobState::Failed)))
            .collect()
    }

    /// The terminal closed: supervise on, writing to a log (`hangup.rs`).
    fn leave_terminal(&mut self) {
        if self.hung_up {
            return tracing::info!("SIGHUP again: this supervisor already left its terminal");
        }
        self.hung_up = true;
        let log = super::hangup::log_path(self.registry.root());
        let unfinished = self
            .core
            .job_ids()
            .filter(|id| !self.core.state(id).is_some_and(|s| s.is_finished()))
            .count();
        self.view.stop_drawing();
        if let Err(e) = super::hangup::leave_terminal(&log, unfinished) {
            tracing::warn!("the terminal closed and its output cannot move to a log: {e:#}");
        }
    }

    fn cancel_all(&mut self, reason: &str) {
        let now = Instant::now();
        let ids: Vec<JobId> = self.core.job_ids().cloned().collect();
        for job in ids {
            self.core.handle(
                now,
                Input::Cancel {
                    job,
                    reason: reason.to_owned(),
                },
            );
        }
    }

    /// `kill ID` marks the record and sends SIGUSR1; look for such marks.
    fn check_cancel_requests(&mut self) {
        let now = Instant::now();
        let ids: Vec<JobId> = self.core.job_ids().cloned().collect();
        for job in ids {
            if self.registry.load(&job).is_ok_and(|r| r.cancel_requested) {
                self.core.handle(
                    now,
                    Input::Cancel {
                        job,
                        reason: "cancelled by `tmux-delegate kill`".into(),
                    },
                );
            }
        }
    }
}

/// The next intake, or never when there is none (a plain `run`).
async fn next_intake(intake: &mut Option<mpsc::UnboundedReceiver<Intake>>) -> Option<Intake> {
    match intake {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}
