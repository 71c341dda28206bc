//! `top` in a real tmux server on a private socket: the test reads the
//! screen with capture-pane and types with send-keys, against jobs of a real
//! `run` on a test Mosquitto. Also `status --tmux`.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// `new-session` for a detached 80-column session `top` of `rows` rows
/// whose one window runs `script` under `sh -c` in a clean environment:
/// PATH (after `path_prefix`), HOME, the registry and tmux's socket dir of
/// `world`, and a TERM.
fn clean_session(world: &Home, rows: u16, path_prefix: &str, script: &str) -> Vec<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    let rows = rows.to_string();
    let fixed = [
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "80",
        "-y",
        &rows,
        "--",
        "env",
        "-i",
    ];
    let mut args: Vec<String> = fixed.iter().map(|a| (*a).to_owned()).collect();
    args.extend([
        format!("PATH={path_prefix}{path}"),
        format!("HOME={}", world.home.display()),
        format!("TMUX_DELEGATE_HOME={}", world.home.join("state").display()),
        format!("TMUX_TMPDIR={}", world.tmux.tmpdir.display()),
        "TERM=xterm-256color".to_owned(),
        "sh".to_owned(),
        "-c".to_owned(),
        script.to_owned(),
    ]);
    args
}

/// Starts `top` in an 80x24 window of its own session; its pane stays
/// after exit so the exit status can be read.
fn start_top(world: &World) {
    let home = world.home.display().to_string();
    // The shell reports top's exit status: tmux's own #{pane_dead_status}
    // was seen missing now and then under load (the server left the exited
    // pane process unreaped).
    let script = format!("{BIN} top 2>>{home}/top.log; echo $? >{home}/top.exit");
    let owned = clean_session(world, 24, "", &script);
    let args: Vec<&str> = owned.iter().map(String::as_str).collect();
    // A tmux server starting while the machine is loaded with parallel
    // tests now and then dies before its first session's shell runs
    // ("server exited unexpectedly", seen ~1 in 20 here, with top.log
    // empty): start it again rather than fail on tmux's start-up.
    let mut out = String::new();
    for _ in 0..3 {
        out = world.tmux.output(&args);
        if !out.contains("server exited unexpectedly") {
            break;
        }
    }
    assert!(
        out.trim().is_empty(),
        "new-session: {out}\n{}",
        top_screen(world)
    );
    let out = world
        .tmux
        .output(&["set-option", "-w", "-t", "top:0", "remain-on-exit", "on"]);
    assert!(out.trim().is_empty(), "remain-on-exit: {out}");
}

/// top's exit status, once it has exited.
fn exit_status(world: &World) -> Option<String> {
    let status = std::fs::read_to_string(world.home.join("top.exit")).ok()?;
    Some(status.trim().to_owned()).filter(|s| !s.is_empty())
}

fn top_screen(world: &World) -> String {
    let log = std::fs::read_to_string(world.home.join("top.log")).unwrap_or_default();
    format!(
        "{}\n--- top.log:\n{log}",
        world.tmux.output(&["capture-pane", "-p", "-t", "top:0"])
    )
}

fn wait_screen(world: &World, what: &str, limit: Duration, check: impl Fn(&str) -> bool) -> String {
    wait_for(limit, || {
        let screen = top_screen(world);
        check(&screen).then_some(screen)
    })
    .unwrap_or_else(|| panic!("top never showed {what}:\n{}", top_screen(world)))
}

fn keys(world: &World, keys: &[&str]) {
    let mut args = vec!["send-keys", "-t", "top:0"];
    args.extend_from_slice(keys);
    let out = world.tmux.output(&args);
    assert!(out.trim().is_empty(), "send-keys: {out}");
}

#[test]
fn top_shows_jobs_live_kills_one_with_x_y_and_quits_with_q() {
    let setup = World::mosquitto(
        "[agents.long]\ncommand = [\"sleep\", \"120\"]\ncomplete_on_exit = true\n",
    );
    start_top(&setup);
    wait_screen(&setup, "its empty table", Duration::from_secs(15), |s| {
        s.contains("no jobs yet")
    });

    let mut job = Lines::spawn(setup.td().args([
        "run", "--json", "--agent", "long", "--name", "toplong", "--prompt", "p",
    ]));
    assert!(
        job.wait_line("\"to\":\"running\"", Duration::from_secs(30)),
        "{:?}",
        job.stderr
    );
    // Live: the job appears (and is running) without a key press.
    let screen = wait_screen(&setup, "the running job", Duration::from_secs(5), |s| {
        s.lines()
            .any(|l| l.contains("toplong") && l.contains("running"))
    });
    assert!(screen.contains("↑↓ select"), "no help line:\n{screen}");
    for line in screen.lines() {
        assert!(line.chars().count() <= 80, "wider than the pane: {line}");
    }

    // An event on the broker shows at once (top subscribes to the
    // configured broker; the registry has it only at the supervisor's tick).
    let id = {
        let out = run(setup.td().args(["status", "--json"]));
        let jobs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
        jobs[0]["id"].as_str().expect("id").to_owned()
    };
    let out = run(setup.td().args([
        "publish",
        "--job",
        &id,
        "--event",
        "progress",
        "--message",
        "step-42",
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let published = Instant::now();
    wait_screen(&setup, "the progress event", Duration::from_secs(5), |s| {
        s.contains("step-42")
    });
    eprintln!(
        "event on screen {:?} after publish returned",
        published.elapsed()
    );

    keys(&setup, &["x"]);
    wait_screen(
        &setup,
        "the kill confirmation",
        Duration::from_secs(5),
        |s| s.contains("y to confirm"),
    );
    let asked = Instant::now();
    keys(&setup, &["y"]);
    wait_for(Duration::from_secs(3), || {
        (setup.state("toplong").as_deref() == Some("cancelled")).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "not cancelled 3 s after y (state {:?}):\n{}",
            setup.state("toplong"),
            top_screen(&setup)
        )
    });
    let took = asked.elapsed();
    wait_screen(&setup, "the cancelled state", Duration::from_secs(5), |s| {
        s.lines()
            .any(|l| l.contains("toplong") && l.contains("cancelled"))
    });
    assert_eq!(job.finish(Duration::from_secs(20)).code(), Some(1));
    eprintln!("cancelled {took:?} after `y`");

    keys(&setup, &["q"]);
    let status = wait_for(Duration::from_secs(10), || exit_status(&setup))
        .unwrap_or_else(|| panic!("top did not exit on q:\n{}", top_screen(&setup)));
    assert_eq!(status, "0", "top's exit status");
}

#[test]
fn top_filters_with_slash_and_shows_logs_with_l() {
    let setup = World::mosquitto(
        "[agents.quick]\ncommand = [\"sh\", \"-c\", \"echo hello from the agent\"]\n",
    );
    for name in ["alpha-job", "beta-job"] {
        let out = run(setup.td().args([
            "run", "--json", "--agent", "quick", "--name", name, "--prompt", "p",
        ]));
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    start_top(&setup);
    wait_screen(&setup, "both jobs", Duration::from_secs(15), |s| {
        s.contains("alpha-job") && s.contains("beta-job") && s.contains("✓2")
    });
    keys(&setup, &["/", "b", "e", "t", "Enter"]);
    let screen = wait_screen(&setup, "the filtered table", Duration::from_secs(5), |s| {
        s.contains("1 of 2 jobs")
    });
    assert!(
        screen.contains("beta-job") && !screen.contains("alpha-job"),
        "{screen}"
    );
    keys(&setup, &["l"]);
    let screen = wait_screen(&setup, "the logs", Duration::from_secs(5), |s| {
        s.contains("logs of")
    });
    assert!(screen.contains("-> completed"), "{screen}");
    keys(&setup, &["Escape"]);
    wait_screen(&setup, "the table again", Duration::from_secs(5), |s| {
        s.contains("↑↓ select")
    });
    keys(&setup, &["Escape"]);
    wait_for(Duration::from_secs(10), || {
        let out = setup
            .tmux
            .output(&["display-message", "-p", "-t", "top:0", "#{pane_dead}"]);
        (out.trim() == "1").then_some(())
    })
    .unwrap_or_else(|| panic!("Esc did not quit:\n{}", top_screen(&setup)));
}

#[test]
fn status_tmux_prints_counts_waiting_first_and_nothing_without_jobs() {
    let setup = World::mosquitto("[agents.quick]\ncommand = [\"true\"]\n[agents.bad]\ncommand = [\"false\"]\n[defaults.retry]\nmax_attempts = 1\n");
    let out = run(setup.td().args(["status", "--tmux"]));
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "", "no jobs, no line");
    for (agent, name) in [("quick", "a"), ("quick", "b"), ("bad", "c")] {
        run(setup.td().args([
            "run", "--json", "--agent", agent, "--name", name, "--prompt", "p",
        ]));
    }
    let out = run(setup.td().args(["status", "--tmux"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "✓2 ✗1\n");
}

#[test]
fn runs_live_table_fits_an_80_column_pane_and_is_redrawn_in_place() {
    let setup = World::mosquitto(
        "[agents.chatty]\ncommand = [\"sh\", \"-c\", \"for i in 1 2 3 4; do tmux-delegate publish --event progress --message \\\"step $i of 4: compiling every crate of the workspace with all of its features\\\"; sleep 0.5; done\"]\n",
    );
    let jobs = setup.home.join("jobs.toml");
    let mut spec = String::new();
    for n in 1..=3 {
        spec.push_str(&format!(
            "[[jobs]]\nname = \"refactor-the-parser-module-and-every-one-of-its-tests-{n}\"\nagent = \"chatty\"\nprompt = \"p\"\n"
        ));
    }
    std::fs::write(&jobs, spec).expect("jobs.toml");
    let home = setup.home.display().to_string();
    let bin_dir = std::path::Path::new(BIN)
        .parent()
        .expect("bin dir")
        .display()
        .to_string();
    let script = format!("cd {home} && {BIN} run jobs.toml; echo $? >{home}/top.exit; sleep 60");
    let args = clean_session(&setup, 30, &format!("{bin_dir}:"), &script);
    let out = setup
        .tmux
        .output(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.trim().is_empty(), "new-session: {out}");
    let status = wait_for(Duration::from_secs(60), || exit_status(&setup))
        .unwrap_or_else(|| panic!("run did not end:\n{}", top_screen(&setup)));
    assert_eq!(status, "0", "{}", top_screen(&setup));
    // The whole pane, history included: one table, however often redrawn.
    let all = setup
        .tmux
        .output(&["capture-pane", "-p", "-S", "-", "-t", "top:0"]);
    assert_eq!(
        all.matches("LAST EVENT").count(),
        1,
        "the table stacked:\n{all}"
    );
    for line in all.lines() {
        assert!(line.chars().count() <= 80, "wider than the pane: {line}");
    }
    assert!(all.contains("3 of 3 jobs completed"), "{all}");
    assert!(all.contains('…'), "long names and events are cut:\n{all}");
}
