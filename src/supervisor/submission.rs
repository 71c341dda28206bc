//! What `run` checks before anything starts, where it was asked (a
//! terminal, or an MCP client's call): every job resolved with its agent
//! (one the config defines, or a built-in), its worktree base, its `after`
//! names (unknown or in a cycle: exit 2, nothing registered) and its
//! agent's program. Then `run` supervises the jobs in its own process, or a
//! detached supervisor does, started by `relaunch` with the same
//! arguments: `run --detach` and the MCP server's `run` go this one way.

use crate::agents::AgentDef;
use crate::config::job::{JobFlags, JobSpec};
use crate::config::workspace::WorkspaceMode;
use crate::config::{expand_path, Config, Env};
use crate::registry::Registry;
use crate::supervisor::detach::Relaunch;
use crate::supervisor::queue_plan::{self, Planned};
use crate::supervisor::session;
use crate::workspace::Checked;
use std::path::{Path, PathBuf};

/// What `run` was asked, beyond the config.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    pub specs: Vec<PathBuf>,
    pub flags: JobFlags,
    /// `--after NAME...`: replaces every job's `after`.
    pub after: Vec<String>,
    pub max_parallel: Option<u32>,
    pub json: bool,
}

/// The checked jobs of a request, each with its worktree base (when it
/// asks for a worktree), and their queue plan.
pub struct Submission {
    pub jobs: Vec<(JobSpec, AgentDef, Option<Checked>)>,
    pub planned: Vec<Planned>,
}

/// Resolves and checks every job of `request`; exit 2 (or the missing
/// program's error) before anything exists.
pub async fn check(config: &Config, request: &RunRequest) -> anyhow::Result<Submission> {
    let mut jobs = Vec::new();
    let mut wants = Vec::new();
    for job in session::resolve_jobs(config, &request.flags, &request.specs)? {
        let checked = if job.spec.workspace.is_worktree() {
            Some(crate::workspace::check(&job.spec)?)
        } else {
            None
        };
        jobs.push((job.spec, job.agent, checked));
        wants.push(job.wants.with_after(&request.after));
    }
    let planned = queue_plan::plan(
        config,
        &Registry::open(&config.env)?,
        request.max_parallel,
        &jobs
            .iter()
            .zip(wants)
            .map(|((spec, agent, _), wants)| (spec.name.clone(), agent.name.clone(), wants))
            .collect::<Vec<_>>(),
    )?;
    crate::agents::preflight::check(config, jobs.iter().map(|(spec, agent, _)| (spec, agent)))
        .await?;
    Ok(Submission { jobs, planned })
}

/// The `run` a detached supervisor starts with (paths made absolute), and
/// this whole environment.
pub fn relaunch(request: &RunRequest, env: &Env) -> Relaunch {
    let absolute = |p: &Path| {
        expand_path(p, &env.cwd, env.home.as_deref())
            .display()
            .to_string()
    };
    let mut argv = vec!["run".to_owned()];
    if request.json {
        argv.push("--json".into());
    }
    let flags = &request.flags;
    if flags.workspace == Some(WorkspaceMode::Worktree) {
        argv.push("--worktree".into());
    }
    for (flag, value) in [
        ("--prompt", &flags.prompt),
        ("--agent", &flags.agent),
        ("--name", &flags.name),
    ] {
        if let Some(value) = value {
            argv.extend([flag.to_owned(), value.clone()]);
        }
    }
    if let Some(dir) = &flags.workdir {
        argv.extend(["--workdir".to_owned(), absolute(dir)]);
    }
    for name in &request.after {
        argv.extend(["--after".to_owned(), name.clone()]);
    }
    if let Some(cap) = request.max_parallel {
        argv.extend(["--max-parallel".to_owned(), cap.to_string()]);
    }
    argv.push("--".into());
    argv.extend(request.specs.iter().map(|p| absolute(p)));
    Relaunch::new(argv, env)
}
