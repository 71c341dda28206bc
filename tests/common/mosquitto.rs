//! Mosquitto for the tests: a broker on a free loopback port with its own
//! configuration (plain, TLS, passwords, ACL as the test writes them), a
//! `broker setup` bundle's configuration run as it is, and password files.

use super::process::Guard;
use super::waiting::wait_for;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The original least-privilege ACL: the worker may only write events, the
/// observer may only read them.
pub const ACL: &str = "user claude-worker\ntopic write python/mqtt/jobs/+/events\n\n\
                       user hermes\ntopic read python/mqtt/jobs/+/events\n";

/// A port nothing listens on now, for a broker (or a dead address).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The mosquitto binary: on PATH, else Debian's /usr/sbin (not on every
/// user's PATH).
pub fn mosquitto_bin() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("mosquitto"))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/mosquitto"))
}

/// Runs Mosquitto on a configuration file as it is (a `broker setup`
/// bundle's), waits until `port` accepts connections, and stops it on drop.
pub fn start_mosquitto_conf(conf: &Path, port: u16) -> Guard {
    let log = std::fs::File::create(conf.with_extension("log")).expect("log");
    let mut guard = Guard(Some(
        Command::new(mosquitto_bin())
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("mosquitto"),
    ));
    let up = wait_for(Duration::from_secs(10), || {
        if let Ok(Some(status)) = guard.child().try_wait() {
            panic!(
                "mosquitto exited with {status}: {}",
                std::fs::read_to_string(conf.with_extension("log")).unwrap_or_default()
            );
        }
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    assert!(up.is_some(), "mosquitto did not listen");
    guard
}

/// A Mosquitto broker on a free loopback port, stopped on drop.
pub struct Mosquitto {
    pub port: u16,
    pub dir: PathBuf,
    process: Guard,
}

impl Mosquitto {
    /// Starts `mosquitto -c` with `body` (listener lines are added here) and
    /// waits until the port accepts connections.
    pub fn start(dir: &Path, body: &str) -> Mosquitto {
        let port = free_port();
        let conf = dir.join(format!("mosquitto-{port}.conf"));
        let text = format!(
            "user root\nper_listener_settings false\nset_tcp_nodelay true\n\
             persistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n\
             listener {port} 127.0.0.1\n{body}\n"
        );
        std::fs::write(&conf, text).expect("write mosquitto.conf");
        Mosquitto {
            port,
            dir: dir.to_path_buf(),
            process: Mosquitto::spawn(dir, port),
        }
    }

    fn spawn(dir: &Path, port: u16) -> Guard {
        let conf = dir.join(format!("mosquitto-{port}.conf"));
        let log = std::fs::File::create(dir.join(format!("mosquitto-{port}.log"))).expect("log");
        let child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("mosquitto is installed (apt-get install mosquitto)");
        let mut process = Guard(Some(child));
        let up = wait_for(Duration::from_secs(10), || {
            if let Ok(Some(status)) = process.child().try_wait() {
                panic!(
                    "mosquitto exited with {status}: {}",
                    std::fs::read_to_string(dir.join(format!("mosquitto-{port}.log")))
                        .unwrap_or_default()
                );
            }
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        assert!(up.is_some(), "mosquitto did not listen on {port}");
        process
    }

    /// A broker outage: stops this Mosquitto (every session and retained
    /// message is lost, `persistence false`) and starts it again on the
    /// same port.
    pub fn restart(&mut self) {
        let old = std::mem::replace(&mut self.process, Guard(None));
        drop(old);
        self.process = Mosquitto::spawn(&self.dir, self.port);
    }

    /// The first half of an outage: the broker is gone until `start_again`.
    pub fn stop(&mut self) {
        let old = std::mem::replace(&mut self.process, Guard(None));
        drop(old);
    }

    /// The end of an outage begun with `stop`: the same port again.
    pub fn start_again(&mut self) {
        self.process = Mosquitto::spawn(&self.dir, self.port);
    }
}

/// A Mosquitto password file made with `mosquitto_passwd`.
pub fn password_file(dir: &Path, users: &[(&str, &str)]) -> PathBuf {
    let path = dir.join("passwd");
    std::fs::write(&path, "").expect("create passwd");
    for (user, password) in users {
        let status = Command::new("mosquitto_passwd")
            .arg("-b")
            .arg(&path)
            .arg(user)
            .arg(password)
            .status()
            .expect("mosquitto_passwd is installed");
        assert!(status.success(), "mosquitto_passwd failed");
    }
    path
}
