//! `merge ID`: merges a worktree job's branch into the main checkout's
//! current branch. Exit 0 merged (or nothing to merge), 1 conflict (the
//! checkout is left as it was), 2 refused (the checkout is not clean).

use crate::cli::IdArg;
use crate::config::Env;
use crate::error::Exit;
use crate::model::JobId;
use crate::registry::Registry;
use crate::workspace::merge::{merge, Outcome};

pub fn run(args: &IdArg) -> anyhow::Result<Exit> {
    let env = Env::from_process()?;
    let registry = Registry::open(&env)?;
    let record = registry.load(&JobId::parse(&args.id)?)?;
    let workspace = record.worktree()?;
    if !record.state.is_finished() {
        eprintln!(
            "note: job {} is still {}: merging what its branch holds now",
            record.id,
            record.state.as_str()
        );
    }
    if let Ok(uncommitted) = crate::workspace::inspect::uncommitted(workspace) {
        if workspace.path.is_dir() && !uncommitted.is_empty() {
            eprintln!(
                "note: {} uncommitted change(s) in {} are not part of the merge (commit them there first)",
                uncommitted.len(),
                workspace.path.display()
            );
        }
    }
    match merge(workspace, &record.id)? {
        Outcome::Merged { head } => {
            println!(
                "merged {} into {} (now at {})",
                workspace.branch,
                workspace.repo.display(),
                &head[..head.len().min(12)]
            );
            Ok(Exit::Success)
        }
        Outcome::UpToDate => {
            println!(
                "nothing to merge: {} already has every commit of {}",
                workspace.repo.display(),
                workspace.branch
            );
            Ok(Exit::Success)
        }
        Outcome::Conflict { files } => {
            eprintln!(
                "error: merging {} into {} conflicts in:\n  {}\nThe merge was aborted: the checkout is as it was.",
                workspace.branch,
                workspace.repo.display(),
                files.join("\n  ")
            );
            eprintln!(
                "help: resolve it by hand (git -C {} merge {}), or have the agent rebase its branch",
                workspace.repo.display(),
                workspace.branch
            );
            Ok(Exit::JobFailed)
        }
    }
}
