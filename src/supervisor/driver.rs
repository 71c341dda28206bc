//! The tokio driver around the sans-IO core: it turns MQTT messages, tmux
//! observations (one `list-windows -a` per tick for all jobs), signals and
//! the clock into inputs, and performs the core's effects (tmux windows,
//! process-group signals, registry writes, the view).

mod queueing;

use super::core::{Checkpoint, Core, Effect, Incoming, Input, StopSignal};
use super::view::View;
use crate::agents::screens::ScreenSet;
use crate::model::{EventKind, FailureInfo, JobId, JobState, LastEvent, ResumePoint};
use crate::mqtt::client::{Message, Subscriber};
use crate::mqtt::event::{decode, Decoded};
use crate::mqtt::sign::{check, EventKey};
use crate::mqtt::topic::job_of_topic;
use crate::proc::AgentGroup;
use crate::registry::{now_rfc3339, LogEntry, Registry};
use crate::tmux::{Launched, Tmux, WindowInfo};

/// A `list-windows` answer and when it was asked for.
type Observation = (Instant, anyhow::Result<Vec<WindowInfo>>);
use nix::sys::signal::Signal;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often tmux is looked at (one call for all windows).
pub const OBSERVE_EVERY: Duration = Duration::from_millis(200);
/// How long `run` waits at its end for outcome hooks still running.
const HOOK_GRACE: Duration = Duration::from_secs(10);
/// How often the groups of attempts being stopped are checked.
const STOPPING_CHECK: Duration = Duration::from_millis(20);
/// At most one pane read per job this often (screen rules).
pub const SCREEN_READ_EVERY: Duration = Duration::from_secs(2);

/// A pane read for screen rules: job, attempt, the visible screen.
type ScreenRead = (JobId, u32, anyhow::Result<String>);

/// What the driver knows about one job besides the core's state.
pub struct JobRuntime {
    pub name: String,
    pub workdir: PathBuf,
    pub key: EventKey,
    /// The current attempt's window.
    window: Option<(u32, Launched)>,
    /// When that window was asked for: a tmux snapshot taken earlier cannot
    /// show it, and must not count it as gone.
    launched_at: Option<Instant>,
    /// The agent's process group per attempt, once the wrapper recorded it.
    pgid: HashMap<u32, AgentGroup>,
    /// The agent's screen rules, for agents that have waiting rules.
    screens: Option<std::sync::Arc<ScreenSet>>,
    /// When its pane was last read for them; whether a read is under way.
    screen_read_at: Option<Instant>,
    screen_reading: bool,
    /// A fleet job: its pane is saved before the driver closes its window
    /// (the runner publishes it in the job's log for other hosts).
    saves_pane: bool,
}

impl JobRuntime {
    pub fn new(name: String, workdir: PathBuf, key: EventKey) -> JobRuntime {
        JobRuntime {
            name,
            workdir,
            key,
            window: None,
            launched_at: None,
            pgid: HashMap::new(),
            screens: None,
            screen_read_at: None,
            screen_reading: false,
            saves_pane: false,
        }
    }

    /// The agent's screen rules; without waiting rules its pane is never read.
    /// Saves the pane of each attempt before closing its window.
    pub fn saving_pane(mut self, saves: bool) -> JobRuntime {
        self.saves_pane = saves;
        self
    }

    pub fn with_screens(mut self, screens: ScreenSet) -> JobRuntime {
        self.screens = screens
            .watches_screens()
            .then(|| std::sync::Arc::new(screens));
        self
    }

    /// For an adopted attempt: the window (and agent group) the registry
    /// says it has.
    pub fn adopting(
        mut self,
        attempt: u32,
        window: Option<String>,
        pgid: Option<AgentGroup>,
    ) -> JobRuntime {
        if let Some(window_id) = window {
            self.window = Some((
                attempt,
                Launched {
                    window_id,
                    pane_id: String::new(),
                    pane_pid: 0,
                },
            ));
        }
        if let Some(pgid) = pgid {
            self.pgid.insert(attempt, pgid);
        }
        self
    }
}

pub struct Driver {
    pub core: Core,
    hooks: crate::config::file::HooksFile,
    pub registry: Registry,
    pub tmux: Tmux,
    pub session: String,
    /// argv prefix of the window's wrapper: the binary itself.
    pub exe: PathBuf,
    pub topic_prefix: String,
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
        config: super::core::JobConfig,
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
}

/// How `run` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Finished,
    Interrupted,
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
        } = places;
        Driver {
            core,
            hooks,
            registry,
            tmux,
            session,
            exe,
            topic_prefix,
            jobs,
            view,
            activity: HashMap::new(),
            inputs: VecDeque::new(),
            hook_tasks: Vec::new(),
            pending_last: HashMap::new(),
            observing: false,
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
                self.core.enqueue(job.clone(), config);
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
        let mut interrupt =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut cancel_check =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
        let mut observe = tokio::time::interval(OBSERVE_EVERY);
        observe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut redraw = tokio::time::interval(Duration::from_secs(1));
        // tmux answers in the background: with hundreds of windows a
        // `list-windows` takes milliseconds that events must not wait for.
        let (observed_tx, mut observed) = mpsc::unbounded_channel::<Observation>();
        let (screen_tx, mut screen_reads) = mpsc::unbounded_channel::<ScreenRead>();
        let mut ending = Ending::Finished;
        self.perform().await;
        self.settle_queue().await;
        while !self.core.is_done() || self.intake.is_some() {
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
                () = tokio::time::sleep(STOPPING_CHECK), if stopping => self.check_stopping(),
                _ = redraw.tick() => self.view.refresh(),
                _ = cancel_check.recv() => {
                    self.check_cancel_requests();
                    // `add` hands jobs over with the same signal.
                    self.admit_added();
                }
                _ = interrupt.recv() => {
                    ending = Ending::Interrupted;
                    self.intake = None;
                    self.cancel_all("interrupted (Ctrl-C)");
                }
                _ = terminate.recv() => {
                    ending = Ending::Interrupted;
                    self.intake = None;
                    self.cancel_all("the supervisor received SIGTERM");
                }
            }
            self.perform().await;
            self.settle_queue().await;
        }
        let states = self.wind_down(listening).await;
        Ok((ending, states))
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

    fn on_message(&mut self, message: &Message) {
        let Some(job) = job_of_topic(&self.topic_prefix, &message.topic) else {
            return;
        };
        let Some(runtime) = self.jobs.get(&job) else {
            return;
        };
        let received = match decode(&message.payload) {
            Ok(Decoded::Event(event)) => event,
            Ok(Decoded::Cleared) => return,
            Err(e) => {
                tracing::warn!("job {job}: ignoring a message: {e}");
                return;
            }
        };
        if received.job.as_deref().is_some_and(|j| j != job.as_str()) {
            tracing::warn!("job {job}: ignoring an event whose payload names another job");
            return;
        }
        let signature = check(Some(&runtime.key), received.raw.as_ref());
        let exit_code = (received.event == EventKind::Exited)
            .then(|| received.data.as_ref()?.get("code")?.as_i64())
            .flatten()
            .and_then(|c| i32::try_from(c).ok());
        // The wrapper names why it failed (`agent_config`, `setup`).
        let failure_kind = (received.event == EventKind::Error)
            .then(|| received.data.as_ref()?.get("kind").cloned())
            .flatten()
            .and_then(|kind| serde_json::from_value(kind).ok());
        let event = Incoming {
            failure_kind,
            kind: received.event,
            attempt: received.attempt,
            message: received.message,
            exit_code,
            signature,
            sent: received.ts,
        };
        self.core
            .handle(Instant::now(), Input::Event { job, event });
    }

    /// Reads the panes of jobs the core says may show a screen, for agents
    /// with screen rules: at most one read per job every SCREEN_READ_EVERY,
    /// in the background.
    fn start_screen_reads(&mut self, results: &mpsc::UnboundedSender<ScreenRead>) {
        let now = Instant::now();
        for (job, attempt) in self.core.screen_watch(now) {
            let Some(runtime) = self.jobs.get_mut(&job) else {
                continue;
            };
            let Some((window_attempt, launched)) = &runtime.window else {
                continue;
            };
            let due = runtime
                .screen_read_at
                .is_none_or(|at| now.saturating_duration_since(at) >= SCREEN_READ_EVERY);
            if runtime.screens.is_none()
                || *window_attempt != attempt
                || runtime.screen_reading
                || !due
            {
                continue;
            }
            runtime.screen_reading = true;
            runtime.screen_read_at = Some(now);
            let target = pane_target(launched);
            let tmux = self.tmux.clone();
            let results = results.clone();
            tokio::spawn(async move {
                let screen = tmux.capture_screen(&target).await;
                let _ = results.send((job, attempt, screen));
            });
        }
    }

    /// Matches a pane read against the job's rules: a screen, or none.
    fn apply_screen_read(&mut self, (job, attempt, screen): ScreenRead) {
        let Some(runtime) = self.jobs.get_mut(&job) else {
            return;
        };
        runtime.screen_reading = false;
        let (Some(rules), Ok(screen)) = (&runtime.screens, screen) else {
            return;
        };
        let input = match rules.waiting(&screen) {
            Some(shown) => Input::Screen {
                job,
                attempt,
                message: shown.message,
                keys: shown.keys,
            },
            None => Input::ScreenGone { job, attempt },
        };
        self.core.handle(Instant::now(), input);
    }

    /// Answers a screen: its rule's keys, typed into the attempt's pane.
    async fn send_keys(&mut self, job: &JobId, attempt: u32, keys: &[String]) {
        let Some(runtime) = self.jobs.get(job) else {
            return;
        };
        let Some((window_attempt, launched)) = &runtime.window else {
            return;
        };
        if *window_attempt != attempt {
            return;
        }
        match self.tmux.send_keys(&pane_target(launched), keys).await {
            Ok(()) => {
                tracing::info!("job {job} attempt {attempt}: answered a screen with {keys:?}")
            }
            Err(e) => tracing::warn!("job {job}: cannot send keys to its pane: {e:#}"),
        }
    }

    /// One `list-windows -a` for every job: dead panes, closed windows and
    /// output activity.
    fn start_observation(&mut self, results: &mpsc::UnboundedSender<Observation>) {
        self.observing = true;
        let tmux = self.tmux.clone();
        let results = results.clone();
        let asked = Instant::now();
        tokio::spawn(async move {
            let windows = tmux.list_windows().await;
            let _ = results.send((asked, windows));
        });
    }

    /// Turns a snapshot of every window into dead-pane, closed-window and
    /// output inputs. Windows asked for after the snapshot are not judged.
    fn apply_observation(&mut self, asked: Instant, windows: anyhow::Result<Vec<WindowInfo>>) {
        let windows = match windows {
            Ok(windows) => windows,
            Err(e) => {
                tracing::warn!("cannot list tmux windows: {e:#}");
                return;
            }
        };
        let by_id: HashMap<&str, &WindowInfo> =
            windows.iter().map(|w| (w.window_id.as_str(), w)).collect();
        let now = Instant::now();
        let mut inputs = Vec::new();
        for (job, runtime) in &self.jobs {
            let Some((attempt, launched)) = &runtime.window else {
                continue;
            };
            if runtime.launched_at.is_some_and(|at| at > asked) {
                continue;
            }
            let (job, attempt) = (job.clone(), *attempt);
            match by_id.get(launched.window_id.as_str()) {
                None => {
                    inputs.extend(self.recorded_exit(&job, attempt));
                    inputs.push(Input::WindowGone { job, attempt });
                }
                Some(info) if info.dead => {
                    inputs.extend(self.recorded_exit(&job, attempt));
                    inputs.push(Input::PaneDead {
                        job,
                        attempt,
                        status: info.dead_status,
                    });
                }
                Some(info) => {
                    let seen = self
                        .activity
                        .insert(launched.window_id.clone(), info.activity);
                    if seen.is_some_and(|before| info.activity > before) {
                        inputs.push(Input::Output { job, attempt });
                    }
                }
            }
        }
        for input in inputs {
            self.core.handle(now, input);
        }
    }

    /// The exit code the wrapper recorded for a window that died: it
    /// outranks a Last Will or an `exited` event the broker lost.
    fn recorded_exit(&self, job: &JobId, attempt: u32) -> Option<Input> {
        let code = self
            .registry
            .load(job)
            .ok()?
            .attempt_info(attempt)?
            .exit_code?;
        Some(Input::ExitRecorded {
            job: job.clone(),
            attempt,
            code,
        })
    }

    /// Keeps the job's retry budget, deadline and backoff in its record, so
    /// a `resume` after a crash honours them.
    fn record_checkpoint(&self, job: &JobId, checkpoint: Checkpoint) {
        let point = ResumePoint {
            first_attempt: checkpoint.first_attempt,
            job_deadline: checkpoint.job_deadline.map(super::clock::to_unix),
            backoff_until: checkpoint.backoff_until.map(super::clock::to_unix),
        };
        if let Err(e) = self.registry.update(job, |r| r.resume = Some(point)) {
            tracing::warn!("job {job}: cannot update the record: {e:#}");
        }
    }

    /// For attempts being stopped: report the ones whose group is empty.
    fn check_stopping(&mut self) {
        let stopping: Vec<(JobId, u32)> = self
            .core
            .stopping()
            .map(|(id, a)| (id.clone(), a))
            .collect();
        for (job, attempt) in stopping {
            if !self
                .pgid(&job, attempt)
                .is_some_and(crate::proc::group_alive)
            {
                self.core
                    .handle(Instant::now(), Input::GroupGone { job, attempt });
            }
        }
    }

    /// The attempt's agent group, as the wrapper recorded it.
    fn pgid(&mut self, job: &JobId, attempt: u32) -> Option<AgentGroup> {
        let runtime = self.jobs.get_mut(job)?;
        if let Some(pgid) = runtime.pgid.get(&attempt) {
            return Some(*pgid);
        }
        let pgid = self
            .registry
            .load(job)
            .ok()?
            .attempt_info(attempt)?
            .agent_group()?;
        runtime.pgid.insert(attempt, pgid);
        Some(pgid)
    }

    /// Performs effects until the core has none left; inputs they produce
    /// are fed back at once.
    async fn perform(&mut self) {
        loop {
            while let Some(input) = self.inputs.pop_front() {
                self.core.handle(Instant::now(), input);
            }
            let Some(effect) = self.core.poll_effect() else {
                if self.inputs.is_empty() {
                    return;
                }
                continue;
            };
            match effect {
                Effect::Launch { job, attempt } => self.launch(job, attempt).await,
                Effect::Signal {
                    job,
                    attempt,
                    signal,
                } => self.signal(job, attempt, signal),
                Effect::CloseWindow { job, attempt, keep } => {
                    self.close_window(&job, attempt, keep).await
                }
                Effect::Transition {
                    job,
                    attempt,
                    from,
                    to,
                    reason,
                    failure,
                } => {
                    self.queue_dirty = true;
                    let failure = failure.map(|f| FailureInfo {
                        kind: serde_json::to_value(f.kind)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        reason: f.reason,
                    });
                    self.record_transition(&job, attempt, from, to, reason, failure);
                }
                Effect::RecordEvent {
                    job,
                    attempt,
                    event,
                    ignored,
                } => self.record_event(&job, attempt, &event, ignored),
                Effect::SendKeys { job, attempt, keys } => {
                    self.send_keys(&job, attempt, &keys).await;
                }
                Effect::Checkpoint { job, checkpoint } => self.record_checkpoint(&job, checkpoint),
            }
        }
    }

    async fn launch(&mut self, job: JobId, attempt: u32) {
        let Some(runtime) = self.jobs.get(&job) else {
            return;
        };
        let argv: Vec<String> = vec![
            self.exe.display().to_string(),
            "exec".into(),
            "--job".into(),
            job.to_string(),
            "--attempt".into(),
            attempt.to_string(),
            "--registry".into(),
            self.registry.root().display().to_string(),
        ];
        let asked = Instant::now();
        match self
            .tmux
            .launch(&self.session, &runtime.name, &runtime.workdir, &argv)
            .await
        {
            Ok(launched) => {
                let window = launched.window_id.clone();
                self.log_window(&job, attempt, &window, "opened");
                let _ = self.registry.update(&job, |r| {
                    let info = r.attempt_mut(attempt);
                    info.window = Some(window);
                    info.pane_pid = Some(launched.pane_pid);
                });
                if let Some(runtime) = self.jobs.get_mut(&job) {
                    runtime.window = Some((attempt, launched));
                    runtime.launched_at = Some(asked);
                }
                self.inputs.push_back(Input::Launched { job, attempt });
            }
            Err(e) => self.inputs.push_back(Input::LaunchFailed {
                job,
                attempt,
                reason: format!("{e:#}"),
            }),
        }
    }

    fn signal(&mut self, job: JobId, attempt: u32, signal: StopSignal) {
        let Some(pgid) = self.pgid(&job, attempt) else {
            // The wrapper never started the agent: nothing to signal.
            if signal == StopSignal::Term {
                self.inputs.push_back(Input::GroupGone { job, attempt });
            }
            return;
        };
        let sig = match signal {
            StopSignal::Term => Signal::SIGTERM,
            StopSignal::Kill => Signal::SIGKILL,
        };
        match crate::proc::signal_group(pgid, sig) {
            Ok(true) => {
                let pgid = pgid.pgid;
                tracing::info!("job {job} attempt {attempt}: sent {sig} to process group {pgid}")
            }
            Ok(false) => {
                if signal == StopSignal::Term {
                    self.inputs.push_back(Input::GroupGone { job, attempt });
                }
            }
            Err(e) => tracing::warn!("job {job}: cannot signal process group {}: {e}", pgid.pgid),
        }
    }

    async fn close_window(&mut self, job: &JobId, attempt: u32, keep: bool) {
        let Some(runtime) = self.jobs.get_mut(job) else {
            return;
        };
        let Some((window_attempt, launched)) = runtime.window.take() else {
            return;
        };
        if window_attempt != attempt {
            runtime.window = Some((window_attempt, launched));
            return;
        }
        self.activity.remove(&launched.window_id);
        if runtime.saves_pane && !keep {
            save_pane(
                &self.tmux,
                &self.registry,
                job,
                attempt,
                &launched.window_id,
            )
            .await;
        }
        let result = if keep {
            let name = format!("{}-failed-{attempt}", runtime.name);
            self.tmux.rename_window(&launched.window_id, &name).await
        } else {
            self.tmux.kill_window(&launched.window_id).await
        };
        match result {
            Ok(()) => {
                let action = if keep { "kept" } else { "closed" };
                self.log_window(job, attempt, &launched.window_id, action);
            }
            Err(e) => tracing::warn!(
                "job {job}: cannot close window {}: {e:#}",
                launched.window_id
            ),
        }
    }

    fn log_window(&self, job: &JobId, attempt: u32, window: &str, action: &str) {
        let entry = LogEntry::Window {
            ts: crate::model::event::now_ts(),
            attempt,
            window: window.to_owned(),
            action: action.to_owned(),
        };
        if let Err(e) = self.registry.append(job, &entry) {
            tracing::warn!("job {job}: cannot append to its history: {e:#}");
        }
    }

    fn record_transition(
        &mut self,
        job: &JobId,
        attempt: u32,
        from: JobState,
        to: JobState,
        reason: Option<String>,
        failure: Option<FailureInfo>,
    ) {
        let entry = LogEntry::Transition {
            ts: crate::model::event::now_ts(),
            attempt,
            from,
            to,
            reason: reason.clone(),
        };
        if let Err(e) = self.registry.append(job, &entry) {
            tracing::warn!("job {job}: cannot append to its history: {e:#}");
        }
        if let Some(notes) = &self.notes {
            let _ = notes.send(Note {
                job: job.clone(),
                attempt,
                to,
                reason: reason.clone(),
                failure: failure.clone(),
            });
        }
        let last = self.pending_last.remove(job);
        let update = self.registry.update(job, |r| {
            if last.is_some() {
                r.last_event = last;
            }
            r.state = to;
            r.attempt = attempt;
            if failure.is_some() || to == JobState::Completed {
                r.failure.clone_from(&failure);
            }
            if to == JobState::Skipped {
                // Why it never ran (`status` shows it): a dependency's end.
                r.failure = Some(FailureInfo {
                    kind: "skipped".into(),
                    reason: reason.clone().unwrap_or_default(),
                });
            }
            if to.is_finished() {
                r.supervisor_pid = None;
                if let Some(info) = r.attempts.iter_mut().find(|a| a.number == attempt) {
                    info.ended = Some(now_rfc3339());
                    info.outcome = Some(to.as_str().to_owned());
                }
            }
        });
        match update {
            Ok(record) => self.run_outcome_hook(to, &record, reason.as_deref()),
            Err(e) => tracing::warn!("job {job}: cannot update the record: {e:#}"),
        }
        let name = self
            .jobs
            .get(job)
            .map(|r| r.name.clone())
            .unwrap_or_default();
        self.view.transition(
            job,
            &name,
            attempt,
            from,
            to,
            reason.as_deref(),
            failure.as_ref(),
        );
    }

    /// `on_done`, `on_failed` or `on_waiting`, for the state reached.
    fn run_outcome_hook(
        &mut self,
        to: JobState,
        record: &crate::registry::Record,
        reason: Option<&str>,
    ) {
        let hook = match to {
            JobState::Completed => &self.hooks.on_done,
            JobState::Failed | JobState::TimedOut => &self.hooks.on_failed,
            JobState::Waiting => &self.hooks.on_waiting,
            _ => &None,
        };
        if let Some(argv) = hook {
            let task = run_hook(argv.clone(), hook_input(record, reason));
            self.hook_tasks.retain(|t| !t.is_finished());
            self.hook_tasks.push(task);
        }
    }

    fn record_event(
        &mut self,
        job: &JobId,
        attempt: u32,
        event: &Incoming,
        ignored: Option<String>,
    ) {
        let ts = crate::model::event::now_ts();
        let entry = LogEntry::Event {
            ts,
            attempt,
            event: event.kind.clone(),
            message: event.message.clone(),
            data: event.exit_code.map(|c| serde_json::json!({ "code": c })),
            signature: event.signature,
            sent: event.sent,
            ignored: ignored.clone(),
        };
        if let Err(e) = self.registry.append(job, &entry) {
            tracing::warn!("job {job}: cannot append to its history: {e:#}");
        }
        if ignored.is_some() {
            return;
        }
        let last = LastEvent {
            event: event.kind.clone(),
            attempt,
            ts,
            message: event.message.clone(),
        };
        self.view.event(job, &last);
        self.pending_last.insert(job.clone(), last);
    }

    /// Writes the last events received since the previous tick into their
    /// records: one rewrite per job per tick, however many events came, on
    /// the blocking pool so fsyncs never delay the event loop. A transition
    /// may have written a newer one meanwhile: never go back in time.
    fn flush_last_events(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        if self.pending_last.is_empty() {
            return None;
        }
        let pending = std::mem::take(&mut self.pending_last);
        let registry = Registry::at(self.registry.root().to_path_buf());
        Some(tokio::task::spawn_blocking(move || {
            for (job, last) in pending {
                let result = registry.update(&job, |r| {
                    if r.last_event.as_ref().is_none_or(|old| old.ts <= last.ts) {
                        r.last_event = Some(last);
                    }
                });
                if let Err(e) = result {
                    tracing::warn!("job {job}: cannot update the record: {e:#}");
                }
            }
        }))
    }
}

/// The job as a hook sees it on stdin (the `status --json` shape, plus why).
fn hook_input(record: &crate::registry::Record, reason: Option<&str>) -> serde_json::Value {
    let mut input = record.summary();
    input["reason"] = serde_json::json!(reason);
    input["workdir"] = serde_json::json!(record.spec.workdir);
    if let Some(workspace) = &record.workspace {
        // Where the work is (no git call here: hooks must not wait on it).
        input["workspace"] = serde_json::json!({
            "path": workspace.path,
            "branch": workspace.branch,
            "base": workspace.base,
        });
    }
    input
}

/// Runs an outcome hook (argv, no shell) with `input` on stdin, in the
/// background: a slow or failing hook is logged and never holds up or
/// fails supervision.
fn run_hook(argv: Vec<String>, input: serde_json::Value) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let spawned = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => return tracing::warn!("hook `{}` could not start: {e}", argv[0]),
        };
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input.to_string().as_bytes()).await;
        }
        match tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await {
            Ok(Ok(out)) if out.status.success() => {}
            Ok(Ok(out)) => tracing::warn!(
                "hook `{}` failed ({}): {}",
                argv[0],
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Ok(Err(e)) => tracing::warn!("hook `{}`: {e}", argv[0]),
            Err(_) => tracing::warn!("hook `{}` ran for over a minute; left running", argv[0]),
        }
    })
}

/// The pane to read or type into: its id, else (an adopted window) the
/// window's active pane.
fn pane_target(launched: &Launched) -> String {
    if launched.pane_id.is_empty() {
        launched.window_id.clone()
    } else {
        launched.pane_id.clone()
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

/// A stopped attempt's pane, saved for the job's log unless its wrapper
/// saved it first: the wrapper of a cancelled or timed-out attempt may
/// still be stopping the agent's leftovers when the window closes, and a
/// closed window's pane cannot be read.
async fn save_pane(tmux: &Tmux, registry: &Registry, job: &JobId, attempt: u32, window: &str) {
    let path = registry.pane_file(job, attempt);
    if path.exists() {
        return;
    }
    match tmux.capture(window).await {
        Ok(text) => crate::fleet::joblog::save_pane(registry, job, attempt, &text),
        Err(e) => tracing::warn!("job {job}: cannot capture its pane: {e:#}"),
    }
}
