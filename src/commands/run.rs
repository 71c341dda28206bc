//! `run [JOB.toml ...]`: register each job, launch it in its own tmux window
//! and supervise all of them in this process until they end. Exits 0 when
//! all completed, 1 when any failed (or was cancelled), 124 when any timed
//! out and none failed, 130 on Ctrl-C — after stopping every window cleanly.

use crate::agents::{self, AgentDef};
use crate::cli::RunArgs;
use crate::config::job::{JobFlags, JobSpec};
use crate::config::{BrokerSettings, Config, Env};
use crate::error::{config_error, Exit, Failure};
use crate::model::{JobId, JobState};
use crate::mqtt::client::Subscriber;
use crate::mqtt::connect::{client_id, ConnectOptions};
use crate::mqtt::sign::EventKey;
use crate::mqtt::topic::all_events_filter;
use crate::registry::{new_job_id, Record, Registry};
use crate::supervisor::admit;
use crate::supervisor::core::{Adoption, Core};
use crate::supervisor::driver::{Driver, Ending, Places};
use crate::supervisor::view::View;
use crate::tmux::Tmux;
use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

/// Installs the SIGUSR1 handler (`kill ID` asks the supervisor with it)
/// before any record names this process as its supervisor: the default
/// action of SIGUSR1 would end the process.
pub fn listen_for_cancel_requests() -> anyhow::Result<()> {
    // The stream is dropped; the process-wide handler tokio installed stays.
    drop(tokio::signal::unix::signal(
        tokio::signal::unix::SignalKind::user_defined1(),
    )?);
    Ok(())
}

pub async fn run(args: RunArgs) -> anyhow::Result<Exit> {
    if let Some(launch_file) = &args.detached_from {
        return super::detach::supervise_from(launch_file).await;
    }
    listen_for_cancel_requests()?;
    let env = Env::from_process()?;
    let config = Config::load(env)?;
    let detach = args.detach;
    let json = args.json;
    let relaunch = detach.then(|| super::detach::Relaunch::of(&args, &config.env));
    let mut flags = JobFlags::from(args.job);
    if args.worktree {
        flags.workspace = Some(crate::config::workspace::WorkspaceMode::Worktree);
    }
    let (jobs, wants) = resolve_jobs(&config, &flags, &args.specs)?;
    // `after` names that are unknown or form a cycle: exit 2, nothing registered.
    let planned = super::queue_plan::plan(
        &config,
        &Registry::open(&config.env)?,
        args.max_parallel,
        &jobs
            .iter()
            .zip(wants)
            .map(|((spec, agent, _), wants)| (spec.name.clone(), agent.name.clone(), wants))
            .collect::<Vec<_>>(),
    )?;
    agents::preflight::check(&config, jobs.iter().map(|(spec, agent, _)| (spec, agent))).await?;
    // Everything is validated above, in this terminal; the detached
    // supervisor starts from the same arguments and environment.
    if let Some(relaunch) = relaunch {
        return super::detach::launch(&config, relaunch?).await;
    }
    // A detached supervisor tells its launching terminal why it stopped.
    let brokers = super::detach::report_failure(&config.env, Brokers::resolve(&config).await)?;
    let subscriber = super::detach::report_failure(&config.env, brokers.listen().await)?;
    let registry = Registry::open(&config.env)?;
    let mut prepared = Vec::new();
    for (spec, agent, checked) in jobs {
        let mut record = new_record(&config, spec, agent, Some(brokers.worker.clone()));
        if let Some(checked) = checked {
            match crate::workspace::create_for_job(&checked, &record, registry.root()) {
                Ok(workspace) => {
                    eprintln!(
                        "{}: worktree {} on branch {}",
                        record.spec.name,
                        workspace.path.display(),
                        workspace.branch
                    );
                    record.workspace = Some(workspace);
                }
                Err(e) => {
                    prepared
                        .iter()
                        .filter_map(|r: &Record| r.workspace.as_ref())
                        .for_each(crate::workspace::discard_unregistered);
                    return super::detach::report_failure(&config.env, Err(e));
                }
            }
        }
        prepared.push(record);
    }
    let ids: Vec<String> = prepared.iter().map(|r| r.id.clone()).collect();
    let names: Vec<String> = prepared.iter().map(|r| r.spec.name.clone()).collect();
    for (record, queue) in prepared
        .iter_mut()
        .zip(super::queue_plan::finish(planned, &ids, &names))
    {
        record.queue = queue;
    }
    for record in &prepared {
        super::detach::report_failure(&config.env, registry.create(record))?;
    }
    // SPEC section 5: `run` re-adopts the orphans of a dead supervisor too.
    prepared.extend(orphans_on(&config, &registry, &brokers));
    super::detach::report_ready(&config.env);
    supervise(
        &config, &registry, &brokers, subscriber, prepared, json, true,
    )
    .await
}

/// Every job of the spec files (or the one the flags describe), resolved
/// and checked: its spec, its agent and its checked worktree base; and what
/// each asks of the queue (`after`, priority, caps).
#[allow(clippy::type_complexity)]
fn resolve_jobs(
    config: &Config,
    flags: &JobFlags,
    specs: &[PathBuf],
) -> anyhow::Result<(
    Vec<(JobSpec, AgentDef, Option<crate::workspace::Checked>)>,
    Vec<super::queue_plan::Wants>,
)> {
    let files = crate::config::job::load_job_files(specs)?;
    let mut jobs = Vec::new();
    let mut wants = Vec::new();
    for (path, file) in files {
        wants.push(super::queue_plan::Wants::of(&file));
        let spec = config.resolve_job(path.as_deref().map(|p| (p, file)), flags)?;
        let agent = agents::resolve(config, &spec.agent)?;
        if spec.prompt.trim().is_empty() && agent.command.iter().any(|a| a.contains("{prompt}")) {
            return Err(config_error(format!("job `{}` has no prompt", spec.name))
                .help("pass --prompt TEXT, or set `prompt` in the job spec")
                .into());
        }
        // Not a repository, or no such base: exit 2 before anything exists.
        let checked = if spec.workspace.is_worktree() {
            Some(crate::workspace::check(&spec)?)
        } else {
            None
        };
        jobs.push((spec, agent, checked));
    }
    Ok((jobs, wants))
}

/// The unfinished jobs of a dead supervisor whose wrappers report to this
/// run's broker (an embedded broker died with its supervisor: nothing
/// reports to it any more) from windows of this run's tmux server, and its
/// queued jobs that never launched, claimed for this run. Orphans elsewhere are left to `resume` with their config.
fn orphans_on(config: &Config, registry: &Registry, brokers: &Brokers) -> Vec<Record> {
    let records = match registry.list() {
        Ok((records, _)) => records,
        Err(e) => {
            eprintln!("warning: cannot look for jobs to re-adopt: {e:#}");
            return Vec::new();
        }
    };
    let same_broker = |b: &BrokerSettings| {
        b.host == brokers.worker.host
            && b.port == brokers.worker.port
            && b.topic_prefix == brokers.worker.topic_prefix
    };
    let tmux = crate::config::TmuxSettings::resolve(&config.defaults.tmux)
        .with_current_server(&config.env);
    let same_server = |r: &Record| {
        r.spec.tmux.socket == tmux.socket && r.spec.tmux.socket_path == tmux.socket_path
    };
    let orphans = records
        .into_iter()
        .filter(|r| {
            super::resume::orphaned(r)
                && same_server(r)
                // Queued jobs never launched: any broker (they get this one).
                && (super::resume::never_started(r)
                    || (brokers.persistent && r.broker.as_ref().is_some_and(same_broker)))
        })
        .collect();
    let mut claimed = super::resume::claim(registry, orphans);
    super::resume::rebroker_never_started(registry, &mut claimed, &brokers.worker);
    claimed
}

/// The observer (supervisor) and worker (window) connections.
pub struct Brokers {
    pub observer: BrokerSettings,
    pub worker: BrokerSettings,
    /// Whether the supervisor keeps a persistent session (not needed, and
    /// not asked of rumqttd, when the broker lives in this very process).
    pub persistent: bool,
}

impl Brokers {
    /// The configured broker; with none configured anywhere, an embedded
    /// one started for this run.
    pub async fn resolve(config: &Config) -> Result<Brokers, Failure> {
        if let Some(observer) = config.observer_broker()? {
            let worker = config.worker_broker()?.unwrap_or_else(|| observer.clone());
            return Ok(Brokers {
                observer,
                worker,
                persistent: true,
            });
        }
        embedded(config).await
    }

    /// The supervisor's subscription to every job's events. Made before any
    /// record is written (a broker that cannot be reached leaves no job
    /// pending) and before the first window opens (no event is missed); a
    /// persistent session keeps events sent while the connection is down.
    pub async fn listen(&self) -> Result<Subscriber, Failure> {
        let mut options = ConnectOptions::new("supervisor");
        options.client_id = Some(client_id(&self.observer.client_id_prefix, "supervisor"));
        if self.persistent {
            options.clean_start = false;
            options.session_expiry = Some(3600);
        }
        Subscriber::connect(
            &self.observer,
            &options,
            vec![all_events_filter(&self.observer.topic_prefix)],
        )
        .await
    }
}

#[cfg(feature = "embedded-broker")]
async fn embedded(config: &Config) -> Result<Brokers, Failure> {
    let prefix = config.topic_prefix();
    let broker =
        crate::broker::embedded::start(std::net::Ipv4Addr::LOCALHOST.into(), 0, Some(&prefix))
            .await?;
    tracing::info!(
        "no broker configured: started the embedded broker on {}",
        broker.address
    );
    Ok(Brokers {
        observer: broker.observer,
        worker: broker.worker,
        persistent: false,
    })
}

#[cfg(not(feature = "embedded-broker"))]
async fn embedded(_config: &Config) -> Result<Brokers, Failure> {
    Err(
        config_error("no broker is configured, and this build has no embedded broker").help(
            "set MQTT_BROKER (and MQTT_PORT, ...), or `host` in [broker] of tmux-delegate.toml",
        ),
    )
}

pub(super) fn new_record(
    config: &Config,
    mut spec: JobSpec,
    agent: AgentDef,
    broker: Option<BrokerSettings>,
) -> Record {
    // Later commands (logs, attach, kill) must find the same tmux server.
    spec.tmux = spec.tmux.with_current_server(&config.env);
    let mut pass_env = BTreeMap::new();
    for name in &spec.pass_env {
        match config.env.var(name) {
            Some(value) => {
                pass_env.insert(name.clone(), value.to_owned());
            }
            None => eprintln!(
                "warning: pass_env names {name}, which is not set; the agent will not get it"
            ),
        }
    }
    let id = new_job_id(&spec.name);
    Record {
        broker,
        attempt: 0,
        pass_env,
        supervised: true,
        agent: Some(agent),
        supervisor_pid: i32::try_from(std::process::id()).ok(),
        ..Record::new(&id, spec, EventKey::generate().to_hex())
    }
}

/// Variables tmux (and a server this process starts) must never see.
fn secret_vars(config: &Config, records: &[Record]) -> Vec<String> {
    let mut names = vec![
        "MQTT_PASSWORD".to_owned(),
        crate::model::event::EVENT_KEY_VAR.to_owned(),
    ];
    for layer in &config.layers {
        for fields in std::iter::once(&layer.broker).chain(layer.worker.as_ref()) {
            if let Some(crate::config::file::PasswordFrom::Env(name)) = &fields.password {
                names.push(name.clone());
            }
        }
    }
    for record in records {
        names.extend(record.spec.pass_env.iter().cloned());
    }
    names.sort();
    names.dedup();
    names
}

/// Supervises registered records until they end; the exit code sums them up.
pub async fn supervise(
    config: &Config,
    registry: &Registry,
    brokers: &Brokers,
    subscriber: Subscriber,
    records: Vec<Record>,
    json: bool,
    adopting: bool,
) -> anyhow::Result<Exit> {
    let tmux_settings = crate::config::TmuxSettings::resolve(&config.defaults.tmux)
        .with_current_server(&config.env);
    let tmux = Tmux::new(&tmux_settings, secret_vars(config, &records));
    let session = tmux
        .resolve_session(&tmux_settings.session, config.env.var("TMUX").is_some())
        .await;

    let live = !json && std::io::stdout().is_terminal();
    let mut view = View::new(live);
    let mut core = Core::new(Box::new(rand::random::<f64>));
    let mut runtimes = HashMap::new();
    let now = Instant::now();
    let mut queued = Vec::new();
    let mut holding = Vec::new();
    // New jobs only: an adopted one was announced by the run that began it.
    let announced: Vec<(String, String)> = records
        .iter()
        .filter(|r| r.attempt == 0)
        .map(|r| (r.id.clone(), r.spec.name.clone()))
        .collect();
    for record in records {
        let id = JobId::parse(&record.id)?;
        let agent = record
            .agent
            .clone()
            .unwrap_or_else(|| unreachable!("run records carry their agent"));
        view.add(
            &id,
            &record.spec.name,
            &agent.name,
            record.spec.retry.max_attempts,
        );
        let adoption = (adopting && record.attempt > 0).then(|| adoption_of(&record, now));
        runtimes.insert(id.clone(), runtime_for(&record, &id, &agent, adoption));
        let first_attempt = first_attempt(&record, adoption.is_some());
        let job_config =
            admit::job_config(&record, &agent, config.require_signature, first_attempt);
        let caps = admit::caps(&record);
        if let Some(adoption) = adoption {
            core.adopt(now, id.clone(), job_config, adoption);
            holding.push((id, caps));
        } else {
            // The queue starts it: at once unless a cap or `after` holds it.
            core.enqueue(id.clone(), job_config);
            queued.push((id, record.queue.clone().unwrap_or_default(), caps));
        }
    }
    let places = places(config, registry, brokers, tmux, session)?;
    if !announced.is_empty() && !json {
        crate::supervisor::view::announce(
            &announced,
            &places.tmux.attach_command(&places.session),
            &crate::supervisor::view::program_name(&places.exe),
        );
    }
    let mut driver = Driver::new(core, places, runtimes, view);
    driver.accept_added_jobs(config.require_signature);
    for (id, caps) in holding {
        driver.hold_slots(id, caps);
    }
    for (id, spec, caps) in queued {
        driver.enqueue(id, spec, caps);
    }
    let (ending, states) = driver.run(subscriber).await?;
    Ok(summarise(ending, &states))
}

/// What the driver keeps for the job of `record`; an adopted attempt that
/// still runs (no backoff pending) is watched in its recorded window.
fn runtime_for(
    record: &Record,
    id: &JobId,
    agent: &AgentDef,
    adoption: Option<Adoption>,
) -> crate::supervisor::driver::JobRuntime {
    let runtime = admit::runtime(id, record, agent);
    if adoption.is_none_or(|a| a.backoff_until.is_some()) {
        return runtime;
    }
    let info = record
        .attempt_info(record.attempt)
        .cloned()
        .unwrap_or_default();
    runtime.adopting(record.attempt, info.window.clone(), info.agent_group())
}

/// The attempt number the job's retry budget starts at: an adopted job
/// keeps the budget of the run that crashed (1 for a record that predates
/// checkpoints: never more launches than allowed).
fn first_attempt(record: &Record, adopted: bool) -> u32 {
    if adopted {
        record.resume.map_or(1, |r| r.first_attempt)
    } else {
        record.attempt + 1
    }
}

/// Where the driver acts: hooks, registry, tmux window session, this
/// program (for the wrapper's argv), the topics.
fn places(
    config: &Config,
    registry: &Registry,
    brokers: &Brokers,
    tmux: Tmux,
    session: String,
) -> anyhow::Result<Places> {
    let exe =
        std::env::current_exe().map_err(|e| anyhow::anyhow!("cannot locate this program: {e}"))?;
    Ok(Places {
        hooks: config.hooks.clone(),
        registry: Registry::at(registry.root().to_path_buf()),
        tmux,
        session,
        exe,
        topic_prefix: brokers.observer.topic_prefix.clone(),
    })
}

/// How to take over an orphaned record: its attempt, the job deadline its
/// checkpoint kept and, for a job that was between attempts (`retrying`),
/// when its backoff ends (now, if the crash came before the backoff began).
fn adoption_of(record: &Record, now: Instant) -> Adoption {
    let at = |ts: f64| crate::supervisor::clock::from_unix(ts, now);
    let point = record.resume.unwrap_or_default();
    Adoption {
        attempt: record.attempt,
        job_deadline: point.job_deadline.map(at),
        backoff_until: (record.state == JobState::Retrying)
            .then(|| point.backoff_until.map_or(now, at)),
    }
}

fn summarise(ending: Ending, states: &[(JobId, JobState)]) -> Exit {
    if ending == Ending::Interrupted {
        return Exit::Interrupted;
    }
    let any = |state: JobState| states.iter().any(|(_, s)| *s == state);
    // A skipped job never ran because a dependency failed or was cancelled.
    if any(JobState::Failed) || any(JobState::Cancelled) || any(JobState::Skipped) {
        Exit::JobFailed
    } else if any(JobState::TimedOut) {
        Exit::TimedOut
    } else {
        Exit::Success
    }
}
