//! Fake agents: executable scripts, programs with their own interpreter
//! line, and a run log where an agent writes when each run started and
//! ended, read back as intervals.

use super::waiting::peak_overlap;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Writes an executable script.
pub fn script(path: &Path, body: &str) -> PathBuf {
    program(path, &format!("#!/bin/sh\n{body}\n"))
}

/// Writes an executable file as it is (its own `#!` line, e.g. python).
pub fn program(path: &Path, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write program");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.to_path_buf()
}

/// One agent run: its key (job id or name), start and end in Unix nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub key: String,
    pub start: u128,
    pub end: Option<u128>,
}

/// A file where fake agents append `start KEY NANOS` and `end KEY NANOS`.
#[derive(Debug, Clone)]
pub struct RunLog {
    pub path: PathBuf,
}

impl RunLog {
    pub fn new(path: &Path) -> RunLog {
        RunLog {
            path: path.to_path_buf(),
        }
    }

    /// The shell line that records a run of `key` (a shell word, e.g.
    /// `$1` or `$DELEGATE_JOB_ID`) starting now.
    pub fn start(&self, key: &str) -> String {
        format!(
            "echo \"start {key} $(date +%s%N)\" >> {}",
            self.path.display()
        )
    }

    /// The shell line that records the run of `key` ending now.
    pub fn end(&self, key: &str) -> String {
        format!(
            "echo \"end {key} $(date +%s%N)\" >> {}",
            self.path.display()
        )
    }

    /// Every run recorded, by key, each end paired with its key's last
    /// open start.
    pub fn runs(&self) -> Vec<Run> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let mut runs: BTreeMap<String, Vec<(u128, Option<u128>)>> = BTreeMap::new();
        for line in text.lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [what, key, at] = parts[..] else { continue };
            let at: u128 = at.parse().expect("nanos");
            let entry = runs.entry(key.to_owned()).or_default();
            if what == "start" {
                entry.push((at, None));
            } else if let Some(open) = entry.iter_mut().rev().find(|r| r.1.is_none()) {
                open.1 = Some(at);
            }
        }
        runs.into_iter()
            .flat_map(|(key, list)| {
                list.into_iter().map(move |(start, end)| Run {
                    key: key.clone(),
                    start,
                    end,
                })
            })
            .collect()
    }

    /// The most runs at the same time.
    pub fn peak_parallel(&self) -> usize {
        peak_overlap(self.runs().into_iter().map(|r| (r.start, r.end)))
    }

    /// Keys in the order their runs started.
    pub fn start_order(&self) -> Vec<String> {
        let mut runs = self.runs();
        runs.sort_by_key(|r| r.start);
        runs.into_iter().map(|r| r.key).collect()
    }
}
