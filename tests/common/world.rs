//! A test's world: a temp directory with a home (registry and project
//! config), a private tmux server, a broker (a Mosquitto the test starts, or
//! none so `run` starts its embedded one), a `bin/` first on PATH for fake
//! programs, and the real binary run with a scrubbed environment. The
//! `[defaults.tmux]` block every project config needs is written here only.

use super::mosquitto::Mosquitto;
use super::process::{Guard, Lines};
use super::tmux::TmuxServer;
use serde_json::Value;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_tmux-delegate");

/// The binary with a scrubbed environment: only PATH, a private HOME and
/// registry, and the given variables (which may replace PATH).
pub fn td(home: &Path, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("TMUX_DELEGATE_HOME", home.join("state"))
        // Debugging a test: TMUX_DELEGATE_LOG=debug cargo test ...
        .envs(std::env::var("TMUX_DELEGATE_LOG").map(|v| ("TMUX_DELEGATE_LOG", v)))
        .current_dir(home)
        .stdin(Stdio::null());
    for (k, v) in vars {
        command.env(k, v);
    }
    command
}

pub fn run(command: &mut Command) -> Output {
    command.output().expect("run tmux-delegate")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `command` to its end within `limit`: (exit code, stdout, stderr).
pub fn finish(command: &mut Command, limit: Duration) -> (Option<i32>, String, String) {
    let output = Guard(Some(
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tmux-delegate"),
    ))
    .wait_output(limit);
    (
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

/// What the project config's `[defaults.tmux]` says besides the socket.
#[derive(Debug, Clone)]
pub struct TmuxDefaults {
    pub kill_grace: String,
    pub keep_failed: bool,
    pub session: Option<String>,
}

impl Default for TmuxDefaults {
    /// Quick kills, and failed windows closed so nothing outlives a test.
    fn default() -> TmuxDefaults {
        TmuxDefaults {
            kill_grace: "1s".to_owned(),
            keep_failed: false,
            session: None,
        }
    }
}

impl TmuxDefaults {
    fn block(&self, socket: &str) -> String {
        let session = self
            .session
            .as_ref()
            .map(|s| format!("session = \"{s}\"\n"))
            .unwrap_or_default();
        format!(
            "\n[defaults.tmux]\nsocket = \"{socket}\"\n{session}keep_failed = {}\nkill_grace = \"{}\"\n",
            self.keep_failed, self.kill_grace
        )
    }
}

/// One home: a registry under `state/`, a project config, a private tmux
/// server, and a `bin/` put first on PATH. Fields drop in order: tmux
/// first.
pub struct Home {
    pub tmux: TmuxServer,
    pub home: PathBuf,
    pub bin: PathBuf,
    tmux_block: String,
}

impl Home {
    /// Creates `home` (and `bin` beside it) and writes its project config:
    /// `config` followed by the `[defaults.tmux]` block.
    pub fn create(home: &Path, tmux: TmuxServer, defaults: &TmuxDefaults, config: &str) -> Home {
        let bin = home.with_file_name(format!(
            "{}-bin",
            home.file_name().and_then(|n| n.to_str()).unwrap_or("home")
        ));
        std::fs::create_dir_all(home).expect("home");
        std::fs::create_dir_all(&bin).expect("bin");
        let tmux_block = defaults.block(&tmux.socket);
        let created = Home {
            tmux,
            home: home.to_path_buf(),
            bin,
            tmux_block,
        };
        created.write_config(config);
        created
    }

    /// Replaces the project config: `config` and the `[defaults.tmux]` block.
    pub fn write_config(&self, config: &str) {
        std::fs::write(
            self.home.join("tmux-delegate.toml"),
            format!("{config}\n{}", self.tmux_block),
        )
        .expect("project config");
    }

    /// A file in the home.
    pub fn path(&self, name: &str) -> PathBuf {
        self.home.join(name)
    }

    /// Puts a fake program (its own `#!` line) on this home's PATH.
    pub fn install(&self, name: &str, text: &str) -> PathBuf {
        super::agents::program(&self.bin.join(name), text)
    }

    /// PATH as the binary sees it: `bin/` first.
    pub fn path_var(&self) -> String {
        format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// The binary in this home, talking to its tmux server, with `vars`
    /// (which may replace PATH).
    pub fn td_with(&self, vars: &[(&str, &str)]) -> Command {
        let tmpdir = self.tmux.tmpdir.display().to_string();
        let path = self.path_var();
        let mut all = vec![("TMUX_TMPDIR", tmpdir.as_str()), ("PATH", path.as_str())];
        all.extend_from_slice(vars);
        td(&self.home, &all)
    }

    pub fn td(&self) -> Command {
        self.td_with(&[])
    }

    /// `tmux-delegate ARGS` to its end within `limit`.
    pub fn finish(&self, args: &[&str], limit: Duration) -> (Option<i32>, String, String) {
        finish(self.td().args(args), limit)
    }

    /// `tmux-delegate ARGS` in the background, its lines collected.
    pub fn spawn(&self, args: &[&str]) -> Lines {
        Lines::spawn(self.td().args(args))
    }

    /// `status --json`, which must succeed.
    pub fn status(&self) -> Vec<Value> {
        let out = run(self.td().args(["status", "--json"]));
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("status json")
    }

    /// The job named `name` in `status --json`.
    pub fn job(&self, name: &str) -> Value {
        let jobs = self.status();
        jobs.iter()
            .find(|j| j["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no job named {name}: {jobs:?}"))
    }

    pub fn id(&self, name: &str) -> String {
        self.job(name)["id"].as_str().expect("id").to_owned()
    }

    /// The state of the job named `name`, if it is registered.
    pub fn state(&self, name: &str) -> Option<String> {
        self.status()
            .into_iter()
            .find(|j| j["name"] == name)
            .and_then(|j| j["state"].as_str().map(str::to_owned))
    }

    /// How many jobs the registry holds.
    pub fn registered(&self) -> usize {
        std::fs::read_dir(self.home.join("state/jobs"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.home.join("state/jobs").join(id)
    }

    pub fn record_path(&self, id: &str) -> PathBuf {
        self.job_dir(id).join("record.json")
    }

    pub fn record(&self, id: &str) -> Value {
        let text = std::fs::read_to_string(self.record_path(id)).expect("record.json");
        serde_json::from_str(&text).expect("record json")
    }

    /// The job's `events.jsonl` as it is.
    pub fn history_text(&self, id: &str) -> String {
        std::fs::read_to_string(self.job_dir(id).join("events.jsonl")).unwrap_or_default()
    }

    /// The job's `events.jsonl`, one value per entry.
    pub fn history(&self, id: &str) -> Vec<Value> {
        self.history_text(id)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The states the job went to, in order, with when (`ts`, Unix seconds).
    pub fn transitions(&self, id: &str) -> Vec<(String, f64)> {
        self.history(id)
            .iter()
            .filter(|e| e["type"] == "transition")
            .filter_map(|e| Some((e["to"].as_str()?.to_owned(), e["ts"].as_f64()?)))
            .collect()
    }

    /// When job `id` first moved to `to`, by its history.
    pub fn first_transition_to(&self, id: &str, to: &str) -> f64 {
        self.transitions(id)
            .into_iter()
            .find(|(state, _)| state == to)
            .map(|(_, ts)| ts)
            .unwrap_or_else(|| panic!("`{to}` is not in job {id}'s history"))
    }

    /// Every window on this home's tmux server: `ID PANE_DEAD`.
    pub fn windows(&self) -> String {
        self.tmux
            .output(&["list-windows", "-a", "-F", "#{window_id} #{pane_dead}"])
    }
}

/// Which broker a world's jobs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    /// A Mosquitto the test starts, named in the project config.
    Mosquitto,
    /// No broker configured anywhere: `run` starts its embedded one.
    Embedded,
}

/// How to build a [`World`].
pub struct WorldBuilder {
    broker: Broker,
    mosquitto_conf: String,
    tmux: TmuxDefaults,
}

impl WorldBuilder {
    /// Mosquitto configuration lines after the listener (default:
    /// anonymous clients allowed).
    pub fn mosquitto_conf(mut self, body: &str) -> WorldBuilder {
        self.mosquitto_conf = body.to_owned();
        self
    }

    pub fn kill_grace(mut self, grace: &str) -> WorldBuilder {
        self.tmux.kill_grace = grace.to_owned();
        self
    }

    pub fn keep_failed(mut self, keep: bool) -> WorldBuilder {
        self.tmux.keep_failed = keep;
        self
    }

    /// Starts the broker and writes the project config: the broker's
    /// `[broker]` section, `config`, and the `[defaults.tmux]` block.
    pub fn build(self, config: &str) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = (self.broker == Broker::Mosquitto)
            .then(|| Mosquitto::start(dir.path(), &self.mosquitto_conf));
        let broker_section = broker
            .as_ref()
            .map(|b| format!("[broker]\nhost = \"127.0.0.1\"\nport = {}\n", b.port))
            .unwrap_or_default();
        let tmux = TmuxServer::new(dir.path());
        let home = Home::create(
            &dir.path().join("home"),
            tmux,
            &self.tmux,
            &format!("{broker_section}{config}"),
        );
        World {
            node: home,
            broker,
            dir,
        }
    }
}

/// A home with its broker in a temp directory; derefs to its [`Home`].
/// Fields drop in order: tmux, then the broker, then the directory.
pub struct World {
    pub node: Home,
    pub broker: Option<Mosquitto>,
    pub dir: tempfile::TempDir,
}

impl World {
    pub fn builder(broker: Broker) -> WorldBuilder {
        WorldBuilder {
            broker,
            mosquitto_conf: "allow_anonymous true\n".to_owned(),
            tmux: TmuxDefaults::default(),
        }
    }

    /// A plain Mosquitto and a project config naming it, plus `config`.
    pub fn mosquitto(config: &str) -> World {
        World::builder(Broker::Mosquitto).build(config)
    }

    /// No broker configured: `run` starts its embedded one.
    pub fn embedded(config: &str) -> World {
        World::builder(Broker::Embedded).build(config)
    }

    /// Starts no broker: `config` names one the test runs itself, or none.
    pub fn without_broker(config: &str) -> World {
        World::builder(Broker::Embedded).build(config)
    }

    pub fn on(broker: Broker, config: &str) -> World {
        World::builder(broker).build(config)
    }

    /// The Mosquitto this world started.
    pub fn mosquitto_broker(&mut self) -> &mut Mosquitto {
        self.broker.as_mut().expect("a world with a Mosquitto")
    }

    pub fn port(&self) -> u16 {
        self.broker.as_ref().expect("a world with a Mosquitto").port
    }

    /// A file in the temp directory, outside the home.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Deref for World {
    type Target = Home;

    fn deref(&self) -> &Home {
        &self.node
    }
}
