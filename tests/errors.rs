//! The exact text of the errors a new user meets first: an unknown job id
//! or a job name, the embedded broker of a `run` that has ended, a broker
//! that does not answer (saying where host and port came from), a bad
//! workdir or timeout (naming the flag or file:line), a corrupt record. One
//! style everywhere: `error: ...`, `help: ...`.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Output;

const FIXTURE_ID: &str = "fix-flaky-test-a1b2c3";

/// Exit code and the whole of stderr.
fn outcome(out: &Output) -> (Option<i32>, String) {
    (out.status.code(), text(&out.stderr))
}

fn state(home: &Path) -> PathBuf {
    home.join("state")
}

/// Puts the committed v1 record into the registry, changed by `edit`.
fn install_fixture(home: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/record-v1.json");
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).expect("fixture")).expect("json");
    edit(&mut record);
    let dir = state(home).join("jobs").join(FIXTURE_ID);
    std::fs::create_dir_all(&dir).expect("job dir");
    std::fs::write(dir.join("record.json"), record.to_string()).expect("record");
    dir
}

fn no_jobs_registered(home: &Path) {
    let jobs = state(home).join("jobs");
    let count = std::fs::read_dir(&jobs).map(|d| d.count()).unwrap_or(0);
    assert_eq!(count, 0, "something was written to {}", jobs.display());
}

/// The commands that take a job id, each aimed at `id`.
fn id_commands(id: &str) -> Vec<Vec<String>> {
    let commands: [&[&str]; 7] = [
        &["logs", id],
        &["kill", id],
        &["attach", id],
        &["retry", id],
        &["status", id],
        &["watch", "--job", id, "--timeout", "1"],
        &["publish", "--job", id, "--event", "started"],
    ];
    commands
        .iter()
        .map(|args| args.iter().map(|a| (*a).to_owned()).collect())
        .collect()
}

#[test]
fn an_unknown_id_is_not_in_the_registry_for_every_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    let expected = format!(
        "error: no job `nosuch` in the registry {}\nhelp: `tmux-delegate status` lists the jobs\n",
        state(home).display()
    );
    for args in id_commands("nosuch") {
        let out = run(td(home, &[]).args(&args));
        assert_eq!(outcome(&out), (Some(2), expected.clone()), "{args:?}");
    }
}

/// A name that two jobs share: every command lists both ids. `watch` and
/// `publish` (topic-level, like the original scripts) take ids only and
/// point at the one a unique name means; the registry's commands accept it.
#[test]
fn a_job_name_lists_the_ids_with_that_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    install_fixture(home, |_| {});
    let expected = format!(
        "error: no job `fix-flaky-test` in the registry {}\n\
         help: `fix-flaky-test` is the name of job {FIXTURE_ID}: give its id\n",
        state(home).display()
    );
    for args in &id_commands("fix-flaky-test")[5..] {
        let out = run(td(home, &[]).args(args));
        assert_eq!(outcome(&out), (Some(2), expected.clone()), "{args:?}");
    }
    let out = run(td(home, &[]).args(["status", "fix-flaky-test", "--json"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(FIXTURE_ID),
        "{}",
        text(&out.stdout)
    );

    let second = "fix-flaky-test-zz9zz9";
    let copy = state(home).join("jobs").join(second);
    std::fs::create_dir_all(&copy).expect("job dir");
    let mut record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            state(home)
                .join("jobs")
                .join(FIXTURE_ID)
                .join("record.json"),
        )
        .expect("record"),
    )
    .expect("json");
    record["id"] = second.into();
    std::fs::write(copy.join("record.json"), record.to_string()).expect("record");
    let mut ids = [FIXTURE_ID, second];
    ids.sort_unstable();
    let expected = format!(
        "error: no job `fix-flaky-test` in the registry {}\n\
         help: `fix-flaky-test` names 2 jobs: give the id of one: {}\n",
        state(home).display(),
        ids.join(", ")
    );
    for args in id_commands("fix-flaky-test") {
        let out = run(td(home, &[]).args(&args));
        assert_eq!(outcome(&out), (Some(2), expected.clone()), "{args:?}");
    }
}

#[test]
fn the_embedded_broker_of_an_ended_run_is_named_as_such() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    let port = free_port();
    install_fixture(home, |record| {
        record["broker"] = serde_json::json!({
            "host": "127.0.0.1", "port": port, "tls": false,
            "username": "claude-worker", "password": "pw", "embedded": true,
        });
    });
    let expected = format!(
        "error: job {FIXTURE_ID} reported to the embedded broker of its `run`, which has ended \
         (nothing listens at 127.0.0.1:{port} any more)\n\
         help: `tmux-delegate logs {FIXTURE_ID}` shows the job's history; its events travel only \
         while that `run` goes on\n"
    );
    for args in [
        vec!["watch", "--job", FIXTURE_ID, "--timeout", "5"],
        vec!["publish", "--job", FIXTURE_ID, "--event", "started"],
    ] {
        let out = run(td(home, &[]).args(&args));
        assert_eq!(outcome(&out), (Some(3), expected.clone()), "{args:?}");
    }
}

#[test]
fn a_refused_connection_says_where_host_and_port_came_from() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    let port = free_port();
    let port_text = port.to_string();
    let refused = format!(
        "error: nothing accepts connections at 127.0.0.1:{port} (plain TCP) (connection refused)\n"
    );
    let watch = ["watch", "--job", "j1", "--timeout", "5"];

    let env = [
        ("MQTT_BROKER", "127.0.0.1"),
        ("MQTT_PORT", port_text.as_str()),
    ];
    let out = run(td(home, &env).args(watch));
    let help = format!(
        "help: is the broker running? host `127.0.0.1` from MQTT_BROKER, port {port} from MQTT_PORT\n"
    );
    assert_eq!(outcome(&out), (Some(3), format!("{refused}{help}")));

    let file = home.join("tmux-delegate.toml");
    std::fs::write(
        &file,
        format!("[broker]\nhost = \"127.0.0.1\"\nport = {port}\n"),
    )
    .expect("write");
    let out = run(td(home, &[]).args(watch));
    let help = format!(
        "help: is the broker running? host `127.0.0.1` from `broker.host` at {f}:2, \
         port {port} from `broker.port` at {f}:3\n",
        f = file.display()
    );
    assert_eq!(outcome(&out), (Some(3), format!("{refused}{help}")));

    // The env var wins over the file, and is the one named.
    let other = free_port();
    let other_text = other.to_string();
    let out = run(td(home, &[("MQTT_PORT", other_text.as_str())]).args(watch));
    let (code, err) = outcome(&out);
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.ends_with(&format!(
            "host `127.0.0.1` from `broker.host` at {}:2, port {other} from MQTT_PORT\n",
            file.display()
        )),
        "{err}"
    );
}

#[test]
fn a_bad_workdir_blames_the_flag_or_the_spec_line_that_set_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    let spec = home.join("job.toml");
    std::fs::write(&spec, "prompt = \"x\"\nworkdir = \"missing\"\n").expect("write");
    let spec_arg = spec.display().to_string();

    let out = run(td(home, &[]).args(["run", &spec_arg, "--agent", "shell"]));
    let expected = format!(
        "error: `workdir` at {}:2: {} is not a directory\n\
         help: create it, or point `workdir` at an existing directory\n",
        spec.display(),
        home.join("missing").display()
    );
    assert_eq!(outcome(&out), (Some(2), expected));

    let out = run(td(home, &[]).args([
        "run",
        &spec_arg,
        "--agent",
        "shell",
        "--workdir",
        "/nonexistent/dir",
    ]));
    let expected = "error: `--workdir`: /nonexistent/dir is not a directory\n\
                    help: create it, or pass an existing directory to --workdir\n";
    assert_eq!(outcome(&out), (Some(2), expected.to_owned()));
    no_jobs_registered(home);
}

fn zero_refused(key: &str, short: &str, place: &str) -> String {
    format!(
        "error: `{key}` at {place}: must be longer than zero (write e.g. \"30s\", \"5m\")\n\
         help: set `{short}` to a positive duration, or remove it for the default\n"
    )
}

#[test]
fn zero_timeouts_and_grace_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    let file = home.join("tmux-delegate.toml");
    let run_args = ["run", "--agent", "shell", "--prompt", "x"];
    for (body, key, short, line) in [
        (
            "[defaults.timeouts]\nidle = \"0s\"\n",
            "defaults.timeouts.idle",
            "idle",
            2,
        ),
        (
            "[defaults]\nagent = \"shell\"\n\n[defaults.timeouts]\nstart = \"1m\"\njob = \"0ms\"\n",
            "defaults.timeouts.job",
            "job",
            6,
        ),
        (
            "[defaults.tmux]\nkill_grace = \"0s\"\n",
            "defaults.tmux.kill_grace",
            "kill_grace",
            2,
        ),
    ] {
        std::fs::write(&file, body).expect("write");
        let place = format!("{}:{line}", file.display());
        for args in [&run_args[..], &["register", "--prompt", "x"][..]] {
            let out = run(td(home, &[]).args(args));
            assert_eq!(
                outcome(&out),
                (Some(2), zero_refused(key, short, &place)),
                "{body} {args:?}"
            );
        }
    }
    std::fs::remove_file(&file).expect("rm");

    let spec = home.join("jobs.toml");
    std::fs::write(
        &spec,
        "[[jobs]]\nprompt = \"a\"\n\n[[jobs]]\nprompt = \"b\"\n[jobs.timeouts]\nattempt = \"0s\"\n",
    )
    .expect("write");
    let spec_arg = spec.display().to_string();
    let out = run(td(home, &[]).args(["run", &spec_arg, "--agent", "shell"]));
    let place = format!("{}:7", spec.display());
    assert_eq!(
        outcome(&out),
        (Some(2), zero_refused("timeouts.attempt", "attempt", &place))
    );

    // A negative duration does not parse: the parser's error, with its place.
    std::fs::write(&file, "[defaults.timeouts]\nidle = \"-5s\"\n").expect("write");
    let out = run(td(home, &[]).args(run_args));
    let (code, err) = outcome(&out);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with(&format!(
            "error: {}:2:8: invalid duration \"-5s\"",
            file.display()
        )),
        "{err}"
    );
    no_jobs_registered(home);
}

#[test]
fn a_corrupt_record_says_so_once_and_how_to_get_past_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    install_fixture(home, |_| {});
    let bad = state(home).join("jobs/bad-1");
    std::fs::create_dir_all(&bad).expect("mkdir");
    std::fs::write(bad.join("record.json"), "{ not json").expect("write");
    let problem = format!(
        "the job record {}/record.json is corrupt: not valid JSON: key must be a string at line 1 column 3",
        bad.display()
    );
    let help = format!(
        "help: move it aside (`mv {b} {b}.corrupt`) or delete the job's directory {b}; \
         the other jobs are not affected",
        b = bad.display()
    );
    let out = run(td(home, &[]).args(["logs", "bad-1"]));
    assert_eq!(
        outcome(&out),
        (Some(2), format!("error: {problem}\n{help}\n"))
    );

    let out = run(td(home, &[]).args(["status"]));
    let (code, err) = outcome(&out);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        err,
        format!("warning: skipping job bad-1: {problem}\n{help}\n")
    );
    assert!(
        text(&out.stdout).contains(FIXTURE_ID),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn refused_credentials_say_where_user_and_password_came_from() {
    let dir = tempfile::tempdir().expect("tempdir");
    let passwd = password_file(dir.path(), &[("hermes", "right")]);
    let mosquitto = Mosquitto::start(
        dir.path(),
        &format!("allow_anonymous false\npassword_file {}", passwd.display()),
    );
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    std::fs::write(home.join("hermes.pass"), "wrong\n").expect("write");
    let file = home.join("tmux-delegate.toml");
    std::fs::write(
        &file,
        format!(
            "[broker]\nhost = \"127.0.0.1\"\nport = {}\npassword_file = \"hermes.pass\"\n",
            mosquitto.port
        ),
    )
    .expect("write");
    let out = run(td(&home, &[("MQTT_USERNAME", "hermes")]).args([
        "watch",
        "--job",
        "j1",
        "--timeout",
        "5",
    ]));
    let expected = format!(
        "error: the broker at 127.0.0.1:{port} (plain TCP) refused user `hermes`: not authorized \
         (wrong password, unknown user, or missing credentials)\n\
         help: check the user name (from MQTT_USERNAME) and the password (from \
         `broker.password_file` at {f}:4)\n",
        port = mosquitto.port,
        f = file.display()
    );
    assert_eq!(outcome(&out), (Some(3), expected));
}

#[test]
fn a_bad_name_blames_the_flag_or_the_spec_line_that_set_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    let spec = home.join("job.toml");
    let spec_arg = spec.display().to_string();
    std::fs::write(&spec, "prompt = \"x\"\nname = \" \"\n").expect("write");
    let out = run(td(home, &[]).args(["run", &spec_arg, "--agent", "shell"]));
    let expected = format!(
        "error: `name` at {}:2: a job name must be one non-empty line\n",
        spec.display()
    );
    assert_eq!(outcome(&out), (Some(2), expected));

    std::fs::write(&spec, "prompt = \"x\"\nname = \"fine\"\n").expect("write");
    let out = run(td(home, &[]).args(["run", &spec_arg, "--agent", "shell", "--name", " "]));
    let expected = "error: `--name`: a job name must be one non-empty line\n";
    assert_eq!(outcome(&out), (Some(2), expected.to_owned()));
    no_jobs_registered(home);
}

/// With a broker configured (a fleet host), a local job's name or id is
/// answered by this host's registry first: `logs NAME` never asks the
/// fleet (here unreachable) about a job this host has.
#[test]
fn a_local_job_s_name_is_answered_locally_whatever_broker_is_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    install_fixture(home, |_| {});
    let broker = [("MQTT_BROKER", "127.0.0.1"), ("MQTT_PORT", "1")];
    for job in ["fix-flaky-test", FIXTURE_ID] {
        let out = run(td(home, &broker).args(["logs", job]));
        assert_eq!(
            out.status.code(),
            Some(0),
            "logs {job}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stdout).contains(FIXTURE_ID),
            "{}",
            text(&out.stdout)
        );
    }
}

/// A 20 KB event message is cut in the table (piped too), whole in
/// `--json`; with no local jobs and a broker configured, `status` points
/// at `--fleet`.
#[test]
fn status_cuts_long_messages_and_points_at_the_fleet_when_it_has_no_jobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    let broker = [("MQTT_BROKER", "127.0.0.1"), ("MQTT_PORT", "1")];
    let out = run(td(home, &broker).arg("status"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("status --fleet"),
        "{}",
        text(&out.stderr)
    );
    let out = run(td(home, &[]).arg("status"));
    assert!(
        !text(&out.stderr).contains("--fleet"),
        "{}",
        text(&out.stderr)
    );

    let long = "x".repeat(20_000);
    install_fixture(home, |record| {
        record["last_event"] = serde_json::json!({
            "event": "progress", "attempt": 1, "ts": 1.0, "message": long,
        });
    });
    let out = run(td(home, &[]).arg("status"));
    let table = text(&out.stdout);
    let widest = table.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    assert!(widest < 400, "a {widest}-character line:\n{table}");
    assert!(
        table.contains("progress \"xxx") && table.contains('…'),
        "{table}"
    );
    let out = run(td(home, &[]).args(["status", "--json"]));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        rows[0]["last_event"]["message"].as_str().map(str::len),
        Some(20_000)
    );
}
