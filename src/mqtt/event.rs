//! The event payload (SPEC section 4): JSON `{"job","event","attempt","seq"?,
//! "ts","message"?,"data"?,"sig"?}` on the wire, read leniently so that a bare
//! word from `mosquitto_pub` or a partial JSON object from the original Python
//! scripts is still an event.

use crate::model::{Event, EventKind};
use serde_json::{Map, Value};

/// Payloads larger than this are logged and ignored.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// The wire form: the event's JSON object, with `sig` when a key is known.
pub fn encode(event: &Event, key: Option<&super::sign::EventKey>) -> anyhow::Result<Vec<u8>> {
    let Value::Object(mut object) = serde_json::to_value(event)? else {
        anyhow::bail!("an event always serialises to a JSON object");
    };
    if let Some(key) = key {
        let sig = key.sign(&object);
        object.insert("sig".into(), Value::String(sig));
    }
    Ok(serde_json::to_vec(&Value::Object(object))?)
}

/// An event as received: fields the sender left out stay `None` and the
/// reader fills them from context (the topic's job, the current attempt).
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub job: Option<String>,
    pub event: EventKind,
    pub attempt: Option<u32>,
    pub seq: Option<u64>,
    pub ts: Option<f64>,
    pub message: Option<String>,
    pub data: Option<Value>,
    pub sig: Option<String>,
    /// The JSON object as sent (None for a bare word), kept to verify `sig`.
    pub raw: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Event(Received),
    /// An empty retained payload: a previous attempt's terminal event was cleared.
    Cleared,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("payload of {0} bytes is over the {MAX_PAYLOAD}-byte limit")]
    TooLarge(usize),
    #[error("payload is not UTF-8")]
    NotUtf8,
    #[error("malformed payload: {0}")]
    Malformed(String),
}

/// Reads a payload leniently (SPEC section 4).
pub fn decode(payload: &[u8]) -> Result<Decoded, DecodeError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(DecodeError::TooLarge(payload.len()));
    }
    let text = std::str::from_utf8(payload).map_err(|_| DecodeError::NotUtf8)?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(Decoded::Cleared);
    }
    if text.starts_with('{') {
        return decode_json(text).map(Decoded::Event);
    }
    if is_bare_word(text) {
        return Ok(Decoded::Event(Received {
            job: None,
            event: EventKind::from_name(text),
            attempt: None,
            seq: None,
            ts: None,
            message: None,
            data: None,
            sig: None,
            raw: None,
        }));
    }
    Err(DecodeError::Malformed(format!(
        "neither a JSON object nor an event name: `{}`",
        preview(text)
    )))
}

fn is_bare_word(text: &str) -> bool {
    text.len() <= 32
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c == '-')
}

fn preview(text: &str) -> String {
    let cut: String = text.chars().take(40).collect();
    cut.escape_default().to_string()
}

fn decode_json(text: &str) -> Result<Received, DecodeError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(DecodeError::Malformed("not a JSON object".into()));
    };
    let event = match map.get("event") {
        Some(Value::String(name)) if !name.is_empty() => EventKind::from_name(name),
        _ => {
            return Err(DecodeError::Malformed(
                "the JSON object has no string field `event`".into(),
            ))
        }
    };
    let string = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_owned);
    let attempt = match map.get("attempt") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    DecodeError::Malformed(format!("`attempt` must be a count from 1, not {value}"))
                })?,
        ),
    };
    Ok(Received {
        job: string("job"),
        event,
        attempt,
        seq: map.get("seq").and_then(Value::as_u64),
        ts: map.get("ts").and_then(Value::as_f64),
        message: string("message"),
        data: map.get("data").cloned(),
        sig: string("sig"),
        raw: Some(map),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(payload: &str) -> Received {
        match decode(payload.as_bytes()) {
            Ok(Decoded::Event(event)) => event,
            other => panic!("{payload}: {other:?}"),
        }
    }

    #[test]
    fn bare_words_are_events_of_the_current_attempt() {
        let got = event("completed\n");
        assert_eq!(got.event, EventKind::Completed);
        assert_eq!(got.attempt, None);
        assert_eq!(got.job, None);
    }

    #[test]
    fn partial_json_is_accepted() {
        let got = event(r#"{"event":"error"}"#);
        assert_eq!(got.event, EventKind::Error);
        assert_eq!(got.attempt, None);
    }

    #[test]
    fn full_json_round_trips() {
        let sent = Event {
            job: "j1".into(),
            event: EventKind::Progress,
            attempt: 2,
            seq: Some(7),
            ts: 1_764_070_000.25,
            message: Some("half way".into()),
            data: Some(serde_json::json!({"pct": 50})),
            sig: None,
        };
        let got = event(&serde_json::to_string(&sent).expect("serialises"));
        assert_eq!(got.job.as_deref(), Some("j1"));
        assert_eq!(got.attempt, Some(2));
        assert_eq!(got.seq, Some(7));
        assert_eq!(got.ts, Some(1_764_070_000.25));
        assert_eq!(got.message.as_deref(), Some("half way"));
        assert_eq!(got.data, Some(serde_json::json!({"pct": 50})));
    }

    #[test]
    fn empty_payload_is_a_cleared_retained_event() {
        assert_eq!(decode(b""), Ok(Decoded::Cleared));
    }

    #[test]
    fn bad_payloads_are_errors_not_panics() {
        for bad in [
            "{not json",
            "[1,2]",
            r#"{"event":5}"#,
            r#"{"event":"started","attempt":0}"#,
            r#"{"event":"started","attempt":"x"}"#,
            "two words",
        ] {
            assert!(
                matches!(decode(bad.as_bytes()), Err(DecodeError::Malformed(_))),
                "{bad}"
            );
        }
        assert_eq!(decode(&[0xff, 0xfe]), Err(DecodeError::NotUtf8));
        let big = vec![b'a'; MAX_PAYLOAD + 1];
        assert_eq!(decode(&big), Err(DecodeError::TooLarge(MAX_PAYLOAD + 1)));
    }

    #[test]
    fn unknown_event_names_are_kept() {
        assert_eq!(
            event("rebooting").event,
            EventKind::Other("rebooting".into())
        );
    }
}
