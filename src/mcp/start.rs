//! `run`: a job started exactly as `run --detach` starts one (checked by
//! `supervisor::submission`, then a detached supervisor in its own tmux
//! window that registers and supervises it), in the config and registry of
//! the server's working directory or of `workdir`; or, with `pool`,
//! submitted to the fleet as `submit` does.

use super::params::RunParams;
use crate::config::job::JobFlags;
use crate::config::workspace::WorkspaceMode;
use crate::config::{expand_path, Config, Env};
use crate::error::config_error;
use crate::fleet::submit::SubmitRequest;
use crate::model::JobId;
use crate::registry::Registry;
use crate::supervisor::detach;
use crate::supervisor::submission::{self, RunRequest};
use serde_json::{json, Value};
use std::path::Path;

pub async fn run(base: &Env, params: RunParams) -> anyhow::Result<Value> {
    if params.pool.is_some() {
        return submit(base, params).await;
    }
    let env = env_in(base, params.workdir.as_deref())?;
    let flags = JobFlags {
        prompt: Some(params.prompt),
        agent: params.agent,
        name: params.name,
        workdir: params.workdir.is_some().then(|| env.cwd.clone()),
        workspace: params.worktree.then_some(WorkspaceMode::Worktree),
    };
    let config = Config::load(env)?;
    let request = RunRequest {
        flags,
        after: params.after,
        ..RunRequest::default()
    };
    submission::check(&config, &request).await?;
    let detached = detach::launch(&config, submission::relaunch(&request, &config.env)).await?;
    let Some(id) = detached.ids.first() else {
        anyhow::bail!(
            "the detached supervisor in tmux window {} registered no job",
            detached.window_id
        );
    };
    let record = Registry::open(&config.env)?.load(&JobId::parse(id)?)?;
    Ok(json!({
        "id": record.id,
        "name": record.spec.name,
        "state": record.state.as_str(),
    }))
}

/// The server's environment with `workdir` (relative to the server's
/// working directory) as the working directory: its config applies.
fn env_in(base: &Env, workdir: Option<&str>) -> anyhow::Result<Env> {
    let Some(dir) = workdir else {
        return Ok(base.clone());
    };
    let dir = expand_path(Path::new(dir), &base.cwd, base.home.as_deref());
    if !dir.is_dir() {
        return Err(config_error(format!("workdir {} is not a directory", dir.display()))
            .help("give an existing directory, absolute or relative to the server's working directory")
            .into());
    }
    Ok(Env {
        cwd: dir,
        ..base.clone()
    })
}

/// `run` with a `pool`: the job offered to the fleet (`workdir` is then
/// relative to the runners' root), as `submit` offers one.
async fn submit(base: &Env, params: RunParams) -> anyhow::Result<Value> {
    let config = Config::load(base.clone())?;
    if !crate::fleet::remote::configured(&config) {
        return Err(config_error(
            "`pool` submits to the fleet, but the server's config has no [fleet]",
        )
        .help("leave `pool` out to run the job on this host, or add [fleet] to tmux-delegate.toml")
        .into());
    }
    if params.worktree || !params.after.is_empty() {
        return Err(config_error(
            "`worktree` and `after` are for jobs run on this host; a fleet job takes prompt, agent, name and workdir",
        )
        .help("leave `pool` out to run the job here")
        .into());
    }
    let asked = SubmitRequest {
        specs: Vec::new(),
        flags: JobFlags {
            prompt: Some(params.prompt),
            agent: params.agent,
            name: params.name,
            workdir: params.workdir.map(Into::into),
            workspace: None,
        },
        pool: params.pool,
        wait: false,
        timeout: None,
        json: false,
    };
    let requests = crate::fleet::submit::offer_quietly(&config, &asked).await?;
    let Some(request) = requests.first() else {
        anyhow::bail!("nothing was submitted");
    };
    Ok(json!({
        "id": request.id,
        "name": request.name,
        "state": crate::model::FleetState::Submitted.as_str(),
        "pool": request.pool,
    }))
}
