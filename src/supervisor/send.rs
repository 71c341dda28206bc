//! Typing into a live job's window without attaching (SPEC section 14
//! "Send"): whether a line or keys may go to the job as its record stands,
//! and the typing. `send ID TEXT | --keys KEY...` and `top`'s `s` and `a`
//! go through here, so the rules are the same for both.

use crate::agents::screens::ScreenSet;
use crate::error::{Exit, Failure};
use crate::model::JobState;
use crate::registry::Record;
use crate::tmux::job_window::{self, Input};

/// The keys a dialog takes: choosing, confirming, cancelling. No key
/// name that runs anything (tmux's `C-...` chords, copy mode).
const DIALOG_KEYS: &[&str] = &[
    "Enter", "Escape", "Up", "Down", "Left", "Right", "Tab", "Space", "BSpace", "y", "n", "0", "1",
    "2", "3", "4", "5", "6", "7", "8", "9",
];

/// The most text one `send` types (it goes to the pane byte by byte).
const TEXT_MAX: usize = 16 * 1024;

/// Checks `input` against the record and types it into the job's current
/// window; a refusal is a usage error (exit 2) that says why.
pub async fn to_window(record: &Record, input: Input<'_>, now: bool) -> anyhow::Result<()> {
    verdict(record, &input, now).map_err(|why| {
        Failure::new(
            Exit::Usage,
            format!("cannot send to job {}: {why}", record.id),
        )
    })?;
    job_window::send(record, input).await
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

/// Whether `input` may go to the job as its record stands; why not.
pub fn verdict(record: &Record, input: &Input<'_>, now: bool) -> Result<(), String> {
    let state = record.state;
    if state.is_finished() {
        return Err(format!(
            "it is {}: keys go only to a dialog on the screen of a live job",
            state.as_str()
        ));
    }
    if matches!(
        state,
        JobState::Pending | JobState::Queued | JobState::Retrying | JobState::Launching
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
                None => Ok(()),
            }
        }
        (Input::Text(text), None) if text.len() > TEXT_MAX => Err(format!(
            "the text is {} bytes; at most {TEXT_MAX} go to a window",
            text.len()
        )),
        (Input::Text(_), None) if state != JobState::Waiting && !now => Err(format!(
            "it is {} (mid-turn): wait until it is waiting, or type it anyway with `send {} --now TEXT`",
            state.as_str(),
            record.id
        )),
        (Input::Text(_), None) => Ok(()),
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
    fn text_goes_to_a_waiting_prompt_and_keys_to_a_dialog_only() {
        let enter = ["Enter".to_owned()];
        let chord = ["C-c".to_owned()];
        let text = Input::Text("yes, go on");
        let keys = Input::Keys(&enter);
        let bad_keys = Input::Keys(&chord);
        let trust = Some("Claude Code asks whether you trust this folder");
        // (state, dialog, input, --now, sent)
        let cases: Vec<(JobState, Option<&str>, &Input, bool, bool)> = vec![
            (JobState::Waiting, None, &text, false, true),
            (JobState::Running, None, &text, false, false),
            (JobState::Running, None, &text, true, true),
            (JobState::Waiting, trust, &text, true, false),
            (JobState::Waiting, trust, &keys, false, true),
            (JobState::Waiting, trust, &bad_keys, false, false),
            (JobState::Waiting, None, &keys, false, false),
            (JobState::Completed, None, &text, true, false),
            (JobState::Queued, None, &text, true, false),
        ];
        for (n, (state, dialog, input, now, sent)) in cases.into_iter().enumerate() {
            assert_eq!(
                verdict(&record(state, dialog), input, now).is_ok(),
                sent,
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
