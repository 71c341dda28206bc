//! Jobs offered to a pool that no runner has claimed: the offer was lost.
//!
//! An offer is a plain message on a shared subscription: Mosquitto drops it
//! when the runner it picked has a full queue (`max_queued_messages`) or
//! when no runner of the pool is connected, and a runner that dies between
//! receiving and claiming takes it along. The job's retained state then
//! stays `submitted` (or `requeued`). Every runner claims what it receives
//! at once (a full runner claims it as `queued`), so a job unclaimed for
//! long is a lost offer; the pool's leader offers it again. Pure: the
//! caller passes the clock.

use super::message::JobStatus;
use crate::model::FleetState;
use crate::model::JobId;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a job may wait for a claim before the leader offers it again.
/// Far above a claim's round trip, even for a runner working through a
/// burst of thousands of offers.
pub const OFFER_TIMEOUT: Duration = Duration::from_secs(30);

/// Since when (on this host's clock: hosts' clocks may differ) each job has
/// been waiting for a claim.
#[derive(Debug, Default)]
pub struct Unclaimed {
    since: HashMap<JobId, (u32, Instant)>,
}

impl Unclaimed {
    /// Follows a job's latest state: an offered state starts (or, for a new
    /// attempt, restarts) the wait; any other state ends it.
    pub fn follow(&mut self, job: &JobId, status: &JobStatus, now: Instant) {
        if is_offered(status) {
            let entry = self
                .since
                .entry(job.clone())
                .or_insert((status.attempt, now));
            if entry.0 != status.attempt {
                *entry = (status.attempt, now);
            }
        } else {
            self.since.remove(job);
        }
    }

    /// Forgets a job (its retained state was cleared).
    pub fn forget(&mut self, job: &JobId) {
        self.since.remove(job);
    }

    /// The jobs waiting for a claim for `timeout` or longer, oldest first.
    pub fn overdue(&self, now: Instant, timeout: Duration) -> Vec<JobId> {
        let mut late: Vec<(&JobId, Instant)> = self
            .since
            .iter()
            .filter(|(_, (_, since))| now.saturating_duration_since(*since) >= timeout)
            .map(|(job, (_, since))| (job, *since))
            .collect();
        late.sort_by_key(|(job, since)| (*since, job.to_string()));
        late.into_iter().map(|(job, _)| job.clone()).collect()
    }
}

/// A state that says the job is on offer to the pool and no runner has it.
fn is_offered(status: &JobStatus) -> bool {
    status.runner.is_none()
        && (status.state == FleetState::Submitted || status.state == FleetState::Requeued)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: FleetState, attempt: u32, runner: Option<&str>) -> JobStatus {
        JobStatus::sample(state, attempt, runner)
    }

    fn job() -> JobId {
        JobId::parse("j-1").expect("id")
    }

    #[test]
    fn a_submitted_job_is_overdue_only_after_the_timeout() {
        let t0 = Instant::now();
        let mut unclaimed = Unclaimed::default();
        unclaimed.follow(&job(), &status(FleetState::Submitted, 1, None), t0);
        let timeout = Duration::from_secs(30);
        assert!(unclaimed
            .overdue(t0 + Duration::from_secs(29), timeout)
            .is_empty());
        assert_eq!(unclaimed.overdue(t0 + timeout, timeout), vec![job()]);
    }

    #[test]
    fn a_claim_ends_the_wait() {
        let t0 = Instant::now();
        let mut unclaimed = Unclaimed::default();
        unclaimed.follow(&job(), &status(FleetState::Submitted, 1, None), t0);
        unclaimed.follow(
            &job(),
            &status(
                FleetState::Job(crate::model::JobState::Queued),
                1,
                Some("r1"),
            ),
            t0,
        );
        assert!(unclaimed
            .overdue(t0 + Duration::from_secs(60), OFFER_TIMEOUT)
            .is_empty());
    }

    #[test]
    fn a_repeated_state_keeps_the_wait_and_a_new_attempt_restarts_it() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(20);
        let mut unclaimed = Unclaimed::default();
        unclaimed.follow(&job(), &status(FleetState::Submitted, 1, None), t0);
        // The same state again (a reconnect's retained copy): still waiting since t0.
        unclaimed.follow(&job(), &status(FleetState::Submitted, 1, None), later);
        assert_eq!(
            unclaimed.overdue(t0 + OFFER_TIMEOUT, OFFER_TIMEOUT),
            vec![job()]
        );
        // Offered again as attempt 2: the wait starts over.
        unclaimed.follow(&job(), &status(FleetState::Requeued, 2, None), later);
        assert!(unclaimed
            .overdue(t0 + OFFER_TIMEOUT, OFFER_TIMEOUT)
            .is_empty());
        assert_eq!(
            unclaimed.overdue(later + OFFER_TIMEOUT, OFFER_TIMEOUT),
            vec![job()]
        );
    }

    #[test]
    fn a_refusal_or_an_end_is_not_a_wait_and_a_cleared_state_is_forgotten() {
        let t0 = Instant::now();
        let mut unclaimed = Unclaimed::default();
        unclaimed.follow(&job(), &status(FleetState::Refused, 1, Some("r1")), t0);
        assert!(unclaimed
            .overdue(t0 + OFFER_TIMEOUT, OFFER_TIMEOUT)
            .is_empty());
        unclaimed.follow(&job(), &status(FleetState::Submitted, 1, None), t0);
        unclaimed.forget(&job());
        assert!(unclaimed
            .overdue(t0 + OFFER_TIMEOUT, OFFER_TIMEOUT)
            .is_empty());
    }
}
