//! `scripts/setup` (the README's set-up commands and `.ci/run`) as root
//! and as a user with sudo: it installs only the missing packages, never
//! names an installed one to apt-get, and needs no sudo as root. apt-get,
//! dpkg-query, sudo, id and cargo are stand-ins that record their calls
//! (the test must not install anything on this machine); the script is
//! the real one.

mod common;

use common::*;
use std::path::{Path, PathBuf};

struct Machine {
    _dir: tempfile::TempDir,
    bin: PathBuf,
    log: PathBuf,
    home: PathBuf,
}

impl Machine {
    /// A PATH with only the stand-ins and the few real tools the script
    /// uses; `uid` is what `id -u` says; `installed` the packages dpkg knows.
    fn new(uid: u32, installed: &[&str], with_sudo: bool, with_cargo: bool) -> Machine {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&bin).expect("bin");
        std::fs::create_dir_all(&home).expect("home");
        let log = dir.path().join("calls.log");
        for tool in ["grep", "dirname"] {
            let real = ["/usr/bin", "/bin"]
                .iter()
                .map(|d| Path::new(d).join(tool))
                .find(|p| p.is_file())
                .expect("real tool");
            std::os::unix::fs::symlink(real, bin.join(tool)).expect("symlink");
        }
        let log_line = format!("echo \"$(basename \"$0\") $*\" >> '{}'", log.display());
        script(&bin.join("basename"), "p=${1##*/}; echo \"$p\"");
        script(&bin.join("id"), &format!("[ \"$1\" = -u ] && echo {uid}"));
        script(
            &bin.join("dpkg-query"),
            &format!(
                "for last; do :; done\nfor p in {}; do [ \"$p\" = \"$last\" ] && {{ printf 'install ok installed'; exit 0; }}; done\nexit 1",
                installed.join(" ")
            ),
        );
        script(&bin.join("apt-get"), &log_line);
        if with_sudo {
            script(&bin.join("sudo"), &format!("{log_line}\nexec \"$@\""));
        }
        if with_cargo {
            script(&bin.join("cargo"), &log_line);
        }
        Machine {
            _dir: dir,
            bin,
            log,
            home,
        }
    }

    fn setup(&self, what: &str) -> (Option<i32>, String, Vec<String>) {
        // The real script in a copy of the repository's layout without a
        // build, so that nothing it goes on to run is real either.
        let repo = self._dir.path().join("repo");
        std::fs::create_dir_all(repo.join("scripts")).expect("scripts");
        std::fs::create_dir_all(repo.join("examples/demo")).expect("demo");
        let script = repo.join("scripts/setup");
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/setup"),
            &script,
        )
        .expect("copy scripts/setup");
        let out = std::process::Command::new("/bin/bash")
            .arg(script)
            .arg(what)
            .env_clear()
            .env("PATH", &self.bin)
            .env("HOME", &self.home)
            // No real-agent legs: their installer is not in this layout.
            .env("REAL_AGENTS", "")
            .output()
            .expect("bash");
        let calls = std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        (
            out.status.code(),
            format!("{}{}", text(&out.stdout), text(&out.stderr)),
            calls,
        )
    }
}

/// Everything but tmux and mosquitto-clients is installed. (mosquitto is
/// listed too: the script also looks in /usr/sbin, where this machine may
/// really have it.)
const MOST: [&str; 5] = ["mosquitto", "openssl", "coreutils", "procps", "python3"];
const INSTALL: &str =
    "apt-get install -y -qq --no-install-recommends --no-upgrade tmux mosquitto-clients";

#[test]
fn as_root_only_the_missing_packages_are_installed_without_sudo() {
    let machine = Machine::new(0, &MOST, false, true);
    let (code, output, calls) = machine.setup("test");
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(
        calls,
        ["apt-get update -qq", INSTALL, "cargo test --locked"],
        "{output}"
    );
}

#[test]
fn as_a_user_the_missing_packages_are_installed_with_sudo() {
    let machine = Machine::new(1000, &MOST, true, true);
    let (code, output, calls) = machine.setup("test");
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(
        calls,
        [
            "sudo apt-get update -qq",
            "apt-get update -qq",
            &format!("sudo {INSTALL}"),
            INSTALL,
            "cargo test --locked",
        ],
        "{output}"
    );
}

#[test]
fn nothing_is_installed_when_nothing_is_missing() {
    let mut all = MOST.to_vec();
    all.extend(["tmux", "mosquitto-clients"]);
    let machine = Machine::new(1000, &all, true, true);
    let (code, output, calls) = machine.setup("test");
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(calls, ["cargo test --locked"], "{output}");
}

#[test]
fn the_demo_needs_only_tmux() {
    let machine = Machine::new(0, &[], false, true);
    let (code, output, calls) = machine.setup("demo");
    assert_eq!(code, Some(127), "{output}");
    // The stand-in cargo builds nothing, so the demo binary itself is
    // missing here (exit 127): only the calls before it matter.
    assert_eq!(
        calls,
        [
            "apt-get update -qq",
            "apt-get install -y -qq --no-install-recommends --no-upgrade tmux",
            "cargo build --release --locked",
        ],
        "{output}"
    );
}

#[test]
fn a_user_without_sudo_or_cargo_is_told_what_to_do() {
    let machine = Machine::new(1000, &MOST, false, true);
    let (code, output, calls) = machine.setup("test");
    assert_eq!(code, Some(2), "{output}");
    assert!(
        output.contains(
            "error: tmux mosquitto-clients missing, and this is not root and sudo is not installed"
        ),
        "{output}"
    );
    assert!(calls.is_empty(), "{calls:?}");

    let machine = Machine::new(0, &MOST, false, false);
    let (code, output, calls) = machine.setup("demo");
    assert_eq!(code, Some(2), "{output}");
    assert!(
        output.contains("error: cargo (the Rust toolchain) is not installed")
            && output.contains("https://sh.rustup.rs"),
        "{output}"
    );
    assert!(calls.is_empty(), "{calls:?}");
}
