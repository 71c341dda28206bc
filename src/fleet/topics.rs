//! The fleet's topics, all under the configured topic prefix:
//! - `<prefix>/pools/<pool>/jobs`: job offers (QoS 1, not retained); runners
//!   subscribe to `$share/<pool>/<prefix>/pools/<pool>/jobs`.
//! - `<prefix>/jobs/<id>/state`: the job's state, retained (claims included).
//! - `<prefix>/jobs/<id>/control`: kill and send requests to its runner.
//! - `<prefix>/jobs/<id>/reply`: the runner's answers to `send` requests.
//! - `<prefix>/jobs/<id>/log`: the job's history and last pane, retained.
//! - `<prefix>/runners/<name>`: a runner's presence, retained; Last Will offline.

use crate::model::JobId;

pub fn pool_topic(prefix: &str, pool: &str) -> String {
    format!("{prefix}/pools/{pool}/jobs")
}

/// The shared subscription that makes the pool a work queue.
pub fn pool_share_filter(prefix: &str, pool: &str) -> String {
    format!("$share/{pool}/{}", pool_topic(prefix, pool))
}

pub fn state_topic(prefix: &str, job: &JobId) -> String {
    format!("{prefix}/jobs/{job}/state")
}

pub fn all_states_filter(prefix: &str) -> String {
    format!("{prefix}/jobs/+/state")
}

/// A job's log for `logs` on other hosts (retained, by its runner).
pub fn log_topic(prefix: &str, job: &JobId) -> String {
    format!("{prefix}/jobs/{job}/log")
}

pub fn control_topic(prefix: &str, job: &JobId) -> String {
    format!("{prefix}/jobs/{job}/control")
}

/// Where the job's runner answers a `send` (not retained: the asker
/// subscribes before it asks).
pub fn reply_topic(prefix: &str, job: &JobId) -> String {
    format!("{prefix}/jobs/{job}/reply")
}

pub fn all_controls_filter(prefix: &str) -> String {
    format!("{prefix}/jobs/+/control")
}

pub fn presence_topic(prefix: &str, runner: &str) -> String {
    format!("{prefix}/runners/{runner}")
}

pub fn all_presence_filter(prefix: &str) -> String {
    format!("{prefix}/runners/+")
}

/// What a fleet topic is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    Offer,
    State(JobId),
    Control(JobId),
    Presence(String),
}

/// Classifies a topic received under `prefix`.
pub fn classify(prefix: &str, topic: &str) -> Option<Topic> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    if let Some(job) = rest.strip_prefix("jobs/") {
        let (id, kind) = job.split_once('/')?;
        let id = JobId::parse(id).ok()?;
        return match kind {
            "state" => Some(Topic::State(id)),
            "control" => Some(Topic::Control(id)),
            _ => None,
        };
    }
    if let Some(name) = rest.strip_prefix("runners/") {
        return (!name.contains('/')).then(|| Topic::Presence(name.to_owned()));
    }
    (rest.starts_with("pools/") && rest.ends_with("/jobs")).then_some(Topic::Offer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_classified() {
        let id = JobId::parse("j-1").expect("valid");
        let p = "python/mqtt";
        assert_eq!(
            classify(p, &state_topic(p, &id)),
            Some(Topic::State(id.clone()))
        );
        assert_eq!(
            classify(p, &control_topic(p, &id)),
            Some(Topic::Control(id.clone()))
        );
        assert_eq!(
            classify(p, &presence_topic(p, "r1")),
            Some(Topic::Presence("r1".into()))
        );
        assert_eq!(classify(p, &pool_topic(p, "gpu")), Some(Topic::Offer));
        assert_eq!(classify(p, "python/mqtt/jobs/j-1/events"), None);
        assert_eq!(
            pool_share_filter(p, "gpu"),
            "$share/gpu/python/mqtt/pools/gpu/jobs"
        );
    }
}
