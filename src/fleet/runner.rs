//! `runner`: one host's member of a pool. It announces itself (retained
//! presence, Last Will offline), takes offers through the pool's shared
//! subscription (clean session: a dead member must not keep receiving),
//! claims each job on its retained state topic, and runs it in its local
//! tmux with the same supervisor as `run` (a driver that takes jobs over
//! time). Every transition is published retained on the job's state topic.
//!
//! Failover without a coordinator: every runner follows all presences and
//! states. When a runner's presence turns offline (its Last Will), the
//! lowest-named live runner of the pool offers that runner's unfinished
//! jobs again with the next attempt number. The attempt is the fencing
//! token: an offer older than the job's state is dropped, and a runner that
//! sees its job claimed with a newer attempt stops its own. Those decisions
//! are `failover.rs`; `max_parallel` is the driver's local queue cap.

use super::failover::{self, OfferVerdict};
use super::message::{self, Control, JobRequest, JobStatus, Offer, Presence, Verdict};
use super::topics::{self, Topic};
use super::unclaimed::{Unclaimed, OFFER_TIMEOUT};
use crate::agents::{self, AgentDef};
use crate::config::job::JobFlags;
use crate::config::{BrokerSettings, Config};
use crate::error::{config_error, Exit, Failure};
use crate::model::event::now_ts;
use crate::model::{FleetState, JobId, JobState};
use crate::mqtt::client::{forward_received, Forwarding, Message, Received, Subscriber};
use crate::mqtt::connect::{ConnectOptions, LastWill};
use crate::mqtt::outbox::Outbox;
use crate::mqtt::sign::EventKey;
use crate::mqtt::topic::all_events_filter;
use crate::registry::{Record, Registry};
use crate::supervisor::core::JobConfig;
use crate::supervisor::driver::{Ending, Intake, JobRuntime, Note};
use crate::supervisor::session::{self, Brokers};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

mod logs;
mod send;

/// How often a runner re-announces itself (it also recovers the retained
/// presence after a reconnect, when the Last Will has fired meanwhile).
const ANNOUNCE_EVERY: Duration = Duration::from_secs(10);

/// How often the pool's leader looks for jobs whose offer was lost.
const UNCLAIMED_CHECK_EVERY: Duration = Duration::from_secs(5);

/// How long a stopping runner lets its last states and its `offline`
/// presence leave (they go in milliseconds when the broker is there).
const OUTBOX_DRAIN: Duration = Duration::from_secs(3);

/// What a runner is, resolved from flags and `[fleet]`.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    pub name: String,
    pub pool: String,
    pub max_parallel: u32,
    pub root: PathBuf,
    pub trusted: Vec<EventKey>,
    /// How long a job may stay on offer unclaimed before the leader offers
    /// it again (`fleet.offer_timeout`).
    pub offer_timeout: Duration,
    /// The keepalive of its broker connections (`fleet.keepalive`).
    pub keepalive: Duration,
    /// How long a runner gone offline may take to come back before its
    /// jobs are offered again (`fleet.failover_after`).
    pub failover_after: Duration,
}

/// A job this runner holds: the attempt it claimed and the signed request
/// (kept in every state it publishes, so another runner can offer it again).
struct Held {
    attempt: u32,
    request: serde_json::Map<String, serde_json::Value>,
    parsed: JobRequest,
}

/// A claimed job, registered, for the driver (which starts it when its
/// local cap, `max_parallel`, has room).
struct Ready {
    job: JobId,
    agent: String,
    runtime: JobRuntime,
    config: JobConfig,
}

struct Fleet {
    me: RunnerSettings,
    prefix: String,
    /// Every publish goes through it: the loop never waits on the broker.
    outbox: Outbox,
    config: Config,
    registry: Registry,
    worker: BrokerSettings,
    intake: mpsc::UnboundedSender<Intake>,
    /// The latest retained state of every job.
    states: HashMap<JobId, JobStatus>,
    /// The latest presence of every runner.
    presences: BTreeMap<String, Presence>,
    /// Jobs this runner claimed and still answers for.
    held: HashMap<JobId, Held>,
    /// Jobs handed to the driver and not finished.
    active: HashSet<JobId>,
    /// Those of them the driver started (the slots in use).
    started: HashSet<JobId>,
    /// Jobs on offer that no runner has claimed yet, and since when.
    unclaimed: Unclaimed,
    /// The broker's copy of every job's state (own echoes included) since
    /// the last (re)connection: what repairs and stale states are judged by.
    broker_copy: HashMap<JobId, JobStatus>,
    /// The last state this runner published of each job it answered for.
    published: HashMap<JobId, JobStatus>,
    /// The attempt of each job whose fence this runner wrote last.
    fenced: HashMap<JobId, u32>,
    /// States held back until the broker's retained states have arrived.
    deferred: BTreeMap<JobId, JobStatus>,
    /// Runners whose presence went offline, and since when (failover waits
    /// `failover_after` for them to come back).
    offline_since: BTreeMap<String, Instant>,
    sync: Sync,
    /// The `send` controls answered lately (a duplicate is not typed twice).
    answered: send::Answered,
    /// Agents limited on this host: the job that met the limit, and until
    /// when at the latest (Unix seconds). No new job of theirs is taken
    /// till that job goes on (its wait ended) or the time passes.
    limited: HashMap<String, (JobId, f64)>,
}

/// Whether this runner has the broker's retained states: not after a lost
/// connection or a freeze until the echo of its `sync` presence came.
struct Sync {
    synced: bool,
    /// The mark whose echo is awaited.
    mark: u64,
    last_pulse: Instant,
}

pub async fn run(config: Config, me: RunnerSettings) -> anyhow::Result<Exit> {
    let Brokers {
        observer, worker, ..
    } = Brokers::configured(&config)?.ok_or_else(|| {
        config_error("a runner needs a broker that every host of its pool reaches").help(
            "set MQTT_BROKER (and MQTT_PORT, ...), or `host` in [broker] of tmux-delegate.toml",
        )
    })?;
    let prefix = observer.topic_prefix.clone();
    // `kill ID` on this host marks the record and sends SIGUSR1.
    session::listen_for_cancel_requests()?;
    let registry = Registry::open(&config.env)?;
    // Job events first: no window may report before the driver listens.
    let mut events_options = ConnectOptions::new("runner-events");
    events_options.keep_alive = me.keepalive;
    let events =
        Subscriber::connect(&observer, &events_options, vec![all_events_filter(&prefix)]).await?;
    let offline = presence(&me, "offline", 0);
    let mut options = ConnectOptions::new("runner");
    // How soon the broker fires the Last Will of a frozen or cut-off runner.
    options.keep_alive = me.keepalive;
    // One connection per runner name: a second runner of the same name
    // takes the name over instead of splitting its jobs.
    options.client_id = Some(format!("{}-runner-{}", observer.client_id_prefix, me.name));
    options.last_will = Some(LastWill {
        topic: topics::presence_topic(&prefix, &me.name),
        payload: serde_json::to_vec(&offline).unwrap_or_default(),
        retain: true,
    });
    // States before offers: an offer is judged against the job's state.
    let fleet_sub = Subscriber::connect(
        &observer,
        &options,
        vec![
            topics::all_states_filter(&prefix),
            topics::all_presence_filter(&prefix),
            topics::all_controls_filter(&prefix),
            topics::pool_share_filter(&prefix, &me.pool),
        ],
    )
    .await?;
    announce_trust(&me);
    let client = fleet_sub.client();
    let (messages, listening) = forward_received(fleet_sub);
    let (intake_tx, intake_rx) = mpsc::unbounded_channel();
    let (notes_tx, notes_rx) = mpsc::unbounded_channel();
    let mut driver = session::idle_driver(&config, &registry, &prefix)
        .await?
        .with_intake(intake_rx, notes_tx);
    driver.cap_locally(me.max_parallel);
    let mut fleet = Fleet::new(
        me,
        prefix,
        Outbox::start(client),
        config,
        registry,
        worker,
        intake_tx,
    );
    fleet.announce().await;
    let ending = fleet.serve(driver.run(events), messages, notes_rx).await?;
    fleet.publish_presence("offline").await;
    leave(fleet.outbox, &fleet.me.name, listening).await;
    Ok(match ending {
        Ending::Interrupted => Exit::Interrupted,
        Ending::Unrecorded => Exit::Unrecorded,
        Ending::Finished => Exit::Success,
    })
}

/// Lets the last states and the `offline` presence go, then disconnects.
/// With the broker unreachable neither can happen: the runner leaves
/// without waiting for it.
async fn leave(outbox: Outbox, name: &str, listening: Forwarding) {
    if outbox.close(OUTBOX_DRAIN).await {
        listening.close(Duration::from_secs(5)).await;
    } else {
        eprintln!(
            "runner {name}: the broker is unreachable: leaving without publishing its last states and `offline`"
        );
        listening.abort();
    }
}

/// Says at start who may hand this runner work.
fn announce_trust(me: &RunnerSettings) {
    eprintln!(
        "runner {}: pool `{}`, up to {} job(s) at once, workdirs under {}",
        me.name,
        me.pool,
        me.max_parallel,
        me.root.display()
    );
    if me.trusted.is_empty() {
        eprintln!(
            "warning: no `fleet.submitter_keys` configured: the broker's ACL alone decides who may submit jobs to this runner"
        );
    } else {
        eprintln!(
            "runner {}: runs only submissions signed by one of {} trusted submitter key(s)",
            me.name,
            me.trusted.len()
        );
    }
}

fn presence(me: &RunnerSettings, status: &str, running: u32) -> Presence {
    Presence {
        runner: me.name.clone(),
        pool: me.pool.clone(),
        status: status.to_owned(),
        max_parallel: me.max_parallel,
        running,
        ts: now_ts(),
        sync: None,
    }
}

/// Resolves a request's workdir under `root`; it may not leave it.
pub fn workdir_under(root: &Path, requested: Option<&str>) -> Result<PathBuf, String> {
    let Some(requested) = requested.filter(|r| !r.is_empty()) else {
        return Ok(root.to_path_buf());
    };
    let relative = Path::new(requested);
    if relative.is_absolute()
        || relative
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)))
    {
        return Err(format!(
            "workdir `{requested}` leaves the runner's root: give a path relative to it, without `..`"
        ));
    }
    let dir = root.join(relative);
    let real_root = root
        .canonicalize()
        .map_err(|e| format!("the runner's root {}: {e}", root.display()))?;
    let real = dir
        .canonicalize()
        .map_err(|e| format!("workdir `{requested}` under the runner's root: {e}"))?;
    // A symlink inside the root may point out of it.
    if !real.starts_with(&real_root) {
        return Err(format!(
            "workdir `{requested}` resolves to {}, outside the runner's root",
            real.display()
        ));
    }
    if !real.is_dir() {
        return Err(format!("workdir `{requested}` is not a directory"));
    }
    Ok(real)
}

impl Fleet {
    /// A runner that knows nothing of the pool yet, in sync with its fresh
    /// connection.
    fn new(
        me: RunnerSettings,
        prefix: String,
        outbox: Outbox,
        config: Config,
        registry: Registry,
        worker: BrokerSettings,
        intake: mpsc::UnboundedSender<Intake>,
    ) -> Fleet {
        Fleet {
            me,
            prefix,
            outbox,
            config,
            registry,
            worker,
            intake,
            states: HashMap::new(),
            presences: BTreeMap::new(),
            held: HashMap::new(),
            active: HashSet::new(),
            started: HashSet::new(),
            unclaimed: Unclaimed::default(),
            broker_copy: HashMap::new(),
            published: HashMap::new(),
            fenced: HashMap::new(),
            deferred: BTreeMap::new(),
            offline_since: BTreeMap::new(),
            answered: send::Answered::default(),
            limited: HashMap::new(),
            sync: Sync {
                synced: true,
                mark: 0,
                last_pulse: Instant::now(),
            },
        }
    }

    async fn serve(
        &mut self,
        driver: impl std::future::Future<Output = anyhow::Result<(Ending, Vec<(JobId, JobState)>)>>,
        mut messages: mpsc::UnboundedReceiver<Received>,
        mut notes: mpsc::UnboundedReceiver<Note>,
    ) -> anyhow::Result<Ending> {
        tokio::pin!(driver);
        let mut heartbeat = tokio::time::interval(ANNOUNCE_EVERY);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut unclaimed_check = tokio::time::interval(UNCLAIMED_CHECK_EVERY);
        unclaimed_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pulse = tokio::time::interval(failover::PULSE_EVERY);
        pulse.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let outcome = loop {
            tokio::select! {
                result = &mut driver => break result,
                Some(received) = messages.recv() => self.on_received(received).await,
                _ = pulse.tick() => self.on_pulse().await,
                Some(note) = notes.recv() => self.on_note(note).await,
                _ = heartbeat.tick() => self.announce().await,
                _ = unclaimed_check.tick() => self.offer_unclaimed_again().await,
            }
        };
        // The driver's last transitions (the cancels of an interrupt).
        while let Ok(note) = notes.try_recv() {
            self.on_note(note).await;
        }
        Ok(outcome?.0)
    }

    async fn publish(&self, topic: String, payload: Vec<u8>, retain: bool) {
        self.outbox.send(topic, payload, retain);
    }

    async fn announce(&self) {
        self.publish_presence("online").await;
    }

    async fn publish_presence(&self, status: &str) {
        self.publish_presence_marked(status, None).await;
    }

    async fn publish_presence_marked(&self, status: &str, sync: Option<u64>) {
        let running = u32::try_from(self.started.len()).unwrap_or(u32::MAX);
        let mut presence = presence(&self.me, status, running);
        presence.sync = sync;
        let payload = serde_json::to_vec(&presence).unwrap_or_default();
        self.publish(
            topics::presence_topic(&self.prefix, &self.me.name),
            payload,
            true,
        )
        .await;
    }

    /// Publishes a job's state, retained; remembered at once (the echo
    /// from the broker comes later). Held back while this runner is out of
    /// sync with the broker (after a freeze or a lost connection), and
    /// dropped when the broker holds a newer attempt.
    async fn publish_state(&mut self, status: JobStatus) {
        let Ok(job) = JobId::parse(&status.job) else {
            return;
        };
        self.check_freeze().await;
        self.unclaimed.follow(&job, &status, Instant::now());
        self.states.insert(job.clone(), status.clone());
        if !self.sync.synced {
            self.deferred.insert(job, status);
            return;
        }
        self.emit_state(job, status).await;
    }

    /// Publishes a state unless it is older than the broker's copy; a
    /// claim of this runner also writes the job's fence (read by the
    /// windows of older attempts, which then stop).
    async fn emit_state(&mut self, job: JobId, status: JobStatus) {
        if failover::stale_against(self.broker_copy.get(&job), &status, &self.me.name) {
            return tracing::info!(
                "job {job}: not publishing {} of attempt {}: the broker holds a newer attempt",
                status.state,
                status.attempt
            );
        }
        let claim = status.runner.as_deref() == Some(self.me.name.as_str())
            && !status.is_terminal()
            && status.state != FleetState::Refused;
        if claim && self.fenced.get(&job) != Some(&status.attempt) {
            self.fenced.insert(job.clone(), status.attempt);
            let fence = crate::model::Fence {
                attempt: status.attempt,
                runner: self.me.name.clone(),
            };
            self.publish(
                crate::mqtt::topic::fence_topic(&self.prefix, &job),
                fence.encode(),
                true,
            )
            .await;
        }
        let payload = status.encode();
        self.published.insert(job.clone(), status);
        self.publish(topics::state_topic(&self.prefix, &job), payload, true)
            .await;
    }

    /// A pulse: a freeze noticed, and the runners offline for longer than
    /// `failover_after` failed over.
    async fn on_pulse(&mut self) {
        self.check_freeze().await;
        if !self.sync.synced {
            // Not with a view of the pool that may be stale: later.
            return;
        }
        let due = failover::due_failovers(
            &self.offline_since,
            &self.presences,
            Instant::now(),
            self.me.failover_after,
        );
        for name in due {
            self.offline_since.remove(&name);
            self.take_over(&name).await;
        }
    }

    /// A pulse far too late: this process was frozen (SIGSTOP, a suspended
    /// host). Whatever it would publish may be older than what the pool did
    /// meanwhile: resynchronise first.
    async fn check_freeze(&mut self) {
        let now = Instant::now();
        if failover::frozen(self.sync.last_pulse, now) {
            eprintln!(
                "runner {}: this runner was frozen for {:.1} s; reading the broker's states before publishing",
                self.me.name,
                now.saturating_duration_since(self.sync.last_pulse).as_secs_f64()
            );
            self.resync().await;
        }
        self.sync.last_pulse = now;
    }

    /// Holds states back until the echo of a new `sync` presence: on this
    /// connection, the broker routes it after the retained states it owes.
    async fn resync(&mut self) {
        self.sync.synced = false;
        self.sync.mark += 1;
        self.publish_presence_marked("online", Some(self.sync.mark))
            .await;
    }

    /// The broker's retained states have all arrived: the held-back states
    /// go out unless older than the broker's, and the broker's copies that
    /// are missing or older than this runner's are repaired.
    async fn on_synced(&mut self) {
        self.sync.synced = true;
        for (job, status) in std::mem::take(&mut self.deferred) {
            self.emit_state(job, status).await;
        }
        let mut repairs: Vec<(JobId, JobStatus)> = self
            .published
            .iter()
            .filter(|(job, mine)| {
                failover::needs_repair(self.broker_copy.get(*job), mine, &self.me.name)
            })
            .map(|(job, mine)| (job.clone(), mine.clone()))
            .collect();
        repairs.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        for (job, mine) in repairs {
            eprintln!(
                "runner {}: job {job}: the broker holds {}; publishing its state again ({} at attempt {})",
                self.me.name,
                self.broker_copy
                    .get(&job)
                    .map_or("no state".to_owned(), |b| format!("{} at attempt {}", b.state, b.attempt)),
                mine.state,
                mine.attempt
            );
            self.emit_state(job, mine).await;
        }
    }

    async fn on_received(&mut self, received: Received) {
        match received {
            Received::Message(message) => self.on_message(&message).await,
            Received::Lost => self.sync.synced = false,
            Received::Restored => {
                // A clean session: the resubscription brings every retained
                // state again, the broker's copy as it is now.
                self.broker_copy.clear();
                self.resync().await;
            }
        }
    }

    fn status_of(&self, job: &JobId, held: &Held, state: FleetState) -> JobStatus {
        JobStatus {
            job: job.to_string(),
            state,
            attempt: held.attempt,
            runner: Some(self.me.name.clone()),
            pool: self.me.pool.clone(),
            name: held.parsed.name.clone(),
            agent: held.parsed.agent.clone(),
            ts: now_ts(),
            reason: None,
            failure: None,
            request: Some(held.request.clone()),
            created: None,
            max_attempts: None,
            last_event: None,
            work: None,
            until: None,
        }
        .with_record(self.registry.load(job).ok().as_ref())
    }

    async fn on_message(&mut self, message: &Message) {
        match topics::classify(&self.prefix, &message.topic) {
            Some(Topic::Offer) => self.on_offer(&message.payload).await,
            Some(Topic::State(job)) => self.on_state(job, &message.payload),
            Some(Topic::Presence(name)) => self.on_presence(&name, message).await,
            Some(Topic::Control(job)) => self.on_control(job, &message.payload).await,
            None => {}
        }
    }

    /// A job's retained state: remembered; a newer claim on a job this
    /// runner holds fences its own attempt off.
    fn on_state(&mut self, job: JobId, payload: &[u8]) {
        if payload.is_empty() {
            self.broker_copy.remove(&job);
            self.states.remove(&job);
            self.unclaimed.forget(&job);
            return;
        }
        let Some(status) = JobStatus::decode(payload) else {
            tracing::warn!("job {job}: ignoring a malformed state");
            return;
        };
        self.broker_copy.insert(job.clone(), status.clone());
        if status.runner.as_deref() == Some(self.me.name.as_str()) {
            // Our own echo (or an older one of ours): what we published wins.
            return;
        }
        if let Some(held) = self.held.get(&job) {
            if failover::taken_over(&status, held.attempt, &self.me.name) {
                tracing::warn!(
                    "job {job}: attempt {} is now {} on {}; stopping this runner's attempt {}",
                    status.attempt,
                    status.state,
                    status.runner.as_deref().unwrap_or("the pool"),
                    held.attempt
                );
                self.held.remove(&job);
                if self.active.contains(&job) {
                    let _ = self.intake.send(Intake::Cancel {
                        job: job.clone(),
                        reason: format!("attempt {} was taken over", status.attempt),
                    });
                }
            }
        }
        self.unclaimed.follow(&job, &status, Instant::now());
        self.states.insert(job, status);
    }

    async fn on_offer(&mut self, payload: &[u8]) {
        let offer: Offer = match serde_json::from_slice(payload) {
            Ok(offer) => offer,
            Err(e) => return tracing::warn!("ignoring a malformed job offer: {e}"),
        };
        let Some(job) = offer
            .request
            .get("id")
            .and_then(|v| v.as_str())
            .and_then(|id| JobId::parse(id).ok())
        else {
            return tracing::warn!("ignoring a job offer without a valid id");
        };
        let held = self.held.get(&job).map(|h| h.attempt);
        match failover::judge_offer(self.states.get(&job), held, offer.attempt) {
            OfferVerdict::Take => {}
            OfferVerdict::Held => return,
            OfferVerdict::Stale(why) => {
                return tracing::info!(
                    "job {job}: dropping the offer of attempt {} ({why})",
                    offer.attempt
                );
            }
        }
        let parsed = match self.admit(&offer.request) {
            Ok(parsed) => parsed,
            Err(reason) => return self.refuse(&job, &offer, reason).await,
        };
        if let Some(why) = self.limited_for(&parsed) {
            // Not claimed: the pool's leader offers it again (unclaimed),
            // to a runner whose agent is not limited, or here after the reset.
            return eprintln!("runner {}: not taking job {job}: {why}", self.me.name);
        }
        match self.prepare(&job, &parsed, offer.attempt) {
            Ok(ready) => {
                self.held.insert(
                    job.clone(),
                    Held {
                        attempt: offer.attempt,
                        request: offer.request.clone(),
                        parsed,
                    },
                );
                self.claim(ready).await;
            }
            Err(reason) => self.refuse(&job, &offer, reason).await,
        }
    }

    /// Why this host takes no new job of the request's agent now (a usage
    /// limit met here, SPEC section 14), if it does not.
    fn limited_for(&mut self, request: &JobRequest) -> Option<String> {
        let agent = request
            .agent
            .clone()
            .unwrap_or_else(|| self.config.defaults.agent.clone());
        let now = crate::supervisor::clock::unix_now();
        self.limited.retain(|_, (_, until)| *until > now);
        let (job, _) = self.limited.get(&agent)?;
        Some(format!(
            "{agent} met a usage limit on this host (job {job} waits for its reset)"
        ))
    }

    /// The request's signature and content, as this runner's configuration
    /// allows: a trusted submitter, an agent it defines.
    fn admit(
        &self,
        request: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<JobRequest, String> {
        if let Verdict::Refused(why) = message::verify(request, &self.me.trusted) {
            return Err(why);
        }
        let parsed = message::parse_request(request)?;
        if parsed.pool != self.me.pool {
            return Err(format!(
                "the request is for pool `{}`, this runner serves `{}`",
                parsed.pool, self.me.pool
            ));
        }
        Ok(parsed)
    }

    async fn refuse(&mut self, job: &JobId, offer: &Offer, reason: String) {
        eprintln!("runner {}: refused job {job}: {reason}", self.me.name);
        let parsed = message::parse_request(&offer.request).ok();
        let status = JobStatus {
            job: job.to_string(),
            state: FleetState::Refused,
            attempt: offer.attempt,
            runner: Some(self.me.name.clone()),
            pool: self.me.pool.clone(),
            name: parsed.as_ref().map(|p| p.name.clone()).unwrap_or_default(),
            agent: parsed.and_then(|p| p.agent),
            ts: now_ts(),
            reason: Some(reason),
            failure: None,
            request: None,
            created: None,
            max_attempts: None,
            last_event: None,
            work: None,
            until: None,
        };
        self.publish_state(status).await;
    }

    /// Registers (or re-registers) the job in this host's registry.
    fn prepare(&self, job: &JobId, request: &JobRequest, attempt: u32) -> Result<Ready, String> {
        let workdir = workdir_under(&self.me.root, request.workdir.as_deref())?;
        let flags = JobFlags {
            prompt: Some(request.prompt.clone()),
            agent: request.agent.clone(),
            name: Some(request.name.clone()),
            workdir: Some(workdir),
            workspace: None,
        };
        let mut spec = self
            .config
            .resolve_job(None, &flags)
            .map_err(|e| e.to_string())?;
        // Only agents this runner's configuration defines; argv, env and
        // hooks never come from the request.
        let agent = agents::resolve(&self.config, &spec.agent).map_err(|e| e.to_string())?;
        if crate::supervisor::admit::lacks_prompt(&spec, &agent) {
            return Err(format!("job `{}` has no prompt", spec.name));
        }
        spec.tmux = spec.tmux.with_current_server(&self.config.env);
        let record = self.record(job, spec, agent.clone());
        self.register(&record).map_err(|e| format!("{e:#}"))?;
        let runtime = crate::supervisor::admit::runtime(job, &record, &agent);
        let config = crate::supervisor::admit::job_config(
            &record,
            &agent,
            self.config.require_signature,
            attempt,
        );
        Ok(Ready {
            job: job.clone(),
            agent: agent.name,
            runtime,
            config,
        })
    }

    fn record(&self, job: &JobId, spec: crate::config::job::JobSpec, agent: AgentDef) -> Record {
        Record {
            broker: Some(self.worker.clone()),
            attempt: 0,
            supervised: true,
            agent: Some(agent),
            supervisor_pid: i32::try_from(std::process::id()).ok(),
            fleet_owner: crate::registry::FleetOwner::this_process(&self.me.name),
            ..Record::new(job, spec, EventKey::generate().to_hex())
        }
    }

    /// A job seen before on this host (a retry, a failover back) keeps its
    /// history; its record is replaced.
    fn register(&self, record: &Record) -> anyhow::Result<()> {
        let id = JobId::parse(&record.id)?;
        if self.registry.exists(&id) {
            self.registry.update(&id, |r| {
                let attempts = std::mem::take(&mut r.attempts);
                *r = record.clone();
                r.attempts = attempts;
            })?;
            Ok(())
        } else {
            self.registry.create(record)
        }
    }

    /// Claims the job (its state names this runner and the attempt) and
    /// hands it to the driver, whose queue starts it when one of the
    /// runner's `max_parallel` slots is free.
    async fn claim(&mut self, ready: Ready) {
        let Some(held) = self.held.get(&ready.job) else {
            return;
        };
        let status = self.status_of(&ready.job, held, JobState::Queued.into());
        self.publish_state(status).await;
        self.active.insert(ready.job.clone());
        let _ = self.intake.send(Intake::Add {
            job: ready.job,
            agent: ready.agent,
            runtime: Box::new(ready.runtime),
            config: Box::new(ready.config),
        });
    }

    /// A transition of a local job, published unless the job was taken
    /// over (then only its slot is freed).
    async fn on_note(&mut self, note: Note) {
        if note.work_only {
            return self.publish_work(&note.job, note.attempt).await;
        }
        if note.to.is_finished() {
            self.active.remove(&note.job);
        }
        if matches!(note.to, JobState::Pending | JobState::Queued) || note.to.is_finished() {
            self.started.remove(&note.job);
        } else {
            self.started.insert(note.job.clone());
        }
        if note.to == JobState::Limited {
            self.note_limit(&note.job);
        } else {
            // The job that met the limit goes on: its wait is over.
            self.limited.retain(|_, (job, _)| *job != note.job);
        }
        if let Some(held) = self.held.get_mut(&note.job) {
            // A local retry is the next attempt: the fencing token follows.
            held.attempt = held.attempt.max(note.attempt);
            let mut status = self.status_of(&note.job, &self.held[&note.job], note.to.into());
            status.reason = note.reason;
            status.failure = note.failure.map(|f| f.kind);
            self.publish_state(status).await;
            self.publish_log(&note.job, note.attempt);
        }
        if note.to.is_finished() {
            self.held.remove(&note.job);
        }
    }

    /// A job of this host met a usage limit: its agent takes no new job
    /// here until that job goes on after the reset (at the latest the
    /// longest wait from now, in case it never does).
    fn note_limit(&mut self, job: &JobId) {
        let Ok(record) = self.registry.load(job) else {
            return;
        };
        let until = crate::supervisor::clock::unix_now()
            + crate::model::policy::LIMIT_WAIT_MAX.as_secs_f64()
            + record.spec.limits.grace.as_secs_f64();
        self.limited
            .insert(record.spec.agent.clone(), (job.clone(), until));
    }

    /// The job's last state from this runner again, with its record's work,
    /// when that changed after the transition (the tokens of an agent that
    /// writes its transcript's last line after its last hook).
    async fn publish_work(&mut self, job: &JobId, attempt: u32) {
        let mine = |s: &&JobStatus| {
            s.attempt == attempt && s.runner.as_deref() == Some(self.me.name.as_str())
        };
        let Some(last) = self.states.get(job).filter(mine).cloned() else {
            return;
        };
        let mut now = last
            .clone()
            .with_record(self.registry.load(job).ok().as_ref());
        if now.work != last.work {
            now.ts = now_ts();
            self.publish_state(now).await;
        }
    }

    async fn on_presence(&mut self, name: &str, message: &Message) {
        if message.payload.is_empty() {
            self.presences.remove(name);
            return;
        }
        let Ok(presence) = serde_json::from_slice::<Presence>(&message.payload) else {
            return;
        };
        if name == self.me.name {
            // The echo of our mark, routed live (not a retained copy).
            let ours = presence.sync == Some(self.sync.mark) && !message.retain;
            if ours && !self.sync.synced {
                self.on_synced().await;
            }
            return;
        }
        let dead = failover::declared_dead(
            self.presences.get(name),
            &presence,
            name,
            &self.me.name,
            &self.me.pool,
        );
        tracing::info!(
            "runner {name} is {} (pool {})",
            presence.status,
            presence.pool
        );
        let online = presence.online();
        self.presences.insert(name.to_owned(), presence);
        if dead {
            // A Last Will is not a death: a broker shutting down publishes
            // every runner's. Failover waits `failover_after` for it.
            self.offline_since
                .entry(name.to_owned())
                .or_insert_with(Instant::now);
        } else if online && self.offline_since.remove(name).is_some() {
            eprintln!(
                "runner {}: runner {name} is back online within {}; none of its jobs is offered again",
                self.me.name,
                humantime::format_duration(self.me.failover_after)
            );
        }
    }

    /// Whether this runner is the one that re-offers a dead runner's jobs
    /// and the pool's lost offers.
    fn leads_pool(&self) -> bool {
        failover::leads_pool(&self.presences, &self.me.name, &self.me.pool)
    }

    /// Offers the unfinished jobs of a runner that went offline again, with
    /// the next attempt number. A job that ended before its runner died is
    /// settled by its retained terminal state and left alone.
    async fn take_over(&mut self, dead: &str) {
        if !self.leads_pool() {
            tracing::info!(
                "runner {dead} went offline; another runner of the pool re-offers its jobs"
            );
            return;
        }
        for orphan in failover::orphans_of(self.states.values(), dead) {
            self.offer_again(orphan, format!("runner {dead} went offline"))
                .await;
        }
    }

    /// Offers the pool's jobs whose offer was lost (no runner claimed them
    /// within `fleet.offer_timeout`) again, with the next attempt number: the
    /// lost offer, should it still arrive somewhere, is then older than the
    /// job's state and dropped.
    async fn offer_unclaimed_again(&mut self) {
        if !self.sync.synced || !self.leads_pool() {
            return;
        }
        for job in self
            .unclaimed
            .overdue(Instant::now(), self.me.offer_timeout)
        {
            let mine = |s: &&JobStatus| failover::offers_unclaimed(s, &self.me.pool);
            let Some(status) = self.states.get(&job).filter(mine).cloned() else {
                self.unclaimed.forget(&job);
                continue;
            };
            let reason = format!(
                "no runner claimed it within {}",
                humantime::format_duration(self.me.offer_timeout)
            );
            self.offer_again(status, reason).await;
        }
    }

    /// Publishes a job's state `requeued` with the next attempt and offers
    /// it to the pool again.
    async fn offer_again(&mut self, last: JobStatus, reason: String) {
        let job = last.job.clone();
        let Some((status, offer)) = failover::offer_again(last, reason.clone(), now_ts()) else {
            return;
        };
        eprintln!(
            "runner {}: {reason}; offering job {job} again as attempt {}",
            self.me.name, offer.attempt
        );
        self.publish_state(status).await;
        let payload = serde_json::to_vec(&offer).unwrap_or_default();
        self.publish(
            topics::pool_topic(&self.prefix, &self.me.pool),
            payload,
            false,
        )
        .await;
    }

    /// `kill ID` and `send ID ...` from any host: only the job's runner
    /// acts, and only on a control signed by a trusted submitter (or, with
    /// none configured, whoever the ACL let publish it).
    async fn on_control(&mut self, job: JobId, payload: &[u8]) {
        let Ok(serde_json::Value::Object(object)) = serde_json::from_slice(payload) else {
            return;
        };
        let Ok(control) =
            serde_json::from_value::<Control>(serde_json::Value::Object(object.clone()))
        else {
            return;
        };
        let mine = match control.action.as_str() {
            "kill" => self.held.contains_key(&job),
            "send" => self.answers_send(&job),
            _ => false,
        };
        if !mine || control.job != job.as_str() {
            return;
        }
        let signed = match message::verify(&object, &self.me.trusted) {
            Verdict::Refused(why) => {
                eprintln!(
                    "runner {}: refused a control for job {job}: {why}",
                    self.me.name
                );
                Err(why)
            }
            Verdict::Trusted | Verdict::AclOnly => Ok(()),
        };
        if control.action == "send" {
            return self.on_send(job, control, signed).await;
        }
        let reason = "cancelled by `tmux-delegate kill` from the fleet".to_owned();
        // Queued or running, the driver cancels it; its note publishes.
        if signed.is_ok() && self.active.contains(&job) {
            let _ = self.intake.send(Intake::Cancel { job, reason });
        }
    }
}

/// Reads the runner's settings: flags over `[fleet]` over defaults.
pub fn settings(
    config: &Config,
    pool: Option<String>,
    name: Option<String>,
    max_parallel: Option<u32>,
) -> Result<RunnerSettings, Failure> {
    let fleet = &config.fleet;
    let pool = pool
        .or_else(|| fleet.pool.clone())
        .unwrap_or_else(|| crate::config::fleet::DEFAULT_POOL.to_owned());
    crate::config::fleet::check_name(&pool).map_err(|e| config_error(format!("--pool: {e}")))?;
    let name = match name.or_else(|| fleet.name.clone()) {
        Some(name) => name,
        None => host_name(),
    };
    crate::config::fleet::check_name(&name).map_err(|e| {
        config_error(format!("runner name: {e}")).help("pass --name NAME or set `fleet.name`")
    })?;
    let max_parallel = max_parallel.or(fleet.max_parallel).unwrap_or(4);
    if max_parallel == 0 {
        return Err(config_error("--max-parallel must be at least 1"));
    }
    let root = fleet.root.clone().unwrap_or_else(|| config.env.cwd.clone());
    if !root.is_dir() {
        return Err(config_error(format!(
            "the runner's root {} is not a directory",
            root.display()
        ))
        .help("fix `fleet.root` in tmux-delegate.toml"));
    }
    Ok(RunnerSettings {
        name,
        pool,
        max_parallel,
        root,
        trusted: fleet.trusted_keys(),
        offer_timeout: fleet.offer_timeout.unwrap_or(OFFER_TIMEOUT),
        keepalive: fleet.keepalive.unwrap_or(failover::RUNNER_KEEP_ALIVE),
        failover_after: fleet.failover_after.unwrap_or(failover::FAILOVER_AFTER),
    })
}

/// The host name, made a valid runner name.
fn host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "runner".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workdirs_stay_under_the_root() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join("app")).expect("mkdir");
        let real = root.path().canonicalize().expect("canonical");
        assert_eq!(
            workdir_under(root.path(), None),
            Ok(root.path().to_path_buf())
        );
        assert_eq!(
            workdir_under(root.path(), Some("app")),
            Ok(real.join("app"))
        );
        for bad in ["/etc", "../x", "app/../../x", "missing"] {
            assert!(
                workdir_under(root.path(), Some(bad)).is_err(),
                "{bad} accepted"
            );
        }
        let outside = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).expect("symlink");
        assert!(workdir_under(root.path(), Some("link")).is_err());
    }
}
