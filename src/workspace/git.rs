//! Runs the user's own `git` (never a library: the user's config, hooks and
//! credentials apply, as they would in their shell). Output is parsed from
//! porcelain / plumbing formats only.

use crate::error::{config_error, Failure};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What one git command printed.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// `git -C <dir> ...`.
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
}

impl Git {
    pub fn at(dir: &Path) -> Git {
        Git {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The command, isolated from variables that would point git at another
    /// repository (a hook's `GIT_DIR`, say) and never prompting.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("git");
        command
            .arg("-C")
            .arg(&self.dir)
            .args(args)
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE")
            .env_remove("GIT_COMMON_DIR")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_MERGE_AUTOEDIT", "no")
            .stdin(Stdio::null());
        command
    }

    /// Runs git and captures its output, whatever its exit status.
    pub fn run(&self, args: &[&str]) -> Result<Output> {
        let output = match self.command(args).output() {
            Ok(output) => output,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(git_missing().into());
            }
            Err(e) => {
                return Err(e).with_context(|| format!("running git {}", args.join(" ")));
            }
        };
        Ok(Output {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs git; a non-zero exit is an error carrying git's own words.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let output = self.run(args)?;
        if output.success {
            Ok(output.stdout)
        } else {
            anyhow::bail!(
                "`git {}` in {} failed: {}",
                args.join(" "),
                self.dir.display(),
                output.stderr.trim()
            )
        }
    }

    /// The first line of what git printed, trimmed.
    pub fn line(&self, args: &[&str]) -> Result<String> {
        Ok(self
            .ok(args)?
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned())
    }

    /// Whether the command exits 0 (for `--verify`, `--is-ancestor` and the like).
    pub fn succeeds(&self, args: &[&str]) -> Result<bool> {
        Ok(self.run(args)?.success)
    }

    /// The commit `rev` names, if it names one.
    pub fn commit_of(&self, rev: &str) -> Result<Option<String>> {
        let spec = format!("{rev}^{{commit}}");
        let output = self.run(&[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &spec,
        ])?;
        Ok(output
            .success
            .then(|| output.stdout.trim().to_owned())
            .filter(|s| !s.is_empty()))
    }

    pub fn branch_exists(&self, branch: &str) -> Result<bool> {
        let reference = format!("refs/heads/{branch}");
        self.succeeds(&["show-ref", "--verify", "--quiet", &reference])
    }

    /// NUL-separated output (`-z`): paths exactly as they are, unquoted.
    pub fn paths(&self, args: &[&str]) -> Result<Vec<String>> {
        Ok(self
            .ok(args)?
            .split('\0')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// Lines of output, empty ones dropped.
    pub fn lines(&self, args: &[&str]) -> Result<Vec<String>> {
        Ok(self
            .ok(args)?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect())
    }
}

pub fn git_missing() -> Failure {
    config_error("git is not installed (workspace = \"worktree\" runs the user's `git`)")
        .help("install it (Debian: sudo apt-get install git), or use workspace = \"dir\"")
}
