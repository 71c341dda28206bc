//! Job specs (`JOB.toml`: one job at top level, or several as `[[jobs]]`) and
//! their resolution against the configuration defaults and the command line.

use super::file::{
    parse_toml, read_toml, validate_retry, validate_timeouts, RetryFile, TimeoutsFile,
};
use super::origin::{KeyLines, Origin};
use super::{
    expand_path, merge_retry, merge_timeouts, Config, RetryPolicy, Timeouts, TmuxSettings,
};
use crate::error::{config_error, Failure};
use crate::model::OnWaiting;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One job as written in a job spec file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    pub name: Option<String>,
    pub agent: Option<String>,
    pub prompt: Option<String>,
    pub workdir: Option<PathBuf>,
    pub pass_env: Option<Vec<String>>,
    pub on_waiting: Option<OnWaiting>,
    pub max_tokens: Option<u64>,
    pub max_cost_usd: Option<f64>,
    pub timeouts: Option<TimeoutsFile>,
    pub retry: Option<RetryFile>,
    pub limits: Option<super::file::LimitsFile>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    // Workspace keys (SPEC section 10), see config/workspace.rs.
    pub workspace: Option<super::workspace::WorkspaceMode>,
    pub base: Option<String>,
    pub branch: Option<String>,
    pub copy: Option<Vec<PathBuf>>,
    pub setup: Option<Vec<Vec<String>>>,
    pub fresh: Option<bool>,
    // Queue keys (SPEC section 11), see supervisor/queue.rs.
    pub after: Option<Vec<String>>,
    pub after_failure: Option<crate::supervisor::queue::AfterFailure>,
    pub priority: Option<i64>,
    /// Where this job's keys are in its file (set by [`load_job_file`]).
    #[serde(skip)]
    pub keys: Option<KeyLines>,
    /// `jobs.N.` for the N-th job of a `[[jobs]]` list, else empty.
    #[serde(skip)]
    pub key_prefix: String,
}

/// Where one job's keys are written in its file.
struct JobKeys {
    keys: Option<KeyLines>,
    prefix: String,
}

impl JobKeys {
    fn of(file: &JobFile) -> JobKeys {
        JobKeys {
            keys: file.keys.clone(),
            prefix: file.key_prefix.clone(),
        }
    }

    /// Where `key` of this job is written, e.g. "`timeouts.idle` at job.toml:4".
    fn origin(&self, path: &Path, key: &str) -> Origin {
        match &self.keys {
            Some(keys) => match keys.origin(&format!("{}{key}", self.prefix)) {
                Origin::File { path, line, .. } => Origin::File {
                    key: key.to_owned(),
                    path,
                    line,
                },
                other => other,
            },
            None => Origin::File {
                key: key.to_owned(),
                path: path.to_path_buf(),
                line: None,
            },
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobList {
    jobs: Vec<JobFile>,
}

/// Every job of the given spec files, each with its file; with no file,
/// one job that flags alone describe.
pub fn load_job_files(specs: &[PathBuf]) -> Result<Vec<(Option<PathBuf>, JobFile)>, Failure> {
    let mut files: Vec<(Option<PathBuf>, JobFile)> = Vec::new();
    for path in specs {
        files.extend(
            load_job_file(path)?
                .into_iter()
                .map(|f| (Some(path.clone()), f)),
        );
    }
    if files.is_empty() {
        files.push((None, JobFile::default()));
    }
    Ok(files)
}

/// Reads a job spec file: a single job, or a `[[jobs]]` list.
pub fn load_job_file(path: &Path) -> Result<Vec<JobFile>, Failure> {
    let text = read_toml(path)?;
    let is_list = text
        .parse::<toml::Table>()
        .map(|table| table.contains_key("jobs"))
        .unwrap_or(false);
    let mut jobs = if is_list {
        let list: JobList = parse_toml(path, &text)?;
        if list.jobs.is_empty() {
            return Err(config_error(format!("{}: `jobs` is empty", path.display())));
        }
        list.jobs
    } else {
        vec![parse_toml(path, &text)?]
    };
    let keys = KeyLines::of(path, &text);
    for (index, job) in jobs.iter_mut().enumerate() {
        job.keys = Some(keys.clone());
        if is_list {
            job.key_prefix = format!("jobs.{index}.");
        }
    }
    Ok(jobs)
}

/// Command-line values that override a job spec.
#[derive(Debug, Default, Clone)]
pub struct JobFlags {
    pub prompt: Option<String>,
    pub agent: Option<String>,
    pub name: Option<String>,
    pub workdir: Option<PathBuf>,
    /// `run --worktree`.
    pub workspace: Option<super::workspace::WorkspaceMode>,
}

/// A job with every setting resolved: what the record stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub name: String,
    pub agent: String,
    pub prompt: String,
    pub workdir: PathBuf,
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub pass_env: Vec<String>,
    pub on_waiting: OnWaiting,
    /// What one attempt may spend.
    #[serde(default)]
    pub budget: crate::model::Budget,
    /// What a usage limit does.
    #[serde(default)]
    pub limits: crate::model::LimitPolicy,
    pub tmux: TmuxSettings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_file: Option<PathBuf>,
    #[serde(
        default,
        skip_serializing_if = "super::workspace::WorkspaceSpec::is_default"
    )]
    pub workspace: super::workspace::WorkspaceSpec,
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A name derived from the prompt's first words, for jobs without one.
pub fn name_from_prompt(prompt: &str) -> String {
    let words: Vec<String> = prompt
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(4)
        .map(str::to_ascii_lowercase)
        .collect();
    if words.is_empty() {
        "job".into()
    } else {
        words.join("-").chars().take(40).collect()
    }
}

impl Config {
    /// Resolves one job: flags > job spec > config defaults.
    /// The job file's budget keys over the defaults'.
    fn budget_of(
        &self,
        max_tokens: Option<u64>,
        max_cost_usd: Option<f64>,
    ) -> crate::model::Budget {
        crate::model::Budget {
            max_tokens: max_tokens.or(self.defaults.budget.max_tokens),
            max_cost_usd: max_cost_usd.or(self.defaults.budget.max_cost_usd),
        }
    }

    /// `[timeouts]` and `[retry]`: the job file's, checked, over `[defaults]`.
    fn timing_of(
        &self,
        timeouts: &Option<TimeoutsFile>,
        retry: &Option<RetryFile>,
        where_: &dyn Fn(&str) -> String,
    ) -> Result<(TimeoutsFile, RetryFile), Failure> {
        let problem =
            |key: &str, problem: String| config_error(format!("{}: {problem}", where_(key)));
        if let Some(timeouts) = timeouts {
            validate_timeouts(timeouts, "timeouts", &problem)?;
        }
        let mut timeouts = timeouts.clone().unwrap_or_default();
        merge_timeouts(&mut timeouts, &self.defaults.timeouts);
        let mut retry = retry.clone().unwrap_or_default();
        validate_retry(&retry, "retry", &problem)?;
        merge_retry(&mut retry, &self.defaults.retry);
        Ok((timeouts, retry))
    }

    /// `[limits]`: the job file's keys over its agent's, over `[defaults]`.
    fn limits_of(
        &self,
        file: Option<super::file::LimitsFile>,
        agent: &str,
    ) -> crate::model::LimitPolicy {
        let agent = self
            .agents
            .get(agent)
            .and_then(|a| a.limits)
            .unwrap_or_default();
        file.unwrap_or_default()
            .or(agent)
            .or(self.defaults.limits)
            .resolve()
    }

    pub fn resolve_job(
        &self,
        spec: Option<(&Path, JobFile)>,
        flags: &JobFlags,
    ) -> Result<JobSpec, Failure> {
        let (spec_path, file) = match spec {
            Some((path, file)) => (Some(path), file),
            None => (None, JobFile::default()),
        };
        let job_keys = JobKeys::of(&file);
        let where_ = |key: &str| match spec_path {
            Some(path) => job_keys.origin(path, key).to_string(),
            None => format!("`--{key}`"),
        };
        let prompt = flags.prompt.clone().or(file.prompt).unwrap_or_default();
        let name = flags
            .name
            .clone()
            .or(file.name)
            .unwrap_or_else(|| name_from_prompt(&prompt));
        if name.trim().is_empty() || name.contains(['\n', '\r', '\0']) {
            return Err(config_error(format!(
                "{}: a job name must be one non-empty line",
                if flags.name.is_some() {
                    Origin::Flag("--name").to_string()
                } else {
                    where_("name")
                }
            )));
        }
        let agent = flags
            .agent
            .clone()
            .or(file.agent)
            .unwrap_or_else(|| self.defaults.agent.clone());
        let workdir = self.resolve_workdir(flags, file.workdir.as_deref(), spec_path, &where_)?;
        let pass_env = file
            .pass_env
            .unwrap_or_else(|| self.defaults.pass_env.clone());
        check_env_names(file.env.keys(), &pass_env, &where_)?;
        let (timeouts, retry) = self.timing_of(&file.timeouts, &file.retry, &where_)?;
        let budget = self.budget_of(file.max_tokens, file.max_cost_usd);
        let limits = self.limits_of(file.limits, &agent);
        let mut workspace = super::workspace::WorkspaceKeys {
            workspace: file.workspace,
            base: file.base,
            branch: file.branch,
            copy: file.copy,
            setup: file.setup,
            fresh: file.fresh,
        };
        workspace.validate(&where_)?;
        workspace.workspace = flags.workspace.or(workspace.workspace);
        workspace.merge_from(&self.defaults.workspace);
        Ok(JobSpec {
            name,
            agent,
            prompt,
            workdir,
            timeouts: Timeouts::resolve(&timeouts),
            retry: RetryPolicy::resolve(&retry),
            env: file.env,
            pass_env,
            on_waiting: file.on_waiting.unwrap_or(self.defaults.on_waiting),
            budget,
            limits,
            tmux: TmuxSettings::resolve(&self.defaults.tmux),
            spec_file: spec_path.map(Path::to_path_buf),
            workspace: workspace.resolve(),
        })
    }

    /// The job's folder: `--workdir`, else the spec's `workdir` (relative to
    /// the spec file), else the current one; it must exist.
    fn resolve_workdir(
        &self,
        flags: &JobFlags,
        file_workdir: Option<&Path>,
        spec_path: Option<&Path>,
        where_: &dyn Fn(&str) -> String,
    ) -> Result<PathBuf, Failure> {
        let workdir = match (&flags.workdir, file_workdir, spec_path) {
            (Some(dir), _, _) => expand_path(dir, &self.env.cwd, self.env.home.as_deref()),
            (None, Some(dir), Some(path)) => expand_path(
                dir,
                path.parent().unwrap_or(Path::new(".")),
                self.env.home.as_deref(),
            ),
            _ => self.env.cwd.clone(),
        };
        if !workdir.is_dir() {
            // `--workdir` wins over the spec: blame what was really used.
            let (origin, help) = match (&flags.workdir, spec_path) {
                (None, Some(_)) => (
                    where_("workdir"),
                    "create it, or point `workdir` at an existing directory",
                ),
                _ => (
                    Origin::Flag("--workdir").to_string(),
                    "create it, or pass an existing directory to --workdir",
                ),
            };
            return Err(config_error(format!(
                "{origin}: {} is not a directory",
                workdir.display()
            ))
            .help(help));
        }
        Ok(workdir)
    }
}

/// `env` keys and `pass_env` names must be environment variable names.
fn check_env_names<'a>(
    env_keys: impl Iterator<Item = &'a String>,
    pass_env: &[String],
    where_: &dyn Fn(&str) -> String,
) -> Result<(), Failure> {
    for key in env_keys {
        if !is_env_name(key) {
            return Err(config_error(format!(
                "{}: `{key}` is not a valid environment variable name",
                where_("env")
            )));
        }
    }
    if let Some(bad) = pass_env.iter().find(|n| !is_env_name(n)) {
        return Err(config_error(format!(
            "{}: `{bad}` is not a valid environment variable name",
            where_("pass_env")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env_with;
    use std::time::Duration;

    #[test]
    fn single_job_and_job_lists_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let one = dir.path().join("one.toml");
        std::fs::write(
            &one,
            "name = \"a\"\nprompt = \"p\"\n[timeouts]\nidle = \"5m\"\n",
        )
        .expect("write");
        assert_eq!(load_job_file(&one).expect("loads").len(), 1);
        let many = dir.path().join("many.toml");
        std::fs::write(
            &many,
            "[[jobs]]\nprompt = \"a\"\n[[jobs]]\nprompt = \"b\"\n",
        )
        .expect("write");
        assert_eq!(load_job_file(&many).expect("loads").len(), 2);
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "promt = \"a\"\n").expect("write");
        let failure = load_job_file(&bad).expect_err("unknown key");
        assert!(
            failure.message.contains("bad.toml:1:1"),
            "{}",
            failure.message
        );
        assert_eq!(
            failure.help.as_deref(),
            Some("a similar key exists: `prompt`")
        );
    }

    #[test]
    fn flags_override_spec_which_overrides_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("tmux-delegate.toml"),
            "[defaults]\nagent = \"codex\"\n[defaults.timeouts]\nidle = \"1m\"\nstart = \"9s\"\n",
        )
        .expect("write");
        let config = Config::load(env_with(&[], dir.path())).expect("loads");
        let file = JobFile {
            agent: Some("aider".into()),
            prompt: Some("Fix the flaky parser test".into()),
            timeouts: Some(TimeoutsFile {
                idle: Some(crate::config::file::HumanDuration(Duration::from_secs(300))),
                ..TimeoutsFile::default()
            }),
            ..JobFile::default()
        };
        let spec_path = dir.path().join("job.toml");
        let flags = JobFlags {
            agent: Some("shell".into()),
            ..JobFlags::default()
        };
        let job = config
            .resolve_job(Some((&spec_path, file)), &flags)
            .expect("resolves");
        assert_eq!(job.agent, "shell");
        assert_eq!(job.name, "fix-the-flaky-parser");
        assert_eq!(job.timeouts.idle, Duration::from_secs(300));
        assert_eq!(job.timeouts.start, Duration::from_secs(9));
        assert_eq!(job.retry.max_attempts, 3);
        assert_eq!(job.workdir, dir.path());
    }

    #[test]
    fn workspace_keys_come_from_flags_spec_and_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("tmux-delegate.toml"),
            "[defaults]\nworkspace = \"worktree\"\ncopy = [\".env\"]\nsetup = [[\"npm\", \"ci\"]]\n",
        )
        .expect("write");
        let config = Config::load(env_with(&[], dir.path())).expect("loads");
        let spec_path = dir.path().join("job.toml");
        std::fs::write(
            &spec_path,
            "prompt = \"p\"\nbranch = \"agents/{name}\"\nfresh = true\n",
        )
        .expect("write");
        let file = load_job_file(&spec_path).expect("loads").remove(0);
        let job = config
            .resolve_job(Some((&spec_path, file)), &JobFlags::default())
            .expect("resolves");
        assert!(job.workspace.is_worktree());
        assert_eq!(job.workspace.branch, "agents/{name}");
        assert_eq!(job.workspace.copy, vec![PathBuf::from(".env")]);
        assert_eq!(
            job.workspace.setup,
            vec![vec!["npm".to_owned(), "ci".to_owned()]]
        );
        assert!(job.workspace.fresh);
        assert_eq!(job.workspace.base, None);

        std::fs::write(&spec_path, "prompt = \"p\"\nworkspce = \"worktree\"\n").expect("write");
        let failure = load_job_file(&spec_path).expect_err("unknown key");
        assert_eq!(
            failure.help.as_deref(),
            Some("a similar key exists: `workspace`")
        );
        std::fs::write(&spec_path, "prompt = \"p\"\ncopy = [\"../x\"]\n").expect("write");
        let file = load_job_file(&spec_path).expect("loads").remove(0);
        let failure = config
            .resolve_job(Some((&spec_path, file)), &JobFlags::default())
            .expect_err("escaping copy path");
        assert!(
            failure.message.contains("`copy` at") && failure.message.contains("job.toml:2"),
            "{}",
            failure.message
        );
    }

    #[test]
    fn bad_env_names_and_workdirs_are_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config::load(env_with(&[], dir.path())).expect("loads");
        let file = JobFile {
            env: BTreeMap::from([("BAD NAME".to_owned(), "x".to_owned())]),
            ..JobFile::default()
        };
        assert!(config
            .resolve_job(
                Some((&dir.path().join("j.toml"), file)),
                &JobFlags::default()
            )
            .is_err());
        let flags = JobFlags {
            workdir: Some(dir.path().join("missing")),
            ..JobFlags::default()
        };
        let failure = config.resolve_job(None, &flags).expect_err("missing dir");
        assert!(failure.message.contains("--workdir"), "{}", failure.message);
    }
}
