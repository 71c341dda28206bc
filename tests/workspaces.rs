//! Workspaces end to end (SPEC section 10): real git repositories in temp
//! dirs, a real tmux server on a private socket, the real binary, Mosquitto
//! or the embedded broker, and fake agents (scripts) that edit a file and
//! `git commit` in their worktree.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const RUN_LIMIT: Duration = Duration::from_secs(90);

/// A home with a project config (agents, a private tmux server, quick
/// kills), a broker of `kind`, and a git repository `home/repo`.
fn repo_world(kind: Broker, extra: &str) -> World {
    keeping_failed(kind, extra, false)
}

fn keeping_failed(kind: Broker, extra: &str, keep_failed: bool) -> World {
    let world = World::builder(kind).keep_failed(keep_failed).build(extra);
    make_repo(&repo(&world));
    world
}

/// The main checkout.
fn repo(world: &World) -> PathBuf {
    world.home.join("repo")
}

/// Runs a command to its end; (exit code, stdout, stderr).
fn run_args(world: &World, args: &[&str]) -> (Option<i32>, String, String) {
    world.finish(args, RUN_LIMIT)
}

fn repo_git(world: &World, args: &[&str]) -> String {
    git(&repo(world), args)
}

/// The main checkout's HEAD, index and files: what must not change.
fn checkout_state(world: &World) -> (String, String) {
    (
        repo_git(world, &["rev-parse", "HEAD"]),
        repo_git(world, &["status", "--porcelain"]),
    )
}

/// Runs git in `dir`; panics with its stderr when it fails.
fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git is installed");
    assert!(
        output.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        text(&output.stderr)
    );
    text(&output.stdout).trim().to_owned()
}

/// A repository with one commit: `shared.txt`, and a `.gitignore` that
/// ignores `.env` (present, untracked: what `copy` brings into worktrees).
fn make_repo(repo: &Path) {
    std::fs::create_dir_all(repo).expect("repo dir");
    git(repo, &["init", "-q", "-b", "main"]);
    git(repo, &["config", "user.email", "dev@example.com"]);
    git(repo, &["config", "user.name", "Dev"]);
    git(repo, &["config", "commit.gpgsign", "false"]);
    std::fs::write(repo.join("shared.txt"), "original\n").expect("write");
    std::fs::write(repo.join(".gitignore"), ".env\n").expect("write");
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", "initial"]);
    std::fs::write(repo.join(".env"), "TOKEN=from-the-checkout\n").expect("write .env");
}

/// An agent that writes its prompt into shared.txt and commits it, after
/// noting its environment and working directory in `<notes>/<prompt>.env`.
fn editor_agent(dir: &Path, notes: &Path) -> PathBuf {
    script(
        &dir.join("editor.sh"),
        &format!(
            "set -e\n\
             echo \"$DELEGATE_WORKTREE|$DELEGATE_BRANCH|$DELEGATE_BASE|$(pwd)|$(cat .env 2>/dev/null)\" > {notes}/$1.env\n\
             printf '%s\\n' \"$1\" > shared.txt\n\
             git add shared.txt\n\
             git commit -q -m \"edit by $1\"",
            notes = notes.display()
        ),
    )
}

fn agent_config(name: &str, command: &Path) -> String {
    format!(
        "[agents.{name}]\ncommand = [\"{}\", \"{{prompt}}\"]\nliveness = \"events\"\n",
        command.display()
    )
}

#[test]
fn two_jobs_in_one_repository_work_on_their_own_branches_then_merge_and_clean() {
    let notes = tempfile::tempdir().expect("notes");
    let agent = editor_agent(notes.path(), notes.path());
    let setup = repo_world(Broker::Mosquitto, &agent_config("editor", &agent));
    let setup_log = setup.scratch("setup.log");
    std::fs::write(
        setup.home.join("jobs.toml"),
        format!(
            "[[jobs]]\nname = \"alpha\"\nagent = \"editor\"\nprompt = \"alpha\"\nworkdir = \"repo\"\n\
             workspace = \"worktree\"\ncopy = [\".env\", \"missing.txt\"]\n\
             setup = [[\"sh\", \"-c\", \"echo $DELEGATE_BRANCH >> {log}\"]]\n\
             [[jobs]]\nname = \"beta\"\nagent = \"editor\"\nprompt = \"beta\"\nworkdir = \"repo\"\n\
             workspace = \"worktree\"\ncopy = [\".env\"]\n\
             setup = [[\"sh\", \"-c\", \"echo $DELEGATE_BRANCH >> {log}\"]]\n",
            log = setup_log.display()
        ),
    )
    .expect("jobs.toml");
    let before = checkout_state(&setup);
    assert!(before.1.is_empty(), "the fixture checkout is clean");

    let (code, stdout, stderr) = run_args(&setup, &["run", "--json", "jobs.toml"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");

    // The main checkout: same HEAD, clean, its file untouched.
    assert_eq!(checkout_state(&setup), before);
    assert_eq!(
        std::fs::read_to_string(repo(&setup).join("shared.txt")).expect("read"),
        "original\n"
    );
    let base = before.0.clone();
    for name in ["alpha", "beta"] {
        let job = setup.job(name);
        assert_eq!(job["state"], "completed", "{job}");
        let ws = &job["workspace"];
        assert_eq!(ws["branch"], format!("delegate/{name}"), "{ws}");
        assert_eq!(ws["base"], base.as_str(), "{ws}");
        assert_eq!(ws["ahead"], 1, "{ws}");
        assert_eq!(ws["changed"], 1, "{ws}");
        assert_eq!(ws["dirty"], false, "{ws}");
        let path = PathBuf::from(ws["path"].as_str().expect("path"));
        assert!(
            !path.starts_with(repo(&setup)),
            "worktree inside the checkout: {ws}"
        );
        assert_eq!(
            std::fs::read_to_string(path.join("shared.txt")).expect("read"),
            format!("{name}\n")
        );
        // What the agent saw: its worktree, branch and base, run there, .env copied.
        let seen =
            std::fs::read_to_string(notes.path().join(format!("{name}.env"))).expect("notes");
        let fields: Vec<&str> = seen.trim().split('|').collect();
        assert_eq!(fields[0], path.display().to_string(), "{seen}");
        assert_eq!(fields[1], format!("delegate/{name}"), "{seen}");
        assert_eq!(fields[2], base, "{seen}");
        assert_eq!(fields[3], path.display().to_string(), "{seen}");
        assert_eq!(fields[4], "TOKEN=from-the-checkout", "{seen}");
        assert_eq!(
            repo_git(
                &setup,
                &["log", "-1", "--format=%s", &format!("delegate/{name}")]
            ),
            format!("edit by {name}")
        );
    }
    let log = std::fs::read_to_string(&setup_log).expect("setup ran");
    assert!(
        log.contains("delegate/alpha") && log.contains("delegate/beta"),
        "{log}"
    );

    let alpha = setup.id("alpha");
    let beta = setup.id("beta");
    let (code, stdout, stderr) = run_args(&setup, &["diff", &alpha, "--stat"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("shared.txt") && stdout.contains("1 file changed"),
        "{stdout}"
    );
    // Uncommitted work shows in the diff and the status too.
    let beta_path = PathBuf::from(
        setup.job("beta")["workspace"]["path"]
            .as_str()
            .expect("path"),
    );
    std::fs::write(beta_path.join("notes.md"), "half done\n").expect("write");
    let (code, stdout, stderr) = run_args(&setup, &["diff", &beta]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("+beta") && stdout.contains("+half done"),
        "{stdout}"
    );
    let ws = setup.job("beta")["workspace"].clone();
    assert_eq!(
        (ws["dirty"].clone(), ws["changed"].clone()),
        (Value::Bool(true), Value::from(2)),
        "{ws}"
    );

    // Merge alpha: the checkout's branch gets it.
    let (code, stdout, stderr) = run_args(&setup, &["merge", &alpha]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        std::fs::read_to_string(repo(&setup).join("shared.txt")).expect("read"),
        "alpha\n"
    );
    let merged = checkout_state(&setup);
    assert!(merged.1.is_empty(), "{}", merged.1);

    // A dirty checkout is refused (exit 2) and left as it is.
    std::fs::write(repo(&setup).join("shared.txt"), "my own edit\n").expect("write");
    let (code, _, stderr) = run_args(&setup, &["merge", &beta]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("uncommitted changes") && stderr.contains("help:"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(repo(&setup).join("shared.txt")).expect("read"),
        "my own edit\n"
    );
    repo_git(&setup, &["checkout", "--", "shared.txt"]);

    // beta conflicts with alpha: exit 1, the checkout exactly as before.
    let (code, _, stderr) = run_args(&setup, &["merge", &beta]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("shared.txt") && stderr.contains("aborted"),
        "{stderr}"
    );
    assert_eq!(checkout_state(&setup), merged);
    assert_eq!(
        std::fs::read_to_string(repo(&setup).join("shared.txt")).expect("read"),
        "alpha\n"
    );

    // clean --finished: alpha (merged) goes, with its branch; beta (unmerged
    // and uncommitted work) is refused and keeps everything.
    let alpha_path = PathBuf::from(
        setup.job("alpha")["workspace"]["path"]
            .as_str()
            .expect("path"),
    );
    let (code, stdout, stderr) = run_args(&setup, &["clean", "--finished"]);
    assert_eq!(code, Some(2), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("cleaned {alpha}")), "{stdout}");
    assert!(
        stderr.contains("unmerged")
            && stderr.contains("edit by beta")
            && stderr.contains("notes.md"),
        "{stderr}"
    );
    assert!(!alpha_path.exists(), "alpha's worktree is still there");
    assert!(repo_git(&setup, &["branch", "--list", "delegate/alpha"]).is_empty());
    assert!(
        beta_path.join("notes.md").is_file(),
        "beta's work was touched"
    );
    assert!(!repo_git(&setup, &["branch", "--list", "delegate/beta"]).is_empty());
    assert_eq!(setup.job("alpha")["workspace"]["exists"], false);

    // --force removes it all.
    let (code, stdout, stderr) = run_args(&setup, &["clean", &beta, "--force"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(!beta_path.exists());
    assert!(repo_git(&setup, &["branch", "--list", "delegate/beta"]).is_empty());
    assert!(stdout.contains("brings it back"), "{stdout}");
    assert_eq!(checkout_state(&setup), merged);
    assert!(
        repo_git(&setup, &["worktree", "list", "--porcelain"])
            .matches("worktree ")
            .count()
            == 1
    );
}

#[test]
fn run_worktree_on_the_embedded_broker_takes_a_free_branch_name() {
    let notes = tempfile::tempdir().expect("notes");
    let agent = editor_agent(notes.path(), notes.path());
    let setup = repo_world(
        Broker::Embedded,
        &format!(
            "{}[defaults]\ncopy = [\"local.cfg\"]\n",
            agent_config("editor", &agent)
        ),
    );
    repo_git(&setup, &["branch", "delegate/solo"]);
    // Untracked and not ignored: copied in, yet not the agent's work.
    std::fs::write(repo(&setup).join("local.cfg"), "password=hunter2\n").expect("write");
    let before = checkout_state(&setup);
    let (code, stdout, stderr) = run_args(
        &setup,
        &[
            "run",
            "--json",
            "--worktree",
            "--agent",
            "editor",
            "--name",
            "solo",
            "--prompt",
            "solo",
            "--workdir",
            "repo",
        ],
    );
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let ws = setup.job("solo")["workspace"].clone();
    assert_eq!(ws["branch"], "delegate/solo-2", "{ws}");
    assert_eq!(ws["ahead"], 1, "{ws}");
    assert_eq!(
        (ws["changed"].clone(), ws["dirty"].clone()),
        (1.into(), false.into()),
        "{ws}"
    );
    let path = PathBuf::from(ws["path"].as_str().expect("path"));
    assert!(path.join("local.cfg").is_file(), "copy did not copy");
    let id = setup.id("solo");
    let (code, diff, stderr) = run_args(&setup, &["diff", &id]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        diff.contains("+solo") && !diff.contains("hunter2"),
        "{diff}"
    );
    // Once the agent changes it, it is work like any other.
    std::fs::write(path.join("local.cfg"), "password=changed\n").expect("write");
    assert_eq!(setup.job("solo")["workspace"]["dirty"], true);
    assert_eq!(checkout_state(&setup), before);
    assert_eq!(
        repo_git(&setup, &["show", "delegate/solo-2:shared.txt"]),
        "solo"
    );
}

#[test]
fn not_a_repository_or_a_missing_base_exits_2_before_anything_is_registered() {
    let setup = repo_world(Broker::Embedded, "[agents.noop]\ncommand = [\"true\"]\n");
    let plain = setup.home.join("plain");
    std::fs::create_dir_all(&plain).expect("mkdir");
    let (code, _, stderr) = run_args(
        &setup,
        &[
            "run",
            "--worktree",
            "--agent",
            "noop",
            "--prompt",
            "p",
            "--workdir",
            "plain",
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("is not in one") && stderr.contains("help: "),
        "{stderr}"
    );

    std::fs::write(
        setup.home.join("job.toml"),
        "agent = \"noop\"\nprompt = \"p\"\nworkdir = \"repo\"\nworkspace = \"worktree\"\nbase = \"no-such-branch\"\n",
    )
    .expect("job");
    let (code, _, stderr) = run_args(&setup, &["run", "job.toml"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("no-such-branch")
            && stderr.contains("is not a commit")
            && stderr.contains("help: "),
        "{stderr}"
    );

    std::fs::write(
        setup.home.join("typo.toml"),
        "agent = \"noop\"\nprompt = \"p\"\nworkspace = \"worktrees\"\n",
    )
    .expect("job");
    let (code, _, stderr) = run_args(&setup, &["run", "typo.toml"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("typo.toml"), "{stderr}");

    // Uncommitted edits in the checkout would be missing from the worktree:
    // refused unless `base` says where to start.
    std::fs::write(repo(&setup).join("shared.txt"), "half-finished edit\n").expect("write");
    let (code, _, stderr) = run_args(
        &setup,
        &[
            "run",
            "--worktree",
            "--agent",
            "noop",
            "--prompt",
            "p",
            "--workdir",
            "repo",
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("uncommitted changes")
            && stderr.contains("shared.txt")
            && stderr.contains("base = \"HEAD\""),
        "{stderr}"
    );
    repo_git(&setup, &["checkout", "--", "shared.txt"]);

    assert!(setup.status().is_empty(), "a job was registered");
    assert!(!setup.home.join("state/worktrees").exists());
    assert_eq!(repo_git(&setup, &["branch", "--list", "delegate/*"]), "");
}

#[test]
fn a_failing_setup_command_fails_the_attempt_as_kind_setup_and_keeps_the_worktree() {
    let ran = tempfile::tempdir().expect("marker dir");
    let agent = script(
        &ran.path().join("agent.sh"),
        &format!("touch {}/agent-ran", ran.path().display()),
    );
    let setup = repo_world(Broker::Mosquitto, &agent_config("marker", &agent));
    std::fs::write(
        setup.home.join("job.toml"),
        "name = \"broken-setup\"\nagent = \"marker\"\nprompt = \"p\"\nworkdir = \"repo\"\n\
         workspace = \"worktree\"\nsetup = [[\"sh\", \"-c\", \"echo installing; exit 7\"]]\n\
         [retry]\nbackoff = \"0s\"\n",
    )
    .expect("job");
    let (code, stdout, stderr) = run_args(&setup, &["run", "--json", "job.toml"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    let job = setup.job("broken-setup");
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(
        job["attempt"], 1,
        "setup is not in retry.on by default: {job}"
    );
    assert_eq!(job["failure"]["kind"], "setup", "{job}");
    assert!(
        job["failure"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("exited with code 7"),
        "{job}"
    );
    assert!(
        !ran.path().join("agent-ran").exists(),
        "the agent ran after a failed setup"
    );
    let path = PathBuf::from(job["workspace"]["path"].as_str().expect("path"));
    assert!(
        path.join("shared.txt").is_file(),
        "the worktree was removed"
    );
}

/// An agent that on attempt 1 leaves uncommitted work and fails; on a later
/// attempt notes whether that work is there, then commits and completes.
fn resuming_agent(dir: &Path) -> PathBuf {
    script(
        &dir.join("resuming.sh"),
        &format!(
            "if [ \"$DELEGATE_ATTEMPT\" = 1 ]; then echo partial > work.txt; exit 1; fi\n\
             if [ -e work.txt ]; then echo found > {d}/seen; else echo missing > {d}/seen; fi\n\
             echo $(pwd) >> {d}/dirs\n\
             echo done >> shared.txt; git add shared.txt; git commit -q -m finished",
            d = dir.display()
        ),
    )
}

#[test]
fn a_retry_continues_in_the_same_worktree_and_a_failure_deletes_nothing() {
    let notes = tempfile::tempdir().expect("notes");
    let agent = resuming_agent(notes.path());
    let setup = repo_world(
        Broker::Mosquitto,
        &format!(
            "{}[defaults.retry]\nbackoff = \"0s\"\nmax_attempts = 2\n",
            agent_config("resuming", &agent)
        ),
    );
    let (code, stdout, stderr) = run_args(
        &setup,
        &[
            "run",
            "--json",
            "--worktree",
            "--agent",
            "resuming",
            "--name",
            "resume",
            "--prompt",
            "p",
            "--workdir",
            "repo",
        ],
    );
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let job = setup.job("resume");
    assert_eq!(
        (job["state"].clone(), job["attempt"].clone()),
        ("completed".into(), 2.into()),
        "{job}"
    );
    assert_eq!(
        std::fs::read_to_string(notes.path().join("seen"))
            .expect("seen")
            .trim(),
        "found"
    );
    let path = PathBuf::from(job["workspace"]["path"].as_str().expect("path"));
    // Attempt 1's uncommitted work survived its failure and is still there.
    assert_eq!(
        std::fs::read_to_string(path.join("work.txt"))
            .expect("work")
            .trim(),
        "partial"
    );
}

#[test]
fn a_fresh_retry_starts_a_new_worktree_and_keeps_the_old_one_until_clean() {
    let notes = tempfile::tempdir().expect("notes");
    let agent = resuming_agent(notes.path());
    let setup = repo_world(
        Broker::Mosquitto,
        &format!(
            "{}[defaults]\nworkspace = \"worktree\"\nfresh = true\n[defaults.retry]\nbackoff = \"0s\"\nmax_attempts = 2\n",
            agent_config("resuming", &agent)
        ),
    );
    let (code, stdout, stderr) = run_args(
        &setup,
        &[
            "run",
            "--json",
            "--agent",
            "resuming",
            "--name",
            "fresh",
            "--prompt",
            "p",
            "--workdir",
            "repo",
        ],
    );
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        std::fs::read_to_string(notes.path().join("seen"))
            .expect("seen")
            .trim(),
        "missing"
    );
    let job = setup.job("fresh");
    let ws = &job["workspace"];
    assert_eq!(ws["branch"], "delegate/fresh-2", "{ws}");
    let new_path = PathBuf::from(ws["path"].as_str().expect("path"));
    assert_eq!(
        std::fs::read_to_string(notes.path().join("dirs"))
            .expect("dirs")
            .trim(),
        new_path.display().to_string()
    );
    // The first attempt's worktree and branch are kept, work included.
    let worktrees = repo_git(&setup, &["worktree", "list", "--porcelain"]);
    let old_path = worktrees
        .lines()
        .filter_map(|l| l.strip_prefix("worktree "))
        .map(PathBuf::from)
        .find(|p| *p != new_path && *p != repo(&setup))
        .unwrap_or_else(|| panic!("the first worktree is gone: {worktrees}"));
    assert_eq!(
        std::fs::read_to_string(old_path.join("work.txt"))
            .expect("work")
            .trim(),
        "partial"
    );
    assert!(!repo_git(&setup, &["branch", "--list", "delegate/fresh"]).is_empty());

    // clean refuses: the old worktree's uncommitted work would be lost.
    let id = setup.id("fresh");
    let (code, _, stderr) = run_args(&setup, &["clean", &id]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("work.txt"), "{stderr}");
    assert!(old_path.join("work.txt").is_file());
    let (code, _, stderr) = run_args(&setup, &["clean", &id, "--force"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!old_path.exists() && !new_path.exists());
}

#[test]
fn a_crash_kill_and_retry_delete_nothing() {
    let notes = tempfile::tempdir().expect("notes");
    let pid_file = notes.path().join("pid");
    // Attempt 1 leaves uncommitted work and a commit, then works on and on;
    // attempt 2 checks both are there and completes.
    let agent = script(
        &notes.path().join("long.sh"),
        &format!(
            "if [ \"$DELEGATE_ATTEMPT\" = 1 ]; then\n\
               echo committed > done.txt; git add done.txt; git commit -q -m step1\n\
               echo uncommitted > wip.txt\n\
               echo $$ > {pid}\n\
               exec sleep 60\n\
             fi\n\
             [ -e wip.txt ] && [ -e done.txt ] && echo both > {d}/seen\n",
            pid = pid_file.display(),
            d = notes.path().display()
        ),
    );
    let setup = repo_world(Broker::Mosquitto, &agent_config("long", &agent));
    let mut command = setup.td();
    command.args([
        "run",
        "--json",
        "--worktree",
        "--agent",
        "long",
        "--name",
        "long",
        "--prompt",
        "p",
        "--workdir",
        "repo",
    ]);
    let mut running = Lines::spawn(&mut command);
    assert!(
        running.wait_line("\"to\":\"running\"", Duration::from_secs(30)),
        "{:?}",
        running.stderr
    );
    let agent_pid: i32 = wait_for(Duration::from_secs(20), || {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    })
    .expect("the agent started");
    let id = setup.id("long");
    let path = PathBuf::from(
        setup.job("long")["workspace"]["path"]
            .as_str()
            .expect("path"),
    );
    let intact = || {
        assert_eq!(
            std::fs::read_to_string(path.join("wip.txt"))
                .expect("wip")
                .trim(),
            "uncommitted"
        );
        assert_eq!(
            repo_git(&setup, &["log", "-1", "--format=%s", "delegate/long"]),
            "step1"
        );
    };

    // The supervisor crashes: nothing is deleted.
    let pid = running.guard.child().id().to_string();
    assert!(Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .expect("kill")
        .success());
    running.finish(Duration::from_secs(10));
    intact();

    // kill (no supervisor left: the command stops the agent itself).
    let (code, _, stderr) = run_args(&setup, &["kill", &id]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        wait_for(Duration::from_secs(10), || (!alive(agent_pid))
            .then_some(()))
        .is_some(),
        "the agent survived kill"
    );
    assert_eq!(setup.job("long")["state"], "cancelled");
    intact();

    // retry continues in the same worktree, with the work in it.
    let (code, stdout, stderr) = run_args(&setup, &["retry", &id]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        std::fs::read_to_string(notes.path().join("seen"))
            .expect("seen")
            .trim(),
        "both"
    );
    intact();
    assert_eq!(setup.job("long")["workspace"]["dirty"], true);
}

#[test]
fn two_detached_runs_on_one_repository_each_get_a_worktree() {
    let notes = tempfile::tempdir().expect("notes");
    let agent = editor_agent(notes.path(), notes.path());
    let setup = repo_world(Broker::Embedded, &agent_config("editor", &agent));
    let before = checkout_state(&setup);
    for name in ["left", "right"] {
        let (code, stdout, stderr) = run_args(
            &setup,
            &[
                "run",
                "--detach",
                "--worktree",
                "--agent",
                "editor",
                "--name",
                name,
                "--prompt",
                name,
                "--workdir",
                "repo",
            ],
        );
        assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    }
    let done = wait_for(Duration::from_secs(60), || {
        let jobs = setup.status();
        let finished = jobs.iter().filter(|j| j["state"] == "completed").count();
        (finished == 2).then_some(jobs)
    })
    .unwrap_or_else(|| panic!("the detached jobs did not complete: {:?}", setup.status()));
    for job in done {
        let name = job["name"].as_str().expect("name");
        let ws = &job["workspace"];
        assert_eq!(ws["branch"], format!("delegate/{name}"), "{ws}");
        assert_eq!(ws["ahead"], 1, "{ws}");
        assert_eq!(
            repo_git(&setup, &["show", &format!("delegate/{name}:shared.txt")]),
            name
        );
    }
    assert_eq!(checkout_state(&setup), before);
}

#[test]
fn a_setup_command_that_overruns_is_stopped_like_an_agent() {
    let notes = tempfile::tempdir().expect("notes");
    let pid_file = notes.path().join("setup-pid");
    // keep_failed: the window stays, so only the signal to the recorded
    // group can stop the setup command (closing the window would SIGHUP it).
    let setup = keeping_failed(
        Broker::Mosquitto,
        "[agents.noop]\ncommand = [\"true\"]\n[defaults.retry]\nmax_attempts = 1\n",
        true,
    );
    std::fs::write(
        setup.home.join("job.toml"),
        format!(
            "name = \"slow-setup\"\nagent = \"noop\"\nprompt = \"p\"\nworkdir = \"repo\"\n\
             workspace = \"worktree\"\nsetup = [[\"sh\", \"-c\", \"echo $$ > {}; exec sleep 60\"]]\n\
             [timeouts]\nattempt = \"3s\"\n",
            pid_file.display()
        ),
    )
    .expect("job");
    let (code, stdout, stderr) = run_args(&setup, &["run", "--json", "job.toml"]);
    assert_eq!(code, Some(124), "{stdout}\n{stderr}");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("the setup command ran")
        .trim()
        .parse()
        .expect("pid");
    assert!(
        wait_for(Duration::from_secs(10), || (!alive(pid)).then_some(())).is_some(),
        "the setup command survived its attempt"
    );
    let job = setup.job("slow-setup");
    assert_eq!(job["failure"]["kind"], "timeout", "{job}");
    assert_eq!(job["workspace"]["exists"], true, "{job}");
}

#[test]
fn a_job_cleaned_after_its_merge_gets_its_worktree_back_on_retry() {
    let notes = tempfile::tempdir().expect("notes");
    let agent = editor_agent(notes.path(), notes.path());
    let setup = repo_world(Broker::Embedded, &agent_config("editor", &agent));
    let (code, stdout, stderr) = run_args(
        &setup,
        &[
            "run",
            "--json",
            "--worktree",
            "--agent",
            "editor",
            "--name",
            "again",
            "--prompt",
            "again",
            "--workdir",
            "repo",
        ],
    );
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("worktree") && stderr.contains("delegate/again"),
        "{stderr}"
    );
    let id = setup.id("again");
    let (code, _, stderr) = run_args(&setup, &["merge", &id]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, _, stderr) = run_args(&setup, &["clean", &id]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(setup.job("again")["workspace"]["exists"], false);
    // Nothing left to lose, nothing to clean twice.
    let (code, _, stderr) = run_args(&setup, &["clean", "--finished"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("nothing to clean"), "{stderr}");

    // The prompt's text is already merged: have the agent write another.
    std::fs::write(setup.home.join("tmux-delegate.toml.extra"), "").expect("write");
    let (code, stdout, stderr) = run_args(&setup, &["retry", &id]);
    // The branch was recreated from the base: the edit is new there again.
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let ws = setup.job("again")["workspace"].clone();
    assert_eq!(ws["exists"], true, "{ws}");
    assert_eq!(ws["ahead"], 1, "{ws}");
    assert_eq!(
        repo_git(&setup, &["show", "delegate/again:shared.txt"]),
        "again"
    );
}

#[test]
fn two_runs_started_at_once_with_one_name_get_two_branches() {
    let notes = tempfile::tempdir().expect("notes");
    let agent = editor_agent(notes.path(), notes.path());
    let setup = repo_world(Broker::Mosquitto, &agent_config("editor", &agent));
    let before = checkout_state(&setup);
    let mut runs: Vec<Lines> = ["one", "two"]
        .iter()
        .map(|prompt| {
            let mut command = setup.td();
            command.args([
                "run",
                "--json",
                "--worktree",
                "--agent",
                "editor",
                "--name",
                "twin",
                "--prompt",
                prompt,
                "--workdir",
                "repo",
            ]);
            Lines::spawn(&mut command)
        })
        .collect();
    for run in &mut runs {
        let status = run.finish(RUN_LIMIT);
        assert_eq!(status.code(), Some(0), "{:?}\n{:?}", run.stdout, run.stderr);
    }
    let mut branches: Vec<String> = setup
        .status()
        .iter()
        .map(|j| {
            j["workspace"]["branch"]
                .as_str()
                .expect("branch")
                .to_owned()
        })
        .collect();
    branches.sort();
    assert_eq!(branches, ["delegate/twin", "delegate/twin-2"]);
    let mut contents: Vec<String> = branches
        .iter()
        .map(|b| repo_git(&setup, &["show", &format!("{b}:shared.txt")]))
        .collect();
    contents.sort();
    assert_eq!(contents, ["one", "two"]);
    assert_eq!(checkout_state(&setup), before);
}

/// SPEC section 14: a conversation survives a crashed supervisor and is
/// continued in the job's own worktree. Attempt 1 names its conversation
/// in a worktree; the supervisor is SIGKILLed and, while none runs, the
/// window is closed; `resume` finds the attempt lost and attempt 2
/// continues the conversation (`continue_command`) in the same worktree.
#[test]
fn a_crashed_supervisor_s_lost_attempt_is_continued_in_its_worktree() {
    let world = repo_world(Broker::Mosquitto, "");
    let log = world.scratch("argv.log");
    let agent = script(
        &world.scratch("resumable.sh"),
        &format!(
            "printf '%s|%s|%s\\n' \"$DELEGATE_ATTEMPT\" \"$(pwd)\" \"$(printf '%s' \"$*\" | head -c 40)\" >> {log}\n\
             if [ \"$DELEGATE_ATTEMPT\" = 1 ]; then\n\
               printf '{{\"session_id\":\"conv-7\"}}' | \"$TMUX_DELEGATE_BIN\" publish --event started --data-field session_id\n\
               exec sleep 600\n\
             fi\n\
             \"$TMUX_DELEGATE_BIN\" publish --event started\n\
             \"$TMUX_DELEGATE_BIN\" publish --event completed --message done\nexec sleep 30",
            log = log.display()
        ),
    );
    let config = std::fs::read_to_string(world.home.join("tmux-delegate.toml")).expect("config");
    std::fs::write(
        world.home.join("tmux-delegate.toml"),
        format!(
            "{config}\n[agents.resumable]\ncommand = [\"{a}\", \"--\", \"{{prompt}}\"]\n\
             continue_command = [\"{a}\", \"--resume\", \"{{session}}\", \"--\", \"{{prompt}}\"]\n\
             complete_on_exit = false\nliveness = \"events\"\n\n\
             [defaults.retry]\nbackoff = \"0s\"\n",
            a = agent.display()
        ),
    )
    .expect("config");
    let mut first = Lines::spawn(world.td().args([
        "run",
        "--json",
        "--agent",
        "resumable",
        "--name",
        "survivor",
        "--worktree",
        "--workdir",
        "repo",
        "--prompt",
        "Fix the parser",
    ]));
    let named = wait_for(Duration::from_secs(30), || {
        world.state("survivor").and_then(|_| {
            world.job("survivor")["session"]["id"]
                .as_str()
                .map(str::to_owned)
        })
    });
    assert_eq!(named.as_deref(), Some("conv-7"), "{:?}", first.stderr);
    let id = world.id("survivor");
    // The supervisor dies; while none runs, the attempt's window is closed.
    let pid = first.guard.child().id().to_string();
    assert!(Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .expect("kill")
        .success());
    first.finish(Duration::from_secs(10));
    let window = world.record(&id)["attempts"][0]["window"]
        .as_str()
        .expect("window id")
        .to_owned();
    world.tmux.output(&["kill-window", "-t", &window]);
    let (code, out, err) = world.finish(&["resume"], RUN_LIMIT);
    let argv = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, Some(0), "{out}\n{err}\n{argv}");
    let lines: Vec<Vec<&str>> = argv.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(lines.len(), 2, "{argv}");
    assert_eq!(lines[1][0], "2", "{argv}");
    assert!(lines[1][2].starts_with("--resume conv-7 -- "), "{argv}");
    assert_eq!(lines[0][1], lines[1][1], "the same worktree: {argv}");
    assert_ne!(
        Path::new(lines[0][1]),
        repo(&world).canonicalize().expect("repo"),
        "a worktree, not the checkout: {argv}"
    );
    let record = world.record(&id);
    assert_eq!(record["state"], "completed", "{record}");
    assert_eq!(
        record["attempts"][1]["continued_from"], "conv-7",
        "{record}"
    );
}
