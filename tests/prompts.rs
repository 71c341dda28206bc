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

/// No broker configured, one attempt, and the default agent `argv`: an
/// agent that logs its argv as JSON lines.
fn argv_world() -> World {
    let world = World::embedded("");
    let agent = program(&world.scratch("record-argv"), RECORD_ARGV);
    world.write_config(&format!(
        "[defaults]\nagent = \"argv\"\n[defaults.retry]\nmax_attempts = 1\n\
         [agents.argv]\ncommand = [\"{}\", \"{{prompt}}\"]\nenv = {{ ARGV_LOG = \"{}\" }}\n",
        agent.display(),
        argv_log(&world).display()
    ));
    world
}

fn argv_log(world: &World) -> PathBuf {
    world.scratch("argv.log")
}

fn argvs(world: &World) -> Vec<Vec<String>> {
    std::fs::read_to_string(argv_log(world))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("argv json"))
        .collect()
}

#[test]
fn run_accepts_a_dash_prompt_and_the_agent_gets_it_as_one_argument() {
    let world = argv_world();
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
    assert_eq!(argvs(&world), vec![vec!["-z foo".to_owned()]]);
}

#[test]
fn option_like_prompts_from_a_job_file_reach_the_agent_verbatim() {
    let world = argv_world();
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
    let mut got = argvs(&world);
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
    let world = argv_world();
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
