//! `submit [JOB.toml ...] [--prompt ...] [--pool NAME] [--wait]`: hand jobs
//! to a fleet pool (see `fleet::submit`).

use crate::cli::SubmitArgs;
use crate::config::{Config, Env};
use crate::error::{config_error, Exit};
use crate::fleet::submit::SubmitRequest;
use std::time::Duration;

pub async fn run(args: SubmitArgs) -> anyhow::Result<Exit> {
    let config = Config::load(Env::from_process()?)?;
    let timeout = match args.timeout {
        Some(secs) if secs.is_finite() && secs > 0.0 => Some(Duration::from_secs_f64(secs)),
        Some(_) => {
            return Err(config_error("--timeout must be a positive number of seconds").into())
        }
        None => None,
    };
    let asked = SubmitRequest {
        specs: args.specs,
        flags: args.job.into(),
        pool: args.pool,
        wait: args.wait,
        timeout,
        json: args.json,
    };
    crate::fleet::submit::run(&config, asked).await
}
