//! `merge ID`: the job's branch into the main checkout's current branch,
//! only when that checkout is clean; a conflict is aborted so the checkout
//! is exactly as it was.

use super::git::Git;
use super::Workspace;
use crate::error::{config_error, Failure};
use anyhow::Result;

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Merged; the checkout's HEAD is now this commit.
    Merged { head: String },
    /// The checkout already has every commit of the branch.
    UpToDate,
    /// Conflicts in these files; the merge was aborted.
    Conflict { files: Vec<String> },
}

/// Refuses (exit 2) unless the main checkout can take a merge untouched:
/// no uncommitted change to a tracked file, no merge or rebase under way.
fn ensure_clean(git: &Git) -> Result<()> {
    let changes = git.lines(&["status", "--porcelain", "--untracked-files=no"])?;
    if !changes.is_empty() {
        let repo = git.dir().display();
        let failure: Failure = config_error(format!(
            "the checkout {repo} has uncommitted changes; merging now could mix them with the job's:\n  {}",
            changes.join("\n  ")
        ))
        .help(format!(
            "commit or stash them first (git -C {repo} stash), then merge again"
        ));
        return Err(failure.into());
    }
    for marker in ["MERGE_HEAD", "REBASE_HEAD", "CHERRY_PICK_HEAD"] {
        if git.commit_of(marker)?.is_some() {
            return Err(config_error(format!(
                "the checkout {} is in the middle of a merge, rebase or cherry-pick ({marker})",
                git.dir().display()
            ))
            .help("finish or abort it first")
            .into());
        }
    }
    Ok(())
}

/// Merges the job's branch into the main checkout's current branch.
pub fn merge(workspace: &Workspace, job: &str) -> Result<Outcome> {
    let git = Git::at(&workspace.repo);
    if !workspace.repo.is_dir() {
        return Err(config_error(format!(
            "the job's repository {} no longer exists",
            workspace.repo.display()
        ))
        .into());
    }
    if !git.branch_exists(&workspace.branch)? {
        return Err(config_error(format!(
            "the job's branch {} no longer exists in {}",
            workspace.branch,
            workspace.repo.display()
        ))
        .help("nothing to merge: `clean` deletes a branch only once it is merged")
        .into());
    }
    ensure_clean(&git)?;
    let branch = format!("refs/heads/{}", workspace.branch);
    let missing = git.line(&["rev-list", "--count", &format!("HEAD..{branch}")])?;
    if missing == "0" {
        return Ok(Outcome::UpToDate);
    }
    let before = git.line(&["rev-parse", "HEAD"])?;
    let message = format!(
        "Merge branch '{}' (tmux-delegate job {job})",
        workspace.branch
    );
    let merged = git.run(&["merge", "--no-edit", "-m", &message, &branch])?;
    if merged.success {
        return Ok(Outcome::Merged {
            head: git.line(&["rev-parse", "HEAD"])?,
        });
    }
    if git.commit_of("MERGE_HEAD")?.is_some() {
        let files = git.lines(&["diff", "--name-only", "--diff-filter=U"])?;
        git.ok(&["merge", "--abort"])?;
        let after = git.line(&["rev-parse", "HEAD"])?;
        anyhow::ensure!(
            after == before,
            "after `git merge --abort` HEAD is {after}, not {before} as before the merge"
        );
        return Ok(Outcome::Conflict { files });
    }
    // Git refused before touching anything (e.g. an untracked file the
    // merge would overwrite).
    Err(
        config_error(format!("git refused the merge: {}", merged.stderr.trim()))
            .help("move the files git names out of the way, then merge again")
            .into(),
    )
}
