//! Record writing: each transition (with the last event not yet flushed)
//! through `Registry::record_transition`, events into the history, the
//! last events once per tick, and the checkpoint a `resume` needs.

use super::{Driver, Note};
use crate::model::{FailureInfo, JobId, JobState, LastEvent, ResumePoint, Transition};
use crate::registry::{LogEntry, Registry};
use crate::supervisor::core::{Checkpoint, Incoming};

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
        if let Some(notes) = &self.notes {
            let _ = notes.send(Note {
                job: job.clone(),
                attempt,
                to,
                reason: reason.clone(),
                failure: failure.clone(),
            });
        }
        // The last event not yet flushed goes in with the transition.
        let last = self.pending_last.remove(job);
        let update = self.registry.record_transition(job, &transition, |r| {
            if last.is_some() {
                r.last_event = last;
            }
        });
        match update {
            Ok(record) => self.run_outcome_hook(to, &record, reason.as_deref()),
            Err(e) => tracing::warn!("job {job}: cannot record the transition: {e:#}"),
        }
        let name = self
            .jobs
            .get(job)
            .map(|r| r.name.clone())
            .unwrap_or_default();
        self.view.transition(
            job,
            &name,
            attempt,
            from,
            to,
            reason.as_deref(),
            failure.as_ref(),
        );
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
            data: event.exit_code.map(|c| serde_json::json!({ "code": c })),
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
    pub(super) fn record_checkpoint(&self, job: &JobId, checkpoint: Checkpoint) {
        let point = ResumePoint {
            first_attempt: checkpoint.first_attempt,
            job_deadline: checkpoint
                .job_deadline
                .map(crate::supervisor::clock::to_unix),
            backoff_until: checkpoint
                .backoff_until
                .map(crate::supervisor::clock::to_unix),
        };
        if let Err(e) = self.registry.update(job, |r| r.resume = Some(point)) {
            tracing::warn!("job {job}: cannot update the record: {e:#}");
        }
    }
}
