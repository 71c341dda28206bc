//! Missing programs and agents that refuse their configuration: `run` exits
//! 2 before registering anything when tmux or the agent's program is
//! missing (naming it and its install command); a program that vanishes
//! later, or an agent that exits refusing its folder, fails as kind
//! `agent_config` with its own words and the fix, and is not retried.

mod common;

use common::*;
use std::time::Duration;

/// No broker configured, three quick attempts, and `config`; `bin/` first
/// on PATH for the fake programs a test puts there.
fn preflight_world(config: &str) -> World {
    World::embedded(&format!(
        "{config}\n[defaults.retry]\nmax_attempts = 3\nbackoff = \"0s\"\n"
    ))
}

/// The binary with PATH = `path` exactly.
fn td_with_path(world: &World, path: &str) -> std::process::Command {
    world.td_with(&[("PATH", path)])
}

/// `status --json` as one value.
fn jobs(world: &World) -> serde_json::Value {
    serde_json::Value::from(world.status())
}

fn run_to_end(command: &mut std::process::Command) -> std::process::Output {
    Guard(Some(
        command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run"),
    ))
    .wait_output(Duration::from_secs(90))
}

/// A PATH with the usual system directories but none of `bin`'s programs.
fn system_path_without(program: &str) -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .filter(|dir| !dir.join(program).exists())
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn a_missing_agent_program_is_exit_2_with_its_install_command_and_nothing_registered() {
    let world = preflight_world("");
    let path = system_path_without("claude");
    let out =
        run(td_with_path(&world, &path).args(["run", "--agent", "claude", "--prompt", "hello"]));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`claude`"), "{stderr}");
    assert!(
        stderr.contains("npm i -g @anthropic-ai/claude-code"),
        "{stderr}"
    );
    assert_eq!(jobs(&world), serde_json::json!([]));

    let out = run(td_with_path(&world, &system_path_without("aider"))
        .args(["run", "--agent", "aider", "--prompt", "hello"]));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("pip install aider-chat"), "{stderr}");
    assert_eq!(jobs(&world), serde_json::json!([]));
}

#[test]
fn a_missing_tmux_is_exit_2_before_anything_is_registered() {
    let world = preflight_world("");
    // `sh` (the shell agent) is there; tmux is not.
    let shell_only = world.bin.join("shell-only");
    std::fs::create_dir_all(&shell_only).expect("dir");
    std::os::unix::fs::symlink("/bin/sh", shell_only.join("sh")).expect("symlink sh");
    let out = run(td_with_path(&world, &shell_only.display().to_string())
        .args(["run", "--agent", "shell", "--prompt", "hello"]));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("tmux is not installed"), "{stderr}");
    assert!(stderr.contains("apt-get install tmux"), "{stderr}");
    assert_eq!(jobs(&world), serde_json::json!([]));
}

#[test]
fn a_program_that_vanishes_after_the_first_attempt_fails_as_agent_config_without_retries() {
    let world =
        preflight_world("[agents.selfdestruct]\ncommand = [\"selfdestruct\", \"{prompt}\"]\n");
    // The first attempt removes its own program and fails (kind `exit`,
    // retried); the second cannot start it.
    script(&world.bin.join("selfdestruct"), "rm -f \"$0\"\nexit 1");
    let out =
        run_to_end(
            world
                .td()
                .args(["run", "--json", "--agent", "selfdestruct", "--prompt", "go"]),
        );
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let job = &jobs(&world)[0];
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(
        job["attempt"], 2,
        "not retried after the program vanished: {job}"
    );
    assert_eq!(job["failure"]["kind"], "agent_config", "{job}");
    let reason = job["failure"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("cannot start the agent `selfdestruct`")
            && reason.contains("[agents.selfdestruct] command"),
        "{job}"
    );
}

#[test]
fn agents_that_refuse_an_untrusted_folder_fail_as_agent_config_with_their_words_and_the_fix() {
    let world = preflight_world("");
    // Stand-ins that say what codex 0.171 and gemini 0.61 say, and exit as they do.
    script(
        &world.bin.join("codex"),
        "echo 'Not inside a trusted directory and --skip-git-repo-check was not specified.' >&2\nexit 1",
    );
    script(
        &world.bin.join("gemini"),
        "echo 'Gemini CLI is not running in a trusted directory. To proceed, either use `--skip-trust`, set the `GEMINI_CLI_TRUST_WORKSPACE=true` environment variable, or trust this directory in interactive mode.' >&2\nexit 55",
    );
    let spec = world.home.join("jobs.toml");
    std::fs::write(
        &spec,
        "[[jobs]]\nname = \"codex-job\"\nagent = \"codex\"\nprompt = \"fix it\"\n\
         [[jobs]]\nname = \"gemini-job\"\nagent = \"gemini\"\nprompt = \"fix it\"\n",
    )
    .expect("spec");
    let out = run_to_end(world.td().arg("run").arg("--json").arg(&spec));
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let jobs = jobs(&world);
    let by_name = |name: &str| {
        jobs.as_array()
            .expect("array")
            .iter()
            .find(|j| j["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name}: {jobs}"))
    };
    let codex = by_name("codex-job");
    assert_eq!(codex["failure"]["kind"], "agent_config", "{codex}");
    assert_eq!(codex["attempt"], 1, "retried: {codex}");
    let reason = codex["failure"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("Not inside a trusted directory")
            && reason.contains("fix: ")
            && reason.contains("--skip-git-repo-check"),
        "{codex}"
    );
    let gemini = by_name("gemini-job");
    assert_eq!(gemini["failure"]["kind"], "agent_config", "{gemini}");
    assert_eq!(gemini["attempt"], 1, "retried: {gemini}");
    assert!(
        gemini["failure"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("GEMINI_CLI_TRUST_WORKSPACE"),
        "{gemini}"
    );
}

#[test]
fn an_ordinary_failure_of_those_agents_is_still_retried() {
    let world = preflight_world("");
    script(
        &world.bin.join("codex"),
        "echo 'stream error: 500' >&2\nexit 1",
    );
    let out = run_to_end(
        world
            .td()
            .args(["run", "--json", "--agent", "codex", "--prompt", "fix it"]),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let job = &jobs(&world)[0];
    assert_eq!(job["failure"]["kind"], "exit", "{job}");
    assert_eq!(job["attempt"], 3, "{job}");
}

#[test]
fn init_and_agents_say_when_the_agent_is_not_installed() {
    let world = preflight_world("");
    let project = world.home.join("project");
    std::fs::create_dir_all(&project).expect("project");
    let path = system_path_without("codex");
    let out = run(td_with_path(&world, &path)
        .current_dir(&project)
        .args(["init", "--agent", "codex"]));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("`codex` (agent codex) is not installed")
            && stdout.contains("npm i -g @openai/codex"),
        "{stdout}"
    );
    let out = run(td_with_path(&world, &path).arg("agents"));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("codex: `codex` is not installed; install it: npm i -g @openai/codex"),
        "{stdout}"
    );
}
