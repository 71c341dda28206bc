//! The driver's side of the queue: takes and gives back the slot files and
//! the places of its local cap, looks up dependencies (in this supervisor, else in the registry), and
//! feeds the pure queue's decisions to the core.

use super::Driver;
use crate::model::{JobId, JobState};
use crate::supervisor::queue::{Decision, DepState, Dependency, QueueSpec};
use crate::supervisor::slots::{self, Caps};
use std::time::Instant;

impl Driver {
    /// A job that starts when the queue lets it (its slot, its dependencies).
    pub fn enqueue(&mut self, job: JobId, spec: QueueSpec, caps: Caps) {
        self.caps.insert(job.clone(), caps);
        if let Ok(record) = self.registry.load(&job) {
            self.queue.set_agent(&job, &record.spec.agent);
        }
        self.queue.push(job, spec);
        self.queue_dirty = true;
    }

    /// A usage limit met here: no new job of `agent` starts before
    /// `until` (SPEC section 14); its queued jobs say so. Jobs already
    /// running are left alone: they meet the limit themselves.
    pub fn hold_agent(&mut self, agent: &str, until: Instant) {
        let at = crate::supervisor::clock::to_unix(until);
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(at.max(0.0).ceil());
        let reason = format!(
            "{agent} is limited until {} (a usage limit met on this host)",
            humantime::format_rfc3339_seconds(when)
        );
        self.queue.hold(agent, until, reason);
        self.queue_dirty = true;
    }

    /// Runs at most `cap` jobs at once, whatever their caps (a fleet
    /// runner's `max_parallel`; held in memory, no slot files).
    pub fn cap_locally(&mut self, cap: u32) {
        self.queue = std::mem::take(&mut self.queue).with_local_cap(cap);
        self.queue_dirty = true;
    }

    /// Takes on the jobs `add` registers for this supervisor (it signals
    /// SIGUSR1 after writing them).
    pub fn accept_added_jobs(&mut self, require_signature: bool) {
        self.added_jobs = Some(require_signature);
    }

    /// Queued records that name this process as their supervisor and that
    /// it does not know yet: `add` wrote them.
    pub(super) fn admit_added(&mut self) {
        let Some(require_signature) = self.added_jobs else {
            return;
        };
        let me = std::process::id();
        let records = match self.registry.list() {
            Ok((records, _)) => records,
            Err(e) => return tracing::warn!("cannot look for added jobs: {e:#}"),
        };
        let mut added: Vec<_> = records
            .into_iter()
            .filter(|r| crate::supervisor::ownership::handed_to(r, me))
            .filter_map(|r| Some((JobId::parse(&r.id).ok()?, r)))
            .filter(|(id, _)| !self.jobs.contains_key(id))
            .collect();
        added.sort_by(|(_, a), (_, b)| a.created.cmp(&b.created));
        for (id, record) in added {
            let Some(agent) = record.agent.clone() else {
                continue;
            };
            let admit = crate::supervisor::admit::job_config(&record, &agent, require_signature, 1);
            self.jobs.insert(
                id.clone(),
                crate::supervisor::admit::runtime(&id, &record, &agent),
            );
            self.view.add(
                &id,
                &record.spec.name,
                &agent.name,
                record.spec.retry.max_attempts,
            );
            self.core.enqueue(id.clone(), admit);
            let caps = crate::supervisor::admit::caps(&record);
            self.enqueue(id.clone(), record.queue.clone().unwrap_or_default(), caps);
            tracing::info!("took on job {id}, added by `tmux-delegate add`");
        }
    }

    /// An adopted attempt that already runs: it takes its slots back (the
    /// dead supervisor's locks went with it). When the cap is full it runs
    /// on regardless: it cannot be un-started.
    pub fn hold_slots(&mut self, job: JobId, caps: Caps) {
        if caps.is_unlimited() {
            return;
        }
        match slots::try_take(self.registry.root(), &caps) {
            Ok(Some(lease)) => {
                self.leases.insert(job.clone(), lease);
            }
            Ok(None) => tracing::warn!("job {job}: re-adopted while its max_parallel cap is full"),
            Err(e) => tracing::warn!("job {job}: cannot take a queue slot: {e:#}"),
        }
        self.caps.insert(job, caps);
    }

    /// Gives back the slots of finished jobs, then starts, skips or queues
    /// the waiting ones, and performs what that caused.
    pub(super) async fn settle_queue(&mut self) {
        let finished: Vec<JobId> = self
            .leases
            .keys()
            .filter(|job| self.core.is_finished(job))
            .cloned()
            .collect();
        for job in finished {
            self.leases.remove(&job);
            self.queue_dirty = true;
        }
        let ended: Vec<JobId> = self
            .queue
            .running()
            .filter(|job| self.core.is_finished(job))
            .cloned()
            .collect();
        for job in ended {
            self.queue.ended(&job);
            self.queue_dirty = true;
        }
        if std::mem::take(&mut self.queue_dirty) && self.pump_queue() {
            self.perform().await;
        }
    }

    /// One pass over the waiting jobs, in priority order. Returns whether
    /// the core may have new effects.
    fn pump_queue(&mut self) -> bool {
        if self.queue.is_empty() {
            return false;
        }
        let now = Instant::now();
        let decisions = self.queue.decide(|dep| self.dep_state(dep));
        let mut changed = false;
        // Caps found full in this pass: the jobs behind need not try them.
        let mut full: Vec<Caps> = Vec::new();
        for decision in decisions {
            match decision {
                Decision::Skip { job, reason } => {
                    self.queue.remove(&job);
                    self.core.skip(&job, reason);
                    changed = true;
                }
                Decision::Held { job, reason } => {
                    if self.still_waiting(&job) {
                        self.core.mark_queued(&job, Some(reason));
                        changed = true;
                    }
                }
                Decision::Blocked(job) => {
                    if self.still_waiting(&job) {
                        self.core
                            .mark_queued(&job, Some("waiting for its dependencies".into()));
                        changed = true;
                    }
                }
                Decision::Candidate(job) => {
                    if !self.still_waiting(&job) {
                        continue;
                    }
                    if !self.queue.has_local_room() {
                        // A job of this supervisor ending makes room: no timer.
                        self.core.mark_queued(
                            &job,
                            Some("waiting for a free slot (max_parallel)".into()),
                        );
                        changed = true;
                        continue;
                    }
                    let caps = self.caps.get(&job).cloned().unwrap_or_default();
                    let known_full = full.contains(&caps);
                    if !known_full && self.take_slots(&job) {
                        self.queue.started(&job);
                        self.core.start(now, &job);
                    } else {
                        full.push(caps);
                        self.queue.blocked_at(now);
                        self.core.mark_queued(
                            &job,
                            Some("waiting for a free slot (max_parallel)".into()),
                        );
                    }
                    changed = true;
                }
            }
        }
        changed
    }

    /// Whether the core still holds the job back (a `kill` may have
    /// cancelled it meanwhile: then the queue forgets it).
    fn still_waiting(&mut self, job: &JobId) -> bool {
        let waiting = self.core.is_waiting(job);
        if !waiting {
            self.queue.remove(job);
        }
        waiting
    }

    /// Takes the job's slots (no caps: nothing to take).
    fn take_slots(&mut self, job: &JobId) -> bool {
        let caps = self.caps.get(job).cloned().unwrap_or_default();
        if caps.is_unlimited() {
            return true;
        }
        match slots::try_take(self.registry.root(), &caps) {
            Ok(Some(lease)) => {
                self.leases.insert(job.clone(), lease);
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!("job {job}: cannot take a queue slot: {e:#}");
                false
            }
        }
    }

    /// Where a dependency stands: this supervisor's view when it runs the
    /// job, else its record (another supervisor's, or finished earlier).
    fn dep_state(&self, dep: &Dependency) -> DepState {
        let Ok(id) = JobId::parse(&dep.id) else {
            return DepState::Ended("has an invalid id".into());
        };
        let state = match self.core.state(&id) {
            Some(state) => state,
            None => match self.registry.load(&id) {
                Ok(record) => record.state,
                Err(_) => return DepState::Ended("cannot be read from the registry".into()),
            },
        };
        match state {
            JobState::Completed => DepState::Completed,
            JobState::Failed => DepState::Ended("failed".into()),
            JobState::TimedOut => DepState::Ended("timed out".into()),
            JobState::Cancelled => DepState::Ended("was cancelled".into()),
            JobState::Skipped => DepState::Ended("was skipped".into()),
            _ => DepState::Unfinished,
        }
    }
}
