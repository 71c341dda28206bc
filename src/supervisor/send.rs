//! What `send ID TEXT | --keys KEY...` may do with a job as its record
//! stands (SPEC section 14): type into its window, follow a finished job
//! up with a new attempt in its conversation, or refuse with why. One rule
//! for `send` on the job's host and for a fleet runner answering a `send`
//! control from another host (a command may not be called from below it:
//! `tests/architecture.rs`).

use crate::agents::screens::ScreenSet;
use crate::error::{Exit, Failure};
use crate::model::JobState;
use crate::registry::Record;
use crate::tmux::job_window;
pub use crate::tmux::job_window::Input;

/// The keys a dialog takes: choosing, confirming, cancelling. No key
/// name that runs anything (tmux's `C-...` chords, copy mode).
pub const DIALOG_KEYS: &[&str] = &[
    "Enter", "Escape", "Up", "Down", "Left", "Right", "Tab", "Space", "BSpace", "y", "n", "0", "1",
    "2", "3", "4", "5", "6", "7", "8", "9",
];

/// The most text one `send` carries (it goes to the pane byte by byte, or
/// becomes one argument of the agent's command line).
pub const TEXT_MAX: usize = 16 * 1024;

/// Where the input goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Typed into the job's window.
    Window,
    /// A new attempt that continues the finished job's conversation with
    /// the text as its message.
    FollowUp,
}

/// Where `input` may go as the job's record stands; why not.
pub fn verdict(record: &Record, input: &Input<'_>, now: bool) -> Result<Delivery, String> {
    let state = record.state;
    if let Input::Text(text) = input {
        if text.len() > TEXT_MAX {
            return Err(format!(
                "the text is {} bytes; at most {TEXT_MAX} go in one `send`",
                text.len()
            ));
        }
        if state.is_finished() {
            return Ok(Delivery::FollowUp);
        }
    }
    if state.is_finished() {
        return Err(format!(
            "it is {}: keys go only to a dialog on the screen of a live job",
            state.as_str()
        ));
    }
    if matches!(
        state,
        JobState::Pending
            | JobState::Queued
            | JobState::Retrying
            | JobState::Launching
            | JobState::Limited
    ) {
        return Err(format!(
            "it is {}: no agent is on screen yet",
            state.as_str()
        ));
    }
    match (input, &record.dialog) {
        (Input::Text(_), Some(dialog)) => Err(format!(
            "its screen shows a dialog ({dialog}): answer it with `send {} --keys KEY...`",
            record.id
        )),
        (Input::Keys(_), None) => {
            Err("no dialog is on its screen: send text instead (`send ID TEXT`)".into())
        }
        (Input::Keys(keys), Some(_)) => {
            match keys.iter().find(|k| !DIALOG_KEYS.contains(&k.as_str())) {
                Some(bad) => Err(format!(
                    "`{bad}` is not a dialog key: use {}",
                    DIALOG_KEYS.join(", ")
                )),
                None => Ok(Delivery::Window),
            }
        }
        (Input::Text(_), None) if state != JobState::Waiting && !now => Err(format!(
            "it is {} (mid-turn): wait until it is waiting, or type it anyway with `send {} --now TEXT`",
            state.as_str(),
            record.id
        )),
        (Input::Text(_), None) => Ok(Delivery::Window),
    }
}

/// Checks `input` against the record and types it into the job's current
/// window; a refusal is a usage error (exit 2) that says why.
pub async fn to_window(record: &Record, input: Input<'_>, now: bool) -> anyhow::Result<()> {
    let refused = |why: String| {
        Failure::new(
            Exit::Usage,
            format!("cannot send to job {}: {why}", record.id),
        )
    };
    match verdict(record, &input, now).map_err(refused)? {
        Delivery::Window => job_window::send(record, input).await,
        Delivery::FollowUp => Err(refused(format!(
            "it is {}: a follow-up is `send {} TEXT`, not typing",
            record.state.as_str(),
            record.id
        ))
        .into()),
    }
}

/// Where `send ID` on this host takes `input` for the job of `record`:
/// `verdict`'s refusal as a usage error (exit 2) that says why, and a
/// follow-up of a fleet job refused (its runner starts it, or the fleet
/// would never see the attempt).
pub fn on_this_host(record: &Record, input: &Input<'_>, now: bool) -> anyhow::Result<Delivery> {
    let delivery = verdict(record, input, now).map_err(|why| {
        Failure::new(
            Exit::Usage,
            format!("cannot send to job {}: {why}", record.id),
        )
    })?;
    if let (Delivery::FollowUp, Some(owner)) = (delivery, &record.fleet_owner) {
        return Err(crate::error::config_error(format!(
            "job {} is a fleet job of runner {}: its follow-up is the runner's to start",
            record.id, owner.runner
        ))
        .help(format!(
            "send it from a host with the submitter's broker settings: tmux-delegate send {} TEXT",
            record.id
        ))
        .into());
    }
    Ok(delivery)
}

/// The keys that choose the first option of the dialog the record names,
/// as the rule that sees it on the job's screen now says (Enter, where the
/// first option is preselected, unless the rule says otherwise). Refused
/// when the screen no longer shows that dialog.
pub async fn first_choice(record: &Record) -> Result<Vec<String>, String> {
    let Some(dialog) = &record.dialog else {
        return Err("no dialog is on its screen".into());
    };
    let Some(agent) = &record.agent else {
        // A registered job has no rules here; a dialog on its record came
        // from a supervisor's rules all the same: Enter picks what is selected.
        return Ok(vec!["Enter".into()]);
    };
    let rules = ScreenSet::compile(&agent.screens)
        .map_err(|e| format!("its agent's screen rules do not compile: {e}"))?;
    let screen = job_window::screen(record)
        .await
        .map_err(|e| format!("cannot read its screen: {e:#}"))?;
    choice_on_screen(dialog, &rules, &screen)
}

/// The first-choice keys of `dialog` if `screen` still shows it.
fn choice_on_screen(dialog: &str, rules: &ScreenSet, screen: &str) -> Result<Vec<String>, String> {
    match rules.waiting(screen) {
        Some(shown) if shown.message == dialog => Ok(shown.first_choice),
        Some(shown) => Err(format!(
            "its screen now shows another dialog ({}): look again",
            shown.message
        )),
        None => Err(format!("its screen no longer shows the dialog ({dialog})")),
    }
}

/// What a follow-up asks of the finished job's next attempt: `text` as the
/// next turn of its conversation.
pub fn follow_up_turn(record: &Record, text: &str) -> crate::model::conversation::NextTurn {
    crate::model::conversation::NextTurn {
        attempt: record.attempt + 1,
        fresh: false,
        text: Some(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: JobState, dialog: Option<&str>) -> Record {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut record = crate::registry::tests::sample_record(dir.path(), "job-1");
        record.state = state;
        record.dialog = dialog.map(str::to_owned);
        record
    }

    #[test]
    fn text_goes_to_a_waiting_prompt_or_follows_up_and_keys_go_to_a_dialog_only() {
        use Delivery::{FollowUp, Window};
        let enter = ["Enter".to_owned()];
        let chord = ["C-c".to_owned()];
        let text = Input::Text("yes, go on");
        let long = "x".repeat(TEXT_MAX + 1);
        let too_long = Input::Text(&long);
        let keys = Input::Keys(&enter);
        let bad_keys = Input::Keys(&chord);
        let trust = Some("Claude Code asks whether you trust this folder");
        // (state, dialog, input, --now, where it goes)
        type Case<'a> = (
            JobState,
            Option<&'a str>,
            &'a Input<'a>,
            bool,
            Option<Delivery>,
        );
        let cases: Vec<Case> = vec![
            (JobState::Waiting, None, &text, false, Some(Window)),
            (JobState::Running, None, &text, false, None),
            (JobState::Running, None, &text, true, Some(Window)),
            (JobState::Waiting, trust, &text, true, None),
            (JobState::Waiting, trust, &keys, false, Some(Window)),
            (JobState::Waiting, trust, &bad_keys, false, None),
            (JobState::Waiting, None, &keys, false, None),
            (JobState::Completed, None, &text, false, Some(FollowUp)),
            (JobState::Failed, None, &text, false, Some(FollowUp)),
            (JobState::Completed, None, &keys, false, None),
            (JobState::Completed, None, &too_long, false, None),
            (JobState::Waiting, None, &too_long, false, None),
            (JobState::Queued, None, &text, true, None),
        ];
        for (n, (state, dialog, input, now, goes)) in cases.into_iter().enumerate() {
            assert_eq!(
                verdict(&record(state, dialog), input, now).ok(),
                goes,
                "case {n}"
            );
        }
    }

    #[test]
    fn the_first_choice_is_the_rules_for_the_dialog_still_on_screen() {
        let rule =
            |pattern: &str, first_choice: Option<&[&str]>| crate::agents::screens::ScreenRule {
                pattern: pattern.into(),
                state: crate::agents::screens::ScreenState::Waiting,
                keys: None,
                first_choice: first_choice.map(|k| k.iter().map(|&s| s.to_owned()).collect()),
                message: None,
                fix: None,
            };
        let rules = ScreenSet::compile(&[
            rule(r"(Proceed\?)", None),
            rule(r"(Use this key\?)", Some(&["Up", "Enter"])),
        ])
        .expect("rules");
        let enter = vec!["Enter".to_owned()];
        assert_eq!(
            choice_on_screen("Proceed?", &rules, "Proceed?\n> 1. Yes"),
            Ok(enter)
        );
        assert_eq!(
            choice_on_screen("Use this key?", &rules, "Use this key?\n  1. Yes\n> 2. No"),
            Ok(vec!["Up".to_owned(), "Enter".to_owned()])
        );
        let other = choice_on_screen("Proceed?", &rules, "Use this key?").expect_err("another");
        assert!(other.contains("another dialog (Use this key?)"), "{other}");
        let gone = choice_on_screen("Proceed?", &rules, "> ").expect_err("gone");
        assert!(
            gone.contains("no longer shows the dialog (Proceed?)"),
            "{gone}"
        );
    }
}
