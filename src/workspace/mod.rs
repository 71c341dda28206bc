//! Workspaces (SPEC section 10): each job in its own git worktree on its own
//! branch, so several agents work on one repository while the user's
//! checkout is never touched. This module is the only code that runs git.
//!
//! Worktrees live in the registry (`<registry>/worktrees/<job id>`), outside
//! the checkout's files: no `git status` noise in the main checkout, and no
//! tool that searches upwards (cargo, npm, CLAUDE.md) finds the main
//! checkout's files from inside a worktree. Nothing here deletes work
//! except [`remove`], which `clean` calls after checking what would be lost.

pub mod git;
pub mod inspect;
pub mod merge;
pub mod remove;

use crate::config::job::JobSpec;
use crate::error::{config_error, Failure};
use anyhow::{Context, Result};
use git::Git;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A job's worktree, as its record stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    /// The main checkout (its top level): where `merge` merges into.
    pub repo: PathBuf,
    /// The worktree's top level.
    pub path: PathBuf,
    /// Where the agent runs inside it: the workdir's place in the repository.
    #[serde(default, skip_serializing_if = "is_empty_path")]
    pub subdir: PathBuf,
    pub branch: String,
    /// The commit the branch started from.
    pub base: String,
    /// The first attempt that works in this worktree (a `fresh` retry makes
    /// a new one).
    #[serde(default = "one")]
    pub since_attempt: u32,
    /// Worktrees of earlier attempts (`fresh = true`), kept until `clean`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<Workspace>,
    /// When `clean` removed the worktree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<String>,
    /// The `copy` entries copied in (relative paths): while unchanged they
    /// are not the agent's work, so they make the worktree neither dirty
    /// nor something `clean` would lose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copied: Vec<PathBuf>,
}

fn one() -> u32 {
    1
}

fn is_empty_path(path: &Path) -> bool {
    path.as_os_str().is_empty()
}

impl Workspace {
    /// The directory the agent runs in.
    pub fn agent_dir(&self) -> PathBuf {
        self.path.join(&self.subdir)
    }

    /// `DELEGATE_WORKTREE`, `DELEGATE_BRANCH`, `DELEGATE_BASE`.
    pub fn env(&self) -> [(String, String); 3] {
        [
            (
                "DELEGATE_WORKTREE".to_owned(),
                self.path.display().to_string(),
            ),
            ("DELEGATE_BRANCH".to_owned(), self.branch.clone()),
            ("DELEGATE_BASE".to_owned(), self.base.clone()),
        ]
    }
}

/// What `run` learnt about the workdir's repository before registering.
#[derive(Debug, Clone)]
pub struct Checked {
    repo: PathBuf,
    subdir: PathBuf,
    base: String,
}

/// Checks, before anything is registered, that a worktree job can start:
/// git exists, the workdir is in a repository with a commit, the base exists.
pub fn check(spec: &JobSpec) -> Result<Checked, Failure> {
    let in_workdir = Git::at(&spec.workdir);
    let top = in_workdir
        .run(&["rev-parse", "--show-toplevel"])
        .map_err(as_failure)?;
    if !top.success || top.stdout.trim().is_empty() {
        return Err(config_error(format!(
            "job `{}`: workspace = \"worktree\" needs a git repository, and {} is not in one",
            spec.name,
            spec.workdir.display()
        ))
        .help(
            "run it in a repository (`git init` and a first commit), or use workspace = \"dir\"",
        ));
    }
    let repo = PathBuf::from(top.stdout.trim());
    let prefix = in_workdir
        .line(&["rev-parse", "--show-prefix"])
        .map_err(as_failure)?;
    let git = Git::at(&repo);
    let base = resolve_base(&git, spec)?;
    if spec.workspace.base.is_none() {
        refuse_uncommitted_changes(&git, &spec.name)?;
    }
    let template_ok = branch_name(&spec.workspace.branch, &spec.name, 1);
    if !git
        .succeeds(&["check-ref-format", "--branch", &template_ok])
        .map_err(as_failure)?
    {
        return Err(config_error(format!(
            "job `{}`: `branch` = \"{}\" gives `{template_ok}`, which is not a valid branch name",
            spec.name, spec.workspace.branch
        ))
        .help("use letters, digits, `-`, `_`, `.` and `/`, e.g. branch = \"delegate/{name}\""));
    }
    Ok(Checked {
        repo,
        subdir: PathBuf::from(prefix),
        base,
    })
}

/// A git failure while checking a job: a usage error (exit 2) before
/// anything is registered, keeping a classified failure (git missing) as is.
fn as_failure(e: anyhow::Error) -> Failure {
    match e.downcast::<Failure>() {
        Ok(failure) => failure,
        Err(e) => config_error(format!("{e:#}")),
    }
}

/// The commit the job's branch starts from: `base`, or the checkout's HEAD.
fn resolve_base(git: &Git, spec: &JobSpec) -> Result<String, Failure> {
    let repo = git.dir();
    Ok(match &spec.workspace.base {
        Some(base) => git.commit_of(base).map_err(as_failure)?.ok_or_else(|| {
            config_error(format!(
                "job `{}`: `base` = \"{base}\" is not a commit in {}",
                spec.name,
                repo.display()
            ))
            .help("name an existing branch, tag or commit (`git branch -a` lists branches; `git fetch` first for a remote one)")
        })?,
        None => git.commit_of("HEAD").map_err(as_failure)?.ok_or_else(|| {
            config_error(format!(
                "job `{}`: the repository {} has no commit yet, so there is nothing to branch from",
                spec.name,
                repo.display()
            ))
            .help("make a first commit, or set `base`")
        })?,
    })
}

/// The surprise this prevents: the user's uncommitted edits are not in a
/// worktree made from HEAD, so an agent told "finish what I started" would
/// not see them. Untracked files do not count (that is what `copy` is for);
/// an explicit `base` says the user knows what the agent starts from.
fn refuse_uncommitted_changes(git: &Git, job: &str) -> Result<(), Failure> {
    let changes = git
        .lines(&["status", "--porcelain", "--untracked-files=no"])
        .map_err(as_failure)?;
    if changes.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = changes.iter().take(10).map(String::as_str).collect();
    Err(config_error(format!(
        "job `{job}`: the checkout {} has uncommitted changes, which its worktree (made from HEAD) would not have:\n  {}",
        git.dir().display(),
        shown.join("\n  ")
    ))
    .help("commit or stash them first; or set base = \"HEAD\" (job spec or [defaults]) to start from HEAD without them"))
}

/// The job name as a branch component: lower case, `-` for anything else.
fn slug(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let words: Vec<&str> = mapped.split('-').filter(|w| !w.is_empty()).collect();
    let joined = words.join("-");
    let trimmed = joined.trim_matches('.');
    if trimmed.is_empty() {
        "job".into()
    } else {
        trimmed.chars().take(60).collect()
    }
}

/// The `n`th candidate branch name: the template, then `-2`, `-3`, ...
fn branch_name(template: &str, job_name: &str, n: u32) -> String {
    let name = template.replace("{name}", &slug(job_name));
    if n <= 1 {
        name
    } else {
        format!("{name}-{n}")
    }
}

/// Where the worktrees of a registry live.
pub fn worktrees_dir(registry_root: &Path) -> PathBuf {
    registry_root.join("worktrees")
}

/// Creates the worktree of a job about to be registered: a new branch
/// (unique) from the checked base, and the `copy` files.
pub fn create(
    checked: &Checked,
    spec: &JobSpec,
    dir: &Path,
    since_attempt: u32,
) -> Result<Workspace> {
    std::fs::create_dir_all(dir.parent().unwrap_or(dir))
        .with_context(|| format!("creating {}", dir.display()))?;
    let git = Git::at(&checked.repo);
    let path = dir.display().to_string();
    for n in 1..=100 {
        let branch = branch_name(&spec.workspace.branch, &spec.name, n);
        if git.branch_exists(&branch)? {
            continue;
        }
        let added = git.run(&[
            "worktree",
            "add",
            "--no-track",
            "-b",
            &branch,
            &path,
            &checked.base,
        ])?;
        if !added.success {
            // Another job may have taken the name meanwhile, or be taking
            // it right now (git holds `<ref>.lock`): try the next.
            if git.branch_exists(&branch)? || added.stderr.contains(".lock") {
                continue;
            }
            anyhow::bail!(
                "cannot create the worktree {path} on branch {branch}: {}",
                added.stderr.trim()
            );
        }
        let workspace = Workspace {
            repo: checked.repo.clone(),
            path: dir.to_path_buf(),
            subdir: checked.subdir.clone(),
            branch,
            base: checked.base.clone(),
            since_attempt,
            earlier: Vec::new(),
            removed: None,
            copied: Vec::new(),
        };
        let copied = copy_files(&checked.repo, &workspace.path, &spec.workspace.copy)?;
        return Ok(Workspace {
            copied,
            ..workspace
        });
    }
    anyhow::bail!(
        "every branch name from `{}` to `{}-100` is taken",
        branch_name(&spec.workspace.branch, &spec.name, 1),
        branch_name(&spec.workspace.branch, &spec.name, 1)
    )
}

/// `run`: the worktree of a job about to be registered, as a usage error
/// (exit 2) when git cannot make it.
pub fn create_for_job(
    checked: &Checked,
    record: &crate::registry::Record,
    registry_root: &Path,
) -> Result<Workspace, Failure> {
    let dir = worktrees_dir(registry_root).join(&record.id);
    create(checked, &record.spec, &dir, 1).map_err(|e| {
        config_error(format!("job `{}`: {e:#}", record.spec.name))
            .help("nothing was registered; fix the repository and run again")
    })
}

/// Undoes [`create`] for a job that was never registered: the worktree and
/// branch are brand new, so nothing can be lost.
pub fn discard_unregistered(workspace: &Workspace) {
    let git = Git::at(&workspace.repo);
    let path = workspace.path.display().to_string();
    if let Err(e) = git.ok(&["worktree", "remove", "--force", &path]) {
        tracing::warn!("{e:#}");
    }
    if let Err(e) = git.ok(&["branch", "-D", &workspace.branch]) {
        tracing::warn!("{e:#}");
    }
}

/// Copies untracked files (relative to the repository root) into the
/// worktree, when present in the checkout and absent in the worktree;
/// returns those it copied.
fn copy_files(repo: &Path, worktree: &Path, paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut copied = Vec::new();
    for relative in paths {
        let from = repo.join(relative);
        let to = worktree.join(relative);
        if !from.exists() || to.exists() {
            continue;
        }
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        copy_tree(&from, &to)?;
        copied.push(relative.clone());
    }
    Ok(copied)
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let meta =
        std::fs::symlink_metadata(from).with_context(|| format!("reading {}", from.display()))?;
    if meta.file_type().is_symlink() {
        let target =
            std::fs::read_link(from).with_context(|| format!("reading {}", from.display()))?;
        std::os::unix::fs::symlink(&target, to)
            .with_context(|| format!("creating {}", to.display()))?;
    } else if meta.is_dir() {
        std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
        for entry in
            std::fs::read_dir(from).with_context(|| format!("listing {}", from.display()))?
        {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else {
        std::fs::copy(from, to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

/// For the window's wrapper: the worktree attempt `attempt` works in. The
/// same one as before, unless `fresh` asks for a new one on a retry (the
/// old one is kept in `earlier`, never deleted); re-created from its branch
/// when `clean` removed it before a `retry`. Returns the workspace and
/// whether it changed (so the caller records it).
pub fn for_attempt(
    current: &Workspace,
    spec: &JobSpec,
    attempt: u32,
    worktrees: &Path,
    job_id: &str,
) -> Result<(Workspace, bool)> {
    if spec.workspace.fresh && attempt > current.since_attempt {
        let checked = Checked {
            repo: current.repo.clone(),
            subdir: current.subdir.clone(),
            base: current.base.clone(),
        };
        let dir = worktrees.join(format!("{job_id}-attempt-{attempt}"));
        let mut fresh = create(&checked, spec, &dir, attempt)?;
        let mut earlier = current.clone();
        fresh.earlier = std::mem::take(&mut earlier.earlier);
        fresh.earlier.push(earlier);
        return Ok((fresh, true));
    }
    if current.path.is_dir() && current.removed.is_none() {
        return Ok((current.clone(), false));
    }
    // Removed by `clean` (the job had finished): bring it back.
    let git = Git::at(&current.repo);
    git.ok(&["worktree", "prune"])?;
    let path = current.path.display().to_string();
    if git.branch_exists(&current.branch)? {
        git.ok(&["worktree", "add", &path, &current.branch])?;
    } else {
        git.ok(&[
            "worktree",
            "add",
            "--no-track",
            "-b",
            &current.branch,
            &path,
            &current.base,
        ])?;
    }
    let copied = copy_files(&current.repo, &current.path, &spec.workspace.copy)?;
    let mut back = current.clone();
    back.removed = None;
    back.copied = copied;
    Ok((back, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_come_from_the_job_name_and_get_suffixes() {
        assert_eq!(
            branch_name("delegate/{name}", "Fix the flaky test!", 1),
            "delegate/fix-the-flaky-test"
        );
        assert_eq!(branch_name("delegate/{name}", "x", 3), "delegate/x-3");
        assert_eq!(branch_name("agents/{name}", "..", 1), "agents/job");
        assert_eq!(branch_name("fixed", "a", 2), "fixed-2");
    }
}
