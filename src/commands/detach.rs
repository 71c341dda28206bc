//! `run --detach`: the supervisor runs in its own tmux window, so the
//! terminal that started it can close.
//!
//! Secrets must not travel through argv or the tmux environment, so the
//! run's arguments and environment go into a 0600 launch file in the
//! registry; the window runs `run --detached-from FILE`, which reads and
//! deletes the file and starts the real supervisor with that environment.

use crate::cli::RunArgs;
use crate::config::{expand_path, Config, Env, TmuxSettings};
use crate::error::Exit;
use crate::registry::{write_file, Registry};
use crate::tmux::Tmux;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// What the detached supervisor needs to start exactly like `run` would.
#[derive(Debug, Serialize, Deserialize)]
pub struct Relaunch {
    argv: Vec<String>,
    cwd: PathBuf,
    env: BTreeMap<String, String>,
}

impl Relaunch {
    /// `run`'s arguments without `--detach` (paths made absolute) and its
    /// whole environment.
    pub fn of(args: &RunArgs, env: &Env) -> anyhow::Result<Relaunch> {
        let absolute = |p: &Path| {
            expand_path(p, &env.cwd, env.home.as_deref())
                .display()
                .to_string()
        };
        let mut argv = vec!["run".to_owned()];
        if args.json {
            argv.push("--json".into());
        }
        if args.worktree {
            argv.push("--worktree".into());
        }
        let job = &args.job;
        for (flag, value) in [
            ("--prompt", &job.prompt),
            ("--agent", &job.agent),
            ("--name", &job.name),
        ] {
            if let Some(value) = value {
                argv.extend([flag.to_owned(), value.clone()]);
            }
        }
        if let Some(dir) = &job.workdir {
            argv.extend(["--workdir".to_owned(), absolute(dir)]);
        }
        argv.push("--".into());
        argv.extend(args.specs.iter().map(|p| absolute(p)));
        Ok(Relaunch {
            argv,
            cwd: env.cwd.clone(),
            env: env.vars.clone().into_iter().collect(),
        })
    }
}

/// Writes the launch file and opens the supervisor's window.
pub async fn launch(config: &Config, relaunch: Relaunch) -> anyhow::Result<Exit> {
    let registry = Registry::open(&config.env)?;
    let dir = registry.root().join("detached");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join(format!("{}.json", crate::registry::new_job_id("run")));
    write_file(&file, &serde_json::to_string(&relaunch)?, 0o600)?;
    let exe = std::env::current_exe().context("locating this program")?;
    let settings = TmuxSettings::resolve(&config.defaults.tmux).with_current_server(&config.env);
    // The launch file holds the secrets: tmux itself gets none of them.
    let secrets: Vec<String> = relaunch
        .env
        .keys()
        .filter(|k| {
            k.starts_with("MQTT_")
                || k.contains("PASSWORD")
                || k.contains("KEY")
                || k.contains("TOKEN")
        })
        .cloned()
        .collect();
    let tmux = Tmux::new(&settings, secrets);
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
    let socket = if settings.socket.is_empty() {
        String::new()
    } else {
        format!("-L {} ", settings.socket)
    };
    println!(
        "the supervisor runs in tmux window {} of session `{session}`: tmux {socket}attach -t '{session}'",
        launched.window_id
    );
    println!("follow it with `tmux-delegate status` or `tmux-delegate watch --all`; this terminal may close");
    Ok(Exit::Success)
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
