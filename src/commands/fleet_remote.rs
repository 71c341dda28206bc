//! `status`, `logs`, `kill` and `retry` reach the fleet (SPEC section 13) for jobs
//! this host's registry does not have: their state is on the broker.

use crate::cli::{IdArg, LogsArgs, StatusArgs};
use crate::config::{Config, Env};
use crate::error::Exit;
use crate::fleet::remote;
use crate::registry::Registry;

/// Whether the job is in this host's registry (then the local command acts).
fn is_local(config: &Config, id: &str) -> anyhow::Result<bool> {
    Ok(Registry::open(&config.env)?.find(id).is_ok())
}

/// `status`: the fleet's jobs with `--fleet`, or on a host that is part of
/// a fleet (`[fleet]`) and runs nothing itself.
pub async fn status(args: StatusArgs) -> anyhow::Result<Exit> {
    if !args.tmux {
        // `status` reads the registry: a broken config must not stop it,
        // unless the fleet was asked for.
        let config = match Config::load(Env::from_process()?) {
            Ok(config) => config,
            Err(e) if args.fleet => return Err(e.into()),
            Err(_) => return super::status::run(&args),
        };
        let fleet = args.fleet
            || (remote::configured(&config)
                && match &args.id {
                    Some(id) => !is_local(&config, id)?,
                    None => Registry::open(&config.env)?.list()?.0.is_empty(),
                });
        if fleet {
            return remote::status(&config, args.id.as_deref(), args.json).await;
        }
    }
    super::status::run(&args)
}

/// A broker is configured and the job is not here: it may be a fleet job.
/// Anything unreadable leaves the decision to the local command, which
/// reports it in its own words (and never needed the config before).
fn remote_config(id: &str) -> anyhow::Result<Option<Config>> {
    let Ok(config) = Config::load(Env::from_process()?) else {
        return Ok(None);
    };
    let local = is_local(&config, id).unwrap_or(true);
    if local || !matches!(config.observer_broker(), Ok(Some(_))) {
        return Ok(None);
    }
    Ok(Some(config))
}

pub async fn kill(args: IdArg) -> anyhow::Result<Exit> {
    match remote_config(&args.id)? {
        Some(config) => remote::kill(&config, &args.id).await,
        None => super::kill::run(&args).await,
    }
}

pub async fn retry(args: IdArg) -> anyhow::Result<Exit> {
    match remote_config(&args.id)? {
        Some(config) => remote::retry(&config, &args.id).await,
        None => super::retry::run(&args).await,
    }
}

pub async fn logs(args: LogsArgs) -> anyhow::Result<Exit> {
    match remote_config(&args.id)? {
        Some(config) => crate::fleet::joblog::show(&config, &args.id, args.follow).await,
        None => super::logs::run(args).await,
    }
}
