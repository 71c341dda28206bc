//! The queue settings of jobs being submitted (`run`, `add`): caps from the
//! flag, `[defaults]` and `[agents.NAME]`, and `after` resolved to job ids
//! (this submission first, then the registry). An unknown name or a cycle
//! is exit 2, before anything is registered.

use crate::config::job::JobFile;
use crate::config::Config;
use crate::error::{config_error, Failure};
use crate::registry::Registry;
use crate::supervisor::queue::{resolve_after, AfterFailure, Known, QueueSpec, Submitted, Target};

/// The queue keys of one job file.
#[derive(Debug, Clone, Default)]
pub struct Wants {
    after: Vec<String>,
    after_failure: AfterFailure,
    priority: i64,
}

impl Wants {
    pub fn of(file: &JobFile) -> Wants {
        Wants {
            after: file.after.clone().unwrap_or_default(),
            after_failure: file.after_failure.unwrap_or_default(),
            priority: file.priority.unwrap_or_default(),
        }
    }

    /// `run --after NAME...`: the flag's names replace the spec's.
    #[must_use]
    pub fn with_after(mut self, after: &[String]) -> Wants {
        if !after.is_empty() {
            self.after = after.to_vec();
        }
        self
    }
}

/// One job's queue settings, its dependencies on this submission still
/// by position (their ids are made later).
pub struct Planned {
    spec: QueueSpec,
    targets: Vec<Target>,
}

/// Plans every job of a submission: `(name, agent, wants)` each.
pub fn plan(
    config: &Config,
    registry: &Registry,
    cap_flag: Option<u32>,
    jobs: &[(String, String, Wants)],
) -> Result<Vec<Planned>, Failure> {
    let known = if jobs.iter().any(|(_, _, w)| !w.after.is_empty()) {
        known_jobs(registry)
    } else {
        Vec::new()
    };
    let submitted: Vec<Submitted> = jobs
        .iter()
        .map(|(name, _, wants)| Submitted {
            name,
            after: &wants.after,
        })
        .collect();
    let targets = resolve_after(&submitted, &known).map_err(|message| {
        config_error(message).help(
            "`after` takes names of jobs in the same submission, or ids or names of jobs in `tmux-delegate status`",
        )
    })?;
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let overall = cap_flag.or(config.defaults.max_parallel);
    Ok(jobs
        .iter()
        .zip(targets)
        .enumerate()
        .map(|(index, ((_, agent, wants), targets))| Planned {
            spec: QueueSpec {
                max_parallel: overall,
                agent_max_parallel: config.agents.get(agent).and_then(|a| a.max_parallel),
                after: Vec::new(),
                after_failure: wants.after_failure,
                priority: wants.priority,
                seq: base + index as u128,
            },
            targets,
        })
        .collect())
}

/// The records' queue settings once every job has its id (`ids` in
/// submission order); `None` for a job the queue never holds back.
pub fn finish(planned: Vec<Planned>, ids: &[String], names: &[String]) -> Vec<Option<QueueSpec>> {
    planned
        .into_iter()
        .map(|Planned { mut spec, targets }| {
            spec.after = targets
                .into_iter()
                .filter_map(|target| match target {
                    Target::Existing(dep) => Some(dep),
                    Target::Submitted(n) => Some(crate::supervisor::queue::Dependency {
                        id: ids.get(n)?.clone(),
                        name: names.get(n)?.clone(),
                    }),
                })
                .collect();
            let plain = spec.max_parallel.is_none()
                && spec.agent_max_parallel.is_none()
                && spec.after.is_empty()
                && spec.priority == 0;
            (!plain).then_some(spec)
        })
        .collect()
}

/// Every readable record, for `after` by id or name.
fn known_jobs(registry: &Registry) -> Vec<Known> {
    match registry.list() {
        Ok((records, _)) => records
            .into_iter()
            .map(|r| Known {
                id: r.id,
                name: r.spec.name,
                created: r.created,
            })
            .collect(),
        Err(e) => {
            eprintln!("warning: cannot read the registry to resolve `after`: {e:#}");
            Vec::new()
        }
    }
}
