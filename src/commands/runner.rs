//! `runner [--pool NAME] [--name NAME] [--max-parallel N]`: serve a fleet
//! pool on this host (see `fleet::runner`).

use crate::cli::RunnerArgs;
use crate::config::{Config, Env};
use crate::error::Exit;

pub async fn run(args: RunnerArgs) -> anyhow::Result<Exit> {
    let config = Config::load(Env::from_process()?)?;
    let settings =
        crate::fleet::runner::settings(&config, args.pool, args.name, args.max_parallel)?;
    crate::fleet::runner::run(config, settings).await
}
