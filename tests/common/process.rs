//! Processes a test starts: a `Drop` guard that kills and reaps them, a
//! line collector to wait for a given output line, and liveness by pid.

use super::waiting::wait_for;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child process killed (and reaped) when dropped.
pub struct Guard(pub Option<Child>);

impl Guard {
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child present")
    }

    /// Waits for the process to exit within `limit`; returns its output.
    pub fn wait_output(mut self, limit: Duration) -> Output {
        let child = self.0.take().expect("child present");
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(limit) {
            Ok(output) => output.expect("wait for child"),
            Err(_) => {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
                panic!("process {pid} did not exit within {limit:?}");
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A process whose stdout and stderr lines are collected by threads, so a
/// test can wait for a given line without blocking.
pub struct Lines {
    pub guard: Guard,
    rx: mpsc::Receiver<(bool, String)>,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

impl Lines {
    pub fn spawn(command: &mut Command) -> Lines {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let (tx, rx) = mpsc::channel();
        for (is_err, stream) in [
            (
                false,
                Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
            ),
            (
                true,
                Box::new(child.stderr.take().expect("stderr")) as Box<dyn Read + Send>,
            ),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send((is_err, line)).is_err() {
                        break;
                    }
                }
            });
        }
        Lines {
            guard: Guard(Some(child)),
            rx,
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    /// Collects lines until one (stdout or stderr) contains `needle`.
    pub fn wait_line(&mut self, needle: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((is_err, line)) => {
                    let hit = line.contains(needle);
                    if is_err {
                        &mut self.stderr
                    } else {
                        &mut self.stdout
                    }
                    .push(line);
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    /// Waits for exit within `limit` and drains the remaining lines.
    pub fn finish(&mut self, limit: Duration) -> std::process::ExitStatus {
        let child = self.guard.child();
        let status = wait_for(limit, || child.try_wait().ok().flatten())
            .unwrap_or_else(|| panic!("process did not exit within {limit:?}"));
        // The reader threads end at EOF, which disconnects the channel.
        while let Ok((is_err, line)) = self.rx.recv_timeout(Duration::from_secs(5)) {
            if is_err {
                &mut self.stderr
            } else {
                &mut self.stdout
            }
            .push(line);
        }
        status
    }
}

/// Whether a process is alive (a zombie is dead).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next().map(str::to_owned));
            !matches!(state.as_deref(), Some("Z" | "X") | None)
        }
        Err(_) => false,
    }
}
