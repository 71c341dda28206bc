//! Reads the selected job's pane for `top`'s preview, off the UI loop: a
//! task reads it (one tmux process, one `capture-pane` of that job's window
//! only) and sends it back through a channel, one read in flight at a time;
//! the loop keeps what is still the selected job's (`App::show_pane`).

use super::app::JobRow;
use super::pane::Pane;
use crate::model::{JobId, JobState};
use crate::registry::{Record, Registry};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often a live job's pane is read while it is selected: new output
/// shows within this (plus a read of a few ms).
const LIVE_REFRESH: Duration = Duration::from_millis(300);
/// How often a pane that does not change is read again: a finished job's
/// (its saved pane may come a moment after its end), a queued one's.
const IDLE_REFRESH: Duration = Duration::from_secs(2);
/// A read that takes longer gives way to a note (a tmux server that does
/// not answer must not freeze the preview).
const READ_LIMIT: Duration = Duration::from_secs(2);

/// The last read asked for.
struct Asked {
    id: String,
    state: JobState,
    at: Instant,
}

pub struct Previewer {
    root: PathBuf,
    sender: mpsc::UnboundedSender<Pane>,
    receiver: mpsc::UnboundedReceiver<Pane>,
    in_flight: bool,
    last: Option<Asked>,
}

impl Previewer {
    pub fn new(registry: &Registry) -> Previewer {
        let (sender, receiver) = mpsc::unbounded_channel();
        Previewer {
            root: registry.root().to_path_buf(),
            sender,
            receiver,
            in_flight: false,
            last: None,
        }
    }

    /// Starts a read of `row`'s pane when one is due: at once for a newly
    /// selected job (or one whose state changed), else every
    /// `LIVE_REFRESH` (`IDLE_REFRESH` for a job without a live window).
    /// Never while a read is in flight; nothing without a row (the preview
    /// hidden, no job).
    pub fn request(&mut self, row: Option<&JobRow>) {
        let Some(row) = row else { return };
        if self.in_flight || !self.due(row) {
            return;
        }
        self.in_flight = true;
        self.last = Some(Asked {
            id: row.id.clone(),
            state: row.state,
            at: Instant::now(),
        });
        let sender = self.sender.clone();
        let registry = Registry::at(self.root.clone());
        let id = row.id.clone();
        tokio::spawn(async move {
            let pane = match tokio::time::timeout(READ_LIMIT, read(&registry, &id)).await {
                Ok(pane) => pane,
                Err(_) => Pane::note(&id, format!("tmux did not answer within {READ_LIMIT:?}")),
            };
            // The receiver goes only when `top` quits.
            let _ = sender.send(pane);
        });
    }

    fn due(&self, row: &JobRow) -> bool {
        match &self.last {
            Some(last) if last.id == row.id && last.state == row.state => {
                last.at.elapsed() >= refresh(row.state)
            }
            _ => true,
        }
    }

    /// The next pane read (pending until one is).
    pub async fn next(&mut self) -> Pane {
        // The sender lives in `self`: `recv` never sees the channel closed.
        match self.receiver.recv().await {
            Some(pane) => {
                self.in_flight = false;
                pane
            }
            None => std::future::pending().await,
        }
    }
}

fn refresh(state: JobState) -> Duration {
    let live = !state.is_finished() && !matches!(state, JobState::Pending | JobState::Queued);
    if live {
        LIVE_REFRESH
    } else {
        IDLE_REFRESH
    }
}

/// The job's pane as the preview shows it: its window's screen while it
/// runs; once it is finished, the pane saved when its attempt ended, or its
/// window if it is kept; else why there is nothing.
async fn read(registry: &Registry, id: &str) -> Pane {
    let started = Instant::now();
    let loaded = JobId::parse(id)
        .map_err(anyhow::Error::from)
        .and_then(|job| registry.load(&job).map(|record| (job, record)));
    let pane = match loaded {
        Err(e) => Pane::note(id, format!("{e:#}")),
        Ok((job, record)) if record.state.is_finished() => finished(registry, &job, &record).await,
        Ok((_, record)) => live(&record).await,
    };
    tracing::debug!(
        "preview: read the pane of {id} in {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    pane
}

async fn live(record: &Record) -> Pane {
    let state = record.state.as_str();
    if !has_window(record) {
        return Pane::note(&record.id, format!("{state}: no window yet"));
    }
    match crate::tmux::job_window::live_screen(record).await {
        Ok(screen) => Pane::live(&record.id, &screen, None),
        Err(e) => Pane::note(&record.id, format!("cannot read its pane: {e:#}")),
    }
}

async fn finished(registry: &Registry, job: &JobId, record: &Record) -> Pane {
    let state = record.state.as_str();
    let attempt = record.attempt;
    if let Ok(text) = std::fs::read_to_string(registry.pane_file(job, attempt)) {
        let note = format!("{state}: its pane when attempt {attempt} ended");
        return Pane::saved(&record.id, &text, note);
    }
    if has_window(record) {
        // A failed attempt's window stays with `keep_failed`.
        if let Ok(screen) = crate::tmux::job_window::live_screen(record).await {
            return Pane::live(
                &record.id,
                &screen,
                Some(format!("{state}: its window, kept")),
            );
        }
    }
    Pane::note(
        &record.id,
        format!("{state}: its window is closed and no pane was saved (l shows its history)"),
    )
}

fn has_window(record: &Record) -> bool {
    record
        .attempt_info(record.attempt)
        .is_some_and(|a| a.window.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::top::app::tests::row;

    async fn no_read(previewer: &mut Previewer) -> bool {
        tokio::time::timeout(Duration::from_millis(100), previewer.next())
            .await
            .is_err()
    }

    /// One read at a time, at once for a newly selected job or a new
    /// state, else not before its refresh; a job the registry lacks is a
    /// note, not an error.
    #[tokio::test]
    async fn reads_come_one_at_a_time_when_due_and_say_why_a_job_has_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut previewer = Previewer::new(&Registry::at(dir.path().to_path_buf()));
        let running = row("gone-1", JobState::Running, 1);
        previewer.request(Some(&running));
        previewer.request(Some(&running));
        previewer.request(Some(&row("other-1", JobState::Running, 1)));
        let pane = previewer.next().await;
        assert_eq!(pane.id, "gone-1");
        assert!(pane.lines.is_empty() && pane.note.is_some(), "{pane:?}");
        assert!(
            no_read(&mut previewer).await,
            "one read in flight at a time"
        );

        previewer.request(Some(&running));
        assert!(no_read(&mut previewer).await, "not due before its refresh");
        tokio::time::sleep(LIVE_REFRESH).await;
        previewer.request(Some(&running));
        assert_eq!(previewer.next().await.id, "gone-1");
        previewer.request(Some(&row("gone-1", JobState::Completed, 1)));
        assert_eq!(previewer.next().await.id, "gone-1", "a new state: at once");
        previewer.request(Some(&row("other-1", JobState::Running, 1)));
        assert_eq!(previewer.next().await.id, "other-1", "a new job: at once");
        previewer.request(None);
        assert!(no_read(&mut previewer).await);
        assert_eq!(refresh(JobState::Completed), IDLE_REFRESH);
        assert_eq!(refresh(JobState::Queued), IDLE_REFRESH);
        assert_eq!(refresh(JobState::Waiting), LIVE_REFRESH);
    }

    /// Without tmux: a finished job's saved pane, or why there is none;
    /// a job not launched yet has no window.
    #[tokio::test]
    async fn a_finished_job_shows_its_saved_pane_or_a_note() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::at(dir.path().join("state"));
        let mut record = crate::registry::tests::sample_record(dir.path(), "done-1");
        record.state = JobState::Completed;
        record.attempt = 1;
        registry.create(&record).expect("create");
        let job = JobId::parse("done-1").expect("id");
        let pane = read(&registry, "done-1").await;
        assert_eq!(
            pane.note.as_deref(),
            Some("completed: its window is closed and no pane was saved (l shows its history)")
        );
        registry.save_pane(&job, 1, "last words\n\n");
        let pane = read(&registry, "done-1").await;
        assert_eq!(pane.lines, vec![ratatui::text::Line::raw("last words")]);
        assert_eq!(
            pane.note.as_deref(),
            Some("completed: its pane when attempt 1 ended")
        );
        let mut queued = crate::registry::tests::sample_record(dir.path(), "queued-1");
        queued.state = JobState::Queued;
        registry.create(&queued).expect("create");
        let pane = read(&registry, "queued-1").await;
        assert_eq!(pane.note.as_deref(), Some("queued: no window yet"));
    }
}
