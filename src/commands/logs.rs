//! `logs ID [--follow]`: a job's event and transition history, then the
//! last capture of its current window's pane.

use crate::cli::LogsArgs;
use crate::config::Env;
use crate::error::Exit;
use crate::registry::{LogEntry, Record, Registry};
use crate::tmux::Tmux;
use std::time::Duration;

pub async fn run(args: LogsArgs) -> anyhow::Result<Exit> {
    let env = Env::from_process()?;
    let registry = Registry::open(&env)?;
    let (job, record) = registry.find(&args.id)?;
    println!(
        "job {} ({}), agent {}, {} at attempt {}",
        record.id,
        record.spec.name,
        record.spec.agent,
        record.state.as_str(),
        record.attempt
    );
    let mut shown = 0;
    for entry in registry.history(&job)? {
        println!("{}", describe(&entry));
        shown += 1;
    }
    if !args.follow {
        print_pane(&record).await;
        return Ok(Exit::Success);
    }
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(Exit::Interrupted),
        }
        let entries = registry.history(&job)?;
        for entry in entries.iter().skip(shown) {
            println!("{}", describe(entry));
        }
        shown = entries.len();
        let record = registry.load(&job)?;
        if record.state.is_finished() {
            print_pane(&record).await;
            return Ok(Exit::Success);
        }
    }
}

fn when(ts: f64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::try_from_secs_f64(ts).unwrap_or_default();
    humantime::format_rfc3339_millis(at).to_string()
}

pub fn describe(entry: &LogEntry) -> String {
    match entry {
        LogEntry::Event {
            ts,
            attempt,
            event,
            message,
            signature,
            ignored,
            ..
        } => {
            let mut line = format!("{}  #{attempt}  event       {event}", when(*ts));
            if let Some(m) = message {
                line.push_str(&format!("  {m:?}"));
            }
            line.push_str(&format!(
                "  [{}]",
                serde_json::to_value(signature)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            ));
            if let Some(why) = ignored {
                line.push_str(&format!("  ignored: {why}"));
            }
            line
        }
        LogEntry::Transition {
            ts,
            attempt,
            from,
            to,
            reason,
        } => {
            let mut line = format!(
                "{}  #{attempt}  state       {} -> {}",
                when(*ts),
                from.as_str(),
                to.as_str()
            );
            if let Some(r) = reason {
                line.push_str(&format!("  ({r})"));
            }
            line
        }
        LogEntry::Window {
            ts,
            attempt,
            window,
            action,
        } => {
            format!("{}  #{attempt}  window      {window} {action}", when(*ts))
        }
    }
}

async fn print_pane(record: &Record) {
    for line in pane_lines(record).await {
        println!("{line}");
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
    let tmux = Tmux::new(&record.spec.tmux, vec!["MQTT_PASSWORD".into()]);
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
