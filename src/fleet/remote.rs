//! `status`, `kill`, `send`, `retry` (and `logs`, in `joblog.rs`) from any
//! host with broker access, for jobs this host's registry does not have:
//! the fleet's jobs are known from their retained state topics; a kill or
//! a send is a signed control message to the job's runner (which answers a
//! send on the job's reply topic); a retry offers a finished job to its
//! pool again with the next attempt number.

use super::message::{Control, JobStatus, Offer, Reply};
use super::submit::fleet_broker;
use super::topics::{self, Topic};
use crate::config::{BrokerSettings, Config, Env};
use crate::error::{config_error, Exit, Failure};
use crate::model::event::now_ts;
use crate::model::{FleetState, JobId, StatusRow};
use crate::mqtt::client::{Publisher, Subscriber};
use crate::mqtt::connect::ConnectOptions;
use crate::registry::Registry;
use crate::supervisor::send::Input;
use crate::ui::table::Grid;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long the retained burst may pause before it is taken as complete.
const QUIET: Duration = Duration::from_millis(300);

/// Whether the configuration makes this host part of a fleet (`[fleet]`).
pub fn configured(config: &Config) -> bool {
    config.fleet != crate::config::fleet::FleetFile::default()
}

/// Whether the job (an id, or the name of one or more jobs) is in this
/// host's registry: then the local command acts, or lists the ids a name
/// could mean, whatever broker is configured.
fn is_local(config: &Config, id: &str) -> anyhow::Result<bool> {
    let registry = Registry::open(&config.env)?;
    Ok(registry.find(id).is_ok() || !registry.ids_named(id).is_empty())
}

/// The config to ask the fleet with when `status` is for the fleet: with
/// `--fleet`, or on a host that is part of a fleet (`[fleet]`) and has not
/// got the job (or, without an id, has no jobs at all). `None`: the local
/// registry answers. `status` reads the registry: a broken config must not
/// stop it, unless the fleet was asked for.
pub fn status_config(fleet_asked: bool, id: Option<&str>) -> anyhow::Result<Option<Config>> {
    let config = match Config::load(Env::from_process()?) {
        Ok(config) => config,
        Err(e) if fleet_asked => return Err(e.into()),
        Err(_) => return Ok(None),
    };
    let fleet = fleet_asked
        || (configured(&config)
            && match id {
                Some(id) => !is_local(&config, id)?,
                None => Registry::open(&config.env)?.list()?.0.is_empty(),
            });
    Ok(fleet.then_some(config))
}

/// The config to reach job `id` in the fleet with: a broker is configured
/// and the job is not in this host's registry. `None`: the local command
/// acts; anything unreadable leaves the decision to it too, which reports
/// it in its own words (and never needed the config before).
pub fn job_config(id: &str) -> anyhow::Result<Option<Config>> {
    let Ok(config) = Config::load(Env::from_process()?) else {
        return Ok(None);
    };
    let local = is_local(&config, id).unwrap_or(true);
    if local || !matches!(config.observer_broker(), Ok(Some(_))) {
        return Ok(None);
    }
    Ok(Some(config))
}

/// The retained states under `filter`: what the broker sends right after
/// the subscription, until it pauses.
async fn retained_states(
    broker: &BrokerSettings,
    filter: String,
) -> Result<BTreeMap<JobId, JobStatus>, Failure> {
    let mut subscriber =
        Subscriber::connect(broker, &ConnectOptions::new("fleet-status"), vec![filter]).await?;
    let mut found = BTreeMap::new();
    // The first retained message comes within a round trip; none at all
    // within the connect timeout means there is nothing.
    let mut wait = broker.connect_timeout.min(Duration::from_secs(2));
    while let Ok(message) = tokio::time::timeout(wait, subscriber.next()).await {
        wait = QUIET;
        if let (Some(Topic::State(job)), Some(status)) = (
            topics::classify(&broker.topic_prefix, &message.topic),
            JobStatus::decode(&message.payload),
        ) {
            found.insert(job, status);
        }
    }
    subscriber.disconnect().await;
    Ok(found)
}

pub async fn one_state(broker: &BrokerSettings, job: &JobId) -> Result<JobStatus, Failure> {
    retained_states(broker, topics::state_topic(&broker.topic_prefix, job))
        .await?
        .remove(job)
        .ok_or_else(|| {
            config_error(format!(
                "no job {job} here nor in the fleet (no retained state on {})",
                topics::state_topic(&broker.topic_prefix, job)
            ))
            .help("check the id with `tmux-delegate status`")
        })
}

/// The fleet's states: job `id`'s (an error when it has none), or every job's.
async fn states(
    broker: &BrokerSettings,
    id: Option<&str>,
) -> anyhow::Result<BTreeMap<JobId, JobStatus>> {
    Ok(match id {
        Some(id) => {
            let job = JobId::parse(id)?;
            let status = one_state(broker, &job).await?;
            BTreeMap::from([(job, status)])
        }
        None => retained_states(broker, topics::all_states_filter(&broker.topic_prefix)).await?,
    })
}

/// The fleet's `status --json` rows: job `id`'s, or every job's.
pub async fn rows(config: &Config, id: Option<&str>) -> anyhow::Result<Vec<StatusRow>> {
    let broker = fleet_broker(config)?;
    Ok(states(&broker, id)
        .await?
        .values()
        .map(JobStatus::row)
        .collect())
}

/// The retained states of some fleet jobs, followed as they change (the
/// MCP server's `wait`): the latest of each, on one subscription.
pub struct StateWatch {
    subscriber: Subscriber,
    prefix: String,
    latest: BTreeMap<JobId, JobStatus>,
}

impl StateWatch {
    pub async fn start(config: &Config, jobs: &[JobId]) -> Result<StateWatch, Failure> {
        let broker = fleet_broker(config)?;
        let filters = jobs
            .iter()
            .map(|job| topics::state_topic(&broker.topic_prefix, job))
            .collect();
        let subscriber =
            Subscriber::connect(&broker, &ConnectOptions::new("fleet-wait"), filters).await?;
        Ok(StateWatch {
            subscriber,
            prefix: broker.topic_prefix,
            latest: BTreeMap::new(),
        })
    }

    /// Takes the next state that arrives before `until` (none: returns then).
    pub async fn next_before(&mut self, until: tokio::time::Instant) {
        let Ok(message) = tokio::time::timeout_at(until, self.subscriber.next()).await else {
            return;
        };
        if let (Some(Topic::State(job)), Some(status)) = (
            topics::classify(&self.prefix, &message.topic),
            JobStatus::decode(&message.payload),
        ) {
            self.latest.insert(job, status);
        }
    }

    /// The job's latest state, once one arrived.
    pub fn row(&self, job: &JobId) -> Option<StatusRow> {
        self.latest.get(job).map(JobStatus::row)
    }

    pub async fn close(self) {
        self.subscriber.disconnect().await;
    }
}

/// `status` for the fleet: every job's state, runner and attempt.
pub async fn status(config: &Config, id: Option<&str>, json: bool) -> anyhow::Result<Exit> {
    let broker = fleet_broker(config)?;
    let jobs = states(&broker, id).await?;
    if json {
        let rows: Vec<_> = jobs.values().map(JobStatus::row).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if jobs.is_empty() {
        eprintln!("no jobs in the fleet of {}:{}", broker.host, broker.port);
    } else {
        let mut grid = Grid::new(&["ID", "NAME", "AGENT", "STATE", "ATTEMPT", "RUNNER", "POOL"]);
        for status in jobs.values() {
            grid.push(vec![
                status.job.clone(),
                status.name.clone(),
                status.agent.clone().unwrap_or_default(),
                status.state.to_string(),
                status.attempt.to_string(),
                status.runner.clone().unwrap_or_default(),
                status.pool.clone(),
            ]);
        }
        for line in grid.lines(u16::MAX) {
            println!("{line}");
        }
    }
    Ok(Exit::Success)
}

/// `kill ID` for a fleet job: a signed control message to its runner, then
/// its state followed until it ends.
pub async fn kill(config: &Config, id: &str) -> anyhow::Result<Exit> {
    let broker = fleet_broker(config)?;
    let job = JobId::parse(id)?;
    // A credential that may not read the state still gets the broker's
    // verdict on the control (exit 4), not a misleading "no such job".
    let status = one_state(&broker, &job).await.ok();
    if let Some(status) = status.as_ref().filter(|s| s.is_terminal()) {
        eprintln!("job {job} is already {}", status.state);
        return Ok(Exit::Success);
    }
    let key = config.fleet.submitter_key()?;
    let control = Control {
        job: job.to_string(),
        action: "kill".into(),
        ts: now_ts(),
        ..Control::default()
    };
    let follower = super::submit::Following::start(
        Subscriber::connect(
            &broker,
            &ConnectOptions::new("fleet-kill"),
            vec![topics::state_topic(&broker.topic_prefix, &job)],
        )
        .await?,
    );
    let mut publisher = Publisher::connect(&broker, &ConnectOptions::new("fleet-kill")).await?;
    let sent = publisher
        .publish(
            &topics::control_topic(&broker.topic_prefix, &job),
            control.to_signed(key.as_ref()),
            false,
            broker.connect_timeout,
        )
        .await;
    publisher.close().await;
    sent?;
    let Some(status) = status else {
        follower.close().await;
        return Err(one_state(&broker, &job)
            .await
            .err()
            .unwrap_or_else(|| config_error(format!("job {job} has no state in the fleet")))
            .into());
    };
    eprintln!(
        "asked runner {} to stop job {job}",
        status.runner.as_deref().unwrap_or("(none yet)")
    );
    let ended = super::submit::wait_for(
        follower,
        &broker,
        vec![job],
        Some(Duration::from_secs(30)),
        false,
    )
    .await?;
    // A job that ended cancelled is what was asked for.
    Ok(match ended {
        Exit::JobFailed | Exit::Success => Exit::Success,
        other => other,
    })
}

/// How long `send` waits for the runner's answer (as `kill` waits for the
/// job's end).
const SEND_ANSWER_WAIT: Duration = Duration::from_secs(30);

/// `send ID TEXT | --keys KEY... [--now]` for a fleet job: a signed control
/// to the runner that holds it (or ran its last attempt, for a follow-up),
/// which judges it by its record with the rules `send` has on one host and
/// answers on the job's reply topic. Refused: exit 2 with the runner's why;
/// accepted: what the runner did, in its words.
pub async fn send(
    config: &Config,
    id: &str,
    input: &Input<'_>,
    now: bool,
) -> anyhow::Result<String> {
    let broker = fleet_broker(config)?;
    let job = JobId::parse(id)?;
    let status = one_state(&broker, &job).await?;
    let refused =
        |why: String| Failure::new(Exit::Usage, format!("cannot send to job {job}: {why}"));
    let runner = owning_runner(&status).map_err(refused)?;
    let control = send_control(&job, input, now);
    control.check_send(control.ts).map_err(refused)?;
    let key = config.fleet.submitter_key()?;
    let Some(reply) = ask_runner(
        &broker,
        &job,
        &control.to_signed(key.as_ref()),
        control.nonce.as_deref(),
    )
    .await?
    else {
        return Err(Failure::new(
            Exit::TimedOut,
            format!(
                "runner {runner} did not answer the send to job {job} within {}",
                humantime::format_duration(SEND_ANSWER_WAIT)
            ),
        )
        .help(format!(
            "is it online (`tmux-delegate status --fleet`)? Its broker ACL needs `topic write {0}/jobs/+/reply` (runner) and `topic read {0}/jobs/+/reply` (submitter): `broker setup --fleet` writes them",
            broker.topic_prefix
        ))
        .into());
    };
    if !reply.accepted {
        return Err(refused(format!("{} (runner {})", reply.message, reply.runner)).into());
    }
    Ok(format!(
        "job {job}: {} (runner {})",
        reply.message, reply.runner
    ))
}

/// The runner a `send` goes to: the one named by the job's state. None
/// holds a job on offer, and a refused one never ran.
fn owning_runner(status: &JobStatus) -> Result<String, String> {
    match (&status.runner, status.state) {
        (Some(runner), FleetState::Refused) => Err(format!(
            "runner {runner} refused it: {}",
            status.reason.as_deref().unwrap_or("no reason given")
        )),
        (Some(runner), _) => Ok(runner.clone()),
        (None, state) => Err(format!("it is {state}: no runner holds it yet")),
    }
}

fn send_control(job: &JobId, input: &Input<'_>, now: bool) -> Control {
    let (text, keys) = match input {
        Input::Text(text) => (Some((*text).to_owned()), Vec::new()),
        Input::Keys(keys) => (None, keys.to_vec()),
    };
    Control {
        job: job.to_string(),
        action: "send".into(),
        ts: now_ts(),
        text,
        keys,
        now,
        nonce: Some(format!("{:032x}", rand::random::<u128>())),
    }
}

/// Publishes the signed control and waits for the runner's answer to it.
/// The reply topic is subscribed on the same connection first, so the
/// answer cannot come before the subscription.
async fn ask_runner(
    broker: &BrokerSettings,
    job: &JobId,
    control: &[u8],
    nonce: Option<&str>,
) -> Result<Option<Reply>, Failure> {
    let reply_topic = topics::reply_topic(&broker.topic_prefix, job);
    let mut publisher = Publisher::connect_watching(
        broker,
        &ConnectOptions::new("fleet-send"),
        vec![reply_topic],
    )
    .await?;
    let mut answers = publisher.take_incoming();
    let sent = publisher
        .publish(
            &topics::control_topic(&broker.topic_prefix, job),
            control.to_vec(),
            false,
            broker.connect_timeout,
        )
        .await;
    let answer = async {
        while let Some(message) = answers.as_mut()?.recv().await {
            let reply = serde_json::from_slice::<Reply>(&message.payload).ok();
            if let Some(reply) = reply.filter(|r| Some(r.nonce.as_str()) == nonce) {
                return Some(reply);
            }
        }
        None
    };
    let reply = match sent {
        Ok(_) => tokio::time::timeout(SEND_ANSWER_WAIT, answer)
            .await
            .ok()
            .flatten(),
        Err(e) => {
            publisher.close().await;
            return Err(e);
        }
    };
    publisher.close().await;
    Ok(reply)
}

/// `retry ID` for a finished fleet job: its pool gets it again, as the
/// next attempt (the signed request is the one the submitter made).
pub async fn retry(config: &Config, id: &str) -> anyhow::Result<Exit> {
    let broker = fleet_broker(config)?;
    let job = JobId::parse(id)?;
    let status = one_state(&broker, &job).await?;
    if !status.is_terminal() {
        return Err(config_error(format!("job {job} is still {}", status.state))
            .help(format!(
                "wait for it, or stop it first: tmux-delegate kill {job}"
            ))
            .into());
    }
    let Some(request) = status.request.clone() else {
        return Err(config_error(format!(
            "job {job} was {}: its state holds no request to run again",
            status.state
        ))
        .help("submit it anew with `tmux-delegate submit`")
        .into());
    };
    let attempt = status.attempt + 1;
    let mut requeued = status.clone();
    requeued.state = FleetState::Requeued;
    requeued.attempt = attempt;
    requeued.runner = None;
    requeued.ts = now_ts();
    requeued.reason = Some("retried with `tmux-delegate retry`".into());
    requeued.failure = None;
    let mut publisher = Publisher::connect(&broker, &ConnectOptions::new("fleet-retry")).await?;
    let wait = broker.connect_timeout;
    let outcome = async {
        publisher
            .publish(
                &topics::state_topic(&broker.topic_prefix, &job),
                requeued.encode(),
                true,
                wait,
            )
            .await?;
        let offer = Offer { request, attempt };
        publisher
            .publish(
                &topics::pool_topic(&broker.topic_prefix, &status.pool),
                serde_json::to_vec(&offer).unwrap_or_default(),
                false,
                wait,
            )
            .await
    }
    .await;
    publisher.close().await;
    outcome?;
    eprintln!(
        "job {job}: offered to pool `{}` again as attempt {attempt}",
        status.pool
    );
    Ok(Exit::Success)
}
