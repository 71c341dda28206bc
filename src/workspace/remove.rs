//! `clean`: removes a finished job's worktree, and its branch once merged.
//! Anything uncommitted or unmerged is refused unless forced.

use super::git::Git;
use super::inspect::{losses, Losses};
use super::Workspace;
use anyhow::Result;

#[derive(Debug)]
pub enum Outcome {
    /// Removed. `branch_tip` is set when the branch was deleted (its last
    /// commit, to bring it back with `git branch NAME SHA`).
    Removed {
        branch_tip: Option<String>,
        forced: Losses,
    },
    /// Nothing removed: this would be lost.
    Refused(Losses),
}

/// Removes the worktree (and earlier `fresh` ones) and deletes the branch
/// when no other branch is missing its commits; with `force`, whatever
/// would be lost.
pub fn remove(workspace: &Workspace, force: bool) -> Result<Outcome> {
    let mut all = Losses::default();
    for each in std::iter::once(workspace).chain(&workspace.earlier) {
        let lost = losses(each)?;
        all.uncommitted.extend(
            lost.uncommitted
                .into_iter()
                .map(|l| format!("{}: {l}", each.path.display())),
        );
        all.unmerged.extend(
            lost.unmerged
                .into_iter()
                .map(|l| format!("{}: {l}", each.branch)),
        );
    }
    if !all.is_empty() && !force {
        return Ok(Outcome::Refused(all));
    }
    let mut tip = None;
    for each in workspace.earlier.iter().chain(std::iter::once(workspace)) {
        let deleted = remove_one(each, force)?;
        if std::ptr::eq(each, workspace) {
            tip = deleted;
        }
    }
    Ok(Outcome::Removed {
        branch_tip: tip,
        forced: all,
    })
}

/// Removes one worktree and its branch; returns the deleted branch's tip.
fn remove_one(workspace: &Workspace, force: bool) -> Result<Option<String>> {
    let git = Git::at(&workspace.repo);
    if workspace.path.is_dir() {
        let path = workspace.path.display().to_string();
        let mut args = vec!["worktree", "remove"];
        if force {
            args.push("--force");
        }
        args.push(&path);
        git.ok(&args)?;
    }
    git.ok(&["worktree", "prune"])?;
    if !git.branch_exists(&workspace.branch)? {
        return Ok(None);
    }
    let tip = git.line(&["rev-parse", &format!("refs/heads/{}", workspace.branch)])?;
    // Checked above (or forced): `-D` because `-d` only knows about HEAD
    // and the upstream, not the other branches that hold the commits.
    git.ok(&["branch", "-D", &workspace.branch])?;
    Ok(Some(tip))
}
