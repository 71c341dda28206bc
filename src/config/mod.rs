//! Configuration: layers (user file, project file, job spec, `MQTT_*` env,
//! flags), each value's source, and resolution into validated settings.
//!
//! Precedence, highest first: flags, `MQTT_*` env, job spec, project config,
//! user config, built-in defaults (SPEC section 3). The process
//! environment, working directory and home are injected through [`Env`] so
//! tests never touch the real ones.

pub mod broker;
pub mod diagnostics;
pub mod file;
pub mod fleet;
pub mod job;
pub mod origin;
mod secret;
pub mod workspace;

pub use broker::BrokerSettings;
#[allow(unused_imports)] // used by the broker bundle and the embedded broker
pub use secret::random_password;
pub use secret::Secret;

use crate::error::Failure;
use crate::model::policy::humantime_serde_compat;
use crate::model::{OnWaiting, RetryPolicy, Timeouts};
use file::{AgentFile, DefaultsFile, Layer, RetryFile, TimeoutsFile, TmuxFile};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const PROJECT_FILES: [&str; 2] = ["tmux-delegate.toml", ".tmux-delegate.toml"];

/// The process context configuration reads from.
#[derive(Debug, Clone)]
pub struct Env {
    pub vars: HashMap<String, String>,
    pub cwd: PathBuf,
    pub home: Option<PathBuf>,
}

impl Env {
    pub fn from_process() -> Result<Env, Failure> {
        let cwd = std::env::current_dir().map_err(|e| {
            crate::error::config_error(format!("cannot read the working directory: {e}"))
        })?;
        let vars: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let home = vars
            .get("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        Ok(Env { vars, cwd, home })
    }

    /// A variable's value; an empty value counts as unset.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `$XDG_<kind>_HOME` or `~/<fallback>`, joined with `tmux-delegate`.
    pub fn xdg_dir(&self, xdg_var: &str, fallback: &str) -> Option<PathBuf> {
        let base = match self.var(xdg_var) {
            Some(dir) if Path::new(dir).is_absolute() => PathBuf::from(dir),
            _ => self.home.as_ref()?.join(fallback),
        };
        Some(base.join("tmux-delegate"))
    }
}

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    User(PathBuf),
    Project(PathBuf),
    Env,
    Record(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::User(p) | Source::Project(p) => {
                write!(f, "{}", p.display())
            }
            Source::Env => f.write_str("the environment"),
            Source::Record(id) => write!(f, "the record of job {id}"),
        }
    }
}

/// `~/x` -> home/x; relative -> base/x.
pub fn expand_path(path: &Path, base: &Path, home: Option<&Path>) -> PathBuf {
    if let (Ok(rest), Some(home)) = (path.strip_prefix("~"), home) {
        return home.join(rest);
    }
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// The project config: the first `tmux-delegate.toml` or `.tmux-delegate.toml`
/// found walking up from `start`.
pub fn find_project_file(start: &Path) -> Option<PathBuf> {
    start.ancestors().find_map(|dir| {
        PROJECT_FILES
            .iter()
            .map(|name| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

pub fn user_file(env: &Env) -> Option<PathBuf> {
    env.xdg_dir("XDG_CONFIG_HOME", ".config")
        .map(|dir| dir.join("config.toml"))
        .filter(|path| path.is_file())
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TmuxSettings {
    pub session: String,
    pub socket: String,
    pub keep_failed: bool,
    #[serde(with = "humantime_serde_compat")]
    pub kill_grace: Duration,
    /// The socket of the tmux server `run` was started inside (from `TMUX`)
    /// when no `socket` is configured: so windows go to the user's server
    /// even when it is not the default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<PathBuf>,
}

/// Job defaults after merging every layer (before a job spec applies).
#[derive(Debug, Clone)]
pub struct Defaults {
    pub agent: String,
    pub pass_env: Vec<String>,
    pub on_waiting: OnWaiting,
    pub budget: crate::model::Budget,
    pub timeouts: TimeoutsFile,
    pub retry: RetryFile,
    pub limits: file::LimitsFile,
    pub tmux: TmuxFile,
    pub workspace: workspace::WorkspaceKeys,
    /// `max_parallel`: the queue's cap (None: no cap).
    pub max_parallel: Option<u32>,
}

/// The merged configuration files, ready to resolve brokers and jobs.
#[derive(Debug, Clone)]
pub struct Config {
    pub env: Env,
    /// Highest precedence first: project, then user.
    pub layers: Vec<Layer>,
    pub defaults: Defaults,
    pub agents: BTreeMap<String, AgentFile>,
    pub require_signature: bool,
    /// Outcome hooks, each taken from the highest layer that sets it.
    pub hooks: file::HooksFile,
    /// `[fleet]`, each key from the highest layer that sets it.
    pub fleet: fleet::FleetFile,
    /// `[pricing]`, each model's price from the highest layer that sets it.
    pub pricing: BTreeMap<String, crate::model::Price>,
}

impl Config {
    /// Loads the user and project files for `env`.
    pub fn load(env: Env) -> Result<Config, Failure> {
        let mut layers = Vec::new();
        if let Some(path) = find_project_file(&env.cwd) {
            layers.push(Layer::load(
                Source::Project(path.clone()),
                &path,
                env.home.as_deref(),
            )?);
        }
        if let Some(path) = user_file(&env) {
            layers.push(Layer::load(
                Source::User(path.clone()),
                &path,
                env.home.as_deref(),
            )?);
        }
        Ok(Config::from_layers(env, layers))
    }

    pub fn from_layers(env: Env, layers: Vec<Layer>) -> Config {
        let defaults = merge_defaults(layers.iter().map(|l| &l.defaults));
        let mut agents = BTreeMap::new();
        for layer in layers.iter().rev() {
            for (name, agent) in &layer.agents {
                agents.insert(name.clone(), agent.clone());
            }
        }
        let require_signature = layers
            .iter()
            .find_map(|l| l.require_signature)
            .unwrap_or(true);
        let hooks = file::HooksFile {
            on_done: layers.iter().find_map(|l| l.hooks.on_done.clone()),
            on_failed: layers.iter().find_map(|l| l.hooks.on_failed.clone()),
            on_waiting: layers.iter().find_map(|l| l.hooks.on_waiting.clone()),
            on_limited: layers.iter().find_map(|l| l.hooks.on_limited.clone()),
        };
        let fleet = fleet::FleetFile::merged(layers.iter().map(|l| &l.fleet));
        let mut pricing = BTreeMap::new();
        for layer in layers.iter().rev() {
            pricing.extend(layer.pricing.clone());
        }
        Config {
            env,
            layers,
            defaults,
            agents,
            require_signature,
            hooks,
            fleet,
            pricing,
        }
    }
}

fn merge_defaults<'a>(files: impl Iterator<Item = &'a DefaultsFile> + Clone) -> Defaults {
    let mut timeouts = TimeoutsFile::default();
    let mut retry = RetryFile::default();
    let mut tmux = TmuxFile::default();
    let mut workspace = workspace::WorkspaceKeys::default();
    for file in files.clone() {
        workspace.merge_from(&file.workspace_keys());
        if let Some(t) = &file.timeouts {
            merge_timeouts(&mut timeouts, t);
        }
        if let Some(r) = &file.retry {
            merge_retry(&mut retry, r);
        }
        if let Some(t) = &file.tmux {
            merge_tmux(&mut tmux, t);
        }
    }
    let mut pick_agent = files.clone().filter_map(|f| f.agent.clone());
    Defaults {
        agent: pick_agent.next().unwrap_or_else(|| "claude".into()),
        pass_env: files
            .clone()
            .find_map(|f| f.pass_env.clone())
            .unwrap_or_default(),
        on_waiting: files
            .clone()
            .find_map(|f| f.on_waiting)
            .unwrap_or(OnWaiting::Notify),
        budget: crate::model::Budget {
            max_tokens: files.clone().find_map(|f| f.max_tokens),
            max_cost_usd: files.clone().find_map(|f| f.max_cost_usd),
        },
        timeouts,
        retry,
        limits: files
            .clone()
            .filter_map(|f| f.limits)
            .fold(file::LimitsFile::default(), file::LimitsFile::or),
        tmux,
        workspace,
        max_parallel: files.clone().find_map(|f| f.max_parallel),
    }
}

/// Fills the unset fields of `high` from `low`.
pub fn merge_timeouts(high: &mut TimeoutsFile, low: &TimeoutsFile) {
    high.start = high.start.or(low.start);
    high.idle = high.idle.or(low.idle);
    high.attempt = high.attempt.or(low.attempt);
    high.job = high.job.or(low.job);
}

pub fn merge_retry(high: &mut RetryFile, low: &RetryFile) {
    high.max_attempts = high.max_attempts.or(low.max_attempts);
    high.backoff = high.backoff.or(low.backoff);
    high.multiplier = high.multiplier.or(low.multiplier);
    high.backoff_max = high.backoff_max.or(low.backoff_max);
    high.conversation = high.conversation.or(low.conversation);
    if high.on.is_none() {
        high.on.clone_from(&low.on);
    }
}

pub fn merge_tmux(high: &mut TmuxFile, low: &TmuxFile) {
    if high.session.is_none() {
        high.session.clone_from(&low.session);
    }
    if high.socket.is_none() {
        high.socket.clone_from(&low.socket);
    }
    high.keep_failed = high.keep_failed.or(low.keep_failed);
    high.kill_grace = high.kill_grace.or(low.kill_grace);
}

impl Timeouts {
    pub fn resolve(file: &TimeoutsFile) -> Timeouts {
        let or = |v: Option<file::HumanDuration>, d: u64| v.map_or(Duration::from_secs(d), |h| h.0);
        Timeouts {
            start: or(file.start, 60),
            idle: or(file.idle, 600),
            attempt: or(file.attempt, 2 * 3600),
            job: or(file.job, 6 * 3600),
        }
    }
}

impl RetryPolicy {
    pub fn resolve(file: &RetryFile) -> RetryPolicy {
        use crate::model::FailureKind::{Error, Exit, Hung, Lost, StartTimeout, Timeout};
        // `setup` is left out: a broken setup command fails the same way again.
        RetryPolicy {
            max_attempts: file.max_attempts.unwrap_or(3),
            backoff: file.backoff.map_or(Duration::from_secs(5), |h| h.0),
            multiplier: file.multiplier.unwrap_or(2.0),
            backoff_max: file.backoff_max.map_or(Duration::from_secs(300), |h| h.0),
            on: file
                .on
                .clone()
                .unwrap_or_else(|| vec![Error, Hung, Timeout, Lost, Exit, StartTimeout]),
            conversation: file.conversation.unwrap_or_default(),
        }
    }
}

impl TmuxSettings {
    pub fn resolve(file: &TmuxFile) -> TmuxSettings {
        TmuxSettings {
            session: file.session.clone().unwrap_or_else(|| "auto".into()),
            socket: file.socket.clone().unwrap_or_default(),
            keep_failed: file.keep_failed.unwrap_or(true),
            kill_grace: file.kill_grace.map_or(Duration::from_secs(5), |h| h.0),
            socket_path: None,
        }
    }

    /// Inside tmux with no `socket` configured: the current server's socket.
    #[must_use]
    pub fn with_current_server(mut self, env: &Env) -> TmuxSettings {
        if self.socket.is_empty() {
            self.socket_path = env
                .var("TMUX")
                .and_then(|value| value.split(',').next())
                .filter(|path| !path.is_empty())
                .map(PathBuf::from);
        }
        self
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn env_with(vars: &[(&str, &str)], cwd: &Path) -> Env {
        Env {
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            cwd: cwd.to_path_buf(),
            home: Some(cwd.join("home")),
        }
    }

    #[test]
    fn the_documented_example_is_valid_and_states_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml.example");
        let layer = Layer::load(Source::Project(path.clone()), &path, None).expect("example loads");
        let defaults = merge_defaults(std::iter::once(&layer.defaults));
        let builtin = merge_defaults(std::iter::once(&DefaultsFile::default()));
        assert_eq!(
            Timeouts::resolve(&defaults.timeouts),
            Timeouts::resolve(&builtin.timeouts)
        );
        assert_eq!(
            RetryPolicy::resolve(&defaults.retry),
            RetryPolicy::resolve(&builtin.retry)
        );
        assert_eq!(
            TmuxSettings::resolve(&defaults.tmux),
            TmuxSettings::resolve(&builtin.tmux)
        );
        assert_eq!(defaults.agent, builtin.agent);
        assert_eq!(defaults.workspace.resolve(), builtin.workspace.resolve());
        assert_eq!(layer.require_signature, Some(true));
        assert_eq!(
            layer.broker.topic_prefix.as_deref(),
            Some(crate::mqtt::topic::DEFAULT_TOPIC_PREFIX)
        );
    }

    #[test]
    fn project_file_is_found_from_a_subdirectory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).expect("mkdir");
        std::fs::write(dir.path().join(".tmux-delegate.toml"), "").expect("write");
        assert_eq!(
            find_project_file(&nested),
            Some(dir.path().join(".tmux-delegate.toml"))
        );
    }

    #[test]
    fn project_layer_overrides_user_layer_field_by_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let user_dir = dir.path().join("home/.config/tmux-delegate");
        std::fs::create_dir_all(&user_dir).expect("mkdir");
        std::fs::write(
            user_dir.join("config.toml"),
            "[defaults]\nagent = \"codex\"\n[defaults.timeouts]\nidle = \"1m\"\nstart = \"5s\"\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("tmux-delegate.toml"),
            "[defaults.timeouts]\nidle = \"2m\"\n",
        )
        .expect("write");
        let config = Config::load(env_with(&[], dir.path())).expect("loads");
        let timeouts = Timeouts::resolve(&config.defaults.timeouts);
        assert_eq!(config.defaults.agent, "codex");
        assert_eq!(timeouts.idle, Duration::from_secs(120));
        assert_eq!(timeouts.start, Duration::from_secs(5));
        assert_eq!(timeouts.attempt, Duration::from_secs(7200));
    }

    #[test]
    fn retry_conversation_comes_from_the_highest_layer_that_sets_it() {
        use crate::model::conversation::ConversationPolicy;
        let dir = tempfile::tempdir().expect("tempdir");
        let user_dir = dir.path().join("home/.config/tmux-delegate");
        std::fs::create_dir_all(&user_dir).expect("mkdir");
        std::fs::write(
            user_dir.join("config.toml"),
            "[defaults.retry]\nconversation = \"fresh\"\n",
        )
        .expect("write");
        let config = Config::load(env_with(&[], dir.path())).expect("loads");
        let retry = RetryPolicy::resolve(&config.defaults.retry);
        assert_eq!(retry.conversation, ConversationPolicy::Fresh);
        std::fs::write(
            dir.path().join("tmux-delegate.toml"),
            "[defaults.retry]\nmax_attempts = 2\n",
        )
        .expect("write");
        let config = Config::load(env_with(&[], dir.path())).expect("loads");
        let retry = RetryPolicy::resolve(&config.defaults.retry);
        assert_eq!(
            retry.conversation,
            ConversationPolicy::Fresh,
            "kept from the user file"
        );
        assert_eq!(retry.max_attempts, 2);
        let none = tempfile::tempdir().expect("tempdir");
        let config = Config::load(env_with(&[], none.path())).expect("loads");
        let retry = RetryPolicy::resolve(&config.defaults.retry);
        assert_eq!(
            retry.conversation,
            ConversationPolicy::Continue,
            "the default"
        );
    }

    #[test]
    fn invalid_values_in_files_name_file_and_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tmux-delegate.toml");
        for (text, needle) in [
            ("[broker]\nport = 0\n", "`broker.port` at "),
            (
                "[broker]\nhost = \"h\"\n[broker.worker]\nconnect_timeout = \"0s\"\n",
                "`broker.worker.connect_timeout` at ",
            ),
            (
                "[defaults.timeouts]\nstart = \"0s\"\n",
                "`defaults.timeouts.start` at ",
            ),
            (
                "[defaults.retry]\nmax_attempts = 0\n",
                "`defaults.retry.max_attempts`",
            ),
            (
                "[defaults]\nmax_cost_usd = -1.0\n",
                "`defaults.max_cost_usd`",
            ),
            ("[defaults]\nmax_tokens = 0\n", "`defaults.max_tokens`"),
            (
                "[broker]\ntopic_prefix = \"a/#\"\n",
                "`broker.topic_prefix`",
            ),
            ("[defaults.timeouts]\nidle = \"soon\"\n", "invalid duration"),
            (
                "[defaults.retry]\non = [\"hang\"]\n",
                "unknown variant `hang`",
            ),
        ] {
            std::fs::write(&path, text).expect("write");
            let failure = Config::load(env_with(&[], dir.path())).expect_err(text);
            assert!(
                failure.message.contains(needle),
                "{text}: {}",
                failure.message
            );
            assert!(
                failure.message.contains(&path.display().to_string()),
                "{}",
                failure.message
            );
        }
    }
}
