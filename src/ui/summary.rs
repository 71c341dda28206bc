//! Counts of jobs by state in one short line: `top`'s title and
//! `status --tmux` for tmux's `status-right` (run every `status-interval`,
//! so it reads only each record's `state`).

use crate::model::JobState;
use std::path::Path;

/// Symbols in display order: waiting first (a human is needed), finished last.
const ORDER: &[(&str, &[JobState])] = &[
    ("⏸", &[JobState::Waiting]),
    ("▶", &[JobState::Running, JobState::Launching]),
    ("↻", &[JobState::Retrying]),
    ("⏳", &[JobState::Limited]),
    ("…", &[JobState::Pending]),
    ("⧗", &[JobState::Queued]),
    ("✓", &[JobState::Completed]),
    ("✗", &[JobState::Failed, JobState::TimedOut]),
    ("⊘", &[JobState::Cancelled]),
    ("↷", &[JobState::Skipped]),
];

/// `⏸1 ▶3 ✓12 ✗1`: the non-zero counts; empty when there are no jobs.
pub fn line(states: impl IntoIterator<Item = JobState>) -> String {
    let states: Vec<JobState> = states.into_iter().collect();
    ORDER
        .iter()
        .filter_map(|(symbol, members)| {
            let count = states.iter().filter(|s| members.contains(s)).count();
            (count > 0).then(|| format!("{symbol}{count}"))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Only the field the line needs: serde skips the rest of the record
/// without building it.
#[derive(serde::Deserialize)]
struct StateOnly {
    state: JobState,
}

/// The state of every readable record under the registry `root`; records
/// that cannot be read are left out (`status` reports them).
pub fn states(root: &Path) -> Vec<JobState> {
    let Ok(entries) = std::fs::read_dir(root.join("jobs")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read(entry.path().join("record.json")).ok())
        .filter_map(|bytes| serde_json::from_slice::<StateOnly>(&bytes).ok())
        .map(|r| r.state)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_come_waiting_first_and_zeros_are_left_out() {
        use JobState::*;
        let states = [
            Completed, Running, Waiting, Failed, Launching, Completed, TimedOut,
        ];
        assert_eq!(line(states), "⏸1 ▶2 ✓2 ✗2");
        assert_eq!(line([]), "");
    }

    #[test]
    fn queued_jobs_count_before_the_finished_and_skipped_ones_after_cancelled() {
        use JobState::*;
        assert_eq!(
            line([Skipped, Queued, Running, Queued, Completed, Cancelled]),
            "▶1 ⧗2 ✓1 ⊘1 ↷1"
        );
    }

    #[test]
    fn states_are_read_from_records_and_unreadable_ones_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let jobs = dir.path().join("jobs");
        for (id, body) in [
            ("a", r#"{"state":"running","spec":{"name":"x"}}"#),
            ("b", r#"{"state":"waiting"}"#),
            ("c", "{ not json"),
        ] {
            std::fs::create_dir_all(jobs.join(id)).expect("mkdir");
            std::fs::write(jobs.join(id).join("record.json"), body).expect("write");
        }
        let mut found = states(dir.path());
        found.sort_by_key(|s| s.as_str());
        assert_eq!(found, vec![JobState::Running, JobState::Waiting]);
        assert!(states(&dir.path().join("nowhere")).is_empty());
    }
}
