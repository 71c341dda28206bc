//! The fleet's messages. A job offer is a request, never code: it names an
//! agent the runner's own configuration defines, carries the prompt as data
//! and a workdir the runner resolves under its root. The request part is
//! signed (HMAC-SHA256 over its canonical JSON, as events are) by the
//! submitter; the attempt number beside it is the fencing token.

use crate::model::row::{rfc3339, FleetPlace};
use crate::model::{FailureInfo, FleetState, LastEvent, StatusRow};
use crate::mqtt::sign::EventKey;
use crate::registry::Record;
use crate::supervisor::send::{Input, TEXT_MAX};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a submitter asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRequest {
    pub id: String,
    pub name: String,
    /// An agent of the runner's configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub prompt: String,
    /// Relative to the runner's root; absent: the root itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    pub pool: String,
    /// Unix seconds.
    pub submitted: f64,
}

impl JobRequest {
    /// The request as a JSON object, signed with `key` when there is one.
    pub fn to_signed(&self, key: Option<&EventKey>) -> Map<String, Value> {
        let mut object = match serde_json::to_value(self) {
            Ok(Value::Object(object)) => object,
            _ => Map::new(),
        };
        if let Some(key) = key {
            let sig = key.sign(&object);
            object.insert("sig".into(), Value::String(sig));
        }
        object
    }
}

/// A job handed to the pool: the signed request and the attempt it is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    pub request: Map<String, Value>,
    pub attempt: u32,
}

/// Why a request is refused before anything runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Trusted,
    /// No submitter keys configured: the broker's ACL alone decided.
    AclOnly,
    Refused(String),
}

/// Checks the request's signature against the keys a runner trusts.
pub fn verify(request: &Map<String, Value>, trusted: &[EventKey]) -> Verdict {
    if trusted.is_empty() {
        return Verdict::AclOnly;
    }
    if !request.contains_key("sig") {
        return Verdict::Refused("the submission is not signed, and this runner trusts only signed submissions (`fleet.submitter_keys`)".into());
    }
    if trusted.iter().any(|k| k.verify(request)) {
        Verdict::Trusted
    } else {
        Verdict::Refused(
            "the submission's signature matches no key in this runner's `fleet.submitter_keys`"
                .into(),
        )
    }
}

/// Decodes the request part (after its signature was checked).
pub fn parse_request(request: &Map<String, Value>) -> Result<JobRequest, String> {
    let mut unsigned = request.clone();
    unsigned.remove("sig");
    serde_json::from_value(Value::Object(unsigned)).map_err(|e| format!("malformed request: {e}"))
}

/// The retained state of one job: who holds it, which attempt, how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    pub job: String,
    pub state: FleetState,
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<String>,
    #[serde(default)]
    pub pool: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub ts: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The failure kind, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// The signed request, so any runner can offer the job again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Map<String, Value>>,
    // What the runner's record says besides, for `status --json` (absent
    // in the states of older runners, and before a runner holds the job).
    /// When the runner created the job's record (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event: Option<LastEvent>,
    /// The job's conversation, answer and tokens, from the runner's record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work: Option<crate::model::Work>,
    /// A `limited` job: when it continues on its runner (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<f64>,
}

impl JobStatus {
    pub fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }

    /// The state with what the runner's record of the job adds: when it
    /// was created, how many attempts it may have, its last event, and its
    /// agent as the runner resolved it.
    pub fn with_record(mut self, record: Option<&Record>) -> JobStatus {
        if let Some(record) = record {
            self.created = Some(record.created.clone());
            self.max_attempts = Some(record.spec.retry.max_attempts);
            self.last_event = record.last_event.clone();
            self.agent = Some(record.spec.agent.clone());
            self.until = record.limited_until();
            let work = crate::model::Work::of(&record.attempts);
            self.work = (work != crate::model::Work::default()).then_some(work);
        }
        self
    }

    /// The job as `status --json` shows a fleet job.
    pub fn row(&self) -> StatusRow {
        let submitted = self
            .request
            .as_ref()
            .and_then(|r| r.get("submitted"))
            .and_then(Value::as_f64);
        StatusRow {
            id: self.job.clone(),
            name: self.name.clone(),
            agent: self.agent.clone(),
            state: self.state,
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            created: self
                .created
                .clone()
                .unwrap_or_else(|| rfc3339(submitted.unwrap_or(self.ts))),
            updated: rfc3339(self.ts),
            last_event: self.last_event.clone(),
            failure: self.failure.as_ref().map(|kind| FailureInfo {
                kind: kind.clone(),
                reason: self.reason.clone().unwrap_or_default(),
            }),
            reason: self.reason.clone(),
            until: self.until.map(rfc3339),
            work: self.work.clone().unwrap_or_default(),
            fleet: Some(FleetPlace {
                runner: self.runner.clone(),
                pool: self.pool.clone(),
            }),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(payload: &[u8]) -> Option<JobStatus> {
        serde_json::from_slice(payload).ok()
    }
}

/// A runner's presence, retained on `<prefix>/runners/<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    pub runner: String,
    pub pool: String,
    /// `online` or `offline`.
    pub status: String,
    #[serde(default)]
    pub max_parallel: u32,
    #[serde(default)]
    pub running: u32,
    pub ts: f64,
    /// A runner's resynchronisation mark: after a reconnect or a freeze it
    /// publishes its presence with a new number and waits for that echo,
    /// which the broker routes after the retained states it owes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<u64>,
}

impl Presence {
    pub fn online(&self) -> bool {
        self.status == "online"
    }
}

/// A kill or send request to the job's runner, signed like a submission
/// (every field: the text, the keys and `now` too).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Control {
    pub job: String,
    /// `kill` or `send`.
    pub action: String,
    pub ts: f64,
    /// `send`: the text to type, or to follow a finished job up with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `send --keys`: keys for a dialog.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// `send --now`: type even mid-turn.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub now: bool,
    /// `send`: names the runner's answer (`Reply`), and the request once:
    /// a duplicate delivery is not typed twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// The most keys one `send --keys` carries.
pub const KEYS_MAX: usize = 32;

/// How far a `send` control's time may be from the runner's clock: an
/// older one is a replay (or a clock far off), refused.
pub const CONTROL_MAX_AGE: f64 = 600.0;

/// A nonce as `send` makes them: 8 to 64 letters and digits.
pub fn valid_nonce(nonce: &str) -> bool {
    (8..=64).contains(&nonce.len()) && nonce.chars().all(|c| c.is_ascii_alphanumeric())
}

impl Control {
    /// What a `send` control carries to the window or the next attempt.
    pub fn input(&self) -> Input<'_> {
        match &self.text {
            Some(text) => Input::Text(text),
            None => Input::Keys(&self.keys),
        }
    }

    /// Whether a `send` control is well formed (before any verdict): one
    /// nonce, text or keys within their sizes, a time near `now`.
    pub fn check_send(&self, now: f64) -> Result<(), String> {
        if !self.nonce.as_deref().is_some_and(valid_nonce) {
            return Err("the request has no valid nonce".into());
        }
        let shape = match (&self.text, self.keys.as_slice()) {
            (Some(_), [_, ..]) => Err("the request carries both text and keys".to_owned()),
            (None, []) => Err("the request carries neither text nor keys".to_owned()),
            (Some(text), []) if text.len() > TEXT_MAX => Err(format!(
                "the text is {} bytes; at most {TEXT_MAX} go in one `send`",
                text.len()
            )),
            (None, keys) if keys.len() > KEYS_MAX || keys.iter().any(|k| k.len() > 16) => {
                Err(format!("at most {KEYS_MAX} dialog keys go in one `send`"))
            }
            _ => Ok(()),
        };
        shape?;
        if (now - self.ts).abs() > CONTROL_MAX_AGE {
            return Err(format!(
                "the request was made {:.0} s from this runner's clock (at most {CONTROL_MAX_AGE:.0}): a replay, or a clock far off",
                now - self.ts
            ));
        }
        Ok(())
    }

    pub fn to_signed(&self, key: Option<&EventKey>) -> Vec<u8> {
        let mut object = match serde_json::to_value(self) {
            Ok(Value::Object(object)) => object,
            _ => Map::new(),
        };
        if let Some(key) = key {
            let sig = key.sign(&object);
            object.insert("sig".into(), Value::String(sig));
        }
        Value::Object(object).to_string().into_bytes()
    }
}

/// A runner's answer to a `send` control, on `<prefix>/jobs/<id>/reply`
/// (only runners may publish there: the ACL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub job: String,
    /// The control's.
    pub nonce: String,
    pub runner: String,
    pub accepted: bool,
    /// What was done, or why not.
    pub message: String,
    /// The attempt the input went to (a follow-up's new one).
    pub attempt: u32,
    pub ts: f64,
}

/// Job `j-1`'s state in pool `default`, for the fleet's unit tests.
#[cfg(test)]
impl JobStatus {
    pub fn sample(state: FleetState, attempt: u32, runner: Option<&str>) -> JobStatus {
        JobStatus {
            job: "j-1".into(),
            state,
            attempt,
            runner: runner.map(str::to_owned),
            pool: "default".into(),
            name: "j".into(),
            agent: None,
            ts: 0.0,
            reason: None,
            failure: None,
            request: None,
            created: None,
            max_attempts: None,
            last_event: None,
            work: None,
            until: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> JobRequest {
        JobRequest {
            id: "j-1".into(),
            name: "j".into(),
            agent: Some("shell".into()),
            prompt: "echo hi".into(),
            workdir: None,
            pool: "default".into(),
            submitted: 1.0,
        }
    }

    /// Every key of a row with its JSON type, nested objects as `a.b`.
    fn shape(value: &Value, at: &str, into: &mut std::collections::BTreeMap<String, &'static str>) {
        let kind = match value {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(object) => {
                for (key, inner) in object {
                    let path = if at.is_empty() {
                        key.clone()
                    } else {
                        format!("{at}.{key}")
                    };
                    shape(inner, &path, into);
                }
                "object"
            }
        };
        into.insert(at.to_owned(), kind);
    }

    fn shape_of(row: &StatusRow) -> std::collections::BTreeMap<String, &'static str> {
        let mut found = std::collections::BTreeMap::new();
        shape(
            &serde_json::to_value(row).expect("row as JSON"),
            "",
            &mut found,
        );
        found
    }

    /// A job that failed at its last attempt, as its record says.
    fn failed_record() -> Record {
        let mut record: Record =
            serde_json::from_str(include_str!("../../tests/fixtures/record-v1.json"))
                .expect("fixture");
        record.state = crate::model::JobState::Failed;
        record.attempt = 2;
        record.last_event = Some(LastEvent {
            event: crate::model::EventKind::Error,
            attempt: 2,
            ts: 1_795_610_900.5,
            message: Some("tests still fail".into()),
        });
        record.failure = Some(FailureInfo {
            kind: "error".into(),
            reason: "tests still fail".into(),
        });
        record
    }

    #[test]
    fn a_fleet_row_has_the_local_rows_keys_and_json_types_plus_its_place() {
        let record = failed_record();
        let local = record.row();
        // As the runner publishes the end of the job it ran.
        let fleet = JobStatus {
            job: record.id.clone(),
            state: record.state.into(),
            attempt: record.attempt,
            runner: Some("r0".into()),
            pool: "default".into(),
            name: record.spec.name.clone(),
            agent: None,
            ts: 1_795_610_901.25,
            reason: Some("tests still fail".into()),
            failure: Some("error".into()),
            request: Some(request().to_signed(None)),
            created: None,
            max_attempts: None,
            last_event: None,
            work: None,
            until: None,
        }
        .with_record(Some(&record));
        let fleet = JobStatus::decode(&fleet.encode()).expect("the state goes over the wire");
        let fleet = fleet.row();
        let mut expected = shape_of(&local);
        expected.insert("runner".into(), "string");
        expected.insert("pool".into(), "string");
        assert_eq!(shape_of(&fleet), expected);
        for key in [
            "failure.kind",
            "failure.reason",
            "last_event.event",
            "updated",
            "reason",
        ] {
            let filled = expected.get(key).is_some_and(|kind| *kind != "null");
            assert!(filled, "{key} is not filled in: {expected:?}");
        }
        assert_eq!(
            (
                fleet.state,
                fleet.attempt,
                fleet.max_attempts,
                &fleet.created
            ),
            (
                local.state,
                local.attempt,
                local.max_attempts,
                &local.created
            )
        );
        assert_eq!(
            (&fleet.failure, &fleet.last_event),
            (&local.failure, &local.last_event)
        );
        assert_eq!(fleet.updated, "2026-11-25T12:48:21.250Z");
        assert!(humantime::parse_rfc3339(&local.updated).is_ok());
    }

    #[test]
    fn a_state_from_an_older_runner_still_reads_and_gets_the_same_types() {
        let old = br#"{"job":"j-1","state":"requeued","attempt":2,"pool":"default","name":"j","ts":1795610821.5,"reason":"runner r0 went offline","request":{"id":"j-1","name":"j","prompt":"p","pool":"default","submitted":1795610800.0}}"#;
        let status = JobStatus::decode(old).expect("an old state");
        assert_eq!(status.state, FleetState::Requeued);
        assert_eq!(
            status.encode(),
            JobStatus::decode(&status.encode()).expect("again").encode()
        );
        let row = status.row();
        assert_eq!(
            row.created, "2026-11-25T12:46:40.000Z",
            "from the submission"
        );
        assert_eq!(row.updated, "2026-11-25T12:47:01.500Z");
        let value = serde_json::to_value(&row).expect("row");
        assert_eq!(value["state"], "requeued");
        assert!(value["runner"].is_null() && value.get("runner").is_some());
        assert!(
            JobStatus::decode(br#"{"job":"j-1","state":"exploded","attempt":1,"ts":0}"#).is_none()
        );
    }

    fn send_control(text: Option<&str>, keys: &[&str]) -> Control {
        Control {
            job: "j-1".into(),
            action: "send".into(),
            ts: 1_000.0,
            text: text.map(str::to_owned),
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            now: false,
            nonce: Some("0123456789abcdef".into()),
        }
    }

    #[test]
    fn a_send_control_is_signed_whole_and_checked_for_shape_size_and_age() {
        let key = EventKey::generate();
        let control = send_control(Some("yes, and add tests"), &[]);
        let signed: Map<String, Value> =
            serde_json::from_slice(&control.to_signed(Some(&key))).expect("json");
        assert_eq!(
            verify(&signed, std::slice::from_ref(&key)),
            Verdict::Trusted
        );
        let mut tampered = signed.clone();
        tampered.insert("text".into(), Value::String("rm -rf ~".into()));
        assert!(matches!(
            verify(&tampered, std::slice::from_ref(&key)),
            Verdict::Refused(_)
        ));
        let mut hurried = signed;
        hurried.insert("now".into(), Value::Bool(true));
        assert!(matches!(verify(&hurried, &[key]), Verdict::Refused(_)));
        // A kill has none of the send fields: its message is as before.
        let kill = Control {
            job: "j-1".into(),
            action: "kill".into(),
            ts: 1.5,
            ..Control::default()
        };
        assert_eq!(
            String::from_utf8(kill.to_signed(None)).expect("utf-8"),
            r#"{"action":"kill","job":"j-1","ts":1.5}"#
        );

        let long = "x".repeat(TEXT_MAX + 1);
        let no_nonce = Control {
            nonce: None,
            ..send_control(Some("hi"), &[])
        };
        let bad_nonce = Control {
            nonce: Some("a b; rm".into()),
            ..send_control(Some("hi"), &[])
        };
        let many_keys: Vec<&str> = vec!["Enter"; KEYS_MAX + 1];
        // (control, seconds after it was made, accepted)
        let cases = [
            (send_control(Some("hi"), &[]), 5.0, true),
            (send_control(None, &["Down", "Enter"]), -5.0, true),
            (send_control(Some(&long), &[]), 0.0, false),
            (send_control(Some("hi"), &["Enter"]), 0.0, false),
            (send_control(None, &[]), 0.0, false),
            (send_control(None, &many_keys), 0.0, false),
            (send_control(Some("hi"), &[]), CONTROL_MAX_AGE + 1.0, false),
            (no_nonce, 0.0, false),
            (bad_nonce, 0.0, false),
        ];
        for (n, (control, after, accepted)) in cases.iter().enumerate() {
            assert_eq!(
                control.check_send(control.ts + after).is_ok(),
                *accepted,
                "case {n}"
            );
        }
    }

    #[test]
    fn signed_requests_verify_only_with_a_trusted_key() {
        let key = EventKey::generate();
        let other = EventKey::generate();
        let signed = request().to_signed(Some(&key));
        assert_eq!(
            verify(&signed, &[other.clone(), key.clone()]),
            Verdict::Trusted
        );
        assert!(matches!(
            verify(&signed, std::slice::from_ref(&other)),
            Verdict::Refused(_)
        ));
        let unsigned = request().to_signed(None);
        assert!(matches!(
            verify(&unsigned, std::slice::from_ref(&key)),
            Verdict::Refused(_)
        ));
        assert_eq!(verify(&unsigned, &[]), Verdict::AclOnly);
        let mut tampered = signed.clone();
        tampered.insert("prompt".into(), Value::String("rm -rf ~".into()));
        assert!(matches!(verify(&tampered, &[key]), Verdict::Refused(_)));
        assert_eq!(parse_request(&signed), Ok(request()));
    }
}
