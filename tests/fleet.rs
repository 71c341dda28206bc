//! The fleet end to end: runners as separate processes, each with its own
//! tmux server (private socket) and registry — separate hosts in all but
//! the kernel — against one Mosquitto with TLS, passwords and the ACL that
//! `broker setup --fleet` writes; jobs handed in with `submit` from another
//! "host" that has only the submitter's broker settings.

mod common;

use common::fleet::*;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[test]
fn thirty_jobs_over_three_runners_each_complete_exactly_once() {
    let mut fleet = Fleet::new(3);
    for host in &mut fleet.hosts {
        host.start(2);
    }
    let jobs = fleet.jobs_file("job", 30, "0.3");
    let mut submit = fleet.submit(&[jobs.to_str().expect("utf-8"), "--wait", "--timeout", "240"]);
    let status = submit.finish(Duration::from_secs(300));
    assert_eq!(
        status.code(),
        Some(0),
        "submit --wait: {:?}\n{:?}",
        submit.stdout,
        submit.stderr
    );
    let ids: BTreeSet<String> = submit.stdout.iter().cloned().collect();
    assert_eq!(ids.len(), 30, "{:?}", submit.stdout);
    let mut ran: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for host in &fleet.hosts {
        let runs = host.runs();
        assert!(!runs.is_empty(), "runner {} ran nothing", host.name);
        for (job, _, end) in runs {
            assert!(end.is_some(), "job {job} on {} never ended", host.name);
            ran.entry(job).or_default().push(host.name.clone());
        }
        let peak = host.peak_parallel();
        assert!(peak <= 2, "runner {} ran {peak} agents at once", host.name);
    }
    assert_eq!(ran.keys().cloned().collect::<BTreeSet<_>>(), ids);
    for (job, hosts) in &ran {
        assert_eq!(hosts.len(), 1, "job {job} ran on {hosts:?}");
    }
    // The submitter's wait said so too: one `completed` line per job.
    let completed = submit
        .stderr
        .iter()
        .filter(|l| l.contains(": completed (attempt 1 on r"))
        .count();
    assert_eq!(completed, 30, "{:?}", submit.stderr);
    let _ = (&fleet.bundle, &fleet.dir);
}

#[test]
fn a_dead_runners_unfinished_jobs_run_again_elsewhere_and_its_finished_one_does_not() {
    let mut fleet = Fleet::new(3);
    fleet.hosts[0].start(2);
    // r0 alone: it completes one job, then takes two slow ones.
    let quick = fleet.jobs_file("quick", 1, "0.1");
    let mut done = fleet.submit(&[quick.to_str().expect("utf-8"), "--wait", "--timeout", "60"]);
    assert_eq!(
        done.finish(Duration::from_secs(90)).code(),
        Some(0),
        "{:?}",
        done.stderr
    );
    let quick_id = done.stdout[0].clone();
    let slow = fleet.jobs_file("slow", 2, "4");
    let (mut waiting, slow_ids) = fleet.submit_waiting(&slow, "slow-1");
    let both_running = wait_for(Duration::from_secs(30), || {
        let runs = fleet.hosts[0].runs();
        slow_ids
            .iter()
            .all(|id| runs.iter().any(|(job, _, _)| job == id))
            .then_some(())
    });
    assert!(both_running.is_some(), "r0 never ran both slow jobs");
    fleet.hosts[1].start(2);
    fleet.hosts[2].start(2);
    // r0's host dies: its runner (SIGKILL) and its tmux server with the agents.
    let killed_at = std::time::Instant::now();
    if let Some(runner) = fleet.hosts[0].runner.as_mut() {
        runner.guard.child().kill().expect("SIGKILL r0");
    }
    let _ = fleet.hosts[0].tmux.command(&["kill-server"]).output();
    let status = waiting.finish(Duration::from_secs(150));
    if status.code() != Some(0) {
        let mut logs = String::new();
        for host in &mut fleet.hosts[1..] {
            if let Some(runner) = host.runner.as_mut() {
                runner.wait_line("\u{0}", Duration::from_secs(1));
                logs.push_str(&format!("{}: {:?}\n", host.name, runner.stderr));
            }
        }
        panic!("submit --wait: {status}\n{:?}\n{logs}", waiting.stderr);
    }
    let elapsed = killed_at.elapsed();
    // 4 s of agent each, started within 30 s of the death.
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
    for id in &slow_ids {
        assert_completed_as_attempt_2_elsewhere(&waiting, id);
        let reruns: Vec<&str> = fleet.hosts[1..]
            .iter()
            .flat_map(|h| h.runs().into_iter().map(move |r| (h.name.clone(), r)))
            .filter(|(_, (job, _, end))| job == id && end.is_some())
            .map(|_| "run")
            .collect();
        assert_eq!(
            reruns.len(),
            1,
            "{id} completed {} times elsewhere",
            reruns.len()
        );
    }
    // The attempts on r0 never finished, and the completed job stayed done.
    assert!(fleet.hosts[0]
        .runs()
        .iter()
        .filter(|(job, _, _)| slow_ids.contains(job))
        .all(|(_, _, end)| end.is_none()));
    for host in &fleet.hosts[1..] {
        assert!(
            !host.runs().iter().any(|(job, _, _)| *job == quick_id),
            "{quick_id} ran again on {}",
            host.name
        );
    }
}

/// `submit --wait` saw the job complete as attempt 2 on r1 or r2 (r0 died).
fn assert_completed_as_attempt_2_elsewhere(waiting: &Lines, id: &str) {
    let line = waiting
        .stderr
        .iter()
        .find(|l| l.starts_with(&format!("{id}: completed")))
        .unwrap_or_else(|| panic!("no end for {id}: {:?}", waiting.stderr));
    assert!(
        line.contains("(attempt 2 on r1") || line.contains("(attempt 2 on r2"),
        "{line}"
    );
}

#[test]
fn a_fourth_host_lists_watches_kills_and_retries_and_other_credentials_are_refused() {
    let mut fleet = Fleet::new(2);
    fleet.hosts[0].start(2);
    fleet.hosts[1].start(2);
    let observer = fleet.client_host("observer", "submitter", true);
    let quick = fleet.jobs_file("quick", 1, "0.1");
    let mut done = fleet.submit(&[quick.to_str().expect("utf-8"), "--wait", "--timeout", "60"]);
    assert_eq!(
        done.finish(Duration::from_secs(90)).code(),
        Some(0),
        "{:?}",
        done.stderr
    );
    let quick_id = done.stdout[0].clone();
    let slow = fleet.jobs_file("slow", 1, "60");
    let mut submitted = fleet.submit(&[slow.to_str().expect("utf-8")]);
    assert_eq!(submitted.finish(Duration::from_secs(30)).code(), Some(0));
    let slow_id = submitted.stdout[0].clone();

    // status: every job with state, runner and attempt, from retained state.
    let running = wait_state(&observer, &slow_id, "running", 1);
    assert!(
        running["runner"]
            .as_str()
            .is_some_and(|r| r.starts_with('r')),
        "{running}"
    );
    let out = run(td(&observer, &[]).args(["status", "--json"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    let quick_row = all
        .iter()
        .find(|r| r["id"] == quick_id.as_str())
        .expect("quick listed");
    assert_eq!(quick_row["state"], "completed");
    assert_eq!(quick_row["attempt"], 1);
    assert!(all.iter().any(|r| r["id"] == slow_id.as_str()));
    // watch --all: every job's events reach this host too (seen below).
    let mut watch = Lines::spawn(td(&observer, &[]).args(["watch", "--all", "--json"]));
    assert!(
        watch.wait_line("watching", Duration::from_secs(20)),
        "{:?}",
        watch.stderr
    );

    // A credential without the submitter's ACL can neither submit nor kill.
    let intruder = fleet.client_host("intruder", "claude-worker", true);
    let out = run(td(&intruder, &[]).args(["submit", "--prompt", "1", "--agent", "fake"]));
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let out = run(td(&intruder, &[]).args(["kill", &slow_id]));
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert_eq!(
        wait_state(&observer, &slow_id, "running", 1)["state"],
        "running"
    );

    // kill: the owning runner stops it.
    let out = run(td(&observer, &[]).args(["kill", &slow_id]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    wait_state(&observer, &slow_id, "cancelled", 1);

    // retry: a finished job runs again, as attempt 2.
    let out = run(td(&observer, &[]).args(["retry", &quick_id]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    wait_state(&observer, &quick_id, "completed", 2);
    assert!(
        watch.wait_line("\"attempt\":2", Duration::from_secs(20)),
        "watch --all saw no event of attempt 2: {:?}",
        watch.stdout
    );

    // An unsigned submission is refused by runners that trust keys.
    let unsigned = fleet.client_host("unsigned", "submitter", false);
    let out = run(td(&unsigned, &[]).args([
        "submit",
        "--prompt",
        "1",
        "--agent",
        "fake",
        "--wait",
        "--timeout",
        "30",
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("refused"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_job_whose_offer_was_lost_is_offered_again_and_runs_once() {
    let mut fleet = Fleet::new(1);
    let config = fleet.hosts[0].home.join("tmux-delegate.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    assert!(text.contains("\n[fleet]\n"), "{text}");
    let text = text.replacen("\n[fleet]\n", "\n[fleet]\noffer_timeout = \"3s\"\n", 1);
    std::fs::write(&config, text).expect("config");
    // No runner is connected: Mosquitto drops an offer on a shared
    // subscription nobody holds, as it drops one for a runner whose queue
    // is full. The retained `submitted` states stay.
    let jobs = fleet.jobs_file("lost", 2, "0.2");
    let mut submit = fleet.submit(&[jobs.to_str().expect("utf-8")]);
    assert_eq!(
        submit.finish(Duration::from_secs(60)).code(),
        Some(0),
        "{:?}",
        submit.stderr
    );
    let ids = submit.stdout.clone();
    assert_eq!(ids.len(), 2, "{:?}", submit.stdout);
    fleet.hosts[0].start(2);
    for id in &ids {
        let state = wait_state(&fleet.submitter, id, "completed", 2);
        assert_eq!(state["runner"], "r0", "{state}");
    }
    let runs = fleet.hosts[0].runs();
    assert_eq!(runs.len(), 2, "each job ran once: {runs:?}");
    let runner = fleet.hosts[0].runner.as_mut().expect("runner");
    assert!(
        runner.wait_line("no runner claimed it within 3s", Duration::from_secs(5)),
        "{:?}",
        runner.stderr
    );
    let _ = (&fleet.bundle, &fleet.dir);
}

/// Sends SIGTERM to a process the test started.
fn sigterm(pid: u32) {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill -TERM {pid}");
}

/// More jobs than rumqttc's request queue holds (16): with the broker gone,
/// the runner's publishes of their cancellations used to wait for a
/// reconnect that never came, and the runner with them.
#[test]
fn a_runner_exits_on_sigterm_when_its_broker_and_tmux_are_gone() {
    let mut fleet = Fleet::new(1);
    fleet.hosts[0].start(20);
    let slow = fleet.jobs_file("slow", 20, "60");
    let mut submitted = fleet.submit(&[slow.to_str().expect("utf-8")]);
    assert_eq!(submitted.finish(Duration::from_secs(30)).code(), Some(0));
    let ids = submitted.stdout.clone();
    assert_eq!(ids.len(), 20, "{:?}", submitted.stderr);
    let all_running = wait_for(Duration::from_secs(60), || {
        let runs = fleet.hosts[0].runs();
        ids.iter()
            .all(|id| runs.iter().any(|(job, _, _)| job == id))
            .then_some(())
    });
    assert!(all_running.is_some(), "r0 never ran all jobs");
    // The broker goes, then the runner's tmux server with its windows.
    fleet.broker.child().kill().expect("stop mosquitto");
    let _ = fleet.broker.child().wait();
    let _ = fleet.hosts[0].tmux.command(&["kill-server"]).output();
    let runner = fleet.hosts[0].runner.as_mut().expect("runner");
    assert!(
        runner.wait_line("lost the broker connection", Duration::from_secs(30)),
        "the runner never noticed the broker was gone: {:?}",
        runner.stderr
    );
    let asked = std::time::Instant::now();
    sigterm(runner.guard.child().id());
    let exited = wait_for(Duration::from_secs(15), || {
        runner.guard.child().try_wait().ok().flatten()
    });
    let took = asked.elapsed();
    let exited = exited.unwrap_or_else(|| {
        runner.wait_line("\u{0}", Duration::from_secs(1));
        panic!(
            "the runner did not exit within 15 s of SIGTERM: {:?}",
            runner.stderr
        )
    });
    eprintln!("the runner exited ({exited}) {took:?} after SIGTERM");
    // Interrupted, as `run` on Ctrl-C.
    assert_eq!(exited.code(), Some(130), "{:?}", runner.stderr);
}

impl Host {
    /// `(job, attempt, pids)` of every `pidful` agent run on this host.
    fn pids(&self) -> Vec<(String, u64, Vec<i32>)> {
        let text = std::fs::read_to_string(self.home.join("pids")).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let parts: Vec<&str> = line.split_whitespace().collect();
                let [job, attempt, shell, child] = parts[..] else {
                    return None;
                };
                let pids = [shell, child]
                    .iter()
                    .filter_map(|p| p.parse().ok())
                    .collect();
                Some((job.to_owned(), attempt.parse().ok()?, pids))
            })
            .collect()
    }
}

/// How long the attempt of a dead runner may live on: the wrapper looks
/// for its runner every second, then stops the agent (kill_grace 1 s, then
/// SIGKILL); a generous margin for a loaded machine, and still far shorter
/// than the old attempt would have run (60 s).
const FENCING_WINDOW: Duration = Duration::from_secs(10);

#[test]
fn a_runner_process_that_dies_alone_has_its_agents_stopped_and_its_jobs_run_once_more() {
    let mut fleet = Fleet::new(3);
    fleet.hosts[0].start(2);
    let observer = fleet.client_host("observer", "submitter", true);
    let mut watch = Lines::spawn(td(&observer, &[]).args(["watch", "--all", "--json"]));
    assert!(
        watch.wait_line("watching", Duration::from_secs(20)),
        "{:?}",
        watch.stderr
    );
    let jobs = fleet.submitter.join("fenced.toml");
    std::fs::write(
        &jobs,
        "[[jobs]]\nname = \"fenced-0\"\nagent = \"pidful\"\nprompt = \"3\"\n\n\
         [[jobs]]\nname = \"fenced-1\"\nagent = \"pidful\"\nprompt = \"3\"\n",
    )
    .expect("jobs");
    let (mut waiting, ids) = fleet.submit_waiting(&jobs, "fenced-1");
    let old = wait_for(Duration::from_secs(30), || {
        let pids = fleet.hosts[0].pids();
        (ids.iter()
            .all(|id| pids.iter().any(|(job, _, _)| job == id)))
        .then_some(pids)
    })
    .expect("r0 never ran both jobs");
    assert!(old
        .iter()
        .all(|(_, attempt, pids)| *attempt == 1 && pids.len() == 2));
    fleet.hosts[1].start(2);
    fleet.hosts[2].start(2);

    // Only r0's runner process dies; its tmux server and windows live on.
    let killed = unix_now();
    let killed_at = std::time::Instant::now();
    fleet.hosts[0]
        .runner
        .as_mut()
        .expect("r0")
        .guard
        .child()
        .kill()
        .expect("SIGKILL r0");
    let stopped = wait_for(Duration::from_secs(30), || {
        old.iter()
            .all(|(_, _, pids)| pids.iter().all(|p| !alive(*p)))
            .then(|| killed_at.elapsed())
    });
    let all_pids: Vec<&Vec<i32>> = old.iter().map(|(_, _, p)| p).collect();
    let stopped = stopped.unwrap_or_else(|| panic!("r0's agents live on: {all_pids:?}"));
    eprintln!("r0's agents (shell and setsid child) gone {stopped:?} after its runner died");
    assert!(
        stopped <= FENCING_WINDOW,
        "the old attempt lived {stopped:?}"
    );
    // Its windows' wrappers are done too; the tmux server is still there.
    let panes = wait_for(Duration::from_secs(10), || {
        let out = fleet.hosts[0]
            .tmux
            .output(&["list-panes", "-a", "-F", "#{pane_dead}"]);
        (!out.is_empty() && out.lines().all(|l| l == "1")).then_some(out)
    });
    assert!(
        panes.is_some(),
        "{}",
        fleet.hosts[0].tmux.output(&["list-panes", "-a"])
    );

    let status = waiting.finish(Duration::from_secs(150));
    assert_eq!(status.code(), Some(0), "{:?}", waiting.stderr);
    for id in &ids {
        assert_completed_as_attempt_2_elsewhere(&waiting, id);
    }
    // The old attempts never finished their work.
    assert!(fleet.hosts[0]
        .runs()
        .iter()
        .all(|(_, _, end)| end.is_none()));
    assert_no_live_old_attempt(&mut watch, &ids, killed);

    // A window that opens after its runner died never starts the agent.
    let host = &fleet.hosts[0];
    let state = host.home.join("state");
    let out = run(host
        .td(&[])
        .args(["exec", "--job", &ids[0], "--attempt", "3", "--registry"])
        .arg(&state));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("runner r0 (pid")
            && text(&out.stderr).contains("the agent was not started"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !host.pids().iter().any(|(_, attempt, _)| *attempt == 3),
        "{:?}",
        host.pids()
    );
}

/// Every event of attempt 1 was sent before the fencing window ended, and
/// none reports its end: the old attempt fell silent; attempt 2 ran.
fn assert_no_live_old_attempt(watch: &mut Lines, ids: &[String], killed: f64) {
    let seen = |watch: &Lines, id: &str| {
        watch.stdout.iter().any(|l| {
            l.contains(id) && l.contains("\"attempt\":2") && l.contains("\"event\":\"exited\"")
        })
    };
    let complete = wait_for(Duration::from_secs(20), || {
        watch.wait_line("\"exited\"", Duration::from_millis(200));
        ids.iter().all(|id| seen(watch, id)).then_some(())
    });
    assert!(
        complete.is_some(),
        "watch saw no end of attempt 2: {:?}",
        watch.stdout
    );
    let mut late = 0;
    for line in &watch.stdout {
        let event: serde_json::Value = serde_json::from_str(line).expect("json");
        if !ids.iter().any(|id| event["job"] == id.as_str()) || event["retained"] == true {
            continue;
        }
        if event["attempt"] == 1 {
            let ts = event["ts"].as_f64().expect("ts");
            late += usize::from(ts > killed);
            assert!(
                ts <= killed + FENCING_WINDOW.as_secs_f64(),
                "attempt 1 spoke {:.1} s after its runner died: {line}",
                ts - killed
            );
            assert_ne!(
                event["event"], "exited",
                "the old attempt reported an end: {line}"
            );
        }
    }
    eprintln!("events of attempt 1 sent after its runner died: {late}");
}

/// Every secret a log must never carry: the bundle's passwords and the
/// job's event key (from its record on the runner).
fn secrets(fleet: &Fleet, id: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&fleet.bundle).expect("bundle").flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "pass" || e == "key") {
            found.push(
                std::fs::read_to_string(&path)
                    .expect("secret")
                    .trim()
                    .to_owned(),
            );
        }
    }
    let record = fleet.hosts[0]
        .home
        .join("state/jobs")
        .join(id)
        .join("record.json");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).expect("record")).expect("json");
    found.push(record["event_key"].as_str().expect("event key").to_owned());
    assert!(found.len() >= 4, "{found:?}");
    assert!(found.iter().all(|s| s.len() >= 16), "{found:?}");
    found
}

#[test]
fn a_fourth_host_reads_and_follows_a_jobs_log_without_its_secrets() {
    let mut fleet = Fleet::new(1);
    fleet.hosts[0].start(2);
    let observer = fleet.client_host("observer", "submitter", true);
    let out = run(td(&fleet.submitter, &[]).args(["submit", "--prompt", "3", "--agent", "chatty"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_owned();
    wait_state(&observer, &id, "running", 1);

    // --follow: new history lines as the job goes, then its last pane.
    let mut follow = Lines::spawn(td(&observer, &[]).args(["logs", &id, "--follow"]));
    let status = follow.finish(Duration::from_secs(90));
    assert_eq!(status.code(), Some(0), "{:?}", follow.stderr);
    let followed = follow.stdout.join("\n");
    eprintln!("logs --follow from the fourth host:\n{followed}");
    assert!(followed.starts_with(&format!("job {id} (")), "{followed}");
    assert!(followed.contains("-> running"), "{followed}");
    assert!(followed.contains("-> completed"), "{followed}");
    assert!(followed.contains("event       exited"), "{followed}");
    let pane_at = followed
        .find("--- pane of attempt 1 (runner r0) ---")
        .unwrap_or_else(|| panic!("no pane: {followed}"));
    let pane = &followed[pane_at..];
    assert!(
        pane.contains(&format!("chatty says hello from {id}")),
        "{pane}"
    );
    assert!(pane.contains("password set: yes"), "{pane}");
    assert!(pane.contains("chatty is done"), "{pane}");
    // A line is printed once, however many versions of the log came.
    assert_eq!(followed.matches("-> completed").count(), 1, "{followed}");

    // Without --follow: the retained log as it stands.
    let out = run(td(&observer, &[]).args(["logs", &id]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.starts_with(&format!("job {id} ("))
            && shown.contains("completed at attempt 1 on runner r0"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("chatty says hello from {id}")),
        "{shown}"
    );
    for secret in secrets(&fleet, &id) {
        assert!(
            !shown.contains(&secret) && !followed.contains(&secret),
            "a secret in the log"
        );
    }

    // A job killed from here: its pane comes after the transition (the
    // agent is stopped first), in a second version of the log.
    let out =
        run(td(&fleet.submitter, &[]).args(["submit", "--prompt", "60", "--agent", "chatty"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let killed = text(&out.stdout).trim().to_owned();
    wait_state(&observer, &killed, "running", 1);
    let out = run(td(&observer, &[]).args(["kill", &killed]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let log = wait_for(Duration::from_secs(60), || {
        let out = run(td(&observer, &[]).args(["logs", &killed]));
        let shown = text(&out.stdout);
        shown.contains("--- pane of attempt 1").then_some(shown)
    })
    .unwrap_or_else(|| {
        panic!(
            "no pane for the killed job: {}",
            text(&run(td(&observer, &[]).args(["logs", &killed])).stdout)
        )
    });
    assert!(log.contains("-> cancelled"), "{log}");
    assert!(
        log.contains(&format!("chatty says hello from {killed}")),
        "{log}"
    );

    // The worker's credential may not read logs; an unknown id has none.
    let intruder = fleet.client_host("intruder", "claude-worker", true);
    let out = run(td(&intruder, &[]).args(["logs", &id]));
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(!text(&out.stdout).contains("chatty says hello"));
    let out = run(td(&observer, &[]).args(["logs", "j-nothing-here"]));
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("no log of it in the fleet"),
        "{}",
        text(&out.stderr)
    );
}

/// Reports like the Claude Code template's hooks (its conversation and
/// transcript at the start, its answer with `completed`); at attempt 1 it
/// first reads a line mid-turn, then waits at its prompt for another. Like
/// Claude Code, it writes its answer's transcript line after its last hook
/// (here: when the supervisor stops it).
fn asking_agent(home: &std::path::Path) -> String {
    format!(
        r#"printf '%s\n' "attempt $DELEGATE_ATTEMPT: $*" >> {argv}
transcript="$PWD/transcript-$DELEGATE_ATTEMPT.jsonl"
usage() {{ printf '{{"type":"assistant","message":{{"id":"%s","model":"t","usage":{{"input_tokens":%s,"output_tokens":%s}}}}}}\n' "$1" "$2" "$3" >> "$transcript"; }}
usage m1 100 10
printf '{{"session_id":"conv-f","transcript_path":"%s"}}' "$transcript" |
  "$TMUX_DELEGATE_BIN" publish --event started --data-field session_id --data-field transcript_path
if [ "$DELEGATE_ATTEMPT" = 1 ]; then
  IFS= read -r first; printf '%s\n' "$first" >> {heard}
  "$TMUX_DELEGATE_BIN" publish --event waiting --message 'Which file next?'
  IFS= read -r answer; printf '%s\n' "$answer" >> {heard}
fi
trap 'usage m2 7 3; exit 0' TERM
printf '{{"last_assistant_message":"done with attempt %s"}}' "$DELEGATE_ATTEMPT" |
  "$TMUX_DELEGATE_BIN" publish --event completed --message done --data-field last_assistant_message
sleep 30 & wait
"#,
        argv = home.join("argv.log").display(),
        heard = home.join("heard.txt").display()
    )
}

/// `send` to a fleet job from the submitter's host goes to its runner as a
/// signed control and is judged there by `send`'s rules: refused mid-turn
/// (exit 2, the runner's reason), typed with `--now` and at the prompt,
/// byte for byte; keys without a dialog refused. The completed job's
/// result, conversation and tokens (its last transcript line included) are
/// in its fleet state; a follow-up continues its conversation on its runner.
#[test]
fn send_reaches_a_fleet_jobs_agent_through_its_runner_and_follows_it_up_there() {
    let mut fleet = Fleet::new(1);
    let body = asking_agent(&fleet.hosts[0].home);
    fleet.hosts[0].conversing_agent("asks", &body);
    fleet.hosts[0].start(2);
    let id = fleet.submit_one("asks", "p");
    wait_state(&fleet.submitter, &id, "running", 1);

    let (code, err) = fleet.on_submitter(&["send", &id, "too soon"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("mid-turn") && err.contains("--now") && err.contains("(runner r0)"),
        "{err}"
    );
    let pwned = fleet.dir.path().join("pwned");
    let first = format!("-z it's $(touch {}) `id` \"q\" C-c", pwned.display());
    let (code, err) = fleet.on_submitter(&["send", &id, &first, "--now"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("went to its window (attempt 1) (runner r0)"),
        "{err}"
    );
    wait_state(&fleet.submitter, &id, "waiting", 1);
    let (code, err) = fleet.on_submitter(&["send", &id, "--keys", "Enter"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no dialog"), "{err}");
    let (code, err) = fleet.on_submitter(&["send", &id, "src/parser.rs"]);
    assert_eq!(code, Some(0), "{err}");
    wait_state(&fleet.submitter, &id, "completed", 1);
    assert_eq!(
        fleet.hosts[0].lines_of("heard.txt"),
        [first.as_str(), "src/parser.rs"]
    );
    assert!(!pwned.exists(), "the text went through a shell");

    // The fleet state has what the runner's record has, also the tokens
    // of the line written after the last hook (counted when the window
    // closed).
    let done = wait_for(Duration::from_secs(20), || {
        fleet_state(&fleet.submitter, &id).filter(|s| s["usage"]["input_tokens"] == 107)
    })
    .unwrap_or_else(|| panic!("{:?}", fleet_state(&fleet.submitter, &id)));
    assert_eq!(done["result"], "done with attempt 1", "{done}");
    assert_eq!(done["session"]["id"], "conv-f", "{done}");
    assert_eq!(done["usage"]["output_tokens"], 13, "{done}");
    assert!(
        done["session"]["transcript"]
            .as_str()
            .is_some_and(|t| t.ends_with("transcript-1.jsonl")),
        "{done}"
    );

    // On the runner's own host the follow-up is not started behind the
    // runner's back.
    let (code, _, err) = finish(
        fleet.hosts[0].td(&[]).args(["send", &id, "x"]),
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is a fleet job of runner r0"), "{err}");

    let (code, err) = fleet.on_submitter(&["send", &id, "and now the tests"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("attempt 2 follows up in its conversation (runner r0)"),
        "{err}"
    );
    let again = wait_state(&fleet.submitter, &id, "completed", 2);
    assert_eq!(again["runner"], "r0", "{again}");
    assert_eq!(
        fleet.hosts[0].lines_of("argv.log"),
        [
            "attempt 1: -- p",
            "attempt 2: --resume conv-f -- and now the tests"
        ]
    );
    let record = fleet.hosts[0].record(&id);
    assert_eq!(
        record["attempts"][1]["continued_from"], "conv-f",
        "{record}"
    );
    let summed = wait_for(Duration::from_secs(20), || {
        fleet_state(&fleet.submitter, &id).filter(|s| s["usage"]["input_tokens"] == 214)
    });
    assert!(
        summed.is_some(),
        "{:?}\nrunner's record: {}",
        fleet_state(&fleet.submitter, &id),
        fleet.hosts[0].record(&id)
    );
}

/// Names a conversation per attempt; attempt 1 runs until its host dies.
fn resumable_agent(home: &std::path::Path) -> String {
    format!(
        r#"printf '%s\n' "attempt $DELEGATE_ATTEMPT: $*" >> {argv}
printf '{{"session_id":"conv-%s"}}' "$DELEGATE_ATTEMPT" |
  "$TMUX_DELEGATE_BIN" publish --event started --data-field session_id
[ "$DELEGATE_ATTEMPT" = 1 ] && exec sleep 600
"$TMUX_DELEGATE_BIN" publish --event completed --message done
exec sleep 30
"#,
        argv = home.join("argv.log").display()
    )
}

/// The conversation lives on the runner that ran it: after a failover the
/// new runner's attempt starts a new one and says why (in its pane, so in
/// the job's log on the submitter, and in its record's `attempts[]`); a
/// follow-up then goes to the new runner and continues the conversation
/// that attempt started there.
#[test]
fn a_failed_over_attempt_starts_a_new_conversation_and_says_why() {
    let mut fleet = Fleet::new(2);
    for host in &fleet.hosts {
        let body = resumable_agent(&host.home);
        host.conversing_agent("resumable", &body);
    }
    fleet.hosts[1].fleet_setting("failover_after = \"1s\"");
    fleet.hosts[0].start(2);
    let id = fleet.submit_one("resumable", "p");
    let running = wait_state(&fleet.submitter, &id, "running", 1);
    assert_eq!(running["runner"], "r0", "{running}");
    assert!(
        wait_for(Duration::from_secs(10), || fleet.hosts[0].record(&id)
            ["attempts"][0]["session"]["id"]
            .as_str()
            .map(str::to_owned))
        .is_some_and(|s| s == "conv-1")
    );
    fleet.hosts[1].start(2);
    // r0's host dies: its runner and its tmux server with the agent.
    fleet.hosts[0]
        .runner
        .as_mut()
        .expect("r0")
        .guard
        .child()
        .kill()
        .expect("SIGKILL r0");
    let _ = fleet.hosts[0].tmux.command(&["kill-server"]).output();

    let done = wait_state(&fleet.submitter, &id, "completed", 2);
    assert_eq!(done["runner"], "r1", "{done}");
    assert_eq!(done["session"]["id"], "conv-2", "{done}");
    assert_eq!(fleet.hosts[1].lines_of("argv.log"), ["attempt 2: -- p"]);
    let why = "attempt 1 did not run on this host: no conversation to continue";
    let record = fleet.hosts[1].record(&id);
    let attempts = record["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1, "{record}");
    assert_eq!(attempts[0]["number"], 2, "{record}");
    assert_eq!(attempts[0]["fresh_because"], why, "{record}");
    assert!(attempts[0]["continued_from"].is_null(), "{record}");
    let said = format!("[tmux-delegate] attempt 2 starts a new conversation: {why}");
    let log = wait_for(Duration::from_secs(30), || {
        let out = run(td(&fleet.submitter, &[]).args(["logs", &id]));
        let shown = text(&out.stdout);
        shown.contains("--- pane of attempt 2").then_some(shown)
    })
    .expect("the log of attempt 2 has its pane");
    assert!(log.contains(&said), "{log}");

    let (code, err) = fleet.on_submitter(&["send", &id, "go on"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("attempt 3 follows up in its conversation (runner r1)"),
        "{err}"
    );
    wait_state(&fleet.submitter, &id, "completed", 3);
    assert_eq!(
        fleet.hosts[1].lines_of("argv.log"),
        ["attempt 2: -- p", "attempt 3: --resume conv-2 -- go on"]
    );
}
