//! What a job's worktree holds: its status for `status --json`, its diff
//! against the base, and what removing it would lose.

use super::git::Git;
use super::Workspace;
use anyhow::Result;
use std::collections::BTreeSet;
use std::path::Path;

/// A job's `status --json` row: the record's, plus, for a worktree job,
/// the worktree's live state as `workspace`.
pub fn status_row(record: &crate::registry::Record) -> serde_json::Value {
    let mut row = record.summary();
    if let Some(workspace) = &record.workspace {
        row["workspace"] = describe(workspace);
    }
    row
}

/// `status --json`'s `workspace`: {path, branch, base, ahead, changed,
/// dirty}, plus `repo` and `exists`. Values git cannot give are null.
pub fn describe(workspace: &Workspace) -> serde_json::Value {
    let exists = workspace.path.is_dir() && workspace.removed.is_none();
    let repo = Git::at(&workspace.repo);
    let ahead = repo
        .line(&[
            "rev-list",
            "--count",
            &format!("{}..refs/heads/{}", workspace.base, workspace.branch),
        ])
        .ok()
        .and_then(|n| n.parse::<u64>().ok());
    let (changed, dirty) = if exists {
        (
            changed_files(workspace).ok().map(|f| f.len()),
            uncommitted(workspace).ok().map(|u| !u.is_empty()),
        )
    } else {
        let committed = repo
            .lines(&[
                "diff",
                "--name-only",
                &workspace.base,
                &format!("refs/heads/{}", workspace.branch),
                "--",
            ])
            .ok()
            .map(|f| f.len());
        (committed, Some(false))
    };
    serde_json::json!({
        "path": workspace.path,
        "branch": workspace.branch,
        "base": workspace.base,
        "ahead": ahead,
        "changed": changed,
        "dirty": dirty,
        "repo": workspace.repo,
        "exists": exists,
    })
}

/// Files that differ from the base: committed, staged, unstaged and untracked.
pub fn changed_files(workspace: &Workspace) -> Result<BTreeSet<String>> {
    let git = Git::at(&workspace.path);
    let mut files: BTreeSet<String> = git
        .paths(&["diff", "--name-only", "-z", &workspace.base, "--"])?
        .into_iter()
        .collect();
    files.extend(
        untracked(&git)?
            .into_iter()
            .filter(|f| !is_untouched_copy(workspace, f)),
    );
    Ok(files)
}

fn untracked(git: &Git) -> Result<Vec<String>> {
    git.paths(&["ls-files", "--others", "--exclude-standard", "-z"])
}

/// A file `copy` brought in, still identical to the checkout's: not work.
fn is_untouched_copy(workspace: &Workspace, relative: &str) -> bool {
    let relative = relative.trim_end_matches('/');
    workspace
        .copied
        .iter()
        .any(|c| c.as_path() == Path::new(relative))
        && match (
            std::fs::read(workspace.path.join(relative)),
            std::fs::read(workspace.repo.join(relative)),
        ) {
            (Ok(here), Ok(there)) => here == there,
            _ => false,
        }
}

/// `git status --porcelain` lines of the worktree: anything not committed
/// (untouched `copy` files aside).
pub fn uncommitted(workspace: &Workspace) -> Result<Vec<String>> {
    Ok(Git::at(&workspace.path)
        .lines(&["status", "--porcelain"])?
        .into_iter()
        .filter(|line| {
            line.strip_prefix("?? ")
                .is_none_or(|path| !is_untouched_copy(workspace, path))
        })
        .collect())
}

/// Commits of the job's branch that no other local branch holds (so
/// deleting the branch would lose them), one `--oneline` line each.
pub fn unmerged_commits(workspace: &Workspace) -> Result<Vec<String>> {
    let git = Git::at(&workspace.repo);
    if !git.branch_exists(&workspace.branch)? {
        return Ok(Vec::new());
    }
    let own = format!("refs/heads/{}", workspace.branch);
    // `--exclude` patterns for `--branches` are relative to refs/heads/.
    let exclude = format!("--exclude={}", workspace.branch);
    git.lines(&[
        "log",
        "--oneline",
        "--no-decorate",
        &own,
        "--not",
        &workspace.base,
        &exclude,
        "--branches",
    ])
}

/// What removing a worktree (and deleting its branch) would lose.
#[derive(Debug, Default)]
pub struct Losses {
    /// `git status --porcelain` lines of the worktree.
    pub uncommitted: Vec<String>,
    /// Commits only the job's branch holds.
    pub unmerged: Vec<String>,
}

impl Losses {
    pub fn is_empty(&self) -> bool {
        self.uncommitted.is_empty() && self.unmerged.is_empty()
    }
}

/// What [`super::remove::remove`] would lose for this worktree.
pub fn losses(workspace: &Workspace) -> Result<Losses> {
    let uncommitted = if workspace.path.is_dir() && workspace.removed.is_none() {
        uncommitted(workspace)?
    } else {
        Vec::new()
    };
    Ok(Losses {
        uncommitted,
        unmerged: unmerged_commits(workspace)?,
    })
}

/// Writes the job's changes against its base to stdout: the worktree's
/// committed and uncommitted changes to tracked files, then untracked files
/// as new ones. Without a worktree (cleaned): the branch against the base.
pub fn diff(workspace: &Workspace, stat: bool) -> Result<()> {
    diff_into(workspace, stat, None)
}

/// The same changes as text (no colours), for the MCP server's `diff`.
pub fn diff_text(workspace: &Workspace, stat: bool) -> Result<String> {
    let mut text = Vec::new();
    diff_into(workspace, stat, Some(&mut text))?;
    Ok(String::from_utf8_lossy(&text).into_owned())
}

/// `diff`'s git commands, their output on our stdout or into `capture`.
fn diff_into(workspace: &Workspace, stat: bool, mut capture: Option<&mut Vec<u8>>) -> Result<()> {
    let exists = workspace.path.is_dir() && workspace.removed.is_none();
    let mode = if stat { "--stat" } else { "--patch" };
    if !exists {
        let branch = format!("refs/heads/{}", workspace.branch);
        return pass_through(
            &Git::at(&workspace.repo),
            &["diff", mode, &workspace.base, &branch, "--"],
            capture,
        );
    }
    let git = Git::at(&workspace.path);
    pass_through(
        &git,
        &["diff", mode, &workspace.base, "--"],
        capture.as_deref_mut(),
    )?;
    for file in untracked(&git)?
        .into_iter()
        .filter(|f| !is_untouched_copy(workspace, f))
    {
        // `--no-index` exits 1 when the files differ, which they do.
        pass_through_any(
            &git,
            &["diff", "--no-index", mode, "--", "/dev/null", &file],
            capture.as_deref_mut(),
        )?;
    }
    Ok(())
}

/// Runs a git command with its stdout going to ours, or into `capture`.
fn pass_through(git: &Git, args: &[&str], capture: Option<&mut Vec<u8>>) -> Result<()> {
    let status = run_to_stdout(git, args, capture)?;
    anyhow::ensure!(
        status.success(),
        "`git {}` in {} failed",
        args.join(" "),
        git.dir().display()
    );
    Ok(())
}

fn pass_through_any(git: &Git, args: &[&str], capture: Option<&mut Vec<u8>>) -> Result<()> {
    let status = run_to_stdout(git, args, capture)?;
    anyhow::ensure!(
        matches!(status.code(), Some(0 | 1)),
        "`git {}` in {} failed",
        args.join(" "),
        git.dir().display()
    );
    Ok(())
}

fn run_to_stdout(
    git: &Git,
    args: &[&str],
    capture: Option<&mut Vec<u8>>,
) -> Result<std::process::ExitStatus> {
    let mut full = vec!["--no-pager"];
    full.extend_from_slice(args);
    let mut command = git.command(&full);
    let ran = match capture {
        None => command.status(),
        Some(text) => command.output().map(|out| {
            text.extend_from_slice(&out.stdout);
            out.status
        }),
    };
    ran.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            super::git::git_missing().into()
        } else {
            anyhow::Error::from(e).context("running git")
        }
    })
}
