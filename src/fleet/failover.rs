//! The fleet's failover decisions, pure: when a runner counts as dead,
//! which runner re-offers its jobs (the pool's leader), which of its jobs
//! are offered again and with what attempt, and how a runner judges an
//! offer or a newer claim against the job's retained state.
//!
//! The attempt is the fencing token: an offer older than the job's state
//! is dropped, a retained terminal state settles a job for good (it ended
//! before its runner died), and a runner that sees its job claimed with a
//! newer attempt stops its own. Every runner computes the same answers from
//! the same retained messages; the caller passes the clock (`ts`, `now`).
//!
//! Round two (issue 22): an `offline` presence is not a death at once — a
//! broker shutting down cleanly publishes every runner's Last Will — so a
//! runner is failed over only when it stays offline for `failover_after`.
//! A runner that was frozen (its pulse came far too late) or lost its
//! connection holds back its states until the broker's retained ones have
//! arrived again, then drops those older than the broker's and repairs
//! the broker's copies that are missing or older than its own.

use super::message::{JobStatus, Offer, Presence};
use crate::model::fence::supersedes;
use crate::model::FleetState;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A runner's keepalive when `fleet.keepalive` is not set: the broker
/// declares a silent runner gone after 1.5 x this (15 s).
pub const RUNNER_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// How long the grace before failover is when `fleet.failover_after` is
/// not set: longer than the default keepalive, so a runner whose broker
/// restarts (its runners are back within seconds), or that was cut off
/// for less than that, is not failed over. A frozen runner's jobs run
/// again after 1.5 x keepalive (the broker's detection) plus this plus up
/// to one pulse: about 28 s by default, inside SPEC section 13's 30 s.
pub const FAILOVER_AFTER: Duration = Duration::from_secs(12);

/// How often a runner's loop pulses, and how late a pulse may come before
/// the runner takes itself for frozen (SIGSTOP, a suspended VM): far above
/// a busy loop's delays, far below a keepalive.
pub const PULSE_EVERY: Duration = Duration::from_secs(1);
pub const FREEZE_SUSPECT: Duration = Duration::from_secs(5);

/// Whether the last pulse, at `last`, is so long ago at `now` that this
/// runner was frozen meanwhile.
pub fn frozen(last: Instant, now: Instant) -> bool {
    now.saturating_duration_since(last) > FREEZE_SUSPECT
}

/// The runners of `pool` to fail over now: offline since at least `grace`
/// ago by `offline_since` and still not online; in name order.
pub fn due_failovers(
    offline_since: &BTreeMap<String, Instant>,
    presences: &BTreeMap<String, Presence>,
    now: Instant,
    grace: Duration,
) -> Vec<String> {
    offline_since
        .iter()
        .filter(|(_, since)| now.saturating_duration_since(**since) >= grace)
        .filter(|(name, _)| !presences.get(*name).is_some_and(Presence::online))
        .map(|(name, _)| name.clone())
        .collect()
}

/// Whether `mine`, a state runner `me` is about to publish, is older than
/// the broker's copy of the job: a newer attempt, or the same attempt
/// claimed by a lower-named runner. Such a state is dropped, never
/// published over the newer one.
pub fn stale_against(broker: Option<&JobStatus>, mine: &JobStatus, me: &str) -> bool {
    broker.is_some_and(|b| supersedes(b.attempt, b.runner.as_deref(), mine.attempt, me))
}

/// Whether runner `me` republishes `mine`, the last state it published of
/// a job, over the broker's copy after a (re)connection: the copy is
/// missing, of an older attempt, or of the same attempt and not final and
/// other than this runner's (a state the broker lost).
pub fn needs_repair(broker: Option<&JobStatus>, mine: &JobStatus, me: &str) -> bool {
    if stale_against(broker, mine, me) {
        return false;
    }
    match broker {
        None => true,
        Some(b) if b.attempt < mine.attempt => true,
        Some(b) => !b.is_terminal() && b.state != mine.state,
    }
}

/// Whether the presence `now` of runner `name` declares it dead for runner
/// `me` of `pool` to act on: it turned offline (its Last Will, or its
/// goodbye) from online or unknown, it is another runner, of this pool.
pub fn declared_dead(
    previous: Option<&Presence>,
    now: &Presence,
    name: &str,
    me: &str,
    pool: &str,
) -> bool {
    !now.online() && previous.is_none_or(Presence::online) && name != me && now.pool == pool
}

/// Whether `me` re-offers the jobs of the pool's dead runners and its lost
/// offers: the lowest-named live runner of `pool`, counting itself.
pub fn leads_pool(presences: &BTreeMap<String, Presence>, me: &str, pool: &str) -> bool {
    presences
        .values()
        .filter(|p| p.online() && p.pool == pool)
        .map(|p| p.runner.as_str())
        .chain(std::iter::once(me))
        .min()
        == Some(me)
}

/// The jobs of the dead runner to offer again, by job id: those its state
/// still names it for and that have not ended (a retained terminal state
/// settles a job that ended before its runner died).
pub fn orphans_of<'a>(
    states: impl IntoIterator<Item = &'a JobStatus>,
    dead: &str,
) -> Vec<JobStatus> {
    let mut orphans: Vec<JobStatus> = states
        .into_iter()
        .filter(|s| s.runner.as_deref() == Some(dead) && !s.is_terminal())
        .cloned()
        .collect();
    orphans.sort_by(|a, b| a.job.cmp(&b.job));
    orphans
}

/// Whether a job overdue for a claim is for the leader of `pool` to offer
/// again: the leaders of other pools offer theirs.
pub fn offers_unclaimed(status: &JobStatus, pool: &str) -> bool {
    status.pool == pool
}

/// The state (`requeued`, no runner, the next attempt, why) and the offer
/// that put the job of `last` on offer again; `None` when its state kept no
/// request to offer.
pub fn offer_again(last: JobStatus, reason: String, ts: f64) -> Option<(JobStatus, Offer)> {
    let request = last.request.clone()?;
    let attempt = last.attempt + 1;
    let status = JobStatus {
        state: FleetState::Requeued,
        attempt,
        runner: None,
        ts,
        reason: Some(reason),
        ..last
    };
    Some((status, Offer { request, attempt }))
}

/// What a runner does with an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfferVerdict {
    /// Check the request and claim the job.
    Take,
    /// The job's state is newer or final: the offer is stale (the reason is
    /// for the log).
    Stale(String),
    /// This runner already holds this attempt or a newer one.
    Held,
}

/// Judges an offer of `attempt` against the job's retained state and the
/// attempt this runner holds, if any.
pub fn judge_offer(state: Option<&JobStatus>, held: Option<u32>, attempt: u32) -> OfferVerdict {
    if let Some(state) = state {
        let claimed_elsewhere = state.attempt == attempt
            && state.runner.is_some()
            && state.state != FleetState::Requeued;
        if state.is_terminal() || state.attempt > attempt || claimed_elsewhere {
            return OfferVerdict::Stale(format!(
                "its state is {} at attempt {}",
                state.state, state.attempt
            ));
        }
    }
    if held.is_some_and(|h| h >= attempt) {
        return OfferVerdict::Held;
    }
    OfferVerdict::Take
}

/// Whether another runner's state for a job runner `me` holds at attempt
/// `held` takes the job over: a newer attempt, or the same attempt claimed
/// by a lower-named runner (two claims of one offer: the lower name wins).
pub fn taken_over(status: &JobStatus, held: u32, me: &str) -> bool {
    supersedes(status.attempt, status.runner.as_deref(), held, me)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::JobState;

    fn status(state: FleetState, attempt: u32, runner: Option<&str>) -> JobStatus {
        JobStatus::sample(state, attempt, runner)
    }

    fn presence(runner: &str, pool: &str, status: &str) -> Presence {
        Presence {
            runner: runner.into(),
            pool: pool.into(),
            status: status.into(),
            max_parallel: 1,
            running: 0,
            ts: 0.0,
            sync: None,
        }
    }

    #[test]
    fn a_runner_is_dead_when_its_presence_turns_offline_in_this_pool() {
        let online = presence("r2", "default", "online");
        let offline = presence("r2", "default", "offline");
        let elsewhere = presence("r2", "gpu", "offline");
        // (previous, now, name, expected)
        let cases: &[(Option<&Presence>, &Presence, &str, bool)] = &[
            (Some(&online), &offline, "r2", true),
            (None, &offline, "r2", true),
            (Some(&offline), &offline, "r2", false),
            (Some(&online), &online, "r2", false),
            (Some(&online), &elsewhere, "r2", false),
            (Some(&online), &offline, "r1", false),
        ];
        for (n, (previous, now, name, expected)) in cases.iter().enumerate() {
            assert_eq!(
                declared_dead(*previous, now, name, "r1", "default"),
                *expected,
                "case {n}"
            );
        }
    }

    #[test]
    fn the_lowest_named_live_runner_of_the_pool_leads() {
        let presences: BTreeMap<String, Presence> = [
            presence("a", "default", "offline"),
            presence("b", "default", "online"),
            presence("0", "gpu", "online"),
        ]
        .into_iter()
        .map(|p| (p.runner.clone(), p))
        .collect();
        assert!(leads_pool(&presences, "b", "default"), "a is offline");
        assert!(!leads_pool(&presences, "c", "default"));
        assert!(
            leads_pool(&presences, "0a", "default"),
            "gpu is not counted"
        );
        assert!(leads_pool(&BTreeMap::new(), "z", "default"), "alone");
    }

    #[test]
    fn only_the_dead_runners_unfinished_jobs_are_offered_again_in_id_order() {
        let mut running = status(FleetState::Job(JobState::Running), 1, Some("dead"));
        running.job = "j-3".into();
        let mut queued = status(FleetState::Job(JobState::Queued), 2, Some("dead"));
        queued.job = "j-2".into();
        let ended = status(FleetState::Job(JobState::Completed), 1, Some("dead"));
        let refused = status(FleetState::Refused, 1, Some("dead"));
        let other = status(FleetState::Job(JobState::Running), 1, Some("alive"));
        let all = [running.clone(), ended, refused, other, queued.clone()];
        assert_eq!(orphans_of(&all, "dead"), vec![queued, running]);
    }

    #[test]
    fn an_offer_again_is_the_next_attempt_requeued_without_a_runner() {
        let mut last = status(FleetState::Job(JobState::Running), 2, Some("dead"));
        let request: serde_json::Map<String, serde_json::Value> =
            [("id".to_owned(), serde_json::json!("j-1"))]
                .into_iter()
                .collect();
        last.request = Some(request.clone());
        let (state, offer) =
            offer_again(last.clone(), "runner dead went offline".into(), 42.0).expect("request");
        assert_eq!(state.state, FleetState::Requeued);
        assert_eq!((state.attempt, offer.attempt), (3, 3));
        assert_eq!(state.runner, None);
        assert_eq!(state.ts, 42.0);
        assert_eq!(state.reason.as_deref(), Some("runner dead went offline"));
        assert_eq!(state.request.as_ref(), Some(&request));
        assert_eq!(offer.request, request);
        assert_eq!(
            (state.job, state.name),
            (last.job.clone(), last.name.clone())
        );
        last.request = None;
        assert!(
            offer_again(last, "lost".into(), 0.0).is_none(),
            "nothing to offer"
        );
    }

    #[test]
    fn an_offer_is_judged_against_the_retained_state_and_the_held_attempt() {
        use OfferVerdict::{Held, Take};
        let stale = |v: &OfferVerdict| matches!(v, OfferVerdict::Stale(_));
        let submitted = status(FleetState::Submitted, 1, None);
        let requeued = status(FleetState::Requeued, 2, None);
        let claimed = status(FleetState::Job(JobState::Queued), 2, Some("r2"));
        let completed = status(FleetState::Job(JobState::Completed), 1, Some("r2"));
        let newer = status(FleetState::Job(JobState::Running), 3, Some("r2"));
        assert_eq!(judge_offer(None, None, 1), Take, "no state yet");
        assert_eq!(judge_offer(Some(&submitted), None, 1), Take);
        assert_eq!(judge_offer(Some(&requeued), None, 2), Take);
        assert!(stale(&judge_offer(Some(&claimed), None, 2)), "claimed");
        assert!(stale(&judge_offer(Some(&completed), None, 2)), "terminal");
        assert!(stale(&judge_offer(Some(&newer), None, 2)), "older offer");
        assert_eq!(judge_offer(Some(&requeued), Some(2), 2), Held);
        assert_eq!(judge_offer(Some(&requeued), Some(1), 2), Take);
        assert_eq!(
            judge_offer(Some(&completed), None, 2),
            OfferVerdict::Stale("its state is completed at attempt 1".into())
        );
    }

    #[test]
    fn a_newer_attempt_or_a_lower_named_claim_of_the_same_takes_a_job_over() {
        // (state seen, held attempt, taken over)
        let cases = [
            (
                status(FleetState::Job(JobState::Running), 3, Some("r9")),
                2,
                true,
            ),
            (
                status(FleetState::Job(JobState::Queued), 2, Some("a")),
                2,
                true,
            ),
            (
                status(FleetState::Job(JobState::Queued), 2, Some("z")),
                2,
                false,
            ),
            (status(FleetState::Requeued, 2, None), 2, false),
            (
                status(FleetState::Job(JobState::Running), 1, Some("a")),
                2,
                false,
            ),
        ];
        for (seen, held, expected) in cases {
            assert_eq!(taken_over(&seen, held, "m"), expected, "{seen:?} at {held}");
        }
    }

    #[test]
    fn a_runner_offline_is_failed_over_only_after_the_grace_and_if_still_offline() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(45);
        let since: BTreeMap<String, Instant> = [
            ("gone".to_owned(), t0),
            ("back".to_owned(), t0),
            ("recent".to_owned(), t0 + Duration::from_secs(30)),
        ]
        .into_iter()
        .collect();
        let presences: BTreeMap<String, Presence> = [
            presence("gone", "default", "offline"),
            presence("back", "default", "online"),
        ]
        .into_iter()
        .map(|p| (p.runner.clone(), p))
        .collect();
        // (now, due)
        let cases: &[(Duration, &[&str])] = &[
            (Duration::from_secs(44), &[]),
            (Duration::from_secs(45), &["gone"]),
            (Duration::from_secs(75), &["gone", "recent"]),
        ];
        for (after, expected) in cases {
            assert_eq!(
                due_failovers(&since, &presences, t0 + *after, grace),
                expected.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
                "{after:?}"
            );
        }
    }

    #[test]
    fn a_pulse_far_too_late_means_the_runner_was_frozen() {
        let t0 = Instant::now();
        assert!(!frozen(t0, t0 + PULSE_EVERY));
        assert!(!frozen(t0, t0 + FREEZE_SUSPECT));
        assert!(frozen(t0, t0 + FREEZE_SUSPECT + Duration::from_millis(1)));
        assert!(
            !frozen(t0 + PULSE_EVERY, t0),
            "a clock that went back is no freeze"
        );
    }

    #[test]
    fn a_state_older_than_the_brokers_is_dropped() {
        let mine = status(FleetState::Job(JobState::Completed), 1, Some("r0"));
        // (broker's copy, stale)
        let cases = [
            (None, false),
            (
                Some(status(FleetState::Job(JobState::Running), 1, Some("r0"))),
                false,
            ),
            (
                Some(status(FleetState::Job(JobState::Running), 2, Some("r1"))),
                true,
            ),
            (Some(status(FleetState::Requeued, 2, None)), true),
            (
                Some(status(FleetState::Job(JobState::Queued), 1, Some("a"))),
                true,
            ),
            (
                Some(status(FleetState::Job(JobState::Queued), 1, Some("z"))),
                false,
            ),
            (Some(status(FleetState::Submitted, 1, None)), false),
        ];
        for (broker, expected) in cases {
            assert_eq!(
                stale_against(broker.as_ref(), &mine, "r0"),
                expected,
                "{broker:?}"
            );
        }
    }

    #[test]
    fn a_missing_older_or_lost_state_is_repaired_and_a_newer_or_final_one_is_not() {
        let running = |attempt, runner| status(FleetState::Job(JobState::Running), attempt, runner);
        let completed = status(FleetState::Job(JobState::Completed), 2, Some("r0"));
        let failed = status(FleetState::Job(JobState::Failed), 2, Some("r0"));
        // (mine, broker's copy, repaired)
        let cases = [
            (completed.clone(), None, true),
            (completed.clone(), Some(running(2, Some("r0"))), true),
            (completed.clone(), Some(running(1, Some("r0"))), true),
            (
                completed.clone(),
                Some(status(FleetState::Requeued, 2, None)),
                true,
            ),
            (completed.clone(), Some(completed.clone()), false),
            (completed.clone(), Some(failed.clone()), false),
            (completed.clone(), Some(running(3, Some("r1"))), false),
            (
                completed.clone(),
                Some(status(FleetState::Requeued, 3, None)),
                false,
            ),
            (completed.clone(), Some(running(2, Some("a"))), false),
            (running(2, Some("r0")), Some(running(2, Some("r0"))), false),
            (
                running(2, Some("r0")),
                Some(status(FleetState::Job(JobState::Queued), 2, Some("r0"))),
                true,
            ),
        ];
        for (n, (mine, broker, expected)) in cases.iter().enumerate() {
            assert_eq!(
                needs_repair(broker.as_ref(), mine, "r0"),
                *expected,
                "case {n}: {broker:?}"
            );
        }
    }

    #[test]
    fn an_overdue_job_is_offered_again_by_its_own_pool_only() {
        let mine = status(FleetState::Submitted, 1, None);
        let mut theirs = mine.clone();
        theirs.pool = "gpu".into();
        assert!(offers_unclaimed(&mine, "default"));
        assert!(!offers_unclaimed(&theirs, "default"));
    }
}
