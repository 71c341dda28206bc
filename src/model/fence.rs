//! A fleet job's fence: which attempt of the job is the live one, and on
//! which runner. The runner that claims an attempt writes it, retained, on
//! `<prefix>/jobs/<id>/fence`; the windows' wrappers read it (the worker
//! credential may read a job's fence, never its state, which carries the
//! prompt). The attempt is the fencing token: a window whose attempt is
//! superseded stops its agent, whatever its own runner is doing (frozen,
//! cut off from the broker, slow), so a job never has two live attempts
//! for longer than the fence takes to reach the window.
//!
//! Runners use the same rule on the job states they read
//! (`fleet::failover::taken_over`), so a window and its runner agree.

use serde::{Deserialize, Serialize};

/// The retained fence of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fence {
    pub attempt: u32,
    pub runner: String,
}

impl Fence {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// `None` for an empty (cleared) or malformed payload.
    pub fn decode(payload: &[u8]) -> Option<Fence> {
        serde_json::from_slice(payload).ok()
    }
}

/// Whether a claim of `attempt` by `runner` supersedes attempt `mine` of
/// runner `me`: a newer attempt, or the same attempt claimed by a
/// lower-named runner (two claims of one offer: the lower name wins).
pub fn supersedes(attempt: u32, runner: Option<&str>, mine: u32, me: &str) -> bool {
    attempt > mine || (attempt == mine && runner.is_some_and(|r| r < me))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_attempt_or_a_lower_named_claim_of_the_same_supersedes() {
        // (attempt, runner, mine, me, superseded)
        let cases: &[(u32, Option<&str>, u32, &str, bool)] = &[
            (3, Some("r9"), 2, "m", true),
            (2, Some("a"), 2, "m", true),
            (2, Some("z"), 2, "m", false),
            (2, Some("m"), 2, "m", false),
            (2, None, 2, "m", false),
            (1, Some("a"), 2, "m", false),
            (3, None, 2, "m", true),
        ];
        for (n, (attempt, runner, mine, me, expected)) in cases.iter().enumerate() {
            assert_eq!(
                supersedes(*attempt, *runner, *mine, me),
                *expected,
                "case {n}"
            );
        }
    }

    #[test]
    fn a_fence_round_trips_and_an_empty_payload_is_none() {
        let fence = Fence {
            attempt: 2,
            runner: "r1".into(),
        };
        assert_eq!(
            String::from_utf8(fence.encode()).expect("utf-8"),
            r#"{"attempt":2,"runner":"r1"}"#
        );
        assert_eq!(Fence::decode(&fence.encode()), Some(fence));
        assert_eq!(Fence::decode(b""), None);
        assert_eq!(Fence::decode(b"nonsense"), None);
    }
}
