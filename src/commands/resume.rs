//! `resume`: re-adopt the unfinished jobs of a supervisor that is gone (a
//! crash, a closed terminal). Live windows are supervised on; a retained
//! `completed`/`error` decides a job that ended meanwhile; a window that is
//! gone or dead fails (or retries) its attempt by the usual rules.

use crate::config::{Config, Env};
use crate::error::{config_error, Exit};
use crate::registry::{Record, Registry};
use crate::supervisor::detach::{report_failure, report_ready};
use crate::supervisor::ownership::{never_started, orphaned};
use crate::supervisor::session::{self, Brokers};

pub async fn run() -> anyhow::Result<Exit> {
    session::listen_for_cancel_requests()?;
    let config = Config::load(Env::from_process()?)?;
    let registry = Registry::open(&config.env)?;
    let (records, corrupt) = registry.list()?;
    for bad in corrupt {
        eprintln!("warning: skipping job {}: {}", bad.id, bad.problem);
    }
    let orphans: Vec<Record> = records.into_iter().filter(orphaned).collect();
    if orphans.is_empty() {
        // A detached `resume` (started by `add`) tells its launcher too.
        report_ready(&config.env, &[]);
        eprintln!("nothing to resume: no unfinished job has lost its supervisor");
        return Ok(Exit::Success);
    }
    let launched = orphans.iter().any(|r| !never_started(r));
    if launched && config.observer_broker()?.is_none() {
        let failure = config_error(format!(
            "{} job(s) to resume, but no broker is configured: the embedded broker they reported to ended with their supervisor",
            orphans.len()
        ))
        .help("stop them with `tmux-delegate kill ID` and start them again with `tmux-delegate retry ID`");
        return report_failure(&config.env, Err(failure));
    }
    let brokers = report_failure(&config.env, Brokers::resolve(&config).await)?;
    let subscriber = report_failure(&config.env, brokers.listen().await)?;
    let adopted = session::adopt(&registry, orphans, &brokers);
    let ids: Vec<String> = adopted.iter().map(|r| r.id.clone()).collect();
    report_ready(&config.env, &ids);
    let json = !std::io::IsTerminal::is_terminal(&std::io::stdout());
    session::supervise(
        &config, &registry, &brokers, subscriber, adopted, json, true,
    )
    .await
}
