//! The policy data a job carries (resolved from the config layers in
//! `config/`): failure kinds, liveness, timeouts, retries.

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    Error,
    Hung,
    Timeout,
    Lost,
    Exit,
    StartTimeout,
    /// The agent cannot run as configured (program missing, untrusted
    /// folder, no key): retrying would fail the same way.
    AgentConfig,
    /// A workspace `setup` command failed before the agent started.
    Setup,
    /// The attempt spent more than its budget (`max_tokens`,
    /// `max_cost_usd`): never retried, the next attempt would spend again.
    Budget,
    /// A usage or rate limit of the agent's provider (SPEC section 14): not
    /// a failure while `limits.on_limit = "wait"`; the job is `limited`
    /// until the reset and the attempt is not charged. With `"fail"` the
    /// job fails with this kind, never retried.
    Limited,
}

/// `limits.on_limit`: what a usage limit does to a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnLimit {
    /// `limited` until the reset, then the job continues.
    #[default]
    Wait,
    /// The job fails (kind `limited`).
    Fail,
}

/// The longest wait for a limit whose reset time nobody said.
pub const LIMIT_WAIT_MAX: Duration = Duration::from_secs(5 * 3600);

/// How a job waits out a usage limit (SPEC section 14, `[limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LimitPolicy {
    pub on_limit: OnLimit,
    /// Added to a reset time read from the agent's message.
    #[serde(with = "humantime_serde_compat")]
    pub grace: Duration,
    /// The first wait when no reset time can be read; it doubles with each
    /// limit in a row, up to `LIMIT_WAIT_MAX`.
    #[serde(with = "humantime_serde_compat")]
    pub wait: Duration,
}

impl Default for LimitPolicy {
    fn default() -> LimitPolicy {
        LimitPolicy {
            on_limit: OnLimit::Wait,
            grace: Duration::from_secs(60),
            wait: Duration::from_secs(15 * 60),
        }
    }
}

impl LimitPolicy {
    /// How long the job waits: until the reset plus the grace when the
    /// message said when (`reset_in`), else the fallback wait for the
    /// `in_a_row`-th limit in a row (1, 2, ...), doubling.
    pub fn wait_for(&self, reset_in: Option<Duration>, in_a_row: u32) -> Duration {
        match reset_in {
            Some(left) => left + self.grace,
            None => {
                let doublings = in_a_row.saturating_sub(1).min(16);
                self.wait
                    .saturating_mul(1u32 << doublings)
                    .min(LIMIT_WAIT_MAX.max(self.wait))
            }
        }
    }
}

/// What one attempt may spend (SPEC section 14), as its agent's transcript
/// counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
}

impl Budget {
    /// Why `usage` is over this budget, if it is (input and output tokens
    /// count; cache reads and writes are priced in the cost).
    pub fn exceeded_by(&self, usage: &super::record::Usage) -> Option<String> {
        let tokens = usage.input_tokens + usage.output_tokens;
        if let Some(max) = self.max_tokens.filter(|max| tokens > *max) {
            return Some(format!("{tokens} tokens spent, over max_tokens = {max}"));
        }
        match (self.max_cost_usd, usage.cost_usd) {
            (Some(max), Some(cost)) if cost > max => {
                Some(format!("${cost:.4} spent, over max_cost_usd = {max}"))
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    Events,
    Output,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnWaiting {
    Notify,
    Fail,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Timeouts {
    #[serde(with = "humantime_serde_compat")]
    pub start: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub idle: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub attempt: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub job: Duration,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    #[serde(with = "humantime_serde_compat")]
    pub backoff: Duration,
    pub multiplier: f64,
    #[serde(with = "humantime_serde_compat")]
    pub backoff_max: Duration,
    pub on: Vec<FailureKind>,
    /// Whether a retry continues the agent's conversation (SPEC section 14).
    #[serde(default)]
    pub conversation: super::conversation::ConversationPolicy,
}

/// Durations in records are humantime strings, like in the config files.
pub mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }

    /// The same for an optional key
    /// (`#[serde(default, deserialize_with = "...::option::deserialize")]`).
    pub mod option {
        use serde::{Deserialize, Deserializer};
        use std::time::Duration;

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            let text = String::deserialize(d)?;
            humantime::parse_duration(&text)
                .map(Some)
                .map_err(serde::de::Error::custom)
        }
    }
}
