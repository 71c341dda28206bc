//! `diff ID [--stat]`: a worktree job's changes against its base, committed
//! and uncommitted.

use crate::cli::DiffArgs;
use crate::config::Env;
use crate::error::{config_error, Exit, Failure};
use crate::model::JobId;
use crate::registry::{Record, Registry};
use crate::workspace::Workspace;

pub fn run(args: &DiffArgs) -> anyhow::Result<Exit> {
    let env = Env::from_process()?;
    let registry = Registry::open(&env)?;
    let record = registry.load(&JobId::parse(&args.id)?)?;
    crate::workspace::inspect::diff(workspace_of(&record)?, args.stat)?;
    Ok(Exit::Success)
}

/// The job's worktree, or exit 2 for a job that runs in its workdir.
pub fn workspace_of(record: &Record) -> Result<&Workspace, Failure> {
    record.workspace.as_ref().ok_or_else(|| {
        config_error(format!(
            "job {} has no worktree: it ran in {} as it is",
            record.id,
            record.spec.workdir.display()
        ))
        .help("give jobs their own worktree with `run --worktree` or workspace = \"worktree\"")
    })
}
