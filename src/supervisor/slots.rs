//! Slots of the `max_parallel` caps, shared by every supervisor of one
//! registry: one file per slot (`<registry>/slots/N` for the overall cap,
//! `<registry>/slots/agents/NAME/N` per agent), held with `flock` for as
//! long as the job runs. The kernel drops a dead process's locks, so a
//! SIGKILLed supervisor never keeps a slot; the files are opened
//! close-on-exec (Rust's default), so no window or tmux server inherits one.

use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The slots one running job holds; dropping it frees them.
#[derive(Debug, Default)]
pub struct Lease {
    _held: Vec<Flock<File>>,
}

/// Which caps a job counts against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caps {
    pub overall: Option<u32>,
    /// The agent's name and its cap.
    pub agent: Option<(String, u32)>,
}

impl Caps {
    pub fn is_unlimited(&self) -> bool {
        self.overall.is_none() && self.agent.is_none()
    }
}

/// Takes a slot of every cap in `caps`, or none at all (`Ok(None)`: some
/// cap is full right now).
pub fn try_take(registry: &Path, caps: &Caps) -> Result<Option<Lease>> {
    let mut held = Vec::new();
    if let Some(cap) = caps.overall {
        match try_one(&registry.join("slots"), cap)? {
            Some(lock) => held.push(lock),
            None => return Ok(None),
        }
    }
    if let Some((agent, cap)) = &caps.agent {
        let dir = registry.join("slots").join("agents").join(file_name(agent));
        match try_one(&dir, *cap)? {
            Some(lock) => held.push(lock),
            // `held` drops here: the overall slot is given back at once.
            None => return Ok(None),
        }
    }
    Ok(Some(Lease { _held: held }))
}

/// The first of slots `0..cap` in `dir` that no process holds, locked.
fn try_one(dir: &Path, cap: u32) -> Result<Option<Flock<File>>> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the slot directory {}", dir.display()))?;
    for n in 0..cap {
        let path = dir.join(n.to_string());
        let file = open_slot(&path)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(Some(lock)),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {}
            Err((_, errno)) => anyhow::bail!("locking the slot {}: {errno}", path.display()),
        }
    }
    Ok(None)
}

fn open_slot(path: &PathBuf) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening the slot file {}", path.display()))
}

/// An agent name as one safe path component.
fn file_name(agent: &str) -> String {
    agent
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_of_two_gives_two_leases_and_a_dropped_lease_frees_its_slot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let caps = Caps {
            overall: Some(2),
            agent: None,
        };
        let first = try_take(dir.path(), &caps).expect("take").expect("slot 0");
        let second = try_take(dir.path(), &caps).expect("take").expect("slot 1");
        assert!(try_take(dir.path(), &caps).expect("take").is_none());
        drop(first);
        let third = try_take(dir.path(), &caps).expect("take");
        assert!(third.is_some(), "the freed slot is taken again");
        drop(second);
    }

    #[test]
    fn a_full_agent_cap_gives_back_the_overall_slot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let agent_only = Caps {
            overall: None,
            agent: Some(("fake/agent".into(), 1)),
        };
        let both = Caps {
            overall: Some(1),
            agent: Some(("fake/agent".into(), 1)),
        };
        let held = try_take(dir.path(), &agent_only)
            .expect("take")
            .expect("agent slot");
        assert!(try_take(dir.path(), &both).expect("take").is_none());
        let overall_only = Caps {
            overall: Some(1),
            agent: None,
        };
        assert!(
            try_take(dir.path(), &overall_only).expect("take").is_some(),
            "the overall slot was not kept by the failed attempt"
        );
        drop(held);
    }
}
