//! The tools as the client lists them (`#[tool]` methods; their input
//! schemas come from `params.rs`), each one call into its group's module.

use super::params::{
    DiffParams, IdParams, LogsParams, RunParams, SendParams, StatusParams, WaitParams,
};
use super::progress::Progress;
use crate::config::Env;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, RoleServer, ServerHandler};

/// What the server tells the client about itself when it connects.
const INSTRUCTIONS: &str = "Delegates coding jobs to agents (Claude Code, Codex, Gemini CLI, ...) \
in tmux windows, supervised to the end (timeouts, retries, the queue). `run` starts a job and \
returns its id at once; `wait` blocks until the jobs finished (or its timeout) and returns their \
rows with the agent's `result`; `send` answers a job that waits or follows a finished one up; \
`status`, `logs`, `diff`, `kill` as the tmux-delegate commands. Results are JSON text.";

#[derive(Clone)]
pub struct Delegate {
    /// The server's environment: its working directory is the default
    /// workdir, its variables are what the jobs inherit (as `run`'s).
    env: Env,
    tool_router: ToolRouter<Self>,
}

impl Delegate {
    pub fn new(env: Env) -> Delegate {
        Delegate {
            env,
            tool_router: Self::tool_router(),
        }
    }
}

/// A tool's outcome as the client gets it: the JSON as text, or a tool
/// error whose text is the CLI's (`error: ...`, `help: ...`).
fn answer(outcome: anyhow::Result<serde_json::Value>) -> CallToolResult {
    match outcome {
        Ok(value) => CallToolResult::success(vec![ContentBlock::text(value.to_string())]),
        Err(e) => CallToolResult::error(vec![ContentBlock::text(crate::error::render(&e))]),
    }
}

#[tool_router]
impl Delegate {
    #[tool(
        description = "Start a coding job: the agent works on `prompt` in its own tmux window under a \
detached supervisor (as `tmux-delegate run --detach`; `max_parallel` and the queue apply). Returns \
{id, name, state} at once; follow it with `wait`. With `pool`, submits it to the fleet instead."
    )]
    async fn run(&self, Parameters(params): Parameters<RunParams>) -> CallToolResult {
        answer(super::start::run(&self.env, params).await)
    }

    #[tool(
        description = "Wait until every job in `ids` is finished (completed, failed, timed_out, \
cancelled, skipped, refused) or `timeout_s` passed, whichever comes first, and return one row per \
job as `tmux-delegate status --json` shows it: {id, name, state, attempt, result, failure, usage, \
...}. Never blocks past its timeout; sends progress notifications when asked for them."
    )]
    async fn wait(
        &self,
        Parameters(params): Parameters<WaitParams>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let progress = Progress::asked(&context);
        tokio::select! {
            outcome = super::wait::wait(params, progress.as_ref()) => answer(outcome),
            () = context.ct.cancelled() => answer(Err(anyhow::anyhow!("the client cancelled the wait"))),
        }
    }

    #[tool(
        description = "The status --json row of one job (`id`), or of every job: {id, name, agent, \
state, attempt, reason, result, usage, ...}."
    )]
    async fn status(&self, Parameters(params): Parameters<StatusParams>) -> CallToolResult {
        answer(super::wait::status(params.id.as_deref()).await)
    }

    #[tool(
        description = "Answer a job: `text` is typed into the window of a job waiting at its prompt \
(a new turn of its conversation), or follows a finished job up with a new attempt in the same \
conversation; `keys` answer a dialog on its screen. Refused, with why, when the job cannot take it."
    )]
    async fn send(&self, Parameters(params): Parameters<SendParams>) -> CallToolResult {
        answer(super::answer::send(&self.env, params).await)
    }

    #[tool(
        description = "Stop a job gracefully (its agent's process group, then its window) and mark \
it cancelled; returns its row."
    )]
    async fn kill(&self, Parameters(params): Parameters<IdParams>) -> CallToolResult {
        answer(super::answer::kill(&params.id).await)
    }

    #[tool(
        description = "A job's last history lines (events and transitions) and the last lines of its \
window's pane."
    )]
    async fn logs(&self, Parameters(params): Parameters<LogsParams>) -> CallToolResult {
        answer(super::inspect::logs(params).await)
    }

    #[tool(
        description = "A worktree job's changes (committed and not) against its base, as a git diff \
(or its --stat)."
    )]
    async fn diff(&self, Parameters(params): Parameters<DiffParams>) -> CallToolResult {
        answer(super::inspect::diff(&params))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Delegate {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "tmux-delegate",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(INSTRUCTIONS)
    }
}
