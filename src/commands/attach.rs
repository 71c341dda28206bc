//! `attach ID`: switch to (inside tmux) or attach to the job's window.

use crate::cli::IdArg;
use crate::config::Env;
use crate::error::{config_error, Exit};
use crate::registry::{Record, Registry};
use crate::tmux::Tmux;

pub fn run(args: &IdArg) -> anyhow::Result<Exit> {
    let env = Env::from_process()?;
    let registry = Registry::open(&env)?;
    let (_, record) = registry.find(&args.id)?;
    attach(&env, &record)?;
    Ok(Exit::Success)
}

/// Whether attaching only switches this tmux client (inside tmux, on the
/// job's own server) rather than taking over the terminal.
pub fn switches(env: &Env, record: &Record) -> bool {
    env.var("TMUX").is_some() && record.spec.tmux.socket.is_empty()
}

/// Switches to (inside tmux) or attaches to the job's current window.
pub fn attach(env: &Env, record: &Record) -> anyhow::Result<()> {
    let job = &record.id;
    let window = record
        .attempt_info(record.attempt)
        .and_then(|a| a.window.clone())
        .ok_or_else(|| {
            config_error(format!(
                "job {job} has no window (state: {})",
                record.state.as_str()
            ))
            .help(format!("`tmux-delegate logs {job}` shows its history"))
        })?;
    let tmux = Tmux::new(&record.spec.tmux, vec!["MQTT_PASSWORD".into()]);
    let inside = switches(env, record);
    let verb = if inside {
        "switch-client"
    } else {
        "attach-session"
    };
    let mut command = tmux.interactive(&[verb, "-t", &window]);
    if !inside {
        // From inside another tmux server, attaching nests (tmux refuses
        // while TMUX is set): the job runs on its own server.
        command.env_remove("TMUX");
    }
    let status = command
        .status()
        .map_err(|e| anyhow::anyhow!("running tmux {verb}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(config_error(format!(
            "cannot reach the window of job {job}: `tmux {verb} -t {window}` failed"
        ))
        .help(format!(
            "the window may be closed (the job is {}); `tmux-delegate logs {job}` shows its history",
            record.state.as_str()
        ))
        .into())
    }
}
