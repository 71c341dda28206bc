//! The fleet's messages. A job offer is a request, never code: it names an
//! agent the runner's own configuration defines, carries the prompt as data
//! and a workdir the runner resolves under its root. The request part is
//! signed (HMAC-SHA256 over its canonical JSON, as events are) by the
//! submitter; the attempt number beside it is the fencing token.

use crate::mqtt::sign::EventKey;
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

/// States a job can be in on its state topic: the supervisor's states
/// (`running`, `completed`, ...) plus the fleet's own.
pub mod states {
    /// Published by `submit`; the offer is on its way to the pool.
    pub const SUBMITTED: &str = "submitted";
    /// Claimed by a runner that has no free slot yet.
    pub const QUEUED: &str = "queued";
    /// Its runner went offline; offered again with the next attempt.
    pub const REQUEUED: &str = "requeued";
    /// A runner refused the request (unknown agent, bad signature, workdir
    /// outside its root): final.
    pub const REFUSED: &str = "refused";

    /// States after which nothing more happens to the job.
    pub fn is_terminal(state: &str) -> bool {
        matches!(
            state,
            "completed" | "failed" | "timed_out" | "cancelled" | "skipped" | REFUSED
        )
    }
}

/// The retained state of one job: who holds it, which attempt, how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    pub job: String,
    pub state: String,
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
}

impl JobStatus {
    pub fn is_terminal(&self) -> bool {
        states::is_terminal(&self.state)
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
}

impl Presence {
    pub fn online(&self) -> bool {
        self.status == "online"
    }
}

/// A kill or retry request to the job's runner, signed like a submission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Control {
    pub job: String,
    /// `kill` or `retry`.
    pub action: String,
    pub ts: f64,
}

impl Control {
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
