//! A job's history as lines of text, one per entry of `events.jsonl`: what
//! `logs` prints, `top` shows and a fleet job's log carries to other hosts.

use crate::registry::LogEntry;
use std::time::Duration;

fn when(ts: f64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::try_from_secs_f64(ts).unwrap_or_default();
    humantime::format_rfc3339_millis(at).to_string()
}

/// One history entry as one line: time, attempt, what happened.
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
