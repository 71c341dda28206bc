//! `publish --job ID --event NAME`: one QoS 1 event, signed with the job's key
//! when it is known, retained when terminal. Inside a job window
//! (`DELEGATE_JOB_ID` set) it signs only with that window's key and never
//! reads the registry, so one job's agent cannot sign for another job.

use crate::cli::PublishArgs;
use crate::config::{BrokerSettings, Config, Env};
use crate::error::{config_error, Exit, Failure};
use crate::model::event::{now_ts, EVENT_KEY_VAR};
use crate::model::{Event, EventKind, JobId};
use crate::mqtt::client::publish_once;
use crate::mqtt::event::encode;
use crate::mqtt::sign::EventKey;
use crate::mqtt::topic::events_topic;
use crate::registry::Registry;
use serde_json::Value;

pub async fn run(args: PublishArgs) -> anyhow::Result<Exit> {
    let env = Env::from_process()?;
    let job = JobId::parse(&args.job)?;
    let kind = EventKind::from_name(&args.event);
    if let EventKind::Other(name) = &kind {
        return Err(config_error(format!("unknown event `{name}`"))
            .help(format!("use one of: {}", EventKind::KNOWN.join(", ")))
            .into());
    }
    // A hook's input, read once for its message and its data fields.
    let stdin = (args.message_from_stdin || !args.data_field.is_empty()).then(read_stdin);
    let data = match (&args.data, &stdin) {
        (Some(text), _) => Some(parse_data(text)?),
        (None, Some(text)) if !args.data_field.is_empty() => data_from_text(text, &args.data_field),
        (None, _) => None,
    };
    let message = match &stdin {
        Some(text) if args.message_from_stdin => message_from_text(text, &args.message_field),
        _ => args.message,
    };
    let config = Config::load(env)?;
    let (key, attempt, settings) = sender(&config, &job, args.attempt)?;
    let event = Event {
        job: job.to_string(),
        event: kind.clone(),
        attempt,
        seq: None,
        ts: now_ts(),
        message,
        data,
        sig: None,
    };
    let payload = encode(&event, key.as_ref())?;
    let topic = events_topic(&settings.topic_prefix, &job);
    deliver(
        &config,
        &job,
        &settings,
        &topic,
        payload,
        kind.is_terminal(),
    )
    .await?;
    tracing::info!("published {kind} for {job} (attempt {attempt}) to {topic}");
    Ok(Exit::Success)
}

/// Who sends: the key to sign with, the attempt, and the broker to use
/// (inside a job window, the window's own; else the job record's).
fn sender(
    config: &Config,
    job: &JobId,
    attempt_flag: Option<u32>,
) -> anyhow::Result<(Option<EventKey>, u32, BrokerSettings)> {
    let window_job = config.env.var("DELEGATE_JOB_ID").map(str::to_owned);
    let mut unknown_job = None;
    let (key, attempt, settings) = if let Some(window_job) = window_job {
        window_sender(config, job, &window_job, attempt_flag)?
    } else {
        let registry = Registry::open(&config.env)?;
        let record = if registry.exists(job) {
            Some(registry.load(job)?)
        } else {
            unknown_job = Some(registry.not_found(job.as_str()));
            None
        };
        let key = record
            .as_ref()
            .and_then(|r| EventKey::from_hex(&r.event_key));
        let attempt = attempt_flag
            .or(record.as_ref().map(|r| r.attempt.max(1)))
            .unwrap_or(1);
        let broker = record
            .as_ref()
            .and_then(|r| r.broker.as_ref().map(|b| (r.id.as_str(), b)));
        (key, attempt, config.publisher_broker(broker)?)
    };
    // Without a broker anywhere, only a record could say where the event
    // goes: a job we do not know is the error, not the broker.
    let settings = settings.ok_or_else(|| {
        unknown_job.unwrap_or_else(|| {
            config_error(format!("no broker is configured for job {job}")).help(
                "set MQTT_BROKER (and MQTT_PORT, ...), or `host` in [broker] of tmux-delegate.toml",
            )
        })
    })?;
    Ok((key, attempt, settings))
}

/// In the job's own window, through the wrapper's open connection (its
/// socket); elsewhere, or when that socket is not there, a connection of
/// its own.
async fn deliver(
    config: &Config,
    job: &JobId,
    settings: &BrokerSettings,
    topic: &str,
    payload: Vec<u8>,
    retain: bool,
) -> anyhow::Result<()> {
    let socket = (config.env.var("DELEGATE_JOB_ID") == Some(job.as_str()))
        .then(|| config.env.var(crate::mqtt::handoff::SOCKET_VAR))
        .flatten()
        .map(std::path::PathBuf::from);
    if let Some(path) = &socket {
        let handed =
            crate::mqtt::handoff::publish_via(path, &payload, retain, settings.connect_timeout)
                .await;
        if let Some(verdict) = handed {
            verdict?;
            return Ok(());
        }
    }
    publish_once(settings, topic, payload, retain).await?;
    Ok(())
}

/// Inside a job window: the window's own key only (for its own job), the
/// attempt from `--attempt` or the window, and no registry reads.
fn window_sender(
    config: &Config,
    job: &JobId,
    window_job: &str,
    attempt_flag: Option<u32>,
) -> Result<(Option<EventKey>, u32, Option<BrokerSettings>), Failure> {
    let key = if window_job == job.as_str() {
        config.env.var(EVENT_KEY_VAR).and_then(EventKey::from_hex)
    } else {
        tracing::warn!(
            "this window belongs to job {window_job}; the event for {job} is sent unsigned"
        );
        None
    };
    let attempt = attempt_flag.or_else(|| {
        config
            .env
            .var("DELEGATE_ATTEMPT")
            .and_then(|a| a.parse().ok())
    });
    Ok((key, attempt.unwrap_or(1), config.publisher_broker(None)?))
}

/// `--data`: any JSON value.
fn parse_data(text: &str) -> Result<Value, Failure> {
    serde_json::from_str::<Value>(text).map_err(|e| {
        config_error(format!("--data is not valid JSON: {e}"))
            .help("pass a JSON value, e.g. --data '{\"files\": 3}'")
    })
}

/// How much of stdin is read: an event must stay under the 64 KiB
/// payload limit, with room for the rest of the event.
const STDIN_MAX: u64 = 48 * 1024;

/// Stdin as text (a hook's JSON input), capped at `STDIN_MAX`.
fn read_stdin() -> String {
    use std::io::Read;
    let mut bytes = Vec::new();
    let _ = std::io::stdin().take(STDIN_MAX).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The named fields of a JSON object in `text`, as an object; `None` when
/// it is no object or has none of them.
fn data_from_text(text: &str, fields: &[String]) -> Option<Value> {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    let picked: serde_json::Map<String, Value> = fields
        .iter()
        .filter_map(|f| object.get(f).map(|v| (f.clone(), v.clone())))
        .collect();
    (!picked.is_empty()).then_some(Value::Object(picked))
}

/// The message in stdin's `text`: from a JSON object, the first non-empty
/// string among `fields` (`message` when none are named), else the
/// trimmed text.
fn message_from_text(text: &str, fields: &[String]) -> Option<String> {
    let message = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => {
            let default = ["message".to_owned()];
            let fields = if fields.is_empty() {
                &default[..]
            } else {
                fields
            };
            fields
                .iter()
                .filter_map(|field| object.get(field))
                .find_map(|value| match value {
                    Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                    Value::Null | Value::String(_) => None,
                    other => Some(other.to_string()),
                })
        }
        _ => Some(text.trim().to_owned()),
    };
    message.filter(|m| !m.is_empty())
}

#[cfg(test)]
mod tests {
    use super::{data_from_text, message_from_text};

    #[test]
    fn data_fields_are_picked_from_a_hooks_input() {
        let fields = ["session_id".to_owned(), "transcript_path".to_owned()];
        let start = r#"{"session_id":"5f1c","transcript_path":"/h/.claude/p/5f1c.jsonl","source":"startup"}"#;
        assert_eq!(
            data_from_text(start, &fields),
            Some(
                serde_json::json!({"session_id": "5f1c", "transcript_path": "/h/.claude/p/5f1c.jsonl"})
            )
        );
        assert_eq!(data_from_text(r#"{"other":1}"#, &fields), None);
        assert_eq!(data_from_text("not json", &fields), None);
    }

    #[test]
    fn the_first_non_empty_named_field_wins() {
        let fields = ["last_assistant_message".to_owned(), "error".to_owned()];
        let stop_failure = r#"{"hook_event_name":"StopFailure","error":"invalid_request","last_assistant_message":"API Error: 400 {\"type\":\"error\"}"}"#;
        assert_eq!(
            message_from_text(stop_failure, &fields).as_deref(),
            Some(r#"API Error: 400 {"type":"error"}"#)
        );
        let no_message = r#"{"error":"rate_limit","last_assistant_message":""}"#;
        assert_eq!(
            message_from_text(no_message, &fields).as_deref(),
            Some("rate_limit")
        );
        let notification = r#"{"message":"Claude needs your permission to use Bash"}"#;
        assert_eq!(
            message_from_text(notification, &[]).as_deref(),
            Some("Claude needs your permission to use Bash")
        );
        assert_eq!(
            message_from_text("  plain words \n", &[]).as_deref(),
            Some("plain words")
        );
        assert_eq!(message_from_text(r#"{"other":1}"#, &[]), None);
    }
}
