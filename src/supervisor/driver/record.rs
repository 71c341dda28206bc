//! Record writing: each transition (with the last event not yet flushed)
//! through `Registry::record_transition`, events into the history, the
//! last events once per tick, and the checkpoint a `resume` needs.
//!
//! Durable before reported: a transition is shown, handed to a fleet
//! runner (which publishes it) and given its outcome hook only once it is
//! in the registry. One the registry cannot take (a full disk, a read-only
//! or failing filesystem) is kept in memory, in order, said on stderr, and
//! written again with backoff; `run` does not end while one is unsaved
//! (and exits 75, "could not record", if it is stopped first).

use super::{Driver, Note};
use crate::model::{FailureInfo, JobId, JobState, LastEvent, ResumePoint, Transition};
use crate::registry::{LogEntry, Registry};
use crate::supervisor::core::{Checkpoint, Incoming};
use std::time::{Duration, Instant};

/// The first wait before a failed transition is written again; it doubles
/// up to `UNSAVED_RETRY_MAX`.
const UNSAVED_RETRY_FIRST: Duration = Duration::from_millis(250);
const UNSAVED_RETRY_MAX: Duration = Duration::from_secs(5);

/// A transition the registry did not take yet, with the last event that
/// goes in with it.
pub(super) struct Unsaved {
    job: JobId,
    transition: Transition,
    last: Option<LastEvent>,
}

/// The transitions waiting for the registry, oldest first, and when to try
/// again.
#[derive(Default)]
pub(super) struct UnsavedQueue {
    waiting: std::collections::VecDeque<Unsaved>,
    backoff: Option<Duration>,
    pub(super) retry_at: Option<Instant>,
}

impl UnsavedQueue {
    pub(super) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    fn holds(&self, job: &JobId) -> bool {
        self.waiting.iter().any(|u| &u.job == job)
    }

    /// Schedules the next try, each wait twice the last.
    fn failed(&mut self, now: Instant) {
        let wait = self
            .backoff
            .map_or(UNSAVED_RETRY_FIRST, |b| (b * 2).min(UNSAVED_RETRY_MAX));
        self.backoff = Some(wait);
        self.retry_at = Some(now + wait);
    }

    fn drained(&mut self) {
        self.backoff = None;
        self.retry_at = None;
    }

    /// Each unsaved job and the state it reached, for the last word.
    pub(super) fn summary(&self) -> Vec<String> {
        self.waiting
            .iter()
            .map(|u| {
                format!(
                    "{} {} (attempt {})",
                    u.job, u.transition.to, u.transition.attempt
                )
            })
            .collect()
    }
}

/// Whether `e` is the disk's (full, read-only, failing, over quota): a
/// write that may work later, so the state is kept and written again.
fn disk_trouble(e: &anyhow::Error) -> bool {
    use nix::errno::Errno;
    use std::io::ErrorKind;
    let os_code = |io: &std::io::Error| {
        io.raw_os_error().is_some_and(|code| {
            [Errno::ENOSPC, Errno::EROFS, Errno::EIO, Errno::EDQUOT]
                .iter()
                .any(|errno| *errno as i32 == code)
        })
    };
    // tempfile wraps the OS error in one that names the path: its kind
    // still says what happened.
    let kind = |io: &std::io::Error| {
        matches!(
            io.kind(),
            ErrorKind::StorageFull | ErrorKind::ReadOnlyFilesystem | ErrorKind::QuotaExceeded
        )
    };
    e.chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|io| os_code(io) || kind(io))
}

impl Driver {
    pub(super) fn record_transition(
        &mut self,
        job: &JobId,
        attempt: u32,
        from: JobState,
        to: JobState,
        reason: Option<String>,
        failure: Option<FailureInfo>,
    ) {
        let transition = Transition {
            ts: crate::model::event::now_ts(),
            attempt,
            from,
            to,
            reason: reason.clone(),
            failure: failure.clone(),
        };
        // The last event not yet flushed goes in with the transition.
        let unsaved = Unsaved {
            job: job.clone(),
            transition,
            last: self.pending_last.remove(job),
        };
        // A job's transitions reach the registry in order.
        if self.unsaved.holds(job) {
            self.unsaved.waiting.push_back(unsaved);
            return;
        }
        if !self.save(&unsaved, true) {
            self.unsaved.waiting.push_back(unsaved);
            self.unsaved.failed(Instant::now());
        }
    }

    /// Writes one transition; once it is in the registry, reports it.
    /// Whether it was written; a failure is said when `say`.
    fn save(&mut self, unsaved: &Unsaved, say: bool) -> bool {
        let Unsaved {
            job,
            transition,
            last,
        } = unsaved;
        let dialog = self.core.dialog(job).map(str::to_owned);
        let update = self.registry.record_transition(job, transition, |r| {
            if last.is_some() {
                r.last_event.clone_from(last);
            }
            r.dialog = dialog;
            super::conversation::count_tokens(r, transition.attempt, transition.to, &self.prices);
        });
        match update {
            Ok(record) => {
                self.report_transition(job, transition, Some(&record));
                // A turn ended: its tokens were just counted.
                if transition.to == JobState::Waiting {
                    self.check_budget(&record, transition.attempt);
                }
                true
            }
            // Not the disk: the record is gone or unreadable (a job
            // directory removed by hand). Writing again cannot help; the
            // transition is reported, as it always was.
            Err(e) if !disk_trouble(&e) => {
                tracing::warn!("job {job}: cannot record the transition: {e:#}");
                self.report_transition(job, transition, None);
                true
            }
            Err(e) => {
                if say {
                    eprintln!(
                        "error: job {job}: cannot record `{}` (attempt {}) in the registry: {e:#}; \
                         kept in memory, writing it again",
                        transition.to, transition.attempt
                    );
                }
                false
            }
        }
    }

    /// Writes the waiting transitions again, oldest first, until one fails.
    pub(super) fn retry_unsaved(&mut self) {
        while let Some(unsaved) = self.unsaved.waiting.pop_front() {
            // Said once when it failed first, then at most every few seconds.
            let say = self.unsaved.backoff == Some(UNSAVED_RETRY_MAX);
            if !self.save(&unsaved, say) {
                self.unsaved.waiting.push_front(unsaved);
                self.unsaved.failed(Instant::now());
                return;
            }
        }
        self.unsaved.drained();
        eprintln!("the registry takes writes again: every transition is recorded");
    }

    /// A recorded transition: shown, handed to a fleet runner, its hook run
    /// (with the record as written).
    fn report_transition(
        &mut self,
        job: &JobId,
        t: &Transition,
        record: Option<&crate::registry::Record>,
    ) {
        if let Some(notes) = &self.notes {
            let _ = notes.send(Note {
                job: job.clone(),
                attempt: t.attempt,
                to: t.to,
                reason: t.reason.clone(),
                failure: t.failure.clone(),
                work_only: false,
            });
        }
        // `on_limited` runs with the checkpoint, once `until` is known.
        if let (Some(record), false) = (record, t.to == JobState::Limited) {
            self.run_outcome_hook(t.to, record, t.reason.as_deref());
        }
        let name = self
            .jobs
            .get(job)
            .map(|r| r.name.clone())
            .unwrap_or_default();
        self.view.transition(
            job,
            &name,
            t.attempt,
            t.from,
            t.to,
            t.reason.as_deref(),
            t.failure.as_ref(),
        );
    }

    /// The attempt's work changed after its last transition (tokens
    /// counted again once its agent was gone): a fleet runner publishes the
    /// job's state again.
    pub(super) fn report_work(&self, job: &JobId, attempt: u32, state: JobState) {
        if let Some(notes) = &self.notes {
            let _ = notes.send(Note {
                job: job.clone(),
                attempt,
                to: state,
                reason: None,
                failure: None,
                work_only: true,
            });
        }
    }

    pub(super) fn record_event(
        &mut self,
        job: &JobId,
        attempt: u32,
        event: &Incoming,
        ignored: Option<String>,
    ) {
        let ts = crate::model::event::now_ts();
        let entry = LogEntry::Event {
            ts,
            attempt,
            event: event.kind.clone(),
            message: event.message.clone(),
            data: event.data.clone(),
            signature: event.signature,
            sent: event.sent,
            ignored: ignored.clone(),
        };
        if let Err(e) = self.registry.append(job, &entry) {
            tracing::warn!("job {job}: cannot append to its history: {e:#}");
        }
        if ignored.is_some() {
            return;
        }
        self.note_conversation(job, attempt, event);
        self.count_mid_turn(job, attempt, &event.kind);
        let last = LastEvent {
            event: event.kind.clone(),
            attempt,
            ts,
            message: event.message.clone(),
        };
        self.view.event(job, &last);
        self.pending_last.insert(job.clone(), last);
    }

    /// Writes the last events received since the previous tick into their
    /// records: one rewrite per job per tick, however many events came, on
    /// the blocking pool so fsyncs never delay the event loop. A transition
    /// may have written a newer one meanwhile: never go back in time.
    pub(super) fn flush_last_events(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        if self.pending_last.is_empty() {
            return None;
        }
        let pending = std::mem::take(&mut self.pending_last);
        let registry = Registry::at(self.registry.root().to_path_buf());
        Some(tokio::task::spawn_blocking(move || {
            for (job, last) in pending {
                let result = registry.update(&job, |r| {
                    if r.last_event.as_ref().is_none_or(|old| old.ts <= last.ts) {
                        r.last_event = Some(last);
                    }
                });
                if let Err(e) = result {
                    tracing::warn!("job {job}: cannot update the record: {e:#}");
                }
            }
        }))
    }

    /// Keeps the job's retry budget, deadline and backoff in its record, so
    /// a `resume` after a crash honours them.
    pub(super) fn record_checkpoint(&mut self, job: &JobId, checkpoint: Checkpoint) {
        let point = ResumePoint {
            first_attempt: checkpoint.first_attempt,
            job_deadline: checkpoint
                .job_deadline
                .map(crate::supervisor::clock::to_unix),
            backoff_until: checkpoint
                .backoff_until
                .map(crate::supervisor::clock::to_unix),
            uncharged: checkpoint.uncharged,
        };
        let mut agent = String::new();
        if let Err(e) = self.registry.update(job, |r| {
            r.resume = Some(point);
            agent.clone_from(&r.spec.agent);
        }) {
            tracing::warn!("job {job}: cannot update the record: {e:#}");
        }
        if let (true, Some(until)) = (checkpoint.limited, checkpoint.backoff_until) {
            if !agent.is_empty() {
                self.hold_agent(&agent, until);
            }
            if let Ok(record) = self.registry.load(job) {
                let reason = record.state_reason.clone();
                self.run_outcome_hook(JobState::Limited, &record, reason.as_deref());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::disk_trouble;
    use anyhow::Context;

    #[test]
    fn only_the_disk_s_errors_are_written_again() {
        let full = Err::<(), _>(std::io::Error::from_raw_os_error(28))
            .context("writing record.json")
            .unwrap_err();
        assert!(disk_trouble(&full), "ENOSPC");
        let read_only = anyhow::Error::from(std::io::Error::from_raw_os_error(30));
        assert!(disk_trouble(&read_only), "EROFS");
        // As tempfile reports it: the OS error wrapped with its path.
        let wrapped = anyhow::Error::from(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            "No space left on device (os error 28) at path \"/x/.write.partial\"",
        ));
        assert!(disk_trouble(&wrapped), "a wrapped ENOSPC");
        let gone = Err::<(), _>(std::io::Error::from(std::io::ErrorKind::NotFound))
            .context("reading record.json")
            .unwrap_err();
        assert!(!disk_trouble(&gone), "a removed job is not the disk's");
        assert!(!disk_trouble(&anyhow::anyhow!("corrupt record")));
    }
}
