//! `watch --job ID | --all`: print events as they arrive, like the original
//! `job_subscriber.py`. For one job it ends on a terminal event: 0 on
//! `completed`, 1 on `error`, 124 when nothing terminal arrived in time.
//! Every event is printed; unsigned or badly signed ones are marked, and
//! only the ones `model::admission` admits (the supervisor's rule) end the
//! watch or move a record. Events of jobs that no supervisor owns
//! (`register`ed ones) are recorded in the registry.

use crate::cli::WatchArgs;
use crate::config::{BrokerSettings, Config, Env};
use crate::error::{config_error, Exit, Failure};
use crate::model::event::now_ts;
use crate::model::{
    admit, Admission, Claim, EventPolicy, FailureInfo, JobId, JobState, LastEvent, Meaning,
    Signature, Transition,
};
use crate::mqtt::client::{Message, Subscriber};
use crate::mqtt::connect::ConnectOptions;
use crate::mqtt::event::{decode, Decoded, Received};
use crate::mqtt::sign::{check, EventKey};
use crate::mqtt::topic::{all_events_filter, events_topic, job_of_topic};
use crate::registry::{LogEntry, Record, Registry};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

pub async fn run(args: WatchArgs) -> anyhow::Result<Exit> {
    let env = Env::from_process()?;
    let target = args.job.as_deref().map(JobId::parse).transpose()?;
    let timeout = args.timeout.map(parse_timeout).transpose()?;
    let config = Config::load(env)?;
    let registry = Registry::open(&config.env)?;
    let record = match &target {
        Some(id) if registry.exists(id) => Some(registry.load(id)?),
        _ => None,
    };
    let settings = match observer_settings(&config, record.as_ref())? {
        Some(settings) => settings,
        // Without a broker anywhere, only a record could say where its
        // events go: a job we do not know is the error, not the broker.
        None => match &target {
            Some(id) if record.is_none() => return Err(registry.not_found(id.as_str()).into()),
            _ => return Err(no_broker_to_watch().into()),
        },
    };
    let filter = match &target {
        Some(id) => events_topic(&settings.topic_prefix, id),
        None => all_events_filter(&settings.topic_prefix),
    };
    let mut subscriber = Subscriber::connect(
        &settings,
        &ConnectOptions::new("watch"),
        vec![filter.clone()],
    )
    .await?;
    // Subscribed (SUBACK received): say so, so scripts and people know that
    // anything published from now on will be seen.
    eprintln!(
        "watching {filter} on {}:{} (Ctrl-C to stop)",
        settings.host, settings.port
    );
    let mut watcher = Watcher {
        registry,
        prefix: settings.topic_prefix.clone(),
        require_signature: config.require_signature,
        json: args.json,
        known: HashMap::new(),
        received: 0,
    };
    let deadline = timeout.map(|t| Instant::now() + t);
    let exit = loop {
        let message = tokio::select! {
            message = subscriber.next() => message,
            () = sleep_until(deadline) => break timed_out(target.as_ref(), timeout, &watcher, &settings, &filter),
            _ = tokio::signal::ctrl_c() => break Exit::Interrupted,
        };
        if let Some(exit) = watcher.handle(&message, target.as_ref()) {
            break exit;
        }
    };
    subscriber.disconnect().await;
    Ok(exit)
}

fn parse_timeout(secs: f64) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(secs).map_err(|_| {
        config_error(format!("--timeout {secs}: not a number of seconds"))
            .help("pass a non-negative number, e.g. --timeout 30")
    })
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The observer's connection; with no broker configured, the job record's
/// block (e.g. a `run` on the embedded broker), still under `MQTT_*`.
fn observer_settings(
    config: &Config,
    record: Option<&Record>,
) -> Result<Option<BrokerSettings>, Failure> {
    if let Some(settings) = config.observer_broker()? {
        return Ok(Some(settings));
    }
    let from_record = record.and_then(|r| r.broker.as_ref().map(|b| (r.id.as_str(), b)));
    if from_record.is_some() {
        return config.publisher_broker(from_record);
    }
    Ok(None)
}

fn no_broker_to_watch() -> Failure {
    config_error("no broker is configured to watch")
        .help("set MQTT_BROKER (and MQTT_PORT, ...), or `host` in [broker] of tmux-delegate.toml")
}

fn timed_out(
    target: Option<&JobId>,
    timeout: Option<Duration>,
    watcher: &Watcher,
    settings: &BrokerSettings,
    filter: &str,
) -> Exit {
    let Some(job) = target else {
        return Exit::Success;
    };
    let waited = humantime::format_duration(timeout.unwrap_or_default());
    eprintln!("error: no completed or error event for job {job} within {waited}");
    if watcher.received == 0 {
        let user = settings.username.as_deref().unwrap_or("(anonymous)");
        eprintln!(
            "note: nothing at all arrived on `{filter}`. Mosquitto grants a subscription its ACL \
             does not allow and then delivers nothing: check that user `{user}` may read it \
             (`topic read {}/jobs/+/events`).",
            settings.topic_prefix
        );
    }
    Exit::TimedOut
}

/// What the registry says about a job, cached per job.
#[derive(Clone)]
struct Known {
    key: Option<EventKey>,
    attempt: u32,
    supervised: bool,
}

struct Watcher {
    registry: Registry,
    prefix: String,
    require_signature: bool,
    json: bool,
    known: HashMap<JobId, Option<Known>>,
    received: usize,
}

impl Watcher {
    fn known(&mut self, job: &JobId) -> Option<Known> {
        if !self.known.contains_key(job) {
            let known = self.registry.load(job).ok().map(|r| Known {
                key: EventKey::from_hex(&r.event_key),
                attempt: r.attempt.max(1),
                supervised: r.supervised,
            });
            self.known.insert(job.clone(), known);
        }
        self.known.get(job).cloned().flatten()
    }

    /// Prints one message; returns the exit code when it ends the watch:
    /// only an event `model::admission` admits under the job's policy ends
    /// it or is recorded (the supervisor's own rule). A badly signed event
    /// is printed, marked, and nothing more; this deliberately narrows
    /// SPEC section 4's "ends on a terminal event either way".
    fn handle(&mut self, message: &Message, target: Option<&JobId>) -> Option<Exit> {
        self.received += 1;
        let Some(job) = job_of_topic(&self.prefix, &message.topic) else {
            tracing::debug!("ignoring a message on {}", message.topic);
            return None;
        };
        let received = match decode(&message.payload) {
            Ok(Decoded::Event(event)) => event,
            Ok(Decoded::Cleared) => return None,
            Err(e) => {
                tracing::warn!("ignoring a message on {}: {e}", message.topic);
                return None;
            }
        };
        let known = self.known_for(&job, &received);
        let signature = check(
            known.as_ref().and_then(|k| k.key.as_ref()),
            received.raw.as_ref(),
        );
        let policy = known
            .as_ref()
            .map_or_else(EventPolicy::unknown_job, |k| EventPolicy {
                require_signature: self.require_signature,
                current_attempt: Some(k.attempt),
                // An observer cannot tell whether the attempt is over: one
                // that starts late still ends on its retained terminal event.
                attempt_active: true,
            });
        let claim = Claim {
            kind: &received.event,
            attempt: received.attempt,
            job_named: received.job.as_deref(),
            signature,
        };
        let admission = admit(job.as_str(), &claim, &policy);
        let note = admission.refusal().map(ToString::to_string);
        self.print(
            &job,
            admission.attempt(),
            &received,
            signature,
            message.retain,
            note.as_deref(),
        );
        if known.is_some_and(|k| !k.supervised) {
            self.record(&job, &received, signature, &admission);
        }
        if target != Some(&job) {
            return None;
        }
        match admission.meaning()? {
            Meaning::Completed => Some(Exit::Success),
            Meaning::Failed => Some(Exit::JobFailed),
            _ => None,
        }
    }

    /// What the registry says about the job, read again when the event
    /// could end it or names a newer attempt: a supervisor may have
    /// launched another attempt since the last look.
    fn known_for(&mut self, job: &JobId, received: &Received) -> Option<Known> {
        let cached = self.known(job);
        let newer = received
            .attempt
            .is_some_and(|a| cached.as_ref().is_some_and(|k| a > k.attempt));
        if cached.is_some() && (newer || received.event.is_terminal()) {
            self.known.remove(job);
            return self.known(job);
        }
        cached
    }

    fn print(
        &self,
        job: &JobId,
        attempt: u32,
        event: &Received,
        signature: Signature,
        retained: bool,
        note: Option<&str>,
    ) {
        let ts = event.ts.unwrap_or_else(now_ts);
        // A completion's answer (SPEC section 14: `result`), as the agent's
        // hook sent it.
        let result = (event.event == crate::model::EventKind::Completed)
            .then(|| event.data.as_ref()?.get("last_assistant_message")?.as_str())
            .flatten();
        if self.json {
            let line = serde_json::json!({
                "job": job.as_str(),
                "event": event.event.as_str(),
                "attempt": attempt,
                "ts": ts,
                "message": event.message,
                "data": event.data,
                "retained": retained,
                "signature": signature,
                "note": note,
                "result": result,
            });
            println!("{line}");
            return;
        }
        let when = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::try_from_secs_f64(ts).unwrap_or_default(),
        );
        let mut line = format!("{when}  {job}  #{attempt}  {}", event.event);
        if let Some(message) = &event.message {
            line.push_str(&format!("  {message:?}"));
        }
        match signature {
            Signature::Unsigned => line.push_str("  [unsigned]"),
            Signature::Invalid => line.push_str("  [BAD SIGNATURE]"),
            Signature::Valid | Signature::Unchecked => {}
        }
        if retained {
            line.push_str("  (retained)");
        }
        if let Some(note) = note {
            line.push_str(&format!("  ({note})"));
        }
        println!("{line}");
    }

    /// Records the event of a job no supervisor owns and, if it was
    /// admitted, moves its state (the same reading of events as the
    /// supervisor's core, without its policy: nothing retries here).
    fn record(&self, job: &JobId, event: &Received, signature: Signature, admission: &Admission) {
        let ts = now_ts();
        let attempt = admission.attempt();
        let entry = LogEntry::Event {
            ts,
            attempt,
            event: event.event.clone(),
            message: event.message.clone(),
            data: event.data.clone(),
            signature,
            sent: event.ts,
            ignored: admission.refusal().map(ToString::to_string),
        };
        if let Err(e) = self.registry.append(job, &entry) {
            tracing::warn!("cannot record the event of {job}: {e:#}");
        }
        let Some(meaning) = admission.meaning() else {
            return;
        };
        let last = LastEvent {
            event: event.event.clone(),
            attempt,
            ts,
            message: event.message.clone(),
        };
        let result = match self.transition_for(job, event, meaning, attempt, ts) {
            Some(transition) => self
                .registry
                .record_transition(job, &transition, |r| r.last_event = Some(last)),
            None => self.registry.update(job, |r| r.last_event = Some(last)),
        };
        if let Err(e) = result {
            tracing::warn!("cannot update the record of {job}: {e:#}");
        }
    }

    /// The move an admitted event makes, if it announces a state other
    /// than the record's.
    fn transition_for(
        &self,
        job: &JobId,
        event: &Received,
        meaning: Meaning,
        attempt: u32,
        ts: f64,
    ) -> Option<Transition> {
        let to = meaning.state()?;
        let from = self.registry.load(job).ok()?.state;
        if from == to {
            return None;
        }
        let failure = (to == JobState::Failed).then(|| FailureInfo {
            kind: "error".into(),
            reason: event
                .message
                .clone()
                .unwrap_or_else(|| "error event".into()),
        });
        Some(Transition {
            ts,
            attempt,
            from,
            to,
            reason: event.message.clone(),
            failure,
        })
    }
}
