//! `top` in a real tmux server on a private socket: the test reads the
//! screen with capture-pane and types with send-keys, against jobs of a real
//! `run` on a test Mosquitto. Also `status --tmux`.

mod common;

use common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Fields drop in order: tmux and the broker stop before the directory that
/// holds tmux's socket goes (else `kill-server` cannot find the server).
struct Setup {
    home: PathBuf,
    tmux: TmuxServer,
    _broker: Mosquitto,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn new(extra: &str) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = Mosquitto::start(dir.path(), "allow_anonymous true\n");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).expect("home");
        let tmux = TmuxServer::new(dir.path());
        let config = format!(
            "[broker]\nhost = \"127.0.0.1\"\nport = {}\n{extra}\n[defaults.tmux]\nsocket = \"{}\"\nkeep_failed = false\nkill_grace = \"1s\"\n",
            broker.port, tmux.socket
        );
        std::fs::write(home.join("tmux-delegate.toml"), config).expect("config");
        Setup {
            home,
            tmux,
            _broker: broker,
            _dir: dir,
        }
    }

    fn td(&self, args: &[&str]) -> std::process::Command {
        let tmpdir = self.tmux.tmpdir.display().to_string();
        let mut command = td(&self.home, &[("TMUX_TMPDIR", tmpdir.as_str())]);
        command.args(args);
        command
    }

    fn state(&self, name: &str) -> Option<String> {
        let out = run(&mut self.td(&["status", "--json"]));
        let jobs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
        jobs.iter()
            .find(|j| j["name"] == name)
            .and_then(|j| j["state"].as_str().map(str::to_owned))
    }

    /// Starts `top` in an 80x24 window of its own session; its pane stays
    /// after exit so the exit status can be read.
    fn start_top(&self) {
        let home = self.home.display().to_string();
        let state = self.home.join("state").display().to_string();
        let path = std::env::var("PATH").unwrap_or_default();
        let tmpdir = self.tmux.tmpdir.display().to_string();
        let args = [
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            "80",
            "-y",
            "24",
            "--",
            "env",
            "-i",
            &format!("PATH={path}"),
            &format!("HOME={home}"),
            &format!("TMUX_DELEGATE_HOME={state}"),
            &format!("TMUX_TMPDIR={tmpdir}"),
            "TERM=xterm-256color",
            "sh",
            "-c",
            // The shell reports top's exit status: tmux's own
            // #{pane_dead_status} was seen missing now and then under load
            // (the server left the exited pane process unreaped).
            &format!("{BIN} top 2>>{home}/top.log; echo $? >{home}/top.exit"),
        ];
        // A tmux server starting while the machine is loaded with parallel
        // tests now and then dies before its first session's shell runs
        // ("server exited unexpectedly", seen ~1 in 20 here, with top.log
        // empty): start it again rather than fail on tmux's start-up.
        let mut out = String::new();
        for _ in 0..3 {
            out = self.tmux.output(&args);
            if !out.contains("server exited unexpectedly") {
                break;
            }
        }
        assert!(
            out.trim().is_empty(),
            "new-session: {out}\n{}",
            self.screen()
        );
        let out = self
            .tmux
            .output(&["set-option", "-w", "-t", "top:0", "remain-on-exit", "on"]);
        assert!(out.trim().is_empty(), "remain-on-exit: {out}");
    }

    /// top's exit status, once it has exited.
    fn exit_status(&self) -> Option<String> {
        let status = std::fs::read_to_string(self.home.join("top.exit")).ok()?;
        Some(status.trim().to_owned()).filter(|s| !s.is_empty())
    }

    fn screen(&self) -> String {
        let log = std::fs::read_to_string(self.home.join("top.log")).unwrap_or_default();
        format!(
            "{}\n--- top.log:\n{log}",
            self.tmux.output(&["capture-pane", "-p", "-t", "top:0"])
        )
    }

    fn wait_screen(&self, what: &str, limit: Duration, check: impl Fn(&str) -> bool) -> String {
        wait_for(limit, || {
            let screen = self.screen();
            check(&screen).then_some(screen)
        })
        .unwrap_or_else(|| panic!("top never showed {what}:\n{}", self.screen()))
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "top:0"];
        args.extend_from_slice(keys);
        let out = self.tmux.output(&args);
        assert!(out.trim().is_empty(), "send-keys: {out}");
    }
}

#[test]
fn top_shows_jobs_live_kills_one_with_x_y_and_quits_with_q() {
    let setup =
        Setup::new("[agents.long]\ncommand = [\"sleep\", \"120\"]\ncomplete_on_exit = true\n");
    setup.start_top();
    setup.wait_screen("its empty table", Duration::from_secs(15), |s| {
        s.contains("no jobs yet")
    });

    let mut job = Lines::spawn(&mut setup.td(&[
        "run", "--json", "--agent", "long", "--name", "toplong", "--prompt", "p",
    ]));
    assert!(
        job.wait_line("\"to\":\"running\"", Duration::from_secs(30)),
        "{:?}",
        job.stderr
    );
    // Live: the job appears (and is running) without a key press.
    let screen = setup.wait_screen("the running job", Duration::from_secs(5), |s| {
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
        let out = run(&mut setup.td(&["status", "--json"]));
        let jobs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
        jobs[0]["id"].as_str().expect("id").to_owned()
    };
    let out = run(&mut setup.td(&[
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
    setup.wait_screen("the progress event", Duration::from_secs(5), |s| {
        s.contains("step-42")
    });
    eprintln!(
        "event on screen {:?} after publish returned",
        published.elapsed()
    );

    setup.keys(&["x"]);
    setup.wait_screen("the kill confirmation", Duration::from_secs(5), |s| {
        s.contains("y to confirm")
    });
    let asked = Instant::now();
    setup.keys(&["y"]);
    wait_for(Duration::from_secs(3), || {
        (setup.state("toplong").as_deref() == Some("cancelled")).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "not cancelled 3 s after y (state {:?}):\n{}",
            setup.state("toplong"),
            setup.screen()
        )
    });
    let took = asked.elapsed();
    setup.wait_screen("the cancelled state", Duration::from_secs(5), |s| {
        s.lines()
            .any(|l| l.contains("toplong") && l.contains("cancelled"))
    });
    assert_eq!(job.finish(Duration::from_secs(20)).code(), Some(1));
    eprintln!("cancelled {took:?} after `y`");

    setup.keys(&["q"]);
    let status = wait_for(Duration::from_secs(10), || setup.exit_status())
        .unwrap_or_else(|| panic!("top did not exit on q:\n{}", setup.screen()));
    assert_eq!(status, "0", "top's exit status");
}

#[test]
fn top_filters_with_slash_and_shows_logs_with_l() {
    let setup =
        Setup::new("[agents.quick]\ncommand = [\"sh\", \"-c\", \"echo hello from the agent\"]\n");
    for name in ["alpha-job", "beta-job"] {
        let out = run(&mut setup.td(&[
            "run", "--json", "--agent", "quick", "--name", name, "--prompt", "p",
        ]));
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    setup.start_top();
    setup.wait_screen("both jobs", Duration::from_secs(15), |s| {
        s.contains("alpha-job") && s.contains("beta-job") && s.contains("✓2")
    });
    setup.keys(&["/", "b", "e", "t", "Enter"]);
    let screen = setup.wait_screen("the filtered table", Duration::from_secs(5), |s| {
        s.contains("1 of 2 jobs")
    });
    assert!(
        screen.contains("beta-job") && !screen.contains("alpha-job"),
        "{screen}"
    );
    setup.keys(&["l"]);
    let screen = setup.wait_screen("the logs", Duration::from_secs(5), |s| {
        s.contains("logs of")
    });
    assert!(screen.contains("-> completed"), "{screen}");
    setup.keys(&["Escape"]);
    setup.wait_screen("the table again", Duration::from_secs(5), |s| {
        s.contains("↑↓ select")
    });
    setup.keys(&["Escape"]);
    wait_for(Duration::from_secs(10), || {
        let out = setup
            .tmux
            .output(&["display-message", "-p", "-t", "top:0", "#{pane_dead}"]);
        (out.trim() == "1").then_some(())
    })
    .unwrap_or_else(|| panic!("Esc did not quit:\n{}", setup.screen()));
}

#[test]
fn status_tmux_prints_counts_waiting_first_and_nothing_without_jobs() {
    let setup = Setup::new("[agents.quick]\ncommand = [\"true\"]\n[agents.bad]\ncommand = [\"false\"]\n[defaults.retry]\nmax_attempts = 1\n");
    let out = run(&mut setup.td(&["status", "--tmux"]));
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "", "no jobs, no line");
    for (agent, name) in [("quick", "a"), ("quick", "b"), ("bad", "c")] {
        run(&mut setup.td(&[
            "run", "--json", "--agent", agent, "--name", name, "--prompt", "p",
        ]));
    }
    let out = run(&mut setup.td(&["status", "--tmux"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "✓2 ✗1\n");
}

#[test]
fn runs_live_table_fits_an_80_column_pane_and_is_redrawn_in_place() {
    let setup = Setup::new(
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
    let state = setup.home.join("state").display().to_string();
    let path = std::env::var("PATH").unwrap_or_default();
    let tmpdir = setup.tmux.tmpdir.display().to_string();
    let bin_dir = std::path::Path::new(BIN)
        .parent()
        .expect("bin dir")
        .display()
        .to_string();
    let out = setup.tmux.output(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "80",
        "-y",
        "30",
        "--",
        "env",
        "-i",
        &format!("PATH={bin_dir}:{path}"),
        &format!("HOME={home}"),
        &format!("TMUX_DELEGATE_HOME={state}"),
        &format!("TMUX_TMPDIR={tmpdir}"),
        "TERM=xterm-256color",
        "sh",
        "-c",
        &format!("cd {home} && {BIN} run jobs.toml; echo $? >{home}/top.exit; sleep 60"),
    ]);
    assert!(out.trim().is_empty(), "new-session: {out}");
    let status = wait_for(Duration::from_secs(60), || setup.exit_status())
        .unwrap_or_else(|| panic!("run did not end:\n{}", setup.screen()));
    assert_eq!(status, "0", "{}", setup.screen());
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
