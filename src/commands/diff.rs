//! `diff ID [--stat]`: a worktree job's changes against its base, committed
//! and uncommitted.

use crate::cli::DiffArgs;
use crate::config::Env;
use crate::error::Exit;
use crate::model::JobId;
use crate::registry::Registry;

pub fn run(args: &DiffArgs) -> anyhow::Result<Exit> {
    let env = Env::from_process()?;
    let registry = Registry::open(&env)?;
    let record = registry.load(&JobId::parse(&args.id)?)?;
    crate::workspace::inspect::diff(record.worktree()?, args.stat)?;
    Ok(Exit::Success)
}
