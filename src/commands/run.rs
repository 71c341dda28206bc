//! `run [JOB.toml ...]`: register each job, launch it in its own tmux window
//! and supervise all of them in this process until they end. Exits 0 when
//! all completed, 1 when any failed (or was cancelled), 124 when any timed
//! out and none failed, 130 on Ctrl-C — after stopping every window cleanly.

use crate::cli::RunArgs;
use crate::config::job::JobFlags;
use crate::config::{Config, Env};
use crate::error::Exit;
use crate::registry::{Record, Registry};
use crate::supervisor::detach::{self, report_failure};
use crate::supervisor::queue_plan;
use crate::supervisor::session::{self, Brokers};
use crate::supervisor::submission::{self, RunRequest, Submission};

pub async fn run(args: RunArgs) -> anyhow::Result<Exit> {
    if let Some(launch_file) = &args.detached_from {
        return detach::supervise_from(launch_file).await;
    }
    session::listen_for_cancel_requests()?;
    let env = Env::from_process()?;
    let config = Config::load(env)?;
    let json = args.json;
    let mut flags = JobFlags::from(args.job);
    if args.worktree {
        flags.workspace = Some(crate::config::workspace::WorkspaceMode::Worktree);
    }
    let request = RunRequest {
        specs: args.specs,
        flags,
        after: args.after,
        max_parallel: args.max_parallel,
        json,
    };
    // Everything is validated here, in this terminal; the detached
    // supervisor starts from the same arguments and environment.
    let Submission { jobs, planned } = submission::check(&config, &request).await?;
    if args.detach {
        let detached = detach::launch(&config, submission::relaunch(&request, &config.env)).await?;
        detached.announce();
        return Ok(Exit::Success);
    }
    // A detached supervisor tells its launching terminal why it stopped.
    let brokers = report_failure(&config.env, Brokers::resolve(&config).await)?;
    let subscriber = report_failure(&config.env, brokers.listen().await)?;
    let registry = Registry::open(&config.env)?;
    let mut prepared = Vec::new();
    for (spec, agent, checked) in jobs {
        let mut record = session::new_record(&config, spec, agent, Some(brokers.worker.clone()));
        if let Some(checked) = checked {
            match crate::workspace::create_for_job(&checked, &record, registry.root()) {
                Ok(workspace) => {
                    eprintln!(
                        "{}: worktree {} on branch {}",
                        record.spec.name,
                        workspace.path.display(),
                        workspace.branch
                    );
                    record.workspace = Some(workspace);
                }
                Err(e) => {
                    prepared
                        .iter()
                        .filter_map(|r: &Record| r.workspace.as_ref())
                        .for_each(crate::workspace::discard_unregistered);
                    return report_failure(&config.env, Err(e));
                }
            }
        }
        prepared.push(record);
    }
    let ids: Vec<String> = prepared.iter().map(|r| r.id.clone()).collect();
    let names: Vec<String> = prepared.iter().map(|r| r.spec.name.clone()).collect();
    for (record, queue) in prepared
        .iter_mut()
        .zip(queue_plan::finish(planned, &ids, &names))
    {
        record.queue = queue;
    }
    for record in &prepared {
        report_failure(&config.env, registry.create(record))?;
    }
    // SPEC section 5: `run` re-adopts the orphans of a dead supervisor too.
    prepared.extend(session::orphans_on(&config, &registry, &brokers));
    detach::report_ready(&config.env, &ids);
    session::supervise(
        &config, &registry, &brokers, subscriber, prepared, json, true,
    )
    .await
}
