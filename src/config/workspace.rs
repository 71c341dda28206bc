//! Workspace keys (SPEC section 10): `workspace`, `base`, `branch`, `copy`,
//! `setup`, `fresh`, in a job spec and in `[defaults]`; resolved into the
//! [`WorkspaceSpec`] a job record carries. Git itself is never run here:
//! `src/workspace/` checks the repository and the base when `run` starts.

use crate::error::{config_error, Failure};
use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};

/// Where a job's agent works.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceMode {
    /// The workdir as it is (the default).
    #[default]
    Dir,
    /// A git worktree of the workdir's repository, on its own branch.
    Worktree,
}

/// The workspace keys of one layer (job spec or `[defaults]`), all optional.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WorkspaceKeys {
    pub workspace: Option<WorkspaceMode>,
    pub base: Option<String>,
    pub branch: Option<String>,
    pub copy: Option<Vec<PathBuf>>,
    pub setup: Option<Vec<Vec<String>>>,
    pub fresh: Option<bool>,
}

pub const DEFAULT_BRANCH: &str = "delegate/{name}";

impl super::file::DefaultsFile {
    /// The workspace keys of `[defaults]`.
    pub fn workspace_keys(&self) -> WorkspaceKeys {
        WorkspaceKeys {
            workspace: self.workspace,
            base: self.base.clone(),
            branch: self.branch.clone(),
            copy: self.copy.clone(),
            setup: self.setup.clone(),
            fresh: self.fresh,
        }
    }
}

impl WorkspaceKeys {
    /// Fills the unset keys of `self` from `low`.
    pub fn merge_from(&mut self, low: &WorkspaceKeys) {
        self.workspace = self.workspace.or(low.workspace);
        if self.base.is_none() {
            self.base.clone_from(&low.base);
        }
        if self.branch.is_none() {
            self.branch.clone_from(&low.branch);
        }
        if self.copy.is_none() {
            self.copy.clone_from(&low.copy);
        }
        if self.setup.is_none() {
            self.setup.clone_from(&low.setup);
        }
        self.fresh = self.fresh.or(low.fresh);
    }

    /// Checks what can be checked without git; `key` names the key at fault
    /// (e.g. "`copy` in job.toml").
    pub fn validate(&self, key: &dyn Fn(&str) -> String) -> Result<(), Failure> {
        for path in self.copy.iter().flatten() {
            if !stays_inside(path) {
                return Err(config_error(format!(
                    "{}: `{}` must be a relative path inside the repository",
                    key("copy"),
                    path.display()
                ))
                .help("write paths relative to the repository root, e.g. copy = [\".env\"]"));
            }
        }
        for argv in self.setup.iter().flatten() {
            if argv.first().is_none_or(String::is_empty) {
                return Err(config_error(format!(
                    "{}: every command must name a program",
                    key("setup")
                ))
                .help("write argv lists: setup = [[\"npm\", \"ci\"], [\"make\", \"deps\"]]"));
            }
        }
        if let Some(branch) = &self.branch {
            if branch.trim().is_empty() {
                return Err(config_error(format!("{}: is empty", key("branch")))
                    .help(format!("leave it out for the default `{DEFAULT_BRANCH}`")));
            }
        }
        if self.base.as_ref().is_some_and(|b| b.trim().is_empty()) {
            return Err(config_error(format!("{}: is empty", key("base")))
                .help("leave it out to start from the checkout's HEAD"));
        }
        Ok(())
    }

    /// The resolved settings for a job named `name`.
    pub fn resolve(&self) -> WorkspaceSpec {
        WorkspaceSpec {
            mode: self.workspace.unwrap_or_default(),
            base: self.base.clone(),
            branch: self
                .branch
                .clone()
                .unwrap_or_else(|| DEFAULT_BRANCH.to_owned()),
            copy: self.copy.clone().unwrap_or_default(),
            setup: self.setup.clone().unwrap_or_default(),
            fresh: self.fresh.unwrap_or(false),
        }
    }
}

/// A relative path with no `..`: it cannot leave the directory it is joined to.
fn stays_inside(path: &Path) -> bool {
    !path.as_os_str().is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// A job's workspace settings, as its record stores them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceSpec {
    pub mode: WorkspaceMode,
    /// What to start from (a commit, branch or tag); `None`: the HEAD of
    /// the workdir's checkout when `run` starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Branch name template; `{name}` is the job's name.
    pub branch: String,
    /// Untracked files (relative to the repository root) copied in when present.
    #[serde(default)]
    pub copy: Vec<PathBuf>,
    /// Commands (argv) run in the worktree before the agent, every attempt.
    #[serde(default)]
    pub setup: Vec<Vec<String>>,
    /// A retry starts from a new worktree instead of continuing in the last.
    #[serde(default)]
    pub fresh: bool,
}

impl Default for WorkspaceSpec {
    fn default() -> WorkspaceSpec {
        WorkspaceKeys::default().resolve()
    }
}

impl WorkspaceSpec {
    /// The workdir as it is, with nothing else set: not written to records,
    /// so records of ordinary jobs keep their old shape.
    pub fn is_default(&self) -> bool {
        *self == WorkspaceSpec::default()
    }

    pub fn is_worktree(&self) -> bool {
        self.mode == WorkspaceMode::Worktree
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn higher_layers_win_key_by_key() {
        let mut job = WorkspaceKeys {
            branch: Some("agents/{name}".into()),
            ..WorkspaceKeys::default()
        };
        job.merge_from(&WorkspaceKeys {
            workspace: Some(WorkspaceMode::Worktree),
            branch: Some("ignored".into()),
            fresh: Some(true),
            ..WorkspaceKeys::default()
        });
        let spec = job.resolve();
        assert_eq!(spec.mode, WorkspaceMode::Worktree);
        assert_eq!(spec.branch, "agents/{name}");
        assert!(spec.fresh);
        assert!(WorkspaceKeys::default().resolve().is_default());
        assert_eq!(WorkspaceKeys::default().resolve().branch, DEFAULT_BRANCH);
    }

    #[test]
    fn defaults_take_the_keys_and_retry_on_knows_setup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tmux-delegate.toml");
        std::fs::write(
            &path,
            "[defaults]\nworkspace = \"worktree\"\nbase = \"main\"\nfresh = true\n\
             [defaults.retry]\non = [\"setup\", \"error\"]\n",
        )
        .expect("write");
        let layer = super::super::file::Layer::load(
            super::super::Source::Project(path.clone()),
            &path,
            None,
        )
        .expect("loads");
        let keys = layer.defaults.workspace_keys();
        assert_eq!(keys.workspace, Some(WorkspaceMode::Worktree));
        assert_eq!(keys.base.as_deref(), Some("main"));
        assert_eq!(
            layer.defaults.retry.and_then(|r| r.on),
            Some(vec![
                crate::model::FailureKind::Setup,
                crate::model::FailureKind::Error
            ])
        );
        std::fs::write(&path, "[defaults]\nsetup = [[]]\n").expect("write");
        let failure = super::super::file::Layer::load(
            super::super::Source::Project(path.clone()),
            &path,
            None,
        )
        .expect_err("empty setup command");
        assert!(failure.message.contains("`defaults.setup`"), "{failure}");
    }

    #[test]
    fn copy_paths_may_not_leave_the_repository_and_setup_needs_programs() {
        let key = |k: &str| format!("`{k}` in job.toml");
        for bad in ["/etc/passwd", "../secrets", "a/../../b", ""] {
            let keys = WorkspaceKeys {
                copy: Some(vec![PathBuf::from(bad)]),
                ..WorkspaceKeys::default()
            };
            let failure = keys.validate(&key).expect_err(bad);
            assert!(failure.message.contains("`copy` in job.toml"), "{failure}");
        }
        let ok = WorkspaceKeys {
            copy: Some(vec![".env".into(), "config/local.toml".into()]),
            setup: Some(vec![vec!["npm".into(), "ci".into()]]),
            ..WorkspaceKeys::default()
        };
        assert!(ok.validate(&key).is_ok());
        let empty = WorkspaceKeys {
            setup: Some(vec![vec![]]),
            ..WorkspaceKeys::default()
        };
        assert!(empty.validate(&key).is_err());
    }
}
