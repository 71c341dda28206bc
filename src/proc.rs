//! The only code that sends signals: to an agent's process group (recorded
//! by the window's wrapper, checked against its leader's start time), and
//! to the wrapper's own descendants at the end of an attempt, via nix. Also
//! the terminal's foreground group (the wrapper hands it to the agent).

use nix::errno::Errno;
use nix::sys::signal::{killpg, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::{tcsetpgrp, Pid};
use std::collections::{HashMap, HashSet};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// An agent's process group as the wrapper recorded it: the group id (the
/// leader's pid) and the leader's start time, so a pid reused by another
/// process after the agent ended is never taken for the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentGroup {
    pub pgid: i32,
    /// `starttime` (field 22 of `/proc/PID/stat`, clock ticks since boot);
    /// `None` in records written before it was kept (then not checked).
    pub leader_start: Option<u64>,
}

impl AgentGroup {
    /// The group led by `pid`, with its leader's start time read now.
    pub fn led_by(pid: i32) -> AgentGroup {
        AgentGroup {
            pgid: pid,
            leader_start: start_time(pid),
        }
    }

    /// False when the group's id now belongs to another process: the
    /// leader's pid runs something started at another time. (The kernel
    /// does not reuse a pid while a group of that id has members, so a
    /// different process there means the agent's group is gone.)
    fn still_ours(&self) -> bool {
        match (self.leader_start, start_time(self.pgid)) {
            (Some(recorded), Some(now)) if recorded != now => {
                tracing::warn!(
                    "process group {} is not the agent's any more (its leader started at tick {now}, \
                     the agent's at {recorded}): not signalled",
                    self.pgid
                );
                false
            }
            _ => true,
        }
    }
}

/// Whether any live (not zombie) process is left in the group.
///
/// `killpg(pgid, 0)` alone counts zombies, and an orphaned member's zombie
/// lingers until init reaps it (on some machines a second later): on Linux
/// the group's members are read from /proc to skip them.
pub fn group_alive(group: AgentGroup) -> bool {
    let pgid = group.pgid;
    if pgid <= 1
        || !group.still_ours()
        || matches!(killpg(Pid::from_raw(pgid), None), Err(Errno::ESRCH))
    {
        return false;
    }
    live_members_in_proc(pgid).unwrap_or(true)
}

/// `Some(true)` when /proc lists a non-zombie member of the group; `None`
/// when /proc cannot be read (then the caller trusts `killpg`).
fn live_members_in_proc(pgid: i32) -> Option<bool> {
    let processes = processes()?;
    Some(
        processes
            .values()
            .any(|stat| stat.pgrp == pgid && stat.is_live()),
    )
}

/// What this module reads from `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    state: char,
    ppid: i32,
    pgrp: i32,
    /// Field 22, `starttime`.
    start: u64,
}

impl Stat {
    /// Neither a zombie nor dead.
    fn is_live(&self) -> bool {
        self.state != 'Z' && self.state != 'X'
    }
}

/// Parses `/proc/PID/stat` ("pid (comm) S ppid pgrp ... starttime ...";
/// comm may hold spaces and parentheses, so parse after the last `)`).
fn parse_stat(stat: &str) -> Option<Stat> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // Fields from 3 (state) on: starttime, field 22, is the 20th of them.
    let fields: Vec<&str> = rest.split_whitespace().take(20).collect();
    let state = fields.first()?.chars().next()?;
    Some(Stat {
        state,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

fn read_stat(pid: i32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// A process's start time (clock ticks since boot), if it exists.
pub fn start_time(pid: i32) -> Option<u64> {
    read_stat(pid).map(|s| s.start)
}

/// Whether `pid` runs and is the process that started at `start` (when
/// known): a zombie, or another process that got the pid, is not.
pub fn process_alive(pid: i32, start: Option<u64>) -> bool {
    if pid <= 0 {
        return false;
    }
    match read_stat(pid) {
        Some(stat) => stat.is_live() && start.is_none_or(|s| s == stat.start),
        None => false,
    }
}

/// Every process /proc lists (thread-group leaders), by pid; `None` when
/// /proc cannot be read.
fn processes() -> Option<HashMap<i32, Stat>> {
    let entries = std::fs::read_dir("/proc").ok()?;
    let mut all = HashMap::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(stat) = read_stat(pid) {
            all.insert(pid, stat);
        }
    }
    Some(all)
}

/// Sends `signal` to a recorded agent group; `Ok(false)` when the group is
/// gone, or its id now belongs to another process (then nothing is sent).
pub fn signal_group(group: AgentGroup, signal: Signal) -> Result<bool, Errno> {
    if group.pgid <= 1 {
        // Never signal init or "every process" (pgid 0/1 are not agent groups).
        return Ok(false);
    }
    if !group.still_ours() {
        return Ok(false);
    }
    match killpg(Pid::from_raw(group.pgid), signal) {
        Ok(()) => Ok(true),
        Err(Errno::ESRCH) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Makes this process a child subreaper: a descendant orphaned by its
/// parent (a double fork, a `setsid` daemon whose parent exited) becomes
/// its child instead of init's, so it can still be found and stopped.
pub fn become_subreaper() -> Result<(), Errno> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// The live descendants of `ancestor`, read from /proc (children, their
/// children, ...); zombies are left out but their children are not.
fn live_descendants(ancestor: i32) -> Vec<i32> {
    let Some(all) = processes() else {
        return Vec::new();
    };
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for (pid, stat) in &all {
        children.entry(stat.ppid).or_default().push(*pid);
    }
    let mut found = Vec::new();
    let mut queue = vec![ancestor];
    let mut seen = HashSet::from([ancestor]);
    while let Some(parent) = queue.pop() {
        for child in children.get(&parent).into_iter().flatten() {
            if seen.insert(*child) {
                queue.push(*child);
                if all.get(child).is_some_and(Stat::is_live) {
                    found.push(*child);
                }
            }
        }
    }
    found
}

/// Reaps this process's children that have ended, except `spare` (the
/// agent: tokio waits for it). A child subreaper inherits orphans, and
/// their zombies would otherwise pile up until the wrapper exits.
pub fn reap_ended_children(spare: Option<i32>) {
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    let Some(all) = processes() else {
        return;
    };
    for (pid, stat) in all {
        if stat.ppid == me && !stat.is_live() && Some(pid) != spare {
            let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        }
    }
}

/// How long SIGKILLed descendants get to disappear before giving up.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How often descendants are looked for while they are being stopped.
const STOP_POLL: Duration = Duration::from_millis(20);

/// Stops every descendant of this process, as a kill stops an agent's
/// group: SIGTERM (and SIGCONT, so a stopped one can act on it), `grace`
/// for them to exit, then SIGKILL. Descendants that appear meanwhile are
/// signalled too; ended children are reaped, except `spare`.
pub async fn stop_descendants(grace: Duration, spare: Option<i32>) {
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    let mut termed: HashSet<i32> = HashSet::new();
    let deadline = Instant::now() + grace;
    loop {
        reap_ended_children(spare);
        let live = live_descendants(me);
        if live.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            break;
        }
        for pid in live {
            if termed.insert(pid) {
                let _ = signal_process(pid, Signal::SIGTERM);
                let _ = signal_process(pid, Signal::SIGCONT);
            }
        }
        tokio::time::sleep(STOP_POLL).await;
    }
    let deadline = Instant::now() + KILL_WAIT;
    loop {
        let live = live_descendants(me);
        if live.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            tracing::warn!("descendants still alive after SIGKILL: {live:?}");
            return;
        }
        for pid in live {
            let _ = signal_process(pid, Signal::SIGKILL);
        }
        tokio::time::sleep(STOP_POLL).await;
        reap_ended_children(spare);
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

/// Runs `f` with SIGTTOU blocked: a process may then change the terminal's
/// foreground group even when it is not in it (as shells do).
fn with_sigttou_blocked(f: impl FnOnce()) {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTTOU);
    let mut old = SigSet::empty();
    let blocked = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old)).is_ok();
    f();
    if blocked {
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
}

/// Makes the agent's group the terminal's foreground group, so it gets the
/// pane's keyboard signals and can use the terminal without SIGTTOU/SIGTTIN.
pub fn hand_terminal_to(group: AgentGroup) {
    if group.pgid <= 1 {
        return;
    }
    with_sigttou_blocked(|| {
        let stdin = std::io::stdin();
        let _ = tcsetpgrp(stdin.as_fd(), Pid::from_raw(group.pgid));
    });
    // If the agent touched the terminal before the hand-over it was stopped:
    // let it go on.
    let _ = signal_group(group, Signal::SIGCONT);
}

/// Makes this process's own group the terminal's foreground group again.
pub fn take_terminal_back() {
    with_sigttou_blocked(|| {
        let stdin = std::io::stdin();
        let _ = tcsetpgrp(stdin.as_fd(), nix::unistd::getpgrp());
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    const STAT_TAIL: &str = "0 -1 4194304 100 0 0 0 2 1 0 0 20 0 1 0 987654 1000 10";

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let stat = parse_stat(&format!("42 (a (b) c) S 1 4242 4242 {STAT_TAIL}")).expect("parses");
        assert_eq!(
            stat,
            Stat {
                state: 'S',
                ppid: 1,
                pgrp: 4242,
                start: 987_654
            }
        );
        let zombie = parse_stat(&format!("7 (sleep) Z 3 99 99 {STAT_TAIL}")).expect("parses");
        assert_eq!((zombie.state, zombie.ppid, zombie.pgrp), ('Z', 3, 99));
        assert!(!zombie.is_live());
        assert!(!Stat {
            state: 'X',
            ..zombie
        }
        .is_live());
        assert!(Stat {
            state: 'T',
            ..zombie
        }
        .is_live());
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("7 (sleep) Z 1 99 99"), None, "no start time");
    }

    #[test]
    fn the_start_time_is_this_process_s_own() {
        let me = i32::try_from(std::process::id()).expect("pid fits");
        let line = std::fs::read_to_string(format!("/proc/{me}/stat")).expect("own stat");
        let field_22 = line[line.rfind(')').expect(")") + 1..]
            .split_whitespace()
            .nth(19)
            .and_then(|f| f.parse::<u64>().ok());
        assert_eq!(start_time(me), field_22);
        assert!(start_time(me).is_some());
    }

    fn sleeper_in_own_group() -> (std::process::Child, i32) {
        let child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .expect("spawn sleep");
        let pgid = i32::try_from(child.id()).expect("pid fits");
        (child, pgid)
    }

    #[test]
    fn a_group_is_signalled_as_a_whole() {
        let (mut child, pgid) = sleeper_in_own_group();
        let group = AgentGroup::led_by(pgid);
        assert!(group.leader_start.is_some());
        assert!(group_alive(group));
        assert_eq!(signal_group(group, Signal::SIGKILL), Ok(true));
        child.wait().expect("reap");
        assert!(!group_alive(group));
        assert_eq!(signal_group(group, Signal::SIGTERM), Ok(false));
        // SIGCONT, harmless should the guard ever break (as under mutation
        // testing): pgid 1 is init's group, 0 this process's own.
        for pgid in [0, 1] {
            let reserved = AgentGroup {
                pgid,
                leader_start: None,
            };
            assert_eq!(signal_group(reserved, Signal::SIGCONT), Ok(false));
            assert!(!group_alive(reserved));
            assert_eq!(signal_process(pgid, Signal::SIGCONT), Ok(false));
        }
    }

    #[test]
    fn only_this_program_counts_as_a_supervisor() {
        let (mut child, pid) = sleeper_in_own_group();
        assert!(!is_tmux_delegate(pid), "sleep taken for tmux-delegate");
        assert_eq!(signal_process(pid, Signal::SIGKILL), Ok(true));
        child.wait().expect("reap");
        assert_eq!(signal_process(pid, Signal::SIGKILL), Ok(false));
        assert!(!is_tmux_delegate(pid), "a gone pid taken for tmux-delegate");
    }

    #[test]
    fn a_group_whose_leader_started_at_another_time_is_not_signalled() {
        let (mut child, pgid) = sleeper_in_own_group();
        let real = AgentGroup::led_by(pgid);
        let start = real.leader_start.expect("start time");
        let reused = AgentGroup {
            pgid,
            leader_start: Some(start + 1),
        };
        assert!(!group_alive(reused), "a reused pid counts as the agent");
        assert_eq!(signal_group(reused, Signal::SIGKILL), Ok(false));
        assert_eq!(child.try_wait().expect("try_wait"), None, "it was killed");
        // A record without a start time (older versions) is still served.
        let legacy = AgentGroup {
            pgid,
            leader_start: None,
        };
        assert!(group_alive(legacy));
        assert_eq!(signal_group(real, Signal::SIGKILL), Ok(true));
        child.wait().expect("reap");
    }

    #[test]
    fn a_group_of_only_a_zombie_is_not_alive() {
        let (mut child, pgid) = sleeper_in_own_group();
        let group = AgentGroup::led_by(pgid);
        assert_eq!(signal_group(group, Signal::SIGKILL), Ok(true));
        // Not reaped yet: the zombie still holds the group id.
        let zombie = (0..500).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            read_stat(pgid).is_some_and(|s| s.state == 'Z')
        });
        assert!(zombie, "the child did not become a zombie");
        assert!(
            killpg(Pid::from_raw(pgid), None).is_ok(),
            "killpg counts it"
        );
        assert!(!group_alive(group), "a zombie counted as a live member");
        child.wait().expect("reap");
    }

    #[test]
    fn descendants_are_found_through_the_tree() {
        // sh -> sh -> sleep: both levels are found; this process is not.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sh -c 'sleep 30; :' & wait"])
            .spawn()
            .expect("spawn sh");
        let me = i32::try_from(std::process::id()).expect("pid fits");
        let pid = i32::try_from(child.id()).expect("pid fits");
        let found = (0..500).find_map(|_| {
            std::thread::sleep(Duration::from_millis(10));
            let all = live_descendants(pid);
            (all.len() == 2).then_some(all)
        });
        let found = found.expect("two descendants of the shell");
        assert!(!found.contains(&pid) && !found.contains(&me));
        assert!(live_descendants(me).contains(&pid));
        for p in found.iter().chain([&pid]) {
            let _ = signal_process(*p, Signal::SIGKILL);
        }
        child.wait().expect("reap");
    }
}
