//! `retry ID [--fresh]`: a new attempt of a finished job, supervised in the
//! foreground like `run` (with a fresh retry budget; attempt numbers keep
//! counting). It continues the agent's conversation where it can, unless
//! `--fresh`.

use crate::cli::RetryArgs;
use crate::config::{Config, Env};
use crate::error::Exit;
use crate::model::conversation::NextTurn;
use crate::registry::Registry;
use crate::supervisor::session;

pub async fn run(args: &RetryArgs) -> anyhow::Result<Exit> {
    if let Some(config) = crate::fleet::remote::job_config(&args.id)? {
        return crate::fleet::remote::retry(&config, &args.id).await;
    }
    session::listen_for_cancel_requests()?;
    let env = Env::from_process()?;
    let config = Config::load(env)?;
    let registry = Registry::open(&config.env)?;
    let (job, record) = registry.find(&args.id)?;
    let next_turn = args.fresh.then(|| NextTurn {
        attempt: record.attempt + 1,
        fresh: true,
        text: None,
    });
    session::run_again(&config, &registry, &job, next_turn).await
}
