//! What a supervisor needs to take on a registered job: its runtime (name,
//! workdir, key, screen rules), the core's config and its queue caps. Used
//! by the session at start, by the driver for jobs `add` hands it later and
//! by the fleet runner for the jobs it claims. Who owns a job is
//! `ownership.rs`.

use super::core::JobConfig;
use super::driver::JobRuntime;
use super::slots::Caps;
use crate::agents::AgentDef;
use crate::config::job::JobSpec;
use crate::model::JobId;
use crate::mqtt::sign::EventKey;
use crate::registry::Record;

/// Whether the job cannot launch: its agent's command takes `{prompt}`
/// and the job has none.
pub fn lacks_prompt(spec: &JobSpec, agent: &AgentDef) -> bool {
    spec.prompt.trim().is_empty() && agent.command.iter().any(|a| a.contains("{prompt}"))
}

/// The core's settings for the job; `first_attempt` is the number its
/// next launch gets.
pub fn job_config(
    record: &Record,
    agent: &AgentDef,
    require_signature: bool,
    first_attempt: u32,
) -> JobConfig {
    JobConfig {
        timeouts: record.spec.timeouts.clone(),
        retry: record.spec.retry.clone(),
        liveness: agent.liveness,
        complete_on_exit: agent.complete_on_exit,
        keep_failed: record.spec.tmux.keep_failed,
        kill_grace: record.spec.tmux.kill_grace,
        on_waiting: record.spec.on_waiting,
        require_signature,
        first_attempt,
        limits: record.spec.limits,
    }
}

/// The driver's runtime for the job, with its agent's screen rules.
pub fn runtime(id: &JobId, record: &Record, agent: &AgentDef) -> JobRuntime {
    JobRuntime::new(
        record.spec.name.clone(),
        record.spec.workdir.clone(),
        EventKey::from_hex(&record.event_key).unwrap_or_else(EventKey::generate),
    )
    .with_screens(screen_rules(id, agent))
    .saving_pane(record.fleet_owner.is_some())
    .with_budget(&record.spec.budget)
}

/// The agent's compiled screen rules (checked when the job was resolved; a
/// record written by another version may still hold a bad one: skipped).
fn screen_rules(id: &JobId, agent: &AgentDef) -> crate::agents::screens::ScreenSet {
    crate::agents::screens::ScreenSet::compile(&agent.screens).unwrap_or_else(|e| {
        tracing::warn!("job {id}: ignoring its screen rules: {e}");
        crate::agents::screens::ScreenSet::default()
    })
}

/// The `max_parallel` caps the job counts against.
pub fn caps(record: &Record) -> Caps {
    let spec = record.queue.clone().unwrap_or_default();
    Caps {
        overall: spec.max_parallel,
        agent: spec
            .agent_max_parallel
            .map(|cap| (record.spec.agent.clone(), cap)),
    }
}
