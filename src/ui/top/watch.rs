//! Which jobs changed in the registry, from inotify: the `jobs/` directory
//! (jobs added or removed) and each job's directory (record.json replaced by
//! a rename, events.jsonl appended). Non-blocking: `top` asks between keys.

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What changed since the last look.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Jobs whose record (or history) changed, or that appeared.
    pub jobs: Vec<String>,
    /// Jobs whose directory went away.
    pub removed: Vec<String>,
}

pub struct Watcher {
    inotify: Inotify,
    jobs_dir: PathBuf,
    jobs_watch: WatchDescriptor,
    per_job: HashMap<WatchDescriptor, String>,
}

impl Watcher {
    /// Watches `<root>/jobs` (created when missing, 0700 like the registry).
    pub fn new(root: &Path) -> anyhow::Result<Watcher> {
        let jobs_dir = root.join("jobs");
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(&jobs_dir)?;
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        let jobs_watch = inotify.add_watch(
            &jobs_dir,
            AddWatchFlags::IN_CREATE
                | AddWatchFlags::IN_DELETE
                | AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_MOVED_FROM,
        )?;
        let mut watcher = Watcher {
            inotify,
            jobs_dir,
            jobs_watch,
            per_job: HashMap::new(),
        };
        for entry in std::fs::read_dir(&watcher.jobs_dir)?.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            watcher.watch_job(&id);
        }
        Ok(watcher)
    }

    fn watch_job(&mut self, id: &str) {
        if self.per_job.values().any(|j| j == id) {
            return;
        }
        let flags =
            AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_CLOSE_WRITE;
        match self.inotify.add_watch(&self.jobs_dir.join(id), flags) {
            Ok(wd) => {
                self.per_job.insert(wd, id.to_owned());
            }
            Err(e) => tracing::debug!("cannot watch job {id}: {e}"),
        }
    }

    /// Everything that happened since the last call (nothing when idle).
    pub fn changes(&mut self) -> Changes {
        let mut changes = Changes::default();
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for event in events {
                let name = event
                    .name
                    .as_ref()
                    .map(|n| n.to_string_lossy().into_owned());
                if event.wd == self.jobs_watch {
                    let Some(id) = name else { continue };
                    if event
                        .mask
                        .intersects(AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM)
                    {
                        self.per_job.retain(|_, j| *j != id);
                        changes.removed.push(id);
                    } else {
                        self.watch_job(&id);
                        changes.jobs.push(id);
                    }
                } else if let Some(id) = self.per_job.get(&event.wd) {
                    // Temp files come and go; the rename onto record.json
                    // and appends to events.jsonl are what matter.
                    if name
                        .as_deref()
                        .is_some_and(|n| n == "record.json" || n == "events.jsonl")
                    {
                        changes.jobs.push(id.clone());
                    }
                }
            }
        }
        changes.jobs.sort();
        changes.jobs.dedup();
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_jobs_replaced_records_and_removed_jobs_are_seen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut watcher = Watcher::new(dir.path()).expect("watcher");
        assert_eq!(watcher.changes(), Changes::default());
        let job = dir.path().join("jobs").join("j1");
        std::fs::create_dir(&job).expect("mkdir");
        assert_eq!(watcher.changes().jobs, vec!["j1".to_owned()]);
        std::fs::write(job.join(".tmp"), "{}").expect("write");
        std::fs::rename(job.join(".tmp"), job.join("record.json")).expect("rename");
        assert_eq!(watcher.changes().jobs, vec!["j1".to_owned()]);
        std::fs::write(job.join(".other"), "x").expect("write");
        assert_eq!(
            watcher.changes(),
            Changes::default(),
            "temp files are noise"
        );
        std::fs::remove_dir_all(&job).expect("rm");
        assert_eq!(watcher.changes().removed, vec!["j1".to_owned()]);
    }
}
