//! The local supervisor session, started the same way by `run`, `resume`,
//! `retry`, `add` (for its records) and the fleet runner: the brokers
//! (configured, or embedded for this run), the jobs submitted and the
//! registry record of each, the orphans a session adopts, the tmux server with the secret
//! variables kept out of it, the driver with its places and job runtimes,
//! cancel-request listening, and the exit code that sums the jobs up.

use crate::agents::AgentDef;
use crate::config::job::{JobFlags, JobSpec};
use crate::config::{BrokerSettings, Config, TmuxSettings};
use crate::error::config_error;
use crate::error::{Exit, Failure};
use crate::model::{JobId, JobState};
use crate::mqtt::client::Subscriber;
use crate::mqtt::connect::{client_id, ConnectOptions};
use crate::mqtt::sign::EventKey;
use crate::mqtt::topic::all_events_filter;
use crate::registry::{new_job_id, Record, Registry};
use crate::supervisor::admit;
use crate::supervisor::core::{Adoption, Core};
use crate::supervisor::driver::{Driver, Ending, JobRuntime, Places};
use crate::supervisor::ownership;
use crate::supervisor::queue_plan::Wants;
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
        match Brokers::configured(config)? {
            Some(brokers) => Ok(brokers),
            None => embedded(config).await,
        }
    }

    /// The broker configured for this host (`None`: none is), which hosts
    /// other than this one may reach too.
    pub fn configured(config: &Config) -> Result<Option<Brokers>, Failure> {
        let Some(observer) = config.observer_broker()? else {
            return Ok(None);
        };
        let worker = config.worker_broker()?.unwrap_or_else(|| observer.clone());
        Ok(Some(Brokers {
            observer,
            worker,
            persistent: true,
        }))
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
    Err(crate::error::config_error(
        "no broker is configured, and this build has no embedded broker",
    )
    .help("set MQTT_BROKER (and MQTT_PORT, ...), or `host` in [broker] of tmux-delegate.toml"))
}

/// One job being submitted to a local supervisor (`run`, `add`), resolved
/// and checked, with what it asks of the queue.
pub struct Resolved {
    pub spec: JobSpec,
    pub agent: AgentDef,
    pub wants: Wants,
}

/// Every job of the spec files (or the one the flags describe): its spec
/// with the config's layers, its agent, and a prompt when the agent's
/// command takes one (exit 2 otherwise, before anything is registered).
pub fn resolve_jobs(
    config: &Config,
    flags: &JobFlags,
    specs: &[PathBuf],
) -> anyhow::Result<Vec<Resolved>> {
    let mut jobs = Vec::new();
    for (path, file) in crate::config::job::load_job_files(specs)? {
        let wants = Wants::of(&file);
        let spec = config.resolve_job(path.as_deref().map(|p| (p, file)), flags)?;
        let agent = crate::agents::resolve(config, &spec.agent)?;
        if admit::lacks_prompt(&spec, &agent) {
            return Err(
                crate::error::config_error(format!("job `{}` has no prompt", spec.name))
                    .help("pass --prompt TEXT, or set `prompt` in the job spec")
                    .into(),
            );
        }
        jobs.push(Resolved { spec, agent, wants });
    }
    Ok(jobs)
}

/// The record of a new job supervised by this process: a fresh id and
/// event key, the tmux server later commands must find, and the values of
/// its `pass_env` variables (a missing one is warned about and left out).
pub fn new_record(
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

/// Variables tmux (and a server this process starts) must never see: the
/// broker passwords, the event key, and the variables passed to the jobs.
pub fn secret_vars<'a>(
    config: &Config,
    pass_env: impl IntoIterator<Item = &'a String>,
) -> Vec<String> {
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
    names.extend(pass_env.into_iter().cloned());
    names.sort();
    names.dedup();
    names
}

/// The unfinished jobs of a dead supervisor whose wrappers report to this
/// session's broker (an embedded broker died with its supervisor: nothing
/// reports to it any more) from windows of this session's tmux server, and
/// its queued jobs that never launched, claimed for this session. Orphans
/// elsewhere are left to `resume` with their config.
pub fn orphans_on(config: &Config, registry: &Registry, brokers: &Brokers) -> Vec<Record> {
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
    let tmux = TmuxSettings::resolve(&config.defaults.tmux).with_current_server(&config.env);
    let same_server = |r: &Record| {
        r.spec.tmux.socket == tmux.socket && r.spec.tmux.socket_path == tmux.socket_path
    };
    let orphans = records
        .into_iter()
        .filter(|r| {
            ownership::orphaned(r)
                && same_server(r)
                // Queued jobs never launched: any broker (they get this one).
                && (ownership::never_started(r)
                    || (brokers.persistent && r.broker.as_ref().is_some_and(same_broker)))
        })
        .collect();
    adopt(registry, orphans, brokers)
}

/// Claims `orphans` for this session; those that never launched report
/// to its broker from now on.
pub fn adopt(registry: &Registry, orphans: Vec<Record>, brokers: &Brokers) -> Vec<Record> {
    let mut claimed = ownership::claim(registry, orphans);
    ownership::rebroker_never_started(registry, &mut claimed, &brokers.worker);
    claimed
}

/// Supervises registered records until they end; the exit code sums them
/// up. With `adopting`, a record with an attempt is taken over where the
/// run that crashed left it.
pub async fn supervise(
    config: &Config,
    registry: &Registry,
    brokers: &Brokers,
    subscriber: Subscriber,
    records: Vec<Record>,
    json: bool,
    adopting: bool,
) -> anyhow::Result<Exit> {
    let secrets = secret_vars(config, records.iter().flat_map(|r| &r.spec.pass_env));
    let places = places(config, registry, &brokers.observer.topic_prefix, secrets).await?;
    let live = !json && std::io::stdout().is_terminal();
    let mut view = View::new(live);
    let mut core = Core::new(Box::new(rand::random::<f64>));
    let mut runtimes = HashMap::new();
    let now = Instant::now();
    let mut queued = Vec::new();
    let mut holding = Vec::new();
    let mut limits: Vec<(String, Instant)> = Vec::new();
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
            if let (true, Some(until)) = (adoption.limited, adoption.backoff_until) {
                limits.push((agent.name.clone(), until));
            }
            core.adopt(now, id.clone(), job_config, adoption);
            holding.push((id, caps));
        } else {
            // The queue starts it: at once unless a cap or `after` holds it.
            core.enqueue(id.clone(), job_config);
            queued.push((id, record.queue.clone().unwrap_or_default(), caps));
        }
    }
    if !announced.is_empty() && !json {
        crate::supervisor::view::announce(
            &announced,
            &places.tmux.attach_command(&places.session),
            &crate::supervisor::view::program_name(&places.exe),
        );
    }
    let mut driver = Driver::new(core, places, runtimes, view);
    driver.accept_added_jobs(config.require_signature);
    for (agent, until) in limits {
        driver.hold_agent(&agent, until);
    }
    for (id, caps) in holding {
        driver.hold_slots(id, caps);
    }
    for (id, spec, caps) in queued {
        driver.enqueue(id, spec, caps);
    }
    let (ending, states) = driver.run(subscriber).await?;
    Ok(summarise(ending, &states))
}

/// A new attempt of the finished job `job`, supervised here like `run`,
/// with a fresh retry budget (`retry ID`, and `send ID TEXT` to a finished
/// job); `next_turn` says what that attempt is asked to do.
pub async fn run_again(
    config: &Config,
    registry: &Registry,
    job: &JobId,
    next_turn: Option<crate::model::conversation::NextTurn>,
) -> anyhow::Result<Exit> {
    // Detached (the MCP server's follow-up), the launcher hears of either.
    let started = rearm_here(config, registry, job, next_turn).await;
    let (brokers, subscriber, record) =
        crate::supervisor::detach::report_failure(&config.env, started)?;
    crate::supervisor::detach::report_ready(&config.env, std::slice::from_ref(&record.id));
    let json = !std::io::IsTerminal::is_terminal(&std::io::stdout());
    supervise(
        config,
        registry,
        &brokers,
        subscriber,
        vec![record],
        json,
        false,
    )
    .await
}

/// The finished job `job` checked and rearmed for an attempt under this
/// process, with its brokers and their subscription.
async fn rearm_here(
    config: &Config,
    registry: &Registry,
    job: &JobId,
    next_turn: Option<crate::model::conversation::NextTurn>,
) -> anyhow::Result<(Brokers, Subscriber, Record)> {
    let record = registry.load(job)?;
    if !record.state.is_finished() {
        return Err(
            config_error(format!("job {job} is still {}", record.state.as_str()))
                .help(format!(
                    "wait for it, or stop it first: tmux-delegate kill {job}"
                ))
                .into(),
        );
    }
    if record.agent.is_none() {
        return Err(config_error(format!(
            "job {job} was registered, not run: its agent reports on its own"
        ))
        .help("start its agent again, or delegate it anew with `tmux-delegate run`")
        .into());
    }
    let brokers = Brokers::resolve(config).await?;
    let subscriber = brokers.listen().await?;
    let record = registry.update(job, |r| rearm(r, &brokers.worker, next_turn))?;
    Ok((brokers, subscriber, record))
}

/// A finished job's record made ready for another attempt under this
/// process (`retry`, a follow-up, here or on a fleet runner): pending, no
/// failure, no cancel asked, `next_turn` for that attempt.
pub fn rearm(
    record: &mut Record,
    worker: &BrokerSettings,
    next_turn: Option<crate::model::conversation::NextTurn>,
) {
    record.state = JobState::Pending;
    record.failure = None;
    record.cancel_requested = false;
    record.supervisor_pid = i32::try_from(std::process::id()).ok();
    // An embedded broker is new for every supervisor (port, password).
    record.broker = Some(worker.clone());
    record.next_turn = next_turn;
}

/// A driver with no job yet, in this host's tmux, that takes its jobs over
/// time (a fleet runner hands them to it); no live view.
pub async fn idle_driver(
    config: &Config,
    registry: &Registry,
    topic_prefix: &str,
) -> anyhow::Result<Driver> {
    let secrets = secret_vars(config, &config.defaults.pass_env);
    let places = places(config, registry, topic_prefix, secrets).await?;
    let core = Core::new(Box::new(rand::random::<f64>));
    Ok(Driver::new(core, places, HashMap::new(), View::new(false)))
}

/// What the driver keeps for the job of `record`; an adopted attempt that
/// still runs (no backoff pending) is watched in its recorded window.
fn runtime_for(
    record: &Record,
    id: &JobId,
    agent: &AgentDef,
    adoption: Option<Adoption>,
) -> JobRuntime {
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

/// Where the driver acts: hooks, registry, this host's tmux server (told
/// to keep `secrets` out of its environment) and window session, this
/// program (for the wrapper's argv), the topics.
async fn places(
    config: &Config,
    registry: &Registry,
    topic_prefix: &str,
    secrets: Vec<String>,
) -> anyhow::Result<Places> {
    let tmux_settings =
        TmuxSettings::resolve(&config.defaults.tmux).with_current_server(&config.env);
    let tmux = Tmux::new(&tmux_settings, secrets);
    let session = tmux
        .resolve_session(&tmux_settings.session, config.env.var("TMUX").is_some())
        .await;
    let exe =
        std::env::current_exe().map_err(|e| anyhow::anyhow!("cannot locate this program: {e}"))?;
    Ok(Places {
        hooks: config.hooks.clone(),
        registry: Registry::at(registry.root().to_path_buf()),
        tmux,
        session,
        exe,
        topic_prefix: topic_prefix.to_owned(),
        prices: config.pricing.clone(),
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
        backoff_until: matches!(record.state, JobState::Retrying | JobState::Limited)
            .then(|| point.backoff_until.map_or(now, at)),
        limited: record.state == JobState::Limited,
        uncharged: point.uncharged,
    }
}

/// The session's exit code: interrupted (130), else any failed, cancelled
/// or skipped job (1), else any timed out (124), else success.
pub fn summarise(ending: Ending, states: &[(JobId, JobState)]) -> Exit {
    match ending {
        Ending::Interrupted => return Exit::Interrupted,
        Ending::Unrecorded => return Exit::Unrecorded,
        Ending::Finished => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> JobId {
        JobId::parse(&format!("{name}-0001")).expect("id")
    }

    #[test]
    fn the_exit_code_sums_up_the_jobs() {
        use JobState::*;
        let cases: &[(Ending, &[JobState], Exit)] = &[
            (Ending::Finished, &[Completed, Completed], Exit::Success),
            (Ending::Finished, &[Completed, TimedOut], Exit::TimedOut),
            (Ending::Finished, &[TimedOut, Failed], Exit::JobFailed),
            (Ending::Finished, &[Completed, Cancelled], Exit::JobFailed),
            (Ending::Finished, &[Skipped, TimedOut], Exit::JobFailed),
            (Ending::Interrupted, &[Completed], Exit::Interrupted),
            (Ending::Unrecorded, &[Completed], Exit::Unrecorded),
            (Ending::Finished, &[], Exit::Success),
        ];
        for (ending, states, expected) in cases {
            let states: Vec<(JobId, JobState)> = states
                .iter()
                .enumerate()
                .map(|(n, s)| (id(&format!("j{n}")), *s))
                .collect();
            assert_eq!(
                summarise(*ending, &states),
                *expected,
                "{ending:?} {states:?}"
            );
        }
    }
}
