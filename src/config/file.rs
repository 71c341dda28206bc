//! The on-disk configuration schema. Every field is optional: a file is one
//! layer, merged over the layers below it (SPEC section 3). Unknown keys are
//! errors (`deny_unknown_fields`), reported with file:line:col.

use super::diagnostics::toml_failure;
use super::origin::KeyLines;
use super::{expand_path, Source};
use crate::error::{config_error, Failure};
use crate::mqtt::topic::validate_prefix;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::model::{FailureKind, Liveness, OnWaiting};

/// A duration written the humantime way ("30s", "5m", "2h 30m").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct HumanDuration(pub Duration);

impl From<HumanDuration> for String {
    fn from(d: HumanDuration) -> String {
        humantime::format_duration(d.0).to_string()
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "invalid duration \"{text}\": {e} (write e.g. \"30s\", \"5m\", \"2h\")"
                ))
            })
    }
}

/// Declares a broker field set once, for `[broker]` (which also holds
/// `[broker.worker]`) and for `[broker.worker]`, so the two cannot drift.
macro_rules! broker_fields {
    ($(#[$meta:meta])* $name:ident { $($extra:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, Default, Clone, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            pub host: Option<String>,
            pub port: Option<u16>,
            pub tls: Option<bool>,
            pub ca_certs: Option<PathBuf>,
            pub certfile: Option<PathBuf>,
            pub keyfile: Option<PathBuf>,
            pub username: Option<String>,
            pub password: Option<String>,
            pub password_file: Option<PathBuf>,
            pub password_env: Option<String>,
            pub client_id_prefix: Option<String>,
            pub topic_prefix: Option<String>,
            pub connect_timeout: Option<HumanDuration>,
            $($extra)*
        }
    };
}

broker_fields!(
    /// `[broker]`: the supervisor / observer side.
    BrokerFile { pub worker: Option<WorkerFile>, }
);
broker_fields!(
    /// `[broker.worker]`: what the agent's window gets; inherits `[broker]`.
    WorkerFile {}
);

/// The fields shared by `[broker]` and `[broker.worker]`, as one value.
#[derive(Debug, Default, Clone)]
pub struct BrokerFields {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub tls: Option<bool>,
    pub ca_certs: Option<PathBuf>,
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<PasswordFrom>,
    pub client_id_prefix: Option<String>,
    pub topic_prefix: Option<String>,
    pub connect_timeout: Option<Duration>,
}

/// Where a password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordFrom {
    Literal(super::Secret),
    File(PathBuf),
    Env(String),
}

macro_rules! into_fields {
    ($file:expr, $key:expr) => {{
        let f = $file;
        let passwords = [
            f.password.is_some(),
            f.password_file.is_some(),
            f.password_env.is_some(),
        ];
        if passwords.iter().filter(|set| **set).count() > 1 {
            return Err(config_error(format!(
                "[{}] sets more than one of `password`, `password_file` and `password_env`",
                $key
            ))
            .help("keep exactly one of them"));
        }
        let password = if let Some(name) = f.password_env {
            Some(PasswordFrom::Env(name))
        } else if let Some(path) = f.password_file {
            Some(PasswordFrom::File(path))
        } else {
            f.password
                .map(|p| PasswordFrom::Literal(super::Secret::new(p)))
        };
        BrokerFields {
            host: f.host,
            port: f.port,
            tls: f.tls,
            ca_certs: f.ca_certs,
            certfile: f.certfile,
            keyfile: f.keyfile,
            username: f.username,
            password,
            client_id_prefix: f.client_id_prefix,
            topic_prefix: f.topic_prefix,
            connect_timeout: f.connect_timeout.map(|d| d.0),
        }
    }};
}

impl BrokerFile {
    /// Splits `[broker]` into its own fields and `[broker.worker]`'s.
    pub fn into_fields(self) -> Result<(BrokerFields, Option<BrokerFields>), Failure> {
        let worker = match self.worker.clone() {
            Some(w) => Some(into_fields!(w, "broker.worker")),
            None => None,
        };
        let own = into_fields!(self, "broker");
        Ok((own, worker))
    }
}

#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsFile {
    pub start: Option<HumanDuration>,
    pub idle: Option<HumanDuration>,
    pub attempt: Option<HumanDuration>,
    pub job: Option<HumanDuration>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryFile {
    pub max_attempts: Option<u32>,
    pub backoff: Option<HumanDuration>,
    pub multiplier: Option<f64>,
    pub backoff_max: Option<HumanDuration>,
    pub on: Option<Vec<FailureKind>>,
    /// `"continue"` (default) or `"fresh"`.
    pub conversation: Option<crate::model::conversation::ConversationPolicy>,
}

/// `[limits]`: what a usage limit does (SPEC section 14).
#[derive(Debug, Default, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// `"wait"` (default): `limited` until the reset; `"fail"`.
    pub on_limit: Option<crate::model::OnLimit>,
    /// Added to the reset time the agent printed (default 60 s).
    pub grace: Option<HumanDuration>,
    /// The wait when no reset time is printed (default 15 min), doubling
    /// with each limit in a row up to 5 h.
    pub wait: Option<HumanDuration>,
}

impl LimitsFile {
    /// Fills the unset fields from `low`.
    pub fn or(self, low: LimitsFile) -> LimitsFile {
        LimitsFile {
            on_limit: self.on_limit.or(low.on_limit),
            grace: self.grace.or(low.grace),
            wait: self.wait.or(low.wait),
        }
    }

    pub fn resolve(self) -> crate::model::LimitPolicy {
        let default = crate::model::LimitPolicy::default();
        crate::model::LimitPolicy {
            on_limit: self.on_limit.unwrap_or(default.on_limit),
            grace: self.grace.map_or(default.grace, |h| h.0),
            wait: self.wait.map_or(default.wait, |h| h.0),
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TmuxFile {
    pub session: Option<String>,
    pub socket: Option<String>,
    pub keep_failed: Option<bool>,
    pub kill_grace: Option<HumanDuration>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultsFile {
    pub agent: Option<String>,
    pub pass_env: Option<Vec<String>>,
    pub on_waiting: Option<OnWaiting>,
    /// What one attempt may spend (tokens, US dollars; SPEC section 14).
    pub max_tokens: Option<u64>,
    pub max_cost_usd: Option<f64>,
    pub timeouts: Option<TimeoutsFile>,
    pub retry: Option<RetryFile>,
    pub limits: Option<LimitsFile>,
    pub tmux: Option<TmuxFile>,
    // Workspace keys (SPEC section 10), see config/workspace.rs.
    pub workspace: Option<super::workspace::WorkspaceMode>,
    pub base: Option<String>,
    pub branch: Option<String>,
    pub copy: Option<Vec<PathBuf>>,
    pub setup: Option<Vec<Vec<String>>>,
    pub fresh: Option<bool>,
    /// The queue's cap on attempts running at once (SPEC section 11).
    pub max_parallel: Option<u32>,
}

/// Agents whose own hook mechanism tmux-delegate configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HookStyle {
    /// Claude Code: a settings file (`{settings}`) with hook commands.
    Claude,
}

/// What Claude Code's Stop hook (the end of every turn) reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnStop {
    Completed,
    Waiting,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentFile {
    pub command: Option<Vec<String>>,
    /// The argv that continues a conversation: `{session}` is its id,
    /// `{prompt}` the continuation message (SPEC section 14).
    pub continue_command: Option<Vec<String>>,
    pub env: Option<BTreeMap<String, String>>,
    pub complete_on_exit: Option<bool>,
    pub liveness: Option<Liveness>,
    pub description: Option<String>,
    pub hooks: Option<HookStyle>,
    pub on_stop: Option<OnStop>,
    /// `[[agents.NAME.screens]]`: screen rules (see `agents::screens`).
    pub screens: Option<Vec<crate::agents::screens::ScreenRule>>,
    /// `[agents.NAME.conversation]`: how its conversation is captured.
    pub conversation: Option<crate::agents::conversation::Conversation>,
    /// The queue's cap on this agent's attempts running at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// `[agents.NAME.limits]`: this agent's usage limits, over `[defaults]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsFile>,
}

/// `[hooks]`: commands (argv) run on job outcomes, with the job as JSON on
/// stdin. Failures are logged, never fatal.
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HooksFile {
    pub on_done: Option<Vec<String>>,
    pub on_failed: Option<Vec<String>>,
    pub on_waiting: Option<Vec<String>>,
    /// A job met a usage limit: `until` says when it continues.
    pub on_limited: Option<Vec<String>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsFile {
    pub require_signature: Option<bool>,
}

/// One configuration file (user or project).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub broker: Option<BrokerFile>,
    pub defaults: Option<DefaultsFile>,
    #[serde(default)]
    pub agents: BTreeMap<String, AgentFile>,
    pub events: Option<EventsFile>,
    pub hooks: Option<HooksFile>,
    /// `[fleet]`: runner and submitter settings (SPEC section 13).
    pub fleet: Option<super::fleet::FleetFile>,
    /// `[pricing."MODEL"]`: US dollars per million tokens (SPEC section 14).
    #[serde(default)]
    pub pricing: BTreeMap<String, crate::model::Price>,
}

/// A loaded configuration file: its validated content, with paths made
/// absolute relative to the file's directory.
#[derive(Debug, Clone)]
pub struct Layer {
    pub source: Source,
    /// The line of each key, for errors that say where a value came from.
    pub keys: KeyLines,
    pub broker: BrokerFields,
    pub worker: Option<BrokerFields>,
    pub defaults: DefaultsFile,
    pub agents: BTreeMap<String, AgentFile>,
    pub require_signature: Option<bool>,
    pub hooks: HooksFile,
    /// `[fleet]`, paths made absolute relative to the file.
    pub fleet: super::fleet::FleetFile,
    pub pricing: BTreeMap<String, crate::model::Price>,
}

pub fn read_toml(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| {
        config_error(format!("cannot read {}: {e}", path.display()))
            .help("check that the file exists and is readable")
    })
}

/// Parses `text` as `T`, reporting errors against `path`.
pub fn parse_toml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, Failure> {
    toml::from_str(text).map_err(|e| toml_failure(path, text, &e))
}

impl Layer {
    pub fn load(source: Source, path: &Path, home: Option<&Path>) -> Result<Layer, Failure> {
        let text = read_toml(path)?;
        let file: ConfigFile = parse_toml(path, &text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let keys = KeyLines::of(path, &text);
        let in_file =
            |key: &str, problem: String| config_error(format!("{}: {problem}", keys.origin(key)));
        let (mut broker, mut worker) = file.broker.unwrap_or_default().into_fields()?;
        validate_broker_fields(&broker, "broker", &in_file)?;
        absolutize(&mut broker, base, home);
        if let Some(worker) = worker.as_mut() {
            validate_broker_fields(worker, "broker.worker", &in_file)?;
            absolutize(worker, base, home);
        }
        let defaults = file.defaults.unwrap_or_default();
        validate_defaults(&defaults, &in_file)?;
        validate_budget(&defaults, &in_file)?;
        defaults
            .workspace_keys()
            .validate(&|key| format!("{}: `defaults.{key}`", path.display()))?;
        let hooks = file.hooks.clone().unwrap_or_default();
        validate_hooks(&hooks, &in_file)?;
        for (name, agent) in &file.agents {
            if let Some(command) = &agent.command {
                if command.is_empty() || command[0].is_empty() {
                    return Err(in_file(
                        &format!("agents.{name}.command"),
                        "must name a program: command = [\"program\", \"arg\", \"{prompt}\"]"
                            .into(),
                    ));
                }
            }
            if agent.max_parallel == Some(0) {
                return Err(in_file(
                    &format!("agents.{name}.max_parallel"),
                    "must be at least 1 (leave it out for no cap)".into(),
                ));
            }
        }
        let fleet = file
            .fleet
            .unwrap_or_default()
            .absolutized(base, home, &in_file)?;
        validate_pricing(&file.pricing, &in_file)?;
        Ok(Layer {
            source,
            keys,
            broker,
            worker,
            defaults,
            agents: file.agents,
            require_signature: file.events.and_then(|e| e.require_signature),
            hooks,
            fleet,
            pricing: file.pricing,
        })
    }
}

/// Budgets: at least one token, a positive number of dollars.
fn validate_budget(
    defaults: &DefaultsFile,
    in_file: &dyn Fn(&str, String) -> Failure,
) -> Result<(), Failure> {
    if defaults.max_tokens == Some(0) {
        return Err(in_file(
            "defaults.max_tokens",
            "must be at least 1 (leave it out for no budget)".into(),
        ));
    }
    if defaults
        .max_cost_usd
        .is_some_and(|c| !c.is_finite() || c <= 0.0)
    {
        return Err(in_file(
            "defaults.max_cost_usd",
            "must be a positive number of US dollars, e.g. 5.0 (leave it out for no budget)".into(),
        ));
    }
    Ok(())
}

/// `[pricing."MODEL"]`: dollars per million tokens, zero or more.
fn validate_pricing(
    pricing: &BTreeMap<String, crate::model::Price>,
    in_file: &dyn Fn(&str, String) -> Failure,
) -> Result<(), Failure> {
    for (model, price) in pricing {
        let prices = [
            Some(price.input),
            Some(price.output),
            price.cache_read,
            price.cache_write,
        ];
        if prices.iter().flatten().any(|p| !p.is_finite() || *p < 0.0) {
            return Err(in_file(
                &format!("pricing.{model}"),
                "prices are US dollars per million tokens, zero or more".into(),
            ));
        }
    }
    Ok(())
}

/// Each outcome hook names a program.
fn validate_hooks(
    hooks: &HooksFile,
    in_file: &dyn Fn(&str, String) -> Failure,
) -> Result<(), Failure> {
    for (key, argv) in [
        ("on_done", &hooks.on_done),
        ("on_failed", &hooks.on_failed),
        ("on_waiting", &hooks.on_waiting),
        ("on_limited", &hooks.on_limited),
    ] {
        if argv
            .as_ref()
            .is_some_and(|a| a.first().is_none_or(String::is_empty))
        {
            return Err(in_file(
                &format!("hooks.{key}"),
                "must name a program: [\"notify-send\", \"tmux-delegate\"]".into(),
            ));
        }
    }
    Ok(())
}

fn validate_broker_fields(
    fields: &BrokerFields,
    table: &str,
    in_file: &dyn Fn(&str, String) -> Failure,
) -> Result<(), Failure> {
    if fields.port == Some(0) {
        return Err(in_file(
            &format!("{table}.port"),
            "port 0 is not a valid port (1-65535)".into(),
        ));
    }
    if let Some(prefix) = &fields.topic_prefix {
        validate_prefix(prefix).map_err(|e| in_file(&format!("{table}.topic_prefix"), e))?;
    }
    if let Some(host) = &fields.host {
        if host.trim().is_empty() {
            return Err(in_file(&format!("{table}.host"), "is empty".into()));
        }
    }
    if let Some(timeout) = fields.connect_timeout {
        refuse_zero(
            HumanDuration(timeout),
            &format!("{table}.connect_timeout"),
            in_file,
        )?;
    }
    Ok(())
}

fn validate_defaults(
    defaults: &DefaultsFile,
    in_file: &dyn Fn(&str, String) -> Failure,
) -> Result<(), Failure> {
    if let Some(retry) = &defaults.retry {
        validate_retry(retry, "defaults.retry", in_file)?;
    }
    if let Some(timeouts) = &defaults.timeouts {
        validate_timeouts(timeouts, "defaults.timeouts", in_file)?;
    }
    if let Some(grace) = defaults.tmux.as_ref().and_then(|t| t.kill_grace) {
        refuse_zero(grace, "defaults.tmux.kill_grace", in_file)?;
    }
    if defaults.max_parallel == Some(0) {
        return Err(in_file(
            "defaults.max_parallel",
            "must be at least 1 (leave it out for no cap)".into(),
        ));
    }
    Ok(())
}

/// A zero timeout would end every attempt at once (a negative one does not
/// parse): refused before anything starts.
pub fn validate_timeouts(
    timeouts: &TimeoutsFile,
    table: &str,
    in_file: &dyn Fn(&str, String) -> Failure,
) -> Result<(), Failure> {
    for (key, value) in [
        ("start", timeouts.start),
        ("idle", timeouts.idle),
        ("attempt", timeouts.attempt),
        ("job", timeouts.job),
    ] {
        if let Some(value) = value {
            refuse_zero(value, &format!("{table}.{key}"), in_file)?;
        }
    }
    Ok(())
}

fn refuse_zero(
    value: HumanDuration,
    key: &str,
    in_file: &dyn Fn(&str, String) -> Failure,
) -> Result<(), Failure> {
    if value.0.is_zero() {
        return Err(in_file(
            key,
            "must be longer than zero (write e.g. \"30s\", \"5m\")".into(),
        )
        .help(format!(
            "set `{}` to a positive duration, or remove it for the default",
            key.rsplit('.').next().unwrap_or(key)
        )));
    }
    Ok(())
}

pub fn validate_retry(
    retry: &RetryFile,
    table: &str,
    in_file: &dyn Fn(&str, String) -> Failure,
) -> Result<(), Failure> {
    if retry.max_attempts == Some(0) {
        return Err(in_file(
            &format!("{table}.max_attempts"),
            "must be at least 1 (1 means no retries)".into(),
        ));
    }
    if let Some(m) = retry.multiplier {
        if !(1.0..=100.0).contains(&m) {
            return Err(in_file(
                &format!("{table}.multiplier"),
                format!("{m} is out of range (1.0 to 100.0)"),
            ));
        }
    }
    Ok(())
}

fn absolutize(fields: &mut BrokerFields, base: &Path, home: Option<&Path>) {
    for path in [
        &mut fields.ca_certs,
        &mut fields.certfile,
        &mut fields.keyfile,
    ]
    .into_iter()
    .flatten()
    {
        *path = expand_path(path, base, home);
    }
    if let Some(PasswordFrom::File(path)) = &mut fields.password {
        *path = expand_path(path, base, home);
    }
}
