//! The queue's decisions (SPEC section 11), pure: which waiting jobs may
//! start (dependencies settled, in priority order), which end `skipped`
//! because a dependency failed, when to try for a slot again, whether a
//! set of dependencies has a cycle, and whether this supervisor's own cap
//! (a fleet runner's `max_parallel`) has room. No files, no clock: the driver takes the
//! slots (flock'd files, `slots.rs`) and passes `now`.

use crate::model::JobId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How often a job blocked on a full cap tries the slots again: the next
/// job starts within this long of a slot coming free, whoever held it.
pub const SLOT_RETRY: Duration = Duration::from_millis(200);

/// What a dependent does when a dependency failed or was cancelled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterFailure {
    /// End as `skipped` (the default).
    #[default]
    Skip,
    /// Start anyway once the dependency has ended.
    Run,
}

/// A job's queue settings, kept in its record (so `resume` honours them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSpec {
    /// The cap on attempts running at once across the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// The cap for the job's agent (`[agents.NAME] max_parallel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_max_parallel: Option<u32>,
    /// Dependencies: `(id, name)` of each job that must complete first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<Dependency>,
    #[serde(default)]
    pub after_failure: AfterFailure,
    /// Higher first.
    #[serde(default)]
    pub priority: i64,
    /// Submission order (nanoseconds since the epoch at registration, plus
    /// the job's index): earlier first among equal priorities.
    #[serde(default)]
    pub seq: u128,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub id: String,
    pub name: String,
}

/// Where a dependency stands, as the driver found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepState {
    Completed,
    /// Ended without completing: the state's word (`failed`, `cancelled`, ...).
    Ended(String),
    Unfinished,
}

/// What the queue decided for one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Its dependencies allow it: start it if a slot is free.
    Candidate(JobId),
    /// A dependency failed: end it as `skipped`, with this reason.
    Skip { job: JobId, reason: String },
    /// Still waiting for a dependency.
    Blocked(JobId),
    /// Its agent is held (a usage limit on this host): stays queued, why.
    Held { job: JobId, reason: String },
}

#[derive(Debug, Clone)]
struct Entry {
    spec: QueueSpec,
}

/// The jobs of one supervisor that have not started yet, and those it
/// started under its local cap.
#[derive(Debug, Default)]
pub struct Queue {
    waiting: BTreeMap<JobId, Entry>,
    retry_at: Option<Instant>,
    /// This supervisor's own cap on jobs running at once (a fleet runner's
    /// `max_parallel`), kept in memory: unlike the caps of `slots.rs` it is
    /// not shared with the other supervisors of the registry.
    local_cap: Option<u32>,
    /// The jobs started here that have not ended yet (they count against
    /// `local_cap`).
    running: BTreeSet<JobId>,
    /// Each waiting job's agent.
    agents: BTreeMap<JobId, String>,
    /// Agents that start no new job until a time: a usage limit met on
    /// this host (SPEC section 14), with its reason.
    holds: BTreeMap<String, (Instant, String)>,
}

impl Queue {
    /// The queue, starting at most `cap` of its jobs at once from now on.
    pub fn with_local_cap(self, cap: u32) -> Queue {
        Queue {
            local_cap: Some(cap),
            ..self
        }
    }

    /// A job waits to start (again: a job that ran here and is pushed
    /// anew no longer counts as running).
    pub fn push(&mut self, job: JobId, spec: QueueSpec) {
        self.running.remove(&job);
        self.waiting.insert(job, Entry { spec });
    }

    /// The job no longer waits (it was cancelled or skipped).
    pub fn remove(&mut self, job: &JobId) {
        self.waiting.remove(job);
    }

    /// The agent the job runs (for holds).
    pub fn set_agent(&mut self, job: &JobId, agent: &str) {
        self.agents.insert(job.clone(), agent.to_owned());
    }

    /// No new job of `agent` starts before `until` (a later hold wins).
    pub fn hold(&mut self, agent: &str, until: Instant, reason: String) {
        let later = self.holds.get(agent).is_none_or(|(at, _)| *at < until);
        if later {
            self.holds.insert(agent.to_owned(), (until, reason));
        }
    }

    /// Holds whose time has come are lifted; whether any was.
    pub fn lift_holds(&mut self, now: Instant) -> bool {
        let before = self.holds.len();
        self.holds.retain(|_, (until, _)| *until > now);
        self.holds.len() != before
    }

    /// Whether the local cap lets one more job start now.
    pub fn has_local_room(&self) -> bool {
        self.local_cap
            .is_none_or(|cap| self.running.len() < cap as usize)
    }

    /// The job started: it no longer waits, and holds a place of the local
    /// cap (if there is one) until it `ended`.
    pub fn started(&mut self, job: &JobId) {
        self.waiting.remove(job);
        if self.local_cap.is_some() {
            self.running.insert(job.clone());
        }
    }

    /// The job ended: its place of the local cap is free. Returns whether
    /// it held one.
    pub fn ended(&mut self, job: &JobId) -> bool {
        self.running.remove(job)
    }

    /// The jobs started here that have not ended yet.
    pub fn running(&self) -> impl Iterator<Item = &JobId> {
        self.running.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Every waiting job's decision, in the order they may take slots:
    /// higher priority first, then submission order.
    pub fn decide(&self, dep_state: impl Fn(&Dependency) -> DepState) -> Vec<Decision> {
        let mut order: Vec<(&JobId, &Entry)> = self.waiting.iter().collect();
        order.sort_by(|(a_id, a), (b_id, b)| {
            b.spec
                .priority
                .cmp(&a.spec.priority)
                .then(a.spec.seq.cmp(&b.spec.seq))
                .then(a_id.cmp(b_id))
        });
        order
            .into_iter()
            .map(|(id, entry)| match self.hold_of(id) {
                Some(reason) => Decision::Held {
                    job: id.clone(),
                    reason: reason.to_owned(),
                },
                None => decide_one(id, &entry.spec, &dep_state),
            })
            .collect()
    }

    fn hold_of(&self, job: &JobId) -> Option<&str> {
        let agent = self.agents.get(job)?;
        self.holds.get(agent).map(|(_, reason)| reason.as_str())
    }

    /// A candidate found every slot taken at `now`: try again shortly.
    pub fn blocked_at(&mut self, now: Instant) {
        self.retry_at = Some(now + SLOT_RETRY);
    }

    /// When to look at the slots again, or lift a hold (`None`: nothing
    /// is blocked on either).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let hold = self.holds.values().map(|(until, _)| *until).min();
        [self.retry_at, hold]
            .into_iter()
            .flatten()
            .min()
            .filter(|_| !self.waiting.is_empty())
    }

    /// The retry is due (or was served by a pass that found no block).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.retry_at.is_some_and(|at| at <= now) {
            self.retry_at = None;
        }
        self.lift_holds(now);
    }
}

fn decide_one(
    id: &JobId,
    spec: &QueueSpec,
    dep_state: &impl Fn(&Dependency) -> DepState,
) -> Decision {
    for dep in &spec.after {
        match dep_state(dep) {
            DepState::Completed => {}
            DepState::Unfinished => return Decision::Blocked(id.clone()),
            DepState::Ended(how) => {
                if spec.after_failure == AfterFailure::Skip {
                    return Decision::Skip {
                        job: id.clone(),
                        reason: format!("dependency `{}` {how}", dep.name),
                    };
                }
            }
        }
    }
    Decision::Candidate(id.clone())
}

/// A job being submitted: its name and the names or ids it waits for.
pub struct Submitted<'a> {
    pub name: &'a str,
    pub after: &'a [String],
}

/// A job already in the registry that a new one may wait for.
pub struct Known {
    pub id: String,
    pub name: String,
    /// Later wins when several jobs have the name.
    pub created: String,
}

/// What one `after` entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The n-th job of this submission (its id is not known yet).
    Submitted(usize),
    Existing(Dependency),
}

/// Resolves every `after` entry: a job of this submission by name first,
/// else a registry job by id, else the newest registry job of that name.
/// An unknown name or a cycle is an error naming it (nothing is registered).
pub fn resolve_after(jobs: &[Submitted], known: &[Known]) -> Result<Vec<Vec<Target>>, String> {
    let mut resolved = Vec::with_capacity(jobs.len());
    for job in jobs {
        let mut targets = Vec::new();
        for wanted in job.after {
            let same_run: Vec<usize> = jobs
                .iter()
                .enumerate()
                .filter(|(_, j)| j.name == wanted)
                .map(|(i, _)| i)
                .collect();
            if !same_run.is_empty() {
                targets.extend(same_run.into_iter().map(Target::Submitted));
                continue;
            }
            let existing = known.iter().find(|k| k.id == *wanted).or_else(|| {
                known
                    .iter()
                    .filter(|k| k.name == *wanted)
                    .max_by(|a, b| a.created.cmp(&b.created))
            });
            match existing {
                Some(k) => targets.push(Target::Existing(Dependency {
                    id: k.id.clone(),
                    name: k.name.clone(),
                })),
                None => {
                    return Err(format!(
                        "job `{}`: `after` names `{wanted}`, which is neither a job of this submission nor a job id or name in the registry",
                        job.name
                    ))
                }
            }
        }
        resolved.push(targets);
    }
    let edges: BTreeMap<String, Vec<String>> = resolved
        .iter()
        .enumerate()
        .map(|(i, targets)| {
            let next = targets
                .iter()
                .filter_map(|t| match t {
                    Target::Submitted(n) => Some(n.to_string()),
                    Target::Existing(_) => None,
                })
                .collect();
            (i.to_string(), next)
        })
        .collect();
    if let Some(cycle) = find_cycle(&edges) {
        let names: Vec<&str> = cycle
            .iter()
            .filter_map(|i| i.parse::<usize>().ok())
            .filter_map(|i| jobs.get(i).map(|j| j.name))
            .collect();
        return Err(format!(
            "the jobs' `after` lists form a cycle: {}",
            names.join(" → ")
        ));
    }
    Ok(resolved)
}

/// A cycle among `edges` (job name → the names it waits for), as the names
/// along it (`a → b → a`), if there is one.
pub fn find_cycle(edges: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, Vec<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut done, &mut Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> JobId {
        JobId::parse(&format!("{name}-0001")).expect("id")
    }

    fn dep(name: &str) -> Dependency {
        Dependency {
            id: id(name).to_string(),
            name: name.to_owned(),
        }
    }

    fn spec(priority: i64, seq: u128, after: &[&str]) -> QueueSpec {
        QueueSpec {
            priority,
            seq,
            after: after.iter().map(|n| dep(n)).collect(),
            ..QueueSpec::default()
        }
    }

    #[test]
    fn candidates_come_by_priority_then_submission_order() {
        let mut queue = Queue::default();
        queue.push(id("low"), spec(0, 1, &[]));
        queue.push(id("late-high"), spec(5, 9, &[]));
        queue.push(id("early-high"), spec(5, 2, &[]));
        queue.push(id("first"), spec(0, 0, &[]));
        let order = queue.decide(|_| DepState::Completed);
        assert_eq!(
            order,
            vec![
                Decision::Candidate(id("early-high")),
                Decision::Candidate(id("late-high")),
                Decision::Candidate(id("first")),
                Decision::Candidate(id("low")),
            ]
        );
    }

    #[test]
    fn a_job_waits_for_every_dependency_to_complete() {
        let mut queue = Queue::default();
        queue.push(id("test"), spec(0, 0, &["build", "lint"]));
        let lint_running = |d: &Dependency| match d.name.as_str() {
            "build" => DepState::Completed,
            _ => DepState::Unfinished,
        };
        assert_eq!(
            queue.decide(lint_running),
            vec![Decision::Blocked(id("test"))]
        );
        assert_eq!(
            queue.decide(|_| DepState::Completed),
            vec![Decision::Candidate(id("test"))]
        );
    }

    #[test]
    fn a_failed_dependency_skips_the_job_with_the_reason_unless_after_failure_is_run() {
        let mut queue = Queue::default();
        queue.push(id("test"), spec(0, 0, &["build"]));
        let mut runs_anyway = spec(0, 1, &["build"]);
        runs_anyway.after_failure = AfterFailure::Run;
        queue.push(id("report"), runs_anyway);
        let failed = |_: &Dependency| DepState::Ended("failed".into());
        assert_eq!(
            queue.decide(failed),
            vec![
                Decision::Skip {
                    job: id("test"),
                    reason: "dependency `build` failed".into()
                },
                Decision::Candidate(id("report")),
            ]
        );
    }

    #[test]
    fn a_blocked_candidate_retries_the_slots_after_slot_retry_on_the_fake_clock() {
        let t0 = Instant::now();
        let mut queue = Queue::default();
        assert_eq!(queue.poll_timeout(), None);
        queue.push(id("a"), spec(0, 0, &[]));
        queue.blocked_at(t0);
        assert_eq!(queue.poll_timeout(), Some(t0 + SLOT_RETRY));
        queue.handle_timeout(t0 + SLOT_RETRY / 2);
        assert_eq!(queue.poll_timeout(), Some(t0 + SLOT_RETRY));
        queue.handle_timeout(t0 + SLOT_RETRY);
        assert_eq!(queue.poll_timeout(), None);
        queue.blocked_at(t0 + SLOT_RETRY);
        queue.remove(&id("a"));
        assert_eq!(queue.poll_timeout(), None, "nothing waits: no timer");
    }

    #[test]
    fn a_local_cap_lets_that_many_jobs_run_and_an_ended_job_frees_its_place() {
        let mut queue = Queue::default().with_local_cap(2);
        for (n, name) in ["a", "b", "c"].into_iter().enumerate() {
            queue.push(id(name), spec(0, n as u128, &[]));
        }
        let mut started = Vec::new();
        for decision in queue.decide(|_| DepState::Completed) {
            let Decision::Candidate(job) = decision else {
                panic!("no dependencies: every job is a candidate");
            };
            if queue.has_local_room() {
                queue.started(&job);
                started.push(job);
            }
        }
        assert_eq!(started, vec![id("a"), id("b")], "two places, in order");
        assert_eq!(
            queue.decide(|_| DepState::Completed),
            vec![Decision::Candidate(id("c"))],
            "started jobs no longer wait"
        );
        assert!(!queue.has_local_room());
        assert!(queue.ended(&id("a")));
        assert!(!queue.ended(&id("a")), "a place is freed once");
        assert!(queue.has_local_room());
        queue.started(&id("c"));
        assert!(queue.is_empty());
        assert_eq!(
            queue.running().cloned().collect::<Vec<_>>(),
            vec![id("b"), id("c")]
        );
    }

    #[test]
    fn a_job_pushed_again_gives_back_its_place_and_no_cap_means_room() {
        let mut queue = Queue::default().with_local_cap(1);
        queue.push(id("a"), spec(0, 0, &[]));
        queue.started(&id("a"));
        assert!(!queue.has_local_room());
        // A fleet runner hands a finished job back to run it again.
        queue.push(id("a"), spec(0, 1, &[]));
        assert!(queue.has_local_room(), "a waiting job holds no place");
        let mut unlimited = Queue::default();
        for n in 0..100 {
            let job = id(&format!("j{n}"));
            unlimited.push(job.clone(), spec(0, n, &[]));
            unlimited.started(&job);
        }
        assert!(unlimited.has_local_room());
        assert_eq!(unlimited.running().count(), 0, "nothing to count");
    }

    #[test]
    fn after_names_this_submission_first_then_a_registry_id_then_the_newest_name() {
        let after_build = ["build".to_owned()];
        let after_old = ["lint".to_owned(), "old-0001".to_owned()];
        let jobs = [
            Submitted {
                name: "build",
                after: &[],
            },
            Submitted {
                name: "test",
                after: &after_build,
            },
            Submitted {
                name: "docs",
                after: &after_old,
            },
        ];
        let known = [
            Known {
                id: "lint-0001".into(),
                name: "lint".into(),
                created: "2026-01-01".into(),
            },
            Known {
                id: "lint-0002".into(),
                name: "lint".into(),
                created: "2026-02-01".into(),
            },
            Known {
                id: "old-0001".into(),
                name: "old".into(),
                created: "2025-01-01".into(),
            },
        ];
        let resolved = resolve_after(&jobs, &known).expect("resolves");
        assert_eq!(resolved[0], vec![]);
        assert_eq!(resolved[1], vec![Target::Submitted(0)]);
        assert_eq!(
            resolved[2],
            vec![
                Target::Existing(Dependency {
                    id: "lint-0002".into(),
                    name: "lint".into()
                }),
                Target::Existing(Dependency {
                    id: "old-0001".into(),
                    name: "old".into()
                }),
            ]
        );
    }

    #[test]
    fn an_unknown_name_or_a_cycle_is_an_error_naming_it() {
        let wants_nothing_there = ["nope".to_owned()];
        let err = resolve_after(
            &[Submitted {
                name: "a",
                after: &wants_nothing_there,
            }],
            &[],
        )
        .expect_err("unknown");
        assert!(err.contains("`nope`") && err.contains("job `a`"), "{err}");
        let after_a = ["a".to_owned()];
        let after_b = ["b".to_owned()];
        let err = resolve_after(
            &[
                Submitted {
                    name: "a",
                    after: &after_b,
                },
                Submitted {
                    name: "b",
                    after: &after_a,
                },
            ],
            &[],
        )
        .expect_err("cycle");
        assert!(err.contains("cycle: a → b → a"), "{err}");
    }

    #[test]
    fn cycles_are_found_and_named_along_their_path() {
        let edges = |pairs: &[(&str, &[&str])]| -> BTreeMap<String, Vec<String>> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
                .collect()
        };
        assert_eq!(
            find_cycle(&edges(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])])),
            Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
        );
        assert_eq!(
            find_cycle(&edges(&[("a", &["a"])])),
            Some(vec!["a".into(), "a".into()])
        );
        assert_eq!(
            find_cycle(&edges(&[("a", &["b", "c"]), ("b", &["c"]), ("c", &[])])),
            None
        );
    }

    #[test]
    fn a_held_agent_s_jobs_stay_queued_with_the_reason_and_start_in_order_when_it_lifts() {
        let t0 = Instant::now();
        let mut queue = Queue::default();
        let id = |n: &str| JobId::parse(n).expect("id");
        for (n, (name, agent)) in [("a-1", "claude"), ("b-2", "codex"), ("c-3", "claude")]
            .into_iter()
            .enumerate()
        {
            queue.set_agent(&id(name), agent);
            queue.push(
                id(name),
                QueueSpec {
                    seq: n as u128,
                    ..QueueSpec::default()
                },
            );
        }
        let until = t0 + Duration::from_secs(600);
        queue.hold("claude", until, "claude is limited until 18:34".into());
        let held = |job: &str| Decision::Held {
            job: id(job),
            reason: "claude is limited until 18:34".into(),
        };
        assert_eq!(
            queue.decide(|_| DepState::Completed),
            vec![held("a-1"), Decision::Candidate(id("b-2")), held("c-3")]
        );
        assert_eq!(queue.poll_timeout(), Some(until), "woken when it lifts");
        // An earlier hold does not shorten a later one.
        queue.hold("claude", t0 + Duration::from_secs(60), "sooner".into());
        queue.handle_timeout(t0 + Duration::from_secs(60));
        assert_eq!(queue.decide(|_| DepState::Completed)[0], held("a-1"));
        queue.handle_timeout(until);
        assert_eq!(
            queue.decide(|_| DepState::Completed),
            vec![
                Decision::Candidate(id("a-1")),
                Decision::Candidate(id("b-2")),
                Decision::Candidate(id("c-3"))
            ]
        );
    }
}
