//! A tmux server on a private socket, with `TMUX` unset and its own
//! `TMUX_TMPDIR`, killed by its socket (never by name) when dropped.

use super::mosquitto::free_port;
use super::world::text;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmux server on a private socket (`-L`) with its own `TMUX_TMPDIR`,
/// killed (by its socket, never by name) when dropped.
pub struct TmuxServer {
    pub socket: String,
    pub tmpdir: PathBuf,
    /// The server's own TMUX_TMPDIR, outside the test's directory: it goes
    /// only after `drop` has stopped the server, whatever order the test's
    /// fields drop in (a removed socket would leave the server running).
    _own: tempfile::TempDir,
}

impl TmuxServer {
    pub fn new(dir: &Path) -> TmuxServer {
        TmuxServer::named(
            dir,
            &format!("td-test-{}-{}", std::process::id(), free_port()),
        )
    }

    /// A server with a given socket name; still private, since its
    /// `TMUX_TMPDIR` is the test's own directory.
    pub fn named(_dir: &Path, socket: &str) -> TmuxServer {
        let own = tempfile::Builder::new()
            .prefix("td-tmux-")
            .tempdir()
            .expect("tmux tmpdir");
        TmuxServer {
            socket: socket.to_owned(),
            tmpdir: own.path().to_path_buf(),
            _own: own,
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("tmux");
        command
            .env_remove("TMUX")
            .env("TMUX_TMPDIR", &self.tmpdir)
            .arg("-L")
            .arg(&self.socket)
            .args(args);
        command
    }

    pub fn output(&self, args: &[&str]) -> String {
        let out = self.command(args).output().expect("tmux");
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    }
}

impl Drop for TmuxServer {
    fn drop(&mut self) {
        let _ = self.command(&["kill-server"]).output();
    }
}
