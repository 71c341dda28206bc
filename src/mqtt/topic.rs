//! Job ids and the topics built from them. An id is validated before it can
//! reach a topic so that no id can widen a subscription (`+`, `#`) or escape
//! its level (`/`).

use crate::model::JobId;

pub const DEFAULT_TOPIC_PREFIX: &str = "python/mqtt";

/// Checks a topic prefix: non-empty levels, no wildcards, no leading or
/// trailing `/`.
pub fn validate_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Err("the topic prefix is empty".into());
    }
    if prefix.contains(['+', '#', '\0']) {
        return Err(format!(
            "the topic prefix `{prefix}` contains a wildcard (`+` or `#`) or NUL"
        ));
    }
    if prefix.split('/').any(str::is_empty) {
        return Err(format!(
            "the topic prefix `{prefix}` has an empty level (leading, trailing or double `/`)"
        ));
    }
    Ok(())
}

/// `<prefix>/jobs/<id>/events`
pub fn events_topic(prefix: &str, job: &JobId) -> String {
    format!("{prefix}/jobs/{job}/events")
}

/// `<prefix>/jobs/<id>/fence`: which attempt of a fleet job is the live one
/// (`model::fence`), written by runners, read by the job's window.
pub fn fence_topic(prefix: &str, job: &JobId) -> String {
    format!("{prefix}/jobs/{job}/fence")
}

/// `<prefix>/jobs/+/events`: every job's events.
pub fn all_events_filter(prefix: &str) -> String {
    format!("{prefix}/jobs/+/events")
}

/// The job id of an events topic under `prefix`, if it is one.
pub fn job_of_topic(prefix: &str, topic: &str) -> Option<JobId> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix("/jobs/")?;
    let id = rest.strip_suffix("/events")?;
    JobId::parse(id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_with_topic_syntax_are_rejected() {
        for bad in ["a/b", "a+", "#", "", "a b", "é", &"x".repeat(65)] {
            assert!(JobId::parse(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "fix-flaky_test-01", &"x".repeat(64)] {
            assert!(JobId::parse(good).is_ok(), "{good:?} rejected");
        }
    }

    #[test]
    fn topics_round_trip() {
        let id = JobId::parse("j-1").expect("valid");
        let topic = events_topic("python/mqtt", &id);
        assert_eq!(topic, "python/mqtt/jobs/j-1/events");
        assert_eq!(job_of_topic("python/mqtt", &topic), Some(id));
        assert_eq!(job_of_topic("python/mqtt", "other/jobs/j-1/events"), None);
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(validate_prefix("python/mqtt").is_ok());
        for bad in ["", "a/+", "a/#", "/a", "a/", "a//b"] {
            assert!(validate_prefix(bad).is_err(), "{bad:?} accepted");
        }
    }
}
