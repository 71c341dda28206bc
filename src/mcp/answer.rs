//! `send` and `kill`: the rules and stop sequence the commands use
//! (`supervisor::send`, `supervisor::stop`; a fleet job's runner asked
//! with a signed control). A follow-up of a finished job runs under a
//! detached supervisor (`send ID -- TEXT` in its own tmux window, as `top`
//! starts one), so the call returns once its attempt is registered.

use super::params::SendParams;
use super::place::{row, Place};
use crate::config::{Config, Env};
use crate::error::config_error;
use crate::supervisor::detach::{self, Relaunch};
use crate::supervisor::send::{on_this_host, Delivery, Input};
use serde_json::{json, Value};

pub async fn send(base: &Env, params: SendParams) -> anyhow::Result<Value> {
    let input = match (&params.text, params.keys.is_empty()) {
        (Some(text), true) => Input::Text(text),
        (None, false) => Input::Keys(&params.keys),
        _ => {
            return Err(config_error("send takes `text` or `keys`, one of the two")
                .help("`text` for an agent at its prompt (or a finished job), `keys` for a dialog on its screen")
                .into())
        }
    };
    let place = Place::of(&params.id)?;
    let (registry, record) = match &place {
        Place::Fleet { config, job } => {
            let answer =
                crate::fleet::remote::send(config, job.as_str(), &input, params.now).await?;
            return Ok(json!({"id": job.as_str(), "sent": answer}));
        }
        Place::Local {
            registry, record, ..
        } => (registry, record),
    };
    match (on_this_host(record, &input, params.now)?, input) {
        (Delivery::FollowUp, Input::Text(text)) => {
            let config = Config::load(base.clone())?;
            let attempt = crate::supervisor::send::follow_up_turn(record, text).attempt;
            let argv = ["send", &record.id, "--", text].map(str::to_owned);
            detach::launch(&config, Relaunch::new(argv.to_vec(), &config.env)).await?;
            let record = registry.load(&crate::model::JobId::parse(&record.id)?)?;
            Ok(json!({
                "id": record.id,
                "sent": "a follow-up: a new attempt in the job's conversation",
                "attempt": attempt,
                "state": record.state.as_str(),
            }))
        }
        (_, input) => {
            crate::tmux::job_window::send(record, input).await?;
            Ok(json!({
                "id": record.id,
                "sent": "typed into the job's window",
                "attempt": record.attempt,
                "state": record.state.as_str(),
            }))
        }
    }
}

/// `kill {id}`: the job stopped and cancelled (already finished: left as
/// it is); its row.
pub async fn kill(id: &str) -> anyhow::Result<Value> {
    let place = Place::of(id)?;
    match &place {
        Place::Fleet { config, job } => {
            crate::fleet::remote::kill(config, job.as_str()).await?;
        }
        Place::Local { registry, job, .. } => {
            let killed = crate::supervisor::stop::cancel(registry, job).await?;
            tracing::info!("{}", killed.note);
        }
    }
    row(&place).await
}
