//! `s` and `a`: a typed line, or the keys of a dialog's first choice, go
//! into a job's window through the rules `send` applies
//! (`supervisor::send`), so `top` refuses what `send` refuses, with the
//! same reason. A line for a finished job is `send`'s follow-up (a new
//! attempt that continues the conversation, which needs a supervisor for
//! its whole length): `top` starts `tmux-delegate send ID -- TEXT` detached,
//! as `r` starts `retry`, the text one argument, no shell between.

use super::app::App;
use super::Session;
use crate::supervisor::send::{first_choice, to_window, verdict};
use crate::tmux::job_window::Input;

impl Session<'_> {
    /// `s`: opens the line when one may go to the job now, else says why
    /// (before anything is typed).
    pub(super) fn open_send(&self, id: String, app: &mut App) {
        match self.record(&id) {
            Err(message) => app.message = Some(message),
            Ok(record) if record.state.is_finished() => app.start_send(id, true),
            Ok(record) => match verdict(&record, &Input::Text(""), false) {
                Ok(_) => app.start_send(id, false),
                Err(why) if record.dialog.is_some() => {
                    app.message = Some(format!("cannot send to {id}: {why}, or `a` here"));
                }
                Err(why) => app.message = Some(format!("cannot send to {id}: {why}")),
            },
        }
    }

    /// The typed line, to the job's window (checked again: the job may have
    /// moved on while the line was typed), or as a follow-up.
    pub(super) async fn send_line(&self, id: &str, text: &str) -> String {
        let record = match self.record(id) {
            Ok(record) => record,
            Err(message) => return message,
        };
        if record.state.is_finished() {
            let what = format!("follow-up of {id}");
            return match super::detached(&["send", id, "--", text], what, self.messages.0.clone()) {
                Ok(()) => format!(
                    "{id} follows up in the background: attempt {}",
                    record.attempt + 1
                ),
                Err(e) => format!("cannot run send: {e}"),
            };
        }
        match to_window(&record, Input::Text(text), false).await {
            Ok(()) => format!("sent to {id} (attempt {})", record.attempt),
            Err(e) => format!("{e:#}"),
        }
    }

    /// `a` then `y`: the keys of the dialog's first choice.
    pub(super) async fn answer(&self, id: &str) -> String {
        let record = match self.record(id) {
            Ok(record) => record,
            Err(message) => return message,
        };
        let keys = match first_choice(&record).await {
            Ok(keys) => keys,
            Err(why) => return format!("cannot answer {id}: {why}"),
        };
        match to_window(&record, Input::Keys(&keys), false).await {
            Ok(()) => format!("answered {id} with {}", keys.join(" ")),
            Err(e) => format!("{e:#}"),
        }
    }
}
