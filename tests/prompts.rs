//! A prompt reaches the agent verbatim whatever its first character: `run
//! --prompt "-z foo"` and `register --prompt --help` are accepted, and an
//! agent gets `-z foo`, `--version` and `--help` as one argument each.

mod common;

use common::*;
use std::path::PathBuf;
use std::time::Duration;

/// An agent that appends its argv (as JSON) to `$ARGV_LOG` and exits 0.
const RECORD_ARGV: &str = r#"#!/usr/bin/env python3
import json, os, sys
with open(os.environ["ARGV_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\n")
"#;

struct World {
    _dir: tempfile::TempDir,
    home: PathBuf,
    tmux: TmuxServer,
    log: PathBuf,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).expect("home");
        let agent = dir.path().join("record-argv");
        script(&agent, "");
        std::fs::write(&agent, RECORD_ARGV).expect("agent");
        let log = dir.path().join("argv.log");
        let tmux = TmuxServer::new(dir.path());
        std::fs::write(
            home.join("tmux-delegate.toml"),
            format!(
                "[defaults]\nagent = \"argv\"\n[defaults.retry]\nmax_attempts = 1\n\
                 [defaults.tmux]\nsocket = \"{}\"\nkill_grace = \"1s\"\nkeep_failed = false\n\
                 [agents.argv]\ncommand = [\"{}\", \"{{prompt}}\"]\nenv = {{ ARGV_LOG = \"{}\" }}\n",
                tmux.socket,
                agent.display(),
                log.display()
            ),
        )
        .expect("config");
        World {
            _dir: dir,
            home,
            tmux,
            log,
        }
    }

    fn td(&self) -> std::process::Command {
        let tmpdir = self.tmux.tmpdir.display().to_string();
        td(&self.home, &[("TMUX_TMPDIR", &tmpdir)])
    }

    fn argvs(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("argv json"))
            .collect()
    }
}

#[test]
fn run_accepts_a_dash_prompt_and_the_agent_gets_it_as_one_argument() {
    let world = World::new();
    let out = Guard(Some(
        world
            .td()
            .args(["run", "--json", "--prompt", "-z foo"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run"),
    ))
    .wait_output(Duration::from_secs(60));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(world.argvs(), vec![vec!["-z foo".to_owned()]]);
}

#[test]
fn option_like_prompts_from_a_job_file_reach_the_agent_verbatim() {
    let world = World::new();
    let spec = world.home.join("jobs.toml");
    std::fs::write(
        &spec,
        "[[jobs]]\nname = \"z\"\nprompt = \"-z foo\"\n\
         [[jobs]]\nname = \"version\"\nprompt = \"--version\"\n\
         [[jobs]]\nname = \"help\"\nprompt = \"--help\"\n",
    )
    .expect("spec");
    let out = Guard(Some(
        world
            .td()
            .arg("run")
            .arg("--json")
            .arg(&spec)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run"),
    ))
    .wait_output(Duration::from_secs(90));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let mut got = world.argvs();
    got.sort();
    assert_eq!(
        got,
        vec![
            vec!["--help".to_owned()],
            vec!["--version".to_owned()],
            vec!["-z foo".to_owned()],
        ]
    );
}

#[test]
fn register_accepts_option_like_prompts_and_stores_them_verbatim() {
    let world = World::new();
    for prompt in ["-z foo", "--help", "--version"] {
        let out = run(world.td().args(["register", "--json", "--prompt", prompt]));
        assert!(out.status.success(), "{prompt}: {}", text(&out.stderr));
        let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let record = PathBuf::from(answer["record"].as_str().expect("record path"));
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&record).expect("record"))
                .expect("record json");
        assert_eq!(record["spec"]["prompt"], prompt);
    }
}
