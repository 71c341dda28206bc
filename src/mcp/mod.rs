//! `tmux-delegate mcp` (SPEC section 15): a Model Context Protocol server
//! on stdio (rmcp) through which an agent delegates as a person does on
//! the command line. Each tool is a thin call into the functions the
//! commands call (`supervisor::submission` and `detach` for `run`,
//! `supervisor::send`, `supervisor::stop`, the registry's rows, the
//! fleet's `remote`), its result short JSON text, its failure a tool
//! error (isError) with the CLI's words. Stdout is the protocol: nothing
//! else may be printed on it (logs go to stderr, `main.rs`).

mod answer;
mod inspect;
mod params;
mod place;
mod progress;
mod start;
mod tools;
mod wait;

use crate::config::Env;
use crate::error::Exit;
use anyhow::Context;
use rmcp::ServiceExt;

/// Serves one client on stdin/stdout until it closes them.
pub async fn serve() -> anyhow::Result<Exit> {
    let env = Env::from_process()?;
    let service = tools::Delegate::new(env)
        .serve(rmcp::transport::stdio())
        .await
        .context("starting the MCP server on stdio")?;
    service.waiting().await.context("serving MCP on stdio")?;
    Ok(Exit::Success)
}
