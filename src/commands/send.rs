//! `send ID TEXT` / `send ID --keys KEY...`: answer a job without
//! attaching (SPEC section 14). Text goes to an agent waiting at its
//! prompt (or mid-turn with `--now`), byte for byte; to a finished job it
//! is a follow-up: a new attempt in the same conversation, supervised here
//! like `retry`. Keys go only to a dialog, from a short list. Anything
//! else is refused, exit 2, with why.

use crate::cli::SendArgs;
use crate::config::Env;
use crate::error::{Exit, Failure};
use crate::model::JobState;
use crate::registry::{Record, Registry};
use crate::tmux::job_window::{self, Input};

/// The keys a dialog takes: choosing, confirming, cancelling. No key
/// name that runs anything (tmux's `C-...` chords, copy mode).
const DIALOG_KEYS: &[&str] = &[
    "Enter", "Escape", "Up", "Down", "Left", "Right", "Tab", "Space", "BSpace", "y", "n", "0", "1",
    "2", "3", "4", "5", "6", "7", "8", "9",
];

/// The most text one `send` types (it goes to the pane byte by byte).
const TEXT_MAX: usize = 16 * 1024;

pub async fn run(args: &SendArgs) -> anyhow::Result<Exit> {
    let env = Env::from_process()?;
    let registry = Registry::open(&env)?;
    let (job, record) = registry.find(&args.id)?;
    let input = match &args.text {
        Some(text) => Input::Text(text),
        None => Input::Keys(&args.keys),
    };
    if let (Input::Text(text), true) = (&input, record.state.is_finished()) {
        return follow_up(&env, &registry, &job, &record, text).await;
    }
    verdict(&record, &input, args.now).map_err(|why| {
        Failure::new(
            Exit::Usage,
            format!("cannot send to job {}: {why}", record.id),
        )
    })?;
    job_window::send(&record, input).await?;
    eprintln!("sent to job {} (attempt {})", record.id, record.attempt);
    Ok(Exit::Success)
}

/// A follow-up for a finished job: its next attempt starts with `text`
/// in the agent's conversation (or, with none to continue, after the task).
async fn follow_up(
    env: &Env,
    registry: &Registry,
    job: &crate::model::JobId,
    record: &Record,
    text: &str,
) -> anyhow::Result<Exit> {
    crate::supervisor::session::listen_for_cancel_requests()?;
    let config = crate::config::Config::load(env.clone())?;
    let next_turn = crate::model::conversation::NextTurn {
        attempt: record.attempt + 1,
        fresh: false,
        text: Some(text.to_owned()),
    };
    eprintln!(
        "job {} is {}: attempt {} follows up in its conversation",
        record.id,
        record.state.as_str(),
        record.attempt + 1
    );
    crate::supervisor::session::run_again(&config, registry, job, Some(next_turn)).await
}

/// Whether `input` may go to the job as its record stands; why not.
fn verdict(record: &Record, input: &Input<'_>, now: bool) -> Result<(), String> {
    let state = record.state;
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
                None => Ok(()),
            }
        }
        (Input::Text(text), None) if text.len() > TEXT_MAX => Err(format!(
            "the text is {} bytes; at most {TEXT_MAX} go to a window",
            text.len()
        )),
        (Input::Text(_), None) if state != JobState::Waiting && !now => Err(format!(
            "it is {} (mid-turn): wait until it is waiting, or pass --now",
            state.as_str()
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
}
