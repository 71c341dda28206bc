//! A job's current window as a user reaches it: attach to it (or switch
//! this tmux client to it), read its last screen, and type into it.
//! `attach`, `logs`, `send`, `top` and the fleet's job log all go through these.

use super::Tmux;
use crate::config::Env;
use crate::error::config_error;
use crate::registry::Record;

/// tmux as the user runs it for a job: on its server, without the secrets.
fn user_tmux(record: &Record) -> Tmux {
    Tmux::new(&record.spec.tmux, vec!["MQTT_PASSWORD".into()])
}

/// Whether attaching only switches this tmux client (inside tmux, on the
/// job's own server) rather than taking over the terminal.
pub fn switches(env: &Env, record: &Record) -> bool {
    env.var("TMUX").is_some() && record.spec.tmux.socket.is_empty()
}

/// What `send` types into a job's window.
pub enum Input<'a> {
    /// A line of text, byte for byte, then Enter.
    Text(&'a str),
    /// tmux key names, for a dialog (checked by the caller).
    Keys(&'a [String]),
}

/// Types `input` into the job's current window.
pub async fn send(record: &Record, input: Input<'_>) -> anyhow::Result<()> {
    let window = current_window(record)?;
    let tmux = user_tmux(record);
    match input {
        Input::Text(text) => tmux.send_text(&window, text).await,
        Input::Keys(keys) => tmux.send_keys(&window, keys).await,
    }
}

/// The visible screen of the job's current window, as screen rules read it.
pub async fn screen(record: &Record) -> anyhow::Result<String> {
    let window = current_window(record)?;
    user_tmux(record).capture_screen(&window).await
}

/// What the job's current window shows now, colours kept (SGR escapes),
/// for `top`'s preview: one tmux process, one `capture-pane` of this
/// window only. A window id that names another pane now (its server
/// restarted) is the job's no more.
pub async fn live_screen(record: &Record) -> anyhow::Result<String> {
    let window = current_window(record)?;
    let (pid, screen) = user_tmux(record).capture_styled(&window).await?;
    let launched = record.attempt_info(record.attempt).and_then(|a| a.pane_pid);
    match (launched, pid) {
        (Some(ours), Some(now)) if ours != now => Err(anyhow::anyhow!(
            "window {window} is gone (its id names another pane now)"
        )),
        _ => Ok(screen),
    }
}

fn current_window(record: &Record) -> anyhow::Result<String> {
    Ok(record
        .attempt_info(record.attempt)
        .and_then(|a| a.window.clone())
        .ok_or_else(|| config_error(format!("job {} has no window", record.id)))?)
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
    let tmux = user_tmux(record);
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

/// The last capture of the job's current window, under a heading line.
pub async fn pane_lines(record: &Record) -> Vec<String> {
    let Some(attempt) = record.attempt_info(record.attempt) else {
        return Vec::new();
    };
    let Some(window) = attempt.window.clone() else {
        return Vec::new();
    };
    let tmux = user_tmux(record);
    // Window ids start again at @0 when a tmux server restarts: only the
    // window whose pane is still the attempt's wrapper is the job's.
    let ours = match (attempt.pane_pid, tmux.list_windows().await) {
        (Some(pid), Ok(windows)) => windows
            .iter()
            .any(|w| w.window_id == window && w.pane_pid == pid),
        _ => true,
    };
    let capture = if ours {
        tmux.capture(&window).await
    } else {
        Err(anyhow::anyhow!("the window is gone"))
    };
    match capture {
        Ok(text) => std::iter::once(format!(
            "--- pane of attempt {} (window {window}) ---",
            record.attempt
        ))
        .chain(text.trim_end_matches('\n').lines().map(str::to_owned))
        .collect(),
        Err(_) => vec![format!(
            "--- the window of attempt {} ({window}) is closed ---",
            record.attempt
        )],
    }
}
