//! Jobs held back by the queue: `queued` once, launched on `start`,
//! `skipped` (terminal) when a dependency failed, cancellable while waiting.

use super::tests::config;
use super::*;

fn transitions(core: &mut Core) -> Vec<(JobState, JobState, Option<String>)> {
    std::iter::from_fn(|| core.poll_effect())
        .filter_map(|e| match e {
            Effect::Transition {
                from, to, reason, ..
            } => Some((from, to, reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn an_enqueued_job_waits_silently_until_marked_queued_then_launches_on_start() {
    let t0 = Instant::now();
    let job = JobId::parse("job-1").expect("id");
    let mut core = Core::new(Box::new(|| 1.0));
    core.enqueue(job.clone(), config());
    assert_eq!(core.poll_effect(), None, "no launch, no transition yet");
    assert!(core.is_waiting(&job) && !core.is_done());
    core.mark_queued(&job, Some("waiting for a free slot".into()));
    core.mark_queued(&job, Some("waiting for a free slot".into()));
    assert_eq!(
        transitions(&mut core),
        vec![(
            JobState::Pending,
            JobState::Queued,
            Some("waiting for a free slot".into())
        )],
        "queued once"
    );
    core.start(t0, &job);
    let effects: Vec<Effect> = std::iter::from_fn(|| core.poll_effect()).collect();
    assert!(matches!(
        &effects[0],
        Effect::Transition {
            from: JobState::Queued,
            to: JobState::Launching,
            attempt: 1,
            ..
        }
    ));
    assert_eq!(
        effects[1],
        Effect::Launch {
            job: job.clone(),
            attempt: 1
        }
    );
    assert!(!core.is_waiting(&job));
    core.mark_queued(&job, None);
    core.skip(&job, "too late".into());
    assert_eq!(
        transitions(&mut core),
        vec![],
        "a started job is neither queued nor skipped"
    );
}

#[test]
fn a_skipped_job_is_finished_with_its_reason_and_a_queued_one_can_be_cancelled() {
    let t0 = Instant::now();
    let skipped = JobId::parse("skipped-1").expect("id");
    let cancelled = JobId::parse("cancelled-1").expect("id");
    let mut core = Core::new(Box::new(|| 1.0));
    core.enqueue(skipped.clone(), config());
    core.enqueue(cancelled.clone(), config());
    core.mark_queued(&skipped, None);
    core.mark_queued(&cancelled, None);
    transitions(&mut core);
    core.skip(&skipped, "dependency `build` failed".into());
    assert_eq!(
        transitions(&mut core),
        vec![(
            JobState::Queued,
            JobState::Skipped,
            Some("dependency `build` failed".into())
        )]
    );
    assert!(core.is_finished(&skipped) && JobState::Skipped.is_finished());
    core.handle(
        t0,
        Input::Cancel {
            job: cancelled.clone(),
            reason: "cancelled by `tmux-delegate kill`".into(),
        },
    );
    assert_eq!(
        transitions(&mut core),
        vec![(
            JobState::Queued,
            JobState::Cancelled,
            Some("cancelled by `tmux-delegate kill`".into())
        )]
    );
    assert!(core.is_done());
    core.start(t0, &cancelled);
    assert_eq!(core.poll_effect(), None, "a cancelled job never launches");
}

#[test]
fn a_queued_job_says_again_what_it_waits_for_when_that_changes() {
    let job = JobId::parse("job-1").expect("id");
    let mut core = Core::new(Box::new(|| 1.0));
    core.enqueue(job.clone(), config());
    let slot = Some("waiting for a free slot (max_parallel)".to_owned());
    let limit = Some("claude is limited until 2026-12-04T18:34:00Z".to_owned());
    core.mark_queued(&job, slot.clone());
    core.mark_queued(&job, limit.clone());
    core.mark_queued(&job, limit.clone());
    assert_eq!(
        transitions(&mut core),
        vec![
            (JobState::Pending, JobState::Queued, slot),
            (JobState::Queued, JobState::Queued, limit),
        ]
    );
}
