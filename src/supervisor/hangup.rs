//! A supervisor whose terminal closes (SIGHUP) goes on supervising, as a
//! detached `run` would: closing a terminal never leaves jobs without
//! their retries and timeouts. It says so on the terminal it loses (if that
//! still takes writes), then points stdout and stderr at a 0600 log in the
//! registry (`logs/run-PID.log`) and stdin at /dev/null, so no later write
//! or read touches the dead terminal (EIO) or stops the process (SIGTTOU).

use anyhow::Context;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The log a hung-up supervisor of this process writes to.
pub fn log_path(registry_root: &Path) -> PathBuf {
    registry_root
        .join("logs")
        .join(format!("run-{}.log", std::process::id()))
}

/// What the terminal reads before it goes.
pub fn farewell(jobs: usize, log: &Path) -> String {
    format!(
        "tmux-delegate: the terminal closed (SIGHUP): still supervising {jobs} job(s) in the background \
         (pid {}); output goes to {}; follow them with `tmux-delegate status`",
        std::process::id(),
        log.display()
    )
}

/// Says farewell on stderr, then moves stdout and stderr to `log` (created
/// 0600 in a 0700 directory, appended to) and stdin to /dev/null.
pub fn leave_terminal(log: &Path, jobs: usize) -> anyhow::Result<()> {
    // The terminal may be gone already: a failed write is no reason to stop.
    let _ = writeln!(std::io::stderr(), "{}", farewell(jobs, log));
    if let Some(dir) = log.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let null = std::fs::File::open("/dev/null").context("opening /dev/null")?;
    let _ = std::io::stdout().flush();
    for (from, to) in [
        (file.as_raw_fd(), 1),
        (file.as_raw_fd(), 2),
        (null.as_raw_fd(), 0),
    ] {
        nix::unistd::dup2(from, to).with_context(|| format!("redirecting fd {to}"))?;
    }
    eprintln!("{}", farewell(jobs, log));
    Ok(())
}
