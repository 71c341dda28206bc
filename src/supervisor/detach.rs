//! The detached supervisor (`run --detach`, the `resume` that `add`
//! starts, and the MCP server's `run` and follow-up `send`): it runs in its
//! own tmux window, so the terminal that started it can close, and tells
//! that terminal whether it started.
//!
//! Secrets must not travel through argv or the tmux environment, so the
//! run's arguments and environment go into a 0600 launch file in the
//! registry; the window runs `run --detached-from FILE`, which reads and
//! deletes the file and starts the real supervisor with that environment.
//! The ids of the jobs it registered come back with its report, so a
//! launcher that must name them (the MCP server's `run`) knows them.

use crate::config::{Config, Env, TmuxSettings};
use crate::error::{Exit, Failure};
use crate::registry::{write_file, Registry};
use crate::tmux::Tmux;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the detached supervisor reports whether it started (set in its
/// environment by the launcher; the file lives in the 0700 launch directory).
const READY_VAR: &str = "TMUX_DELEGATE_READY_FILE";
/// How long the launcher waits for that report: a broker connect fails
/// within its `connect_timeout` (5 s by default), with room for a retry.
const READY_WAIT: Duration = Duration::from_secs(60);

/// What the detached supervisor reports to the terminal that launched it.
#[derive(Debug, Serialize, Deserialize)]
struct Readiness {
    /// Exit code: 0 when it supervises, else why it stopped (3: broker).
    code: u8,
    #[serde(default)]
    message: String,
    /// The jobs it registered (or took on), once it supervises them.
    #[serde(default)]
    ids: Vec<String>,
}

/// A detached supervisor that started: where it runs, and its jobs.
#[derive(Debug)]
pub struct Detached {
    pub window_id: String,
    pub session: String,
    /// `-L NAME ` when the tmux server has its own socket, else empty.
    socket: String,
    /// The jobs it registered, in the order they were given.
    pub ids: Vec<String>,
}

impl Detached {
    /// What the terminal that launched it is told (stdout).
    pub fn announce(&self) {
        println!(
            "the supervisor runs in tmux window {} of session `{}`: tmux {}attach -t '{}'",
            self.window_id, self.session, self.socket, self.session
        );
        println!("follow it with `tmux-delegate status` or `tmux-delegate watch --all`; this terminal may close");
    }
}

/// What the detached supervisor needs to start exactly like `run` would.
#[derive(Debug, Serialize, Deserialize)]
pub struct Relaunch {
    argv: Vec<String>,
    cwd: PathBuf,
    env: BTreeMap<String, String>,
}

impl Relaunch {
    /// `resume` in its own window, with this environment: `add` starts one
    /// for the queued jobs it registered when no supervisor runs.
    pub fn resume(env: &Env) -> Relaunch {
        Relaunch::new(vec!["resume".to_owned()], env)
    }

    /// This program's `argv` (without the program) in its own window, with
    /// this environment: `run --detach` passes `run`'s arguments without
    /// `--detach`.
    pub fn new(argv: Vec<String>, env: &Env) -> Relaunch {
        Relaunch {
            argv,
            cwd: env.cwd.clone(),
            env: env.vars.clone().into_iter().collect(),
        }
    }
}

/// Writes the launch file and opens the supervisor's window; returns once
/// the supervisor said it supervises its jobs (or why it could not).
pub async fn launch(config: &Config, relaunch: Relaunch) -> anyhow::Result<Detached> {
    let registry = Registry::open(&config.env)?;
    let dir = registry.root().join("detached");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let name = crate::registry::new_job_id("run");
    let file = dir.join(format!("{name}.json"));
    let ready = dir.join(format!("{name}.ready"));
    let mut relaunch = relaunch;
    relaunch
        .env
        .insert(READY_VAR.to_owned(), ready.display().to_string());
    write_file(&file, &serde_json::to_string(&relaunch)?, 0o600)?;
    let exe = std::env::current_exe().context("locating this program")?;
    let settings = TmuxSettings::resolve(&config.defaults.tmux).with_current_server(&config.env);
    // The launch file holds the secrets: tmux itself gets none of them.
    let secrets = relaunch.env.keys().filter(|k| is_secret(k)).cloned();
    let tmux = Tmux::new(&settings, secrets.collect());
    let session = tmux
        .resolve_session(&settings.session, config.env.var("TMUX").is_some())
        .await;
    let argv = vec![
        exe.display().to_string(),
        "run".into(),
        "--detached-from".into(),
        file.display().to_string(),
    ];
    let launched = match tmux
        .launch(&session, "tmux-delegate", &config.env.cwd, &argv)
        .await
    {
        Ok(launched) => launched,
        Err(e) => {
            let _ = std::fs::remove_file(&file);
            return Err(e.context("opening the supervisor's tmux window"));
        }
    };
    // Say "it runs" only once it does: a supervisor that cannot reach its
    // broker must fail here, loudly, not die unseen in its window.
    let readiness = wait_ready(&ready).await;
    let _ = std::fs::remove_file(&ready);
    let ids = match readiness {
        Some(Readiness { code: 0, ids, .. }) => ids,
        outcome => {
            let _ = std::fs::remove_file(&file);
            let _ = tmux.kill_window(&launched.window_id).await;
            return Err(start_failure(outcome).into());
        }
    };
    let socket = if settings.socket.is_empty() {
        String::new()
    } else {
        format!("-L {} ", settings.socket)
    };
    Ok(Detached {
        window_id: launched.window_id,
        session,
        socket,
        ids,
    })
}

/// Whether a variable of the launch environment may hold a secret.
fn is_secret(name: &str) -> bool {
    name.starts_with("MQTT_")
        || name.contains("PASSWORD")
        || name.contains("KEY")
        || name.contains("TOKEN")
}

/// Why the detached supervisor did not start: its own report, or silence.
fn start_failure(outcome: Option<Readiness>) -> Failure {
    match outcome {
        Some(r) => Failure::new(
            exit_for(r.code),
            format!(
                "the detached supervisor could not start:\n{}",
                r.message.trim()
            ),
        ),
        None => Failure::new(
            Exit::JobFailed,
            format!(
                "the detached supervisor did not report within {}s; its window was closed",
                READY_WAIT.as_secs()
            ),
        )
        .help("run without --detach to see what holds it up"),
    }
}

/// Waits for the detached supervisor's report (`None` after `READY_WAIT`).
async fn wait_ready(path: &Path) -> Option<Readiness> {
    let deadline = Instant::now() + READY_WAIT;
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(readiness) = serde_json::from_str(&text) {
                return Some(readiness);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

fn exit_for(code: u8) -> Exit {
    match code {
        1 => Exit::JobFailed,
        2 => Exit::Usage,
        3 => Exit::BrokerUnreachable,
        4 => Exit::PublishRefused,
        other => Exit::Raw(other),
    }
}

fn report(env: &Env, readiness: &Readiness) {
    let Some(path) = env.var(READY_VAR) else {
        return;
    };
    let written = serde_json::to_string(readiness)
        .map_err(anyhow::Error::from)
        .and_then(|text| write_file(Path::new(path), &text, 0o600));
    if let Err(e) = written {
        eprintln!("warning: cannot tell the launching terminal: {e:#}");
    }
}

/// In a detached supervisor: tells the launching terminal that the jobs
/// `ids` are registered and supervised (a no-op in a plain `run`).
pub fn report_ready(env: &Env, ids: &[String]) {
    report(
        env,
        &Readiness {
            code: 0,
            message: String::new(),
            ids: ids.to_vec(),
        },
    );
}

/// In a detached supervisor: a failure to start is also told to the
/// launching terminal, which exits with it; passes `result` on.
pub fn report_failure<T, E: Into<anyhow::Error>>(
    env: &Env,
    result: Result<T, E>,
) -> anyhow::Result<T> {
    result.map_err(|e| {
        let error = e.into();
        report(
            env,
            &Readiness {
                code: crate::error::exit_of(&error).code(),
                message: crate::error::render(&error),
                ids: Vec::new(),
            },
        );
        error
    })
}

/// In the supervisor's window: read (and delete) the launch file, then run
/// the supervisor with the saved arguments and environment.
pub async fn supervise_from(file: &Path) -> anyhow::Result<Exit> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the launch file {}", file.display()))?;
    let _ = std::fs::remove_file(file);
    let relaunch: Relaunch = serde_json::from_str(&text).context("reading the launch file")?;
    let exe = std::env::current_exe().context("locating this program")?;
    let status = tokio::process::Command::new(exe)
        .args(&relaunch.argv)
        .current_dir(&relaunch.cwd)
        .env_clear()
        .envs(&relaunch.env)
        .status()
        .await
        .context("starting the detached supervisor")?;
    let code = status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(1);
    eprintln!("[tmux-delegate] the supervisor exited with code {code}");
    Ok(Exit::Raw(code))
}
