//! `run [JOB.toml ...]`: register each job, launch it in its own tmux window
//! and supervise all of them in this process until they end. Exits 0 when
//! all completed, 1 when any failed (or was cancelled), 124 when any timed
//! out and none failed, 130 on Ctrl-C — after stopping every window cleanly.

use crate::agents::{self, AgentDef};
use crate::cli::RunArgs;
use crate::config::job::{JobFlags, JobSpec};
use crate::config::{expand_path, Config, Env};
use crate::error::Exit;
use crate::registry::{Record, Registry};
use crate::supervisor::detach::{self, report_failure, Relaunch};
use crate::supervisor::queue_plan::{self, Wants};
use crate::supervisor::session::{self, Brokers};
use std::path::{Path, PathBuf};

pub async fn run(args: RunArgs) -> anyhow::Result<Exit> {
    if let Some(launch_file) = &args.detached_from {
        return detach::supervise_from(launch_file).await;
    }
    session::listen_for_cancel_requests()?;
    let env = Env::from_process()?;
    let config = Config::load(env)?;
    let json = args.json;
    let relaunch = args.detach.then(|| relaunch_of(&args, &config.env));
    let mut flags = JobFlags::from(args.job);
    if args.worktree {
        flags.workspace = Some(crate::config::workspace::WorkspaceMode::Worktree);
    }
    let (jobs, wants) = resolve_jobs(&config, &flags, &args.specs)?;
    // `after` names that are unknown or form a cycle: exit 2, nothing registered.
    let planned = queue_plan::plan(
        &config,
        &Registry::open(&config.env)?,
        args.max_parallel,
        &jobs
            .iter()
            .zip(wants)
            .map(|((spec, agent, _), wants)| (spec.name.clone(), agent.name.clone(), wants))
            .collect::<Vec<_>>(),
    )?;
    agents::preflight::check(&config, jobs.iter().map(|(spec, agent, _)| (spec, agent))).await?;
    // Everything is validated above, in this terminal; the detached
    // supervisor starts from the same arguments and environment.
    if let Some(relaunch) = relaunch {
        return detach::launch(&config, relaunch).await;
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
    detach::report_ready(&config.env);
    session::supervise(
        &config, &registry, &brokers, subscriber, prepared, json, true,
    )
    .await
}

/// The submitted jobs, each with its checked worktree base (not a
/// repository, or no such base: exit 2 before anything exists).
#[allow(clippy::type_complexity)]
fn resolve_jobs(
    config: &Config,
    flags: &JobFlags,
    specs: &[PathBuf],
) -> anyhow::Result<(
    Vec<(JobSpec, AgentDef, Option<crate::workspace::Checked>)>,
    Vec<Wants>,
)> {
    let mut jobs = Vec::new();
    let mut wants = Vec::new();
    for job in session::resolve_jobs(config, flags, specs)? {
        let checked = if job.spec.workspace.is_worktree() {
            Some(crate::workspace::check(&job.spec)?)
        } else {
            None
        };
        jobs.push((job.spec, job.agent, checked));
        wants.push(job.wants);
    }
    Ok((jobs, wants))
}

/// `run`'s arguments without `--detach` (paths made absolute), for the
/// detached supervisor, which gets this whole environment too.
fn relaunch_of(args: &RunArgs, env: &Env) -> Relaunch {
    let absolute = |p: &Path| {
        expand_path(p, &env.cwd, env.home.as_deref())
            .display()
            .to_string()
    };
    let mut argv = vec!["run".to_owned()];
    if args.json {
        argv.push("--json".into());
    }
    if args.worktree {
        argv.push("--worktree".into());
    }
    let job = &args.job;
    for (flag, value) in [
        ("--prompt", &job.prompt),
        ("--agent", &job.agent),
        ("--name", &job.name),
    ] {
        if let Some(value) = value {
            argv.extend([flag.to_owned(), value.clone()]);
        }
    }
    if let Some(dir) = &job.workdir {
        argv.extend(["--workdir".to_owned(), absolute(dir)]);
    }
    if let Some(cap) = args.max_parallel {
        argv.extend(["--max-parallel".to_owned(), cap.to_string()]);
    }
    argv.push("--".into());
    argv.extend(args.specs.iter().map(|p| absolute(p)));
    Relaunch::new(argv, env)
}
