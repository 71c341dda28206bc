//! The parts of a job record (`registry::Record`) that the supervisor and
//! the views read and fill in: the last event, the failure, each attempt's
//! window and process, its conversation, answer and tokens (SPEC section
//! 14), and the checkpoint for `resume`.

use super::event::EventKind;
use serde::{Deserialize, Serialize};

/// The most recent event seen for a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastEvent {
    pub event: EventKind,
    pub attempt: u32,
    pub ts: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Why a job failed: the failure kind (`error`, `hung`, ...) and a reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureInfo {
    pub kind: String,
    pub reason: String,
}

/// The agent's own conversation of an attempt: its id, the agent it
/// belongs to, and where the agent keeps its transcript (as its hooks, its
/// output or its template said).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    /// The job's agent (absent in records written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
}

/// How an agent's transcript is written, so its tokens and final answer
/// can be read (`agents::transcript`): one reader per agent CLI.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TranscriptFormat {
    /// Claude Code's JSON lines (assistant lines with `message.usage`).
    #[default]
    Claude,
    /// Codex's rollout JSON lines (`token_usage_record` lines).
    Codex,
    /// Gemini CLI's chat JSON lines (`gemini` messages with `tokens`).
    Gemini,
    /// `opencode export ID`: the session as one JSON document.
    Opencode,
    /// Aider's chat history markdown (the answer) and its analytics log
    /// (`message_send` events: the tokens).
    Aider,
}

/// Where an attempt's tokens are read: a file in a transcript format, from
/// the mark where this attempt's part begins (a byte offset in a file that
/// a continued conversation appends to; the number of earlier messages in
/// an exported one; 0 for a file of its own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageSource {
    pub path: String,
    pub format: TranscriptFormat,
    #[serde(default)]
    pub from: u64,
}

/// Tokens, as the agent's transcript reports them (never estimated), and
/// their cost where `[pricing."MODEL"]` prices every model they were
/// spent on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    /// US dollars; `None` when some model has no configured price.
    #[serde(default)]
    pub cost_usd: Option<f64>,
}

impl Usage {
    /// The sum of two counts (a job's attempts); a cost only when both
    /// have one.
    pub fn plus(self, other: Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens + other.input_tokens,
            output_tokens: self.output_tokens + other.output_tokens,
            cache_read_input_tokens: self.cache_read_input_tokens + other.cache_read_input_tokens,
            cache_creation_input_tokens: self.cache_creation_input_tokens
                + other.cache_creation_input_tokens,
            cost_usd: self.cost_usd.zip(other.cost_usd).map(|(a, b)| a + b),
        }
    }
}

/// `[pricing."MODEL"]`: US dollars per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Cache reads; default: the input price.
    pub cache_read: Option<f64>,
    /// Cache writes; default: the input price.
    pub cache_write: Option<f64>,
}

impl Price {
    /// What `usage`'s tokens cost at this price.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let per = |tokens: u64, price: f64| tokens as f64 * price / 1_000_000.0;
        per(usage.input_tokens, self.input)
            + per(usage.output_tokens, self.output)
            + per(
                usage.cache_read_input_tokens,
                self.cache_read.unwrap_or(self.input),
            )
            + per(
                usage.cache_creation_input_tokens,
                self.cache_write.unwrap_or(self.input),
            )
    }
}

/// A job's work as the views show it (SPEC section 14): its latest
/// conversation, its final answer once it completed, its tokens summed
/// over its attempts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Work {
    pub session: Option<Session>,
    pub result: Option<String>,
    pub usage: Option<Usage>,
}

impl Work {
    /// What the attempts say: the last session any of them had, the result
    /// of the last one with a result, the sum of their usage.
    pub fn of(attempts: &[AttemptInfo]) -> Work {
        Work {
            session: attempts.iter().rev().find_map(|a| a.session.clone()),
            result: attempts.iter().rev().find_map(|a| a.result.clone()),
            usage: attempts.iter().filter_map(|a| a.usage).reduce(Usage::plus),
        }
    }
}

/// What the registry knows about one attempt's window and process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttemptInfo {
    pub number: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pane_pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgid: Option<i32>,
    /// The group leader's start time (`/proc/PID/stat` field 22): checked
    /// before the group is signalled, so a reused pid is never taken for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgid_start: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The agent's exit code, recorded by the wrapper before it publishes
    /// `exited`: what the wrapper saw survives a broker outage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The agent's conversation (SessionStart hook, or the agent's output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Session>,
    /// The agent's final answer, when the attempt completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// The attempt's tokens, read from its transcript when it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The conversation this attempt was started to continue, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continued_from: Option<String>,
    /// Why this attempt started a new conversation where it could have
    /// continued one (its previous attempt ran on another host of a fleet,
    /// a broken resume, `retry --fresh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fresh_because: Option<String>,
    /// Where the window's wrapper found this attempt's tokens; without it,
    /// the session's transcript (a Claude Code one) from its start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_source: Option<UsageSource>,
}

/// What a supervisor that crashes leaves for `resume`: the first attempt of
/// the current retry budget, the job deadline (from the first launch) and a
/// pending backoff, as Unix seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ResumePoint {
    pub first_attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_deadline: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_until: Option<f64>,
    /// Attempts that met a usage limit, not charged to `max_attempts`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uncharged: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
