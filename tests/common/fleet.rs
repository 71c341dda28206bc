//! The fleet's harness: runner hosts, each a home of its own (registry,
//! config, private tmux server) with fake agents that log their runs,
//! against one Mosquitto on the configuration `broker setup --fleet`
//! writes (TLS, passwords, the fleet's ACL); `submit` from a host that has
//! only the submitter's settings. Used by `tests/fleet.rs` and
//! `tests/fleet_faults.rs`.

use super::*;
use std::ops::Deref;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One runner host: a home of the common harness (registry, config, its
/// own tmux server), its runner process, and the log its fake agents write.
/// Fields drop in order: the runner first, then the home's tmux server.
pub struct Host {
    pub runner: Option<Lines>,
    pub node: Home,
    pub name: String,
    pub log: RunLog,
}

impl Deref for Host {
    type Target = Home;

    fn deref(&self) -> &Home {
        &self.node
    }
}

impl Host {
    pub fn td(&self, vars: &[(&str, &str)]) -> std::process::Command {
        self.node.td_with(vars)
    }

    /// Starts its runner and waits until it takes jobs.
    pub fn start(&mut self, max_parallel: u32) {
        let mut runner = Lines::spawn(self.td(&[]).args([
            "runner",
            "--name",
            &self.name,
            "--max-parallel",
            &max_parallel.to_string(),
        ]));
        assert!(
            runner.wait_line("trusted submitter key", Duration::from_secs(30)),
            "runner {} did not start: {:?}",
            self.name,
            runner.stderr
        );
        self.runner = Some(runner);
    }

    /// (job, start, end) of every agent run on this host, in nanoseconds.
    pub fn runs(&self) -> Vec<(String, u128, Option<u128>)> {
        self.log
            .runs()
            .into_iter()
            .map(|r| (r.key, r.start, r.end))
            .collect()
    }

    /// The most agents this host ran at the same time.
    pub fn peak_parallel(&self) -> usize {
        self.log.peak_parallel()
    }
}

/// Fields drop in order: hosts (runners, tmux), then the broker, then files.
pub struct Fleet {
    pub hosts: Vec<Host>,
    pub submitter: PathBuf,
    pub broker: Guard,
    /// The broker's port and configuration, to start it again.
    pub port: u16,
    pub bundle: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Fleet {
    /// `broker setup --fleet`, Mosquitto on its own configuration, and
    /// `runners` hosts whose fake agent sleeps as many seconds as its
    /// prompt says.
    pub fn new(runners: usize) -> Fleet {
        let dir = tempfile::tempdir().expect("tempdir");
        // Mosquitto, started as root, drops to the `mosquitto` user, which
        // must be able to walk into the bundle.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let bundle = dir.path().join("bundle");
        let port = free_port();
        let setup_home = dir.path().join("setup");
        std::fs::create_dir_all(&setup_home).expect("home");
        let out = run(td(&setup_home, &[])
            .args(["broker", "setup"])
            .arg(&bundle)
            .args([
                "--host",
                "localhost",
                "--add-localhost",
                "--bind",
                "127.0.0.1",
            ])
            .args(["--port", &port.to_string(), "--fleet"]));
        assert!(out.status.success(), "setup: {}", text(&out.stderr));
        let broker = start_mosquitto_conf(&bundle.join("mosquitto/mosquitto.conf"), port);
        let runner_config = std::fs::read_to_string(bundle.join("runner.toml")).expect("runner");
        let mut hosts = Vec::new();
        for i in 0..runners {
            let name = format!("r{i}");
            let home = dir.path().join(&name);
            std::fs::create_dir_all(&home).expect("host");
            let tmux = TmuxServer::named(
                &home,
                &format!("td-fleet-{}-{}-{name}", std::process::id(), port),
            );
            let log = RunLog::new(&home.join("agent.log"));
            let agent = script(
                &home.join("agent.sh"),
                &format!(
                    "{}\nsleep \"$1\"\n{}",
                    log.start("$DELEGATE_JOB_ID"),
                    log.end("$DELEGATE_JOB_ID")
                ),
            );
            // Like `fake`, and it writes down its own pid and that of a
            // `setsid` child (outside its process group) as
            // `JOB ATTEMPT SHELL CHILD` in `pids`. A first attempt runs a
            // minute, far longer than any fencing window.
            let pidful = script(
                &home.join("pidful.sh"),
                &format!(
                    "{start}\n\
                     secs=\"$1\"; [ \"$DELEGATE_ATTEMPT\" = 1 ] && secs=60\n\
                     setsid sleep \"$secs\" &\n\
                     echo \"$DELEGATE_JOB_ID $DELEGATE_ATTEMPT $$ $!\" >> {pids}\n\
                     wait\n{end}",
                    start = log.start("$DELEGATE_JOB_ID"),
                    end = log.end("$DELEGATE_JOB_ID"),
                    pids = home.join("pids").display()
                ),
            );
            // Says something in its pane, and whether it has a broker
            // password (never the password itself).
            let chatty = script(
                &home.join("chatty.sh"),
                "echo \"chatty says hello from $DELEGATE_JOB_ID\"\n\
                 echo \"password set: ${MQTT_PASSWORD:+yes}\"\n\
                 sleep \"$1\"\n\
                 echo \"chatty is done\"",
            );
            // Logs its end also when stopped (SIGTERM to its group), so a
            // fenced attempt's run has an end too.
            let timed = script(
                &home.join("timed.sh"),
                &format!(
                    "{start}\ntrap '{end}; exit 143' TERM\nsleep \"$1\" &\nwait $!\n{end}",
                    start = log.start("$DELEGATE_JOB_ID"),
                    end = log.end("$DELEGATE_JOB_ID")
                ),
            );
            let config = format!(
                "{runner_config}\n\
                 [defaults.timeouts]\nstart = \"30s\"\n\
                 [agents.fake]\ncommand = [\"{}\", \"{{prompt}}\"]\ncomplete_on_exit = true\n\
                 [agents.pidful]\ncommand = [\"{}\", \"{{prompt}}\"]\ncomplete_on_exit = true\n\
                 [agents.chatty]\ncommand = [\"{}\", \"{{prompt}}\"]\ncomplete_on_exit = true\n\
                 [agents.timed]\ncommand = [\"{}\", \"{{prompt}}\"]\ncomplete_on_exit = true\n",
                agent.display(),
                pidful.display(),
                chatty.display(),
                timed.display()
            );
            let defaults = TmuxDefaults {
                session: Some("fleet".to_owned()),
                ..TmuxDefaults::default()
            };
            hosts.push(Host {
                runner: None,
                node: Home::create(&home, tmux, &defaults, &config),
                name,
                log,
            });
        }
        let submitter = dir.path().join("submitter");
        std::fs::create_dir_all(&submitter).expect("submitter");
        std::fs::copy(
            bundle.join("submitter.toml"),
            submitter.join("tmux-delegate.toml"),
        )
        .expect("submitter config");
        Fleet {
            hosts,
            submitter,
            broker,
            port,
            bundle,
            dir,
        }
    }

    /// `count` jobs whose agent runs `secs` seconds.
    pub fn jobs_file(&self, name: &str, count: usize, secs: &str) -> PathBuf {
        let mut text = String::new();
        for i in 0..count {
            text.push_str(&format!(
                "[[jobs]]\nname = \"{name}-{i}\"\nagent = \"fake\"\nprompt = \"{secs}\"\n\n"
            ));
        }
        let path = self.submitter.join(format!("{name}.toml"));
        std::fs::write(&path, text).expect("jobs");
        path
    }

    pub fn submit(&self, args: &[&str]) -> Lines {
        Lines::spawn(td(&self.submitter, &[]).arg("submit").args(args))
    }

    /// `submit FILE --wait`, once it has printed every id (the last job's
    /// name is in the last id): the running `submit` and the ids.
    pub fn submit_waiting(&self, jobs: &Path, last: &str) -> (Lines, Vec<String>) {
        let mut waiting =
            self.submit(&[jobs.to_str().expect("utf-8"), "--wait", "--timeout", "120"]);
        assert!(
            waiting.wait_line(last, Duration::from_secs(30)),
            "{:?}",
            waiting.stderr
        );
        let ids = waiting.stdout.clone();
        (waiting, ids)
    }
}

impl Fleet {
    /// Another host with only broker settings: the submitter's, under
    /// `user`'s credential, signing with the submitter key or not.
    pub fn client_host(&self, name: &str, user: &str, signing: bool) -> PathBuf {
        let home = self.dir.path().join(name);
        std::fs::create_dir_all(&home).expect("host");
        let config = std::fs::read_to_string(self.bundle.join("submitter.toml"))
            .expect("submitter config")
            .replace(
                "username = \"submitter\"",
                &format!("username = \"{user}\""),
            )
            .replace("/submitter.pass", &format!("/{user}.pass"))
            .lines()
            .filter(|l| signing || !l.starts_with("submitter_key_file"))
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(home.join("tmux-delegate.toml"), config).expect("config");
        home
    }
}

/// `status --json` of one fleet job, from `home`.
pub fn fleet_state(home: &Path, id: &str) -> Option<serde_json::Value> {
    let out = run(td(home, &[]).args(["status", id, "--json"]));
    if !out.status.success() {
        return None;
    }
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
    rows.into_iter().next()
}

pub fn wait_state(home: &Path, id: &str, state: &str, attempt: u64) -> serde_json::Value {
    wait_for(Duration::from_secs(60), || {
        fleet_state(home, id).filter(|s| s["state"] == state && s["attempt"] == attempt)
    })
    .unwrap_or_else(|| {
        panic!(
            "{id} never {state} at attempt {attempt}: {:?}",
            fleet_state(home, id)
        )
    })
}

/// Sends `signal` (`STOP`, `CONT`, `TERM`, `KILL`) to a process the test
/// started.
pub fn signal(pid: u32, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill -{signal} {pid}");
}

impl Host {
    /// Adds `line` to the `[fleet]` section of its config (before it starts).
    pub fn fleet_setting(&self, line: &str) {
        let config = self.home.join("tmux-delegate.toml");
        let text = std::fs::read_to_string(&config).expect("config");
        assert!(text.contains("\n[fleet]\n"), "{text}");
        let text = text.replacen("\n[fleet]\n", &format!("\n[fleet]\n{line}\n"), 1);
        std::fs::write(&config, text).expect("config");
    }

    /// Its runner's pid.
    pub fn runner_pid(&mut self) -> u32 {
        self.runner.as_mut().expect("runner").guard.child().id()
    }

    /// Reads what its runner wrote so far and returns its stderr.
    pub fn runner_stderr(&mut self) -> Vec<String> {
        let runner = self.runner.as_mut().expect("runner");
        runner.wait_line("\u{0}", Duration::from_millis(200));
        runner.stderr.clone()
    }
}

impl Fleet {
    /// `count` jobs of `agent` with `prompt`.
    pub fn agent_jobs(&self, name: &str, count: usize, agent: &str, prompt: &str) -> PathBuf {
        let mut text = String::new();
        for i in 0..count {
            text.push_str(&format!(
                "[[jobs]]\nname = \"{name}-{i}\"\nagent = \"{agent}\"\nprompt = \"{prompt}\"\n\n"
            ));
        }
        let path = self.submitter.join(format!("{name}.toml"));
        std::fs::write(&path, text).expect("jobs");
        path
    }

    /// Sends `signal` to the broker and waits until it has exited.
    pub fn stop_broker(&mut self, signal_name: &str) {
        signal(self.broker.child().id(), signal_name);
        let gone = wait_for(Duration::from_secs(20), || {
            self.broker.child().try_wait().ok().flatten()
        });
        assert!(gone.is_some(), "mosquitto did not exit on SIG{signal_name}");
    }

    /// Starts the broker again on its configuration and port.
    pub fn start_broker_again(&mut self) {
        self.broker =
            start_mosquitto_conf(&self.bundle.join("mosquitto/mosquitto.conf"), self.port);
    }

    /// The runs of job `id` on every host: (host, start, end) in nanoseconds.
    pub fn runs_of(&self, id: &str) -> Vec<(String, u128, Option<u128>)> {
        self.hosts
            .iter()
            .flat_map(|h| {
                h.runs()
                    .into_iter()
                    .filter(|(job, _, _)| job == id)
                    .map(|(_, start, end)| (h.name.clone(), start, end))
            })
            .collect()
    }
}

/// How long two runs of one job ran at the same time, in total; a run
/// without an end is still going (counted up to now).
pub fn overlap(runs: &[(String, u128, Option<u128>)]) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let mut total = 0_u128;
    for (i, (_, a_start, a_end)) in runs.iter().enumerate() {
        for (_, b_start, b_end) in &runs[i + 1..] {
            let start = (*a_start).max(*b_start);
            let end = a_end.unwrap_or(now).min(b_end.unwrap_or(now));
            total += end.saturating_sub(start);
        }
    }
    Duration::from_nanos(u64::try_from(total).unwrap_or(u64::MAX))
}

impl Host {
    /// Agent `name` in its config (before it starts): a script with `body`,
    /// run as `SCRIPT -- PROMPT`, and as `SCRIPT --resume SESSION -- PROMPT`
    /// to continue a conversation; done at its `completed` event.
    pub fn conversing_agent(&self, name: &str, body: &str) {
        let agent = script(&self.home.join(format!("{name}.sh")), body);
        let config = self.home.join("tmux-delegate.toml");
        let mut text = std::fs::read_to_string(&config).expect("config");
        text.push_str(&format!(
            "\n[agents.{name}]\ncommand = [\"{a}\", \"--\", \"{{prompt}}\"]\n\
             continue_command = [\"{a}\", \"--resume\", \"{{session}}\", \"--\", \"{{prompt}}\"]\n\
             complete_on_exit = false\n",
            a = agent.display()
        ));
        std::fs::write(&config, text).expect("config");
    }

    /// The lines its agents wrote to `name` in its home.
    pub fn lines_of(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.home.join(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Fleet {
    /// `submit --prompt PROMPT --agent AGENT`: the job's id.
    pub fn submit_one(&self, agent: &str, prompt: &str) -> String {
        let out =
            run(td(&self.submitter, &[]).args(["submit", "--prompt", prompt, "--agent", agent]));
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    }

    /// `tmux-delegate ARGS` on the submitter's host: (exit code, stderr).
    pub fn on_submitter(&self, args: &[&str]) -> (Option<i32>, String) {
        let (code, _, err) = finish(td(&self.submitter, &[]).args(args), Duration::from_secs(60));
        (code, err)
    }
}
