//! Test harness: a real Mosquitto on a free loopback port with its own config,
//! a private PKI made with rcgen, Mosquitto password files, and the real
//! binary run with a scrubbed environment. Every process a test starts is
//! stopped by a `Drop` guard, also when the test fails.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tmux-delegate");

/// The original least-privilege ACL: the worker may only write events, the
/// observer may only read them.
pub const ACL: &str = "user claude-worker\ntopic write python/mqtt/jobs/+/events\n\n\
                       user hermes\ntopic read python/mqtt/jobs/+/events\n";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Polls `check` every 10 ms until it returns Some or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

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
        std::process::Command::new(mosquitto_bin())
            .arg("-c")
            .arg(conf)
            .stdout(std::process::Stdio::null())
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
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
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

/// A private CA, a server certificate for localhost/127.0.0.1, a client
/// certificate, and an unrelated CA (for "wrong CA" tests).
pub struct Pki {
    pub ca: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub other_ca: PathBuf,
}

fn ca(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().expect("key"))
        .expect("CA")
}

fn leaf(
    issuer: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    names: &[&str],
    cn: &str,
    usage: rcgen::ExtendedKeyUsagePurpose,
) -> (String, String) {
    leaf_with_key(
        issuer,
        names,
        cn,
        usage,
        rcgen::KeyPair::generate().expect("key"),
    )
}

fn leaf_with_key(
    issuer: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    names: &[&str],
    cn: &str,
    usage: rcgen::ExtendedKeyUsagePurpose,
    key: rcgen::KeyPair,
) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, issuer).expect("sign");
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    pub fn create(dir: &Path) -> Pki {
        let authority = ca("tmux-delegate test CA");
        let other = ca("some other CA");
        let (server_cert, server_key) = leaf(
            &authority,
            &["localhost", "127.0.0.1"],
            "localhost",
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) = leaf(
            &authority,
            &[],
            "claude-worker",
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        );
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write pem");
            path
        };
        Pki {
            ca: write("ca.crt", &authority.pem()),
            ca_key: write("ca.key", &authority.key().serialize_pem()),
            server_cert: write("server.crt", &server_cert),
            server_key: write("server.key", &server_key),
            client_cert: write("client.crt", &client_cert),
            client_key: write("client.key", &client_key),
            other_ca: write("other-ca.crt", &other.pem()),
        }
    }

    /// Listener lines for a TLS listener with this PKI.
    pub fn listener_tls(&self) -> String {
        format!(
            "cafile {}\ncertfile {}\nkeyfile {}\n",
            self.ca.display(),
            self.server_cert.display(),
            self.server_key.display()
        )
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

/// The binary with a scrubbed environment: only PATH, a private HOME and
/// registry, and the given variables.
pub fn td(home: &Path, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("TMUX_DELEGATE_HOME", home.join("state"))
        // Debugging a test: TMUX_DELEGATE_LOG=debug cargo test ...
        .envs(std::env::var("TMUX_DELEGATE_LOG").map(|v| ("TMUX_DELEGATE_LOG", v)))
        .current_dir(home)
        .stdin(Stdio::null());
    for (k, v) in vars {
        command.env(k, v);
    }
    command
}

pub fn run(command: &mut Command) -> Output {
    command.output().expect("run tmux-delegate")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
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

/// Writes an executable script.
pub fn script(path: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.to_path_buf()
}
