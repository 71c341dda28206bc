//! The only code that sends signals: to an agent's process group (recorded
//! by the window's wrapper), via nix.

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Whether any live (not zombie) process is left in the group.
///
/// `killpg(pgid, 0)` alone counts zombies, and an orphaned member's zombie
/// lingers until init reaps it (on some machines a second later): on Linux
/// the group's members are read from /proc to skip them.
pub fn group_alive(pgid: i32) -> bool {
    if pgid <= 1 || matches!(killpg(Pid::from_raw(pgid), None), Err(Errno::ESRCH)) {
        return false;
    }
    live_members_in_proc(pgid).unwrap_or(true)
}

/// `Some(true)` when /proc lists a non-zombie member of the group; `None`
/// when /proc cannot be read (then the caller trusts `killpg`).
fn live_members_in_proc(pgid: i32) -> Option<bool> {
    let entries = std::fs::read_dir("/proc").ok()?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some((state, group)) = parse_stat(&stat) {
            if group == pgid && state != 'Z' && state != 'X' {
                return Some(true);
            }
        }
    }
    Some(false)
}

/// State and process group from `/proc/PID/stat` ("pid (comm) S ppid pgrp ...";
/// comm may hold spaces and parentheses, so parse after the last `)`).
fn parse_stat(stat: &str) -> Option<(char, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// Sends `signal` to the whole group; `Ok(false)` when the group is gone.
pub fn signal_group(pgid: i32, signal: Signal) -> Result<bool, Errno> {
    if pgid <= 1 {
        // Never signal init or "every process" (pgid 0/1 are not agent groups).
        return Ok(false);
    }
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) => Ok(true),
        Err(Errno::ESRCH) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `pid` runs this program (its executable is tmux-delegate).
pub fn is_tmux_delegate(pid: i32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|exe| {
            exe.file_name()
                .map(|n| n.to_string_lossy().starts_with("tmux-delegate"))
        })
        .unwrap_or(false)
}

/// Sends `signal` to one process (the supervisor, for `kill`); `Ok(false)`
/// when it is gone.
pub fn signal_process(pid: i32, signal: Signal) -> Result<bool, Errno> {
    if pid <= 1 {
        return Ok(false);
    }
    match nix::sys::signal::kill(Pid::from_raw(pid), signal) {
        Ok(()) => Ok(true),
        Err(Errno::ESRCH) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        assert_eq!(
            parse_stat("42 (a (b) c) S 1 4242 4242 0"),
            Some(('S', 4242))
        );
        assert_eq!(parse_stat("7 (sleep) Z 1 99 99"), Some(('Z', 99)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn a_group_is_signalled_as_a_whole() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .expect("spawn sleep");
        let pgid = i32::try_from(child.id()).expect("pid fits");
        assert!(group_alive(pgid));
        assert_eq!(signal_group(pgid, Signal::SIGKILL), Ok(true));
        child.wait().expect("reap");
        assert!(!group_alive(pgid));
        assert_eq!(signal_group(pgid, Signal::SIGTERM), Ok(false));
        assert_eq!(signal_group(1, Signal::SIGTERM), Ok(false));
    }
}
