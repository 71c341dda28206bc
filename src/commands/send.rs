//! `send ID TEXT` / `send ID --keys KEY...`: answer a job without
//! attaching (SPEC section 14). Text goes to an agent waiting at its
//! prompt (or mid-turn with `--now`), byte for byte; to a finished job it
//! is a follow-up: a new attempt in the same conversation, supervised here
//! like `retry`. Keys go only to a dialog, from a short list. Anything
//! else is refused, exit 2, with why (`supervisor::send::on_this_host`). A
//! fleet job's runner is asked to do the same with a signed control.

use crate::cli::SendArgs;
use crate::config::Env;
use crate::error::Exit;
use crate::registry::{Record, Registry};
use crate::supervisor::send::{on_this_host, Delivery, Input};
use crate::tmux::job_window;

pub async fn run(args: &SendArgs) -> anyhow::Result<Exit> {
    let input = match &args.text {
        Some(text) => Input::Text(text),
        None => Input::Keys(&args.keys),
    };
    if let Some(config) = crate::fleet::remote::job_config(&args.id)? {
        let answer = crate::fleet::remote::send(&config, &args.id, &input, args.now).await?;
        eprintln!("{answer}");
        return Ok(Exit::Success);
    }
    let env = Env::from_process()?;
    let registry = Registry::open(&env)?;
    let (job, record) = registry.find(&args.id)?;
    match (on_this_host(&record, &input, args.now)?, input) {
        (Delivery::FollowUp, Input::Text(text)) => {
            follow_up(&env, &registry, &job, &record, text).await
        }
        (_, input) => {
            job_window::send(&record, input).await?;
            eprintln!("sent to job {} (attempt {})", record.id, record.attempt);
            Ok(Exit::Success)
        }
    }
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
    let next_turn = crate::supervisor::send::follow_up_turn(record, text);
    eprintln!(
        "job {} is {}: attempt {} follows up in its conversation",
        record.id,
        record.state.as_str(),
        next_turn.attempt
    );
    crate::supervisor::session::run_again(&config, registry, job, Some(next_turn)).await
}
