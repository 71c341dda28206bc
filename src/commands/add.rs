//! `add [JOB.toml ...] [--prompt ...]`: hands jobs to the running queue.
//! The jobs are registered `queued`, owned by a live supervisor of this
//! registry (and tmux server), which is woken with SIGUSR1 (the signal
//! `kill` uses; it also looks for new queued records it owns) and applies
//! its caps and the dependencies. With no supervisor alive, the records are
//! left without one and a detached `resume` is started to take them on.
//! Prints the new ids, one a line.

use crate::agents;
use crate::agents::AgentDef;
use crate::cli::AddArgs;
use crate::config::job::{JobFlags, JobSpec};
use crate::config::{Config, Env};
use crate::error::{config_error, Exit};
use crate::model::JobState;
use crate::registry::{Record, Registry};
use crate::supervisor::detach::{self, Relaunch};
use crate::supervisor::ownership;
use crate::supervisor::queue_plan::{self, Wants};
use crate::supervisor::session;
use nix::sys::signal::Signal;
use std::path::PathBuf;

pub async fn run(args: AddArgs) -> anyhow::Result<Exit> {
    let config = Config::load(Env::from_process()?)?;
    let flags = JobFlags::from(args.job);
    let (jobs, wants) = resolve_jobs(&config, &flags, &args.specs)?;
    let registry = Registry::open(&config.env)?;
    let planned = queue_plan::plan(
        &config,
        &registry,
        None,
        &jobs
            .iter()
            .zip(wants)
            .map(|((spec, agent), wants)| (spec.name.clone(), agent.name.clone(), wants))
            .collect::<Vec<_>>(),
    )?;
    agents::preflight::check(&config, jobs.iter().map(|(spec, agent)| (spec, agent))).await?;
    let owner = ownership::live_supervisor(&config, &registry);
    let mut records: Vec<Record> = jobs
        .into_iter()
        .map(|(spec, agent)| {
            // The owner's broker; none yet without an owner (the
            // supervisor that takes the job on writes its own).
            let mut record = session::new_record(
                &config,
                spec,
                agent,
                owner.as_ref().map(|o| o.broker.clone()),
            );
            record.state = JobState::Queued;
            record.supervisor_pid = owner.as_ref().map(|o| o.pid);
            record
        })
        .collect();
    let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    let names: Vec<String> = records.iter().map(|r| r.spec.name.clone()).collect();
    for (record, queue) in records
        .iter_mut()
        .zip(queue_plan::finish(planned, &ids, &names))
    {
        record.queue = queue;
    }
    for record in &records {
        registry.create(record)?;
    }
    for id in &ids {
        println!("{id}");
    }
    match owner {
        Some(owner) if wake(owner.pid) => {
            eprintln!(
                "handed {} job(s) to the supervisor (pid {})",
                ids.len(),
                owner.pid
            );
            Ok(Exit::Success)
        }
        _ => start_supervisor(&config, &registry, &ids).await,
    }
}

/// The submitted jobs; a worktree is refused (`add` creates none).
#[allow(clippy::type_complexity)]
fn resolve_jobs(
    config: &Config,
    flags: &JobFlags,
    specs: &[PathBuf],
) -> anyhow::Result<(Vec<(JobSpec, AgentDef)>, Vec<Wants>)> {
    let mut jobs = Vec::new();
    let mut wants = Vec::new();
    for job in session::resolve_jobs(config, flags, specs)? {
        if job.spec.workspace.is_worktree() {
            return Err(config_error(format!(
                "job `{}` asks for a worktree, which `add` does not create",
                job.spec.name
            ))
            .help("start it with `tmux-delegate run --worktree`")
            .into());
        }
        jobs.push((job.spec, job.agent));
        wants.push(job.wants);
    }
    Ok((jobs, wants))
}

/// SIGUSR1 to the supervisor: it looks for the jobs it now owns.
fn wake(pid: i32) -> bool {
    crate::proc::signal_process(pid, Signal::SIGUSR1).unwrap_or(false)
}

/// No supervisor took the jobs: give them none, and start a detached
/// `resume`, which takes on queued jobs without a live supervisor.
async fn start_supervisor(
    config: &Config,
    registry: &Registry,
    ids: &[String],
) -> anyhow::Result<Exit> {
    for id in ids {
        if let Ok(id) = crate::model::JobId::parse(id) {
            registry.update(&id, |r| r.supervisor_pid = None)?;
        }
    }
    eprintln!("no supervisor runs for this registry: starting one in its own tmux window");
    detach::launch(config, Relaunch::resume(&config.env))
        .await?
        .announce();
    Ok(Exit::Success)
}
