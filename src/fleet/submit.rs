//! `submit`: hands jobs to a pool from any host (no tmux needed). Each job
//! gets its retained state `submitted` (with the signed request, so a
//! runner can offer it again) and one offer on the pool's topic; `--wait`
//! follows the retained states until every job has ended.

use super::message::{JobRequest, JobStatus, Offer};
use super::topics;
use crate::config::job::{load_job_file, JobFile, JobFlags};
use crate::config::{BrokerSettings, Config};
use crate::error::{config_error, Exit, Failure};
use crate::model::event::now_ts;
use crate::model::{FleetState, JobId, JobState};
use crate::mqtt::client::{Publisher, Subscriber};
use crate::mqtt::connect::ConnectOptions;
use crate::mqtt::sign::EventKey;
use crate::registry::new_job_id;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// What `submit` was asked.
pub struct SubmitRequest {
    pub specs: Vec<PathBuf>,
    pub flags: JobFlags,
    pub pool: Option<String>,
    pub wait: bool,
    pub timeout: Option<Duration>,
    pub json: bool,
}

pub async fn run(config: &Config, asked: SubmitRequest) -> anyhow::Result<Exit> {
    let broker = fleet_broker(config)?;
    let requests = requests(&asked, &pool_of(config, asked.pool.as_deref())?)?;
    let ids: Vec<JobId> = requests
        .iter()
        .map(|r| JobId::parse(&r.id))
        .collect::<Result<_, _>>()?;
    // Subscribed before anything is offered: no end is missed. One filter
    // for every job (a subscription per job would not scale to thousands).
    let follower = if asked.wait {
        let filters = vec![topics::all_states_filter(&broker.topic_prefix)];
        let subscriber =
            Subscriber::connect(&broker, &ConnectOptions::new("submit-wait"), filters).await?;
        Some(Following::start(subscriber))
    } else {
        None
    };
    offer_all(config, &broker, &requests, |request| {
        println!("{}", request.id)
    })
    .await?;
    match follower {
        Some(follower) => wait_for(follower, &broker, ids, asked.timeout, asked.json).await,
        None => Ok(Exit::Success),
    }
}

/// `submit` without `--wait`, printing nothing (the MCP server's `run`
/// with a `pool`): the requests it offered.
pub async fn offer_quietly(
    config: &Config,
    asked: &SubmitRequest,
) -> anyhow::Result<Vec<JobRequest>> {
    let broker = fleet_broker(config)?;
    let requests = requests(asked, &pool_of(config, asked.pool.as_deref())?)?;
    offer_all(config, &broker, &requests, |_| {}).await?;
    Ok(requests)
}

/// The pool asked for, else `fleet.pool`, else `default`; its name checked.
fn pool_of(config: &Config, asked: Option<&str>) -> Result<String, Failure> {
    let pool = asked
        .map(str::to_owned)
        .or_else(|| config.fleet.pool.clone())
        .unwrap_or_else(|| crate::config::fleet::DEFAULT_POOL.to_owned());
    crate::config::fleet::check_name(&pool).map_err(|e| config_error(format!("--pool: {e}")))?;
    Ok(pool)
}

/// Offers every request on one connection, signed with this host's
/// submitter key; `offered` hears of each once it is out.
async fn offer_all(
    config: &Config,
    broker: &BrokerSettings,
    requests: &[JobRequest],
    mut offered: impl FnMut(&JobRequest),
) -> anyhow::Result<()> {
    let key = config.fleet.submitter_key()?;
    let mut publisher = Publisher::connect(broker, &ConnectOptions::new("submit")).await?;
    for request in requests {
        if let Err(e) = offer(&mut publisher, broker, request, key.as_ref()).await {
            publisher.close().await;
            return Err(e.into());
        }
        offered(request);
    }
    publisher.close().await;
    Ok(())
}

/// The observer connection: a submitter needs no worker credential.
pub fn fleet_broker(config: &Config) -> Result<BrokerSettings, Failure> {
    config.observer_broker()?.ok_or_else(|| {
        config_error("the fleet needs a broker: none is configured").help(
            "set MQTT_BROKER (and MQTT_PORT, ...), or `host` in [broker] of tmux-delegate.toml",
        )
    })
}

/// One request per job of the spec files (or one from the flags alone).
fn requests(asked: &SubmitRequest, pool: &str) -> Result<Vec<JobRequest>, Failure> {
    let mut files = Vec::new();
    for path in &asked.specs {
        files.extend(load_job_file(path)?);
    }
    if files.is_empty() {
        files.push(JobFile::default());
    }
    files
        .into_iter()
        .map(|file| request(&asked.flags, file, pool))
        .collect()
}

fn request(flags: &JobFlags, file: JobFile, pool: &str) -> Result<JobRequest, Failure> {
    let prompt = flags.prompt.clone().or(file.prompt).unwrap_or_default();
    if prompt.trim().is_empty() {
        return Err(config_error("a submitted job has no prompt")
            .help("pass --prompt TEXT, or set `prompt` in the job spec"));
    }
    let name = flags
        .name
        .clone()
        .or(file.name)
        .unwrap_or_else(|| crate::config::job::name_from_prompt(&prompt));
    let workdir = match flags.workdir.clone().or(file.workdir) {
        Some(dir) if dir.is_absolute() => {
            return Err(config_error(format!(
                "workdir {} is absolute; a runner resolves workdirs under its own root",
                dir.display()
            ))
            .help("give a path relative to the runners' `fleet.root`"))
        }
        Some(dir) => Some(dir.display().to_string()),
        None => None,
    };
    Ok(JobRequest {
        id: new_job_id(&name).to_string(),
        name,
        agent: flags.agent.clone().or(file.agent),
        prompt,
        workdir,
        pool: pool.to_owned(),
        submitted: now_ts(),
    })
}

/// Publishes the job's `submitted` state, then its offer (in this order on
/// one connection: a runner judges the offer against the state).
async fn offer(
    publisher: &mut Publisher,
    broker: &BrokerSettings,
    request: &JobRequest,
    key: Option<&EventKey>,
) -> Result<(), Failure> {
    let signed = request.to_signed(key);
    let id = JobId::parse(&request.id)?;
    let status = JobStatus {
        job: request.id.clone(),
        state: FleetState::Submitted,
        attempt: 1,
        runner: None,
        pool: request.pool.clone(),
        name: request.name.clone(),
        agent: request.agent.clone(),
        ts: now_ts(),
        reason: None,
        failure: None,
        request: Some(signed.clone()),
        created: None,
        max_attempts: None,
        last_event: None,
        work: None,
        until: None,
    };
    let wait = broker.connect_timeout;
    publisher
        .publish(
            &topics::state_topic(&broker.topic_prefix, &id),
            status.encode(),
            true,
            wait,
        )
        .await?;
    let offer = Offer {
        request: signed,
        attempt: 1,
    };
    publisher
        .publish(
            &topics::pool_topic(&broker.topic_prefix, &request.pool),
            serde_json::to_vec(&offer).unwrap_or_default(),
            false,
            wait,
        )
        .await?;
    Ok(())
}

/// Without news for this long, `--wait` reads the retained states of the
/// unfinished jobs again: a broker whose queue for this client overflowed
/// (Mosquitto drops QoS 1 messages past `max_queued_messages`) may have
/// dropped an end.
const REFRESH_AFTER_QUIET: Duration = Duration::from_secs(20);

/// How many jobs one re-read asks for. Mosquitto queues every retained
/// message a SUBSCRIBE matches at once, and drops those past its queue
/// limit (1000 by default): a re-read stays well under it.
const REREAD_AT_ONCE: usize = 500;

/// Follows the jobs' retained states until each has ended: 0 when all
/// completed, 1 when any failed, was cancelled or refused, 124 when one
/// timed out (and none failed) or `--timeout` passed.
pub async fn wait_for(
    mut follower: Following,
    broker: &BrokerSettings,
    ids: Vec<JobId>,
    timeout: Option<Duration>,
    json: bool,
) -> anyhow::Result<Exit> {
    let mut ends: HashMap<JobId, FleetState> = HashMap::new();
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    while ends.len() < ids.len() {
        let quiet = tokio::time::Instant::now() + REFRESH_AFTER_QUIET;
        let wake = deadline.map_or(quiet, |d| d.min(quiet));
        let message = match tokio::time::timeout_at(wake, follower.next()).await {
            Ok(Some(message)) => message,
            Ok(None) => {
                return Err(
                    crate::error::broker_error("lost the subscription to the job states").into(),
                )
            }
            Err(_) if deadline.is_some_and(|d| d <= tokio::time::Instant::now()) => {
                eprintln!(
                    "error: {} of {} job(s) still unfinished after the timeout",
                    ids.len() - ends.len(),
                    ids.len()
                );
                follower.close().await;
                return Ok(Exit::TimedOut);
            }
            Err(_) => {
                let unfinished = ids.iter().filter(|id| !ends.contains_key(*id));
                for message in reread(broker, unfinished.take(REREAD_AT_ONCE)).await? {
                    follower.push_back(message);
                }
                continue;
            }
        };
        let Some(topics::Topic::State(job)) =
            topics::classify(&broker.topic_prefix, &message.topic)
        else {
            continue;
        };
        let Some(status) = JobStatus::decode(&message.payload) else {
            continue;
        };
        if !ids.contains(&job) || ends.contains_key(&job) {
            continue;
        }
        report(&job, &status, json);
        if status.is_terminal() {
            ends.insert(job, status.state);
        }
    }
    follower.close().await;
    let any = |state: FleetState| ends.values().any(|s| *s == state);
    Ok(
        if any(JobState::Failed.into())
            || any(JobState::Cancelled.into())
            || any(FleetState::Refused)
        {
            Exit::JobFailed
        } else if any(JobState::TimedOut.into()) {
            Exit::TimedOut
        } else {
            Exit::Success
        },
    )
}

/// The retained states of these jobs, read on a connection of its own
/// (one filter per job: never more retained messages than asked for).
async fn reread<'a>(
    broker: &BrokerSettings,
    jobs: impl Iterator<Item = &'a JobId>,
) -> anyhow::Result<Vec<crate::mqtt::client::Message>> {
    let filters: Vec<String> = jobs
        .map(|job| topics::state_topic(&broker.topic_prefix, job))
        .collect();
    let wanted = filters.len();
    let mut subscriber =
        Subscriber::connect(broker, &ConnectOptions::new("submit-reread"), filters).await?;
    let mut messages = Vec::new();
    // Retained messages come right after the SUBACK; a job without a state
    // sends none, hence the time limit.
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while messages.len() < wanted {
        match tokio::time::timeout_at(until, subscriber.next()).await {
            Ok(message) => messages.push(message),
            Err(_) => break,
        }
    }
    subscriber.disconnect().await;
    Ok(messages)
}

/// A job's state as `--wait` shows it: every state as a JSON line with
/// `--json`, else one line per end on stderr.
fn report(job: &JobId, status: &JobStatus, json: bool) {
    if json {
        println!("{}", String::from_utf8_lossy(&status.encode()));
        return;
    }
    if !status.is_terminal() {
        return;
    }
    eprintln!(
        "{job}: {} (attempt {}{}){}",
        status.state,
        status.attempt,
        status
            .runner
            .as_deref()
            .map(|r| format!(" on {r}"))
            .unwrap_or_default(),
        status
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    );
}

/// A subscription read without pause in its own task: while this process
/// publishes thousands of offers, the broker's queue for the follower
/// (Mosquitto: `max_queued_messages`, 1000 by default) must never fill up,
/// or states would be dropped.
pub struct Following {
    messages: tokio::sync::mpsc::UnboundedReceiver<crate::mqtt::client::Message>,
    reread: std::collections::VecDeque<crate::mqtt::client::Message>,
    forwarding: crate::mqtt::client::Forwarding,
}

impl Following {
    pub fn start(subscriber: Subscriber) -> Following {
        let (messages, forwarding) = crate::mqtt::client::forward(subscriber);
        Following {
            messages,
            reread: std::collections::VecDeque::new(),
            forwarding,
        }
    }

    pub async fn next(&mut self) -> Option<crate::mqtt::client::Message> {
        if let Some(message) = self.reread.pop_front() {
            return Some(message);
        }
        self.messages.recv().await
    }

    /// A message read elsewhere, handed out before the subscription's next.
    pub fn push_back(&mut self, message: crate::mqtt::client::Message) {
        self.reread.push_back(message);
    }

    pub async fn close(self) {
        self.forwarding.close(Duration::from_secs(5)).await;
    }
}
