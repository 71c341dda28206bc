//! `mcp`: the MCP server on stdio (`crate::mcp`), until the client closes it.

use crate::error::Exit;

pub async fn run() -> anyhow::Result<Exit> {
    crate::mcp::serve().await
}
