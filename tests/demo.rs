//! The README's demo, as a person sees it: `run demo.toml` from
//! examples/demo with a fresh HOME and no broker configured, in a terminal
//! (a pane of a private tmux server). Before the job starts the screen shows
//! its id and the two commands that follow it from another terminal; the job
//! runs long enough to use them; the screen ends with the summary line.

mod common;

use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// The pane's whole text (history included).
fn screen(tmux: &TmuxServer) -> String {
    tmux.output(&["capture-pane", "-p", "-J", "-S", "-", "-t", "readme"])
}

/// The job id from the line `job ID (demo)`.
fn job_id(screen: &str) -> Option<String> {
    screen.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("job ")?;
        let (id, name) = rest.split_once(' ')?;
        (name == "(demo)").then(|| id.to_owned())
    })
}

#[test]
fn readme_demo_shows_the_id_and_how_to_follow_it_before_the_job_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo");
    let tmux = TmuxServer::new(dir.path());
    // The README's command, in a terminal: a fresh HOME, no MQTT_* and no
    // XDG directories, so nothing but examples/demo configures it.
    let command = format!(
        "unset MQTT_BROKER MQTT_PORT MQTT_TLS MQTT_USERNAME MQTT_PASSWORD TMUX_DELEGATE_HOME \
         XDG_CONFIG_HOME XDG_STATE_HOME; export HOME='{home}'; cd '{demo}' && '{bin}' run demo.toml; \
         echo \"demo exit=$?\"; sleep 600",
        home = home.display(),
        demo = demo.display(),
        bin = BIN,
    );
    let out = tmux
        .command(&[
            "new-session",
            "-d",
            "-s",
            "readme",
            "-x",
            "160",
            "-y",
            "50",
            "sh",
            "-c",
            &command,
        ])
        .output()
        .expect("tmux new-session");
    assert!(out.status.success(), "{}", text(&out.stderr));

    let id = wait_for(Duration::from_secs(60), || job_id(&screen(&tmux)))
        .unwrap_or_else(|| panic!("no `job ID (demo)` line:\n{}", screen(&tmux)));
    let announced_at = Instant::now();
    let first = screen(&tmux);
    let socket = tmux
        .tmpdir
        .join(format!("tmux-{}", nix_uid()))
        .join(&tmux.socket);
    let attach = format!("tmux -S {} attach -t readme", socket.display());
    assert!(first.contains(&attach), "no `{attach}`:\n{first}");
    assert!(
        first.contains(&format!("{BIN} watch --job {id}")),
        "no watch command for {id}:\n{first}"
    );
    assert!(
        !first.contains("jobs completed"),
        "the job was over before its id was shown:\n{first}"
    );

    // From "another terminal": the printed watch command follows the job
    // to its end.
    let state = home.join(".local/state/tmux-delegate");
    let state = state.display().to_string();
    let watch = run(td(&home, &[("TMUX_DELEGATE_HOME", &state)]).args([
        "watch",
        "--job",
        &id,
        "--timeout",
        "90",
    ]));
    assert_eq!(
        watch.status.code(),
        Some(0),
        "watch: {}{}",
        text(&watch.stdout),
        text(&watch.stderr)
    );
    assert!(
        text(&watch.stdout).contains("completed"),
        "{}",
        text(&watch.stdout)
    );

    let last = wait_for(Duration::from_secs(60), || {
        let s = screen(&tmux);
        s.contains("demo exit=").then_some(s)
    })
    .unwrap_or_else(|| panic!("the demo did not end:\n{}", screen(&tmux)));
    assert!(last.contains("1 of 1 jobs completed"), "{last}");
    assert!(last.contains("demo exit=0"), "{last}");
    // Afterwards its events are gone with the `run`'s embedded broker:
    // watching says so, and where the history is.
    let after = run(td(&home, &[("TMUX_DELEGATE_HOME", &state)]).args([
        "watch",
        "--job",
        &id,
        "--timeout",
        "5",
    ]));
    let err = text(&after.stderr);
    assert_eq!(after.status.code(), Some(3), "{err}");
    assert!(
        err.contains("embedded broker of its `run`, which has ended")
            && err.contains(&format!("`tmux-delegate logs {id}`")),
        "{err}"
    );
    // Time enough to follow it by hand (the agent works for ~15 s).
    assert!(
        announced_at.elapsed() >= Duration::from_secs(8),
        "the demo ended {:?} after showing its id",
        announced_at.elapsed()
    );
}

fn nix_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .expect("uid")
}
