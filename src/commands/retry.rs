//! `retry ID`: a new attempt of a finished job, supervised in the foreground
//! like `run` (with a fresh retry budget; attempt numbers keep counting).

use crate::cli::IdArg;
use crate::config::{Config, Env};
use crate::error::{config_error, Exit};
use crate::model::JobState;
use crate::registry::Registry;
use crate::supervisor::session::{self, Brokers};

pub async fn run(args: &IdArg) -> anyhow::Result<Exit> {
    if let Some(config) = crate::fleet::remote::job_config(&args.id)? {
        return crate::fleet::remote::retry(&config, &args.id).await;
    }
    session::listen_for_cancel_requests()?;
    let env = Env::from_process()?;
    let config = Config::load(env)?;
    let registry = Registry::open(&config.env)?;
    let (job, record) = registry.find(&args.id)?;
    if !record.state.is_finished() {
        return Err(
            config_error(format!("job {job} is still {}", record.state.as_str()))
                .help(format!(
                    "wait for it, or stop it first: tmux-delegate kill {job}"
                ))
                .into(),
        );
    }
    if record.agent.is_none() {
        return Err(config_error(format!(
            "job {job} was registered, not run: its agent reports on its own"
        ))
        .help("start its agent again, or delegate it anew with `tmux-delegate run`")
        .into());
    }
    let brokers = Brokers::resolve(&config).await?;
    let subscriber = brokers.listen().await?;
    let record = registry.update(&job, |r| {
        r.state = JobState::Pending;
        r.failure = None;
        r.cancel_requested = false;
        r.supervisor_pid = i32::try_from(std::process::id()).ok();
        // An embedded broker is new for every supervisor (port, password).
        r.broker = Some(brokers.worker.clone());
    })?;
    let json = !std::io::IsTerminal::is_terminal(&std::io::stdout());
    session::supervise(
        &config,
        &registry,
        &brokers,
        subscriber,
        vec![record],
        json,
        false,
    )
    .await
}
