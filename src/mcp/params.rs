//! The tools' inputs: each field documented, as the client sees it in the
//! tool's input schema (schemars derives it; `deny_unknown_fields` makes a
//! misspelt field an error instead of a silent default).

use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunParams {
    /// The task for the agent: passed to it as one argument, never through
    /// a shell.
    pub prompt: String,
    /// The agent, by the name the server's config gives it (or a built-in:
    /// claude, codex, gemini, opencode, aider); default: `[defaults] agent`.
    #[serde(default)]
    pub agent: Option<String>,
    /// The job's name (also its tmux window's); default: made from the
    /// prompt. `after`, `status` and the other tools accept it in place of
    /// the id while one job has it.
    #[serde(default)]
    pub name: Option<String>,
    /// The directory the agent works in; its config (tmux-delegate.toml,
    /// found upward) applies. Relative to the server's working directory,
    /// which is the default.
    #[serde(default)]
    pub workdir: Option<String>,
    /// Give the job its own git worktree and branch (see the `diff` tool).
    #[serde(default)]
    pub worktree: bool,
    /// Names or ids of jobs that must end before this one starts.
    #[serde(default)]
    pub after: Vec<String>,
    /// A fleet pool: submit the job to the fleet's runners instead of
    /// running it here (needs `[fleet]` in the server's config).
    #[serde(default)]
    pub pool: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitParams {
    /// The jobs to wait for (ids as `run` returned them, or names).
    pub ids: Vec<String>,
    /// The longest the call blocks, in seconds: default 600, at most 3600.
    /// It returns earlier once every job is finished.
    #[serde(default)]
    pub timeout_s: Option<f64>,
    /// Also return as soon as one of the jobs is `waiting` (it asks a
    /// question or shows a dialog): answer it with `send`.
    #[serde(default)]
    pub return_when_waiting: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusParams {
    /// One job (id or name); without it, every job.
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendParams {
    /// The job (id or name).
    pub id: String,
    /// A message for the agent: typed into the window of a job waiting at
    /// its prompt (byte for byte, then Enter), or, for a finished job, a
    /// follow-up: a new attempt that continues its conversation.
    #[serde(default)]
    pub text: Option<String>,
    /// Keys that answer a dialog on the job's screen instead of text: each
    /// one of Enter, Escape, Up, Down, Left, Right, Tab, Space, BSpace, y, n
    /// or a digit.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Type the text even while the agent is mid-turn (`running`).
    #[serde(default)]
    pub now: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdParams {
    /// The job (id or name).
    pub id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsParams {
    /// The job (id or name).
    pub id: String,
    /// How many of the last history lines and of the last pane lines to
    /// return: default 40, at most 500.
    #[serde(default)]
    pub lines: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiffParams {
    /// The job (id or name); it must have a worktree (`run` with
    /// `worktree: true`).
    pub id: String,
    /// Only the changed files and line counts.
    #[serde(default)]
    pub stat: bool,
}
