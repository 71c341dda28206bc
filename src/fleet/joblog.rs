//! A fleet job's log for `logs ID` on any host (SPEC section 13): its
//! runner publishes it retained on `<prefix>/jobs/<id>/log` at each
//! transition — the job's history as `logs` prints it on the runner, and
//! once the attempt ended the last capture of its pane (which the window's
//! wrapper saved). Nothing else of the job's record is in it: no
//! environment, no broker settings, no event key.

use super::submit::fleet_broker;
use super::topics;
use crate::config::{BrokerSettings, Config};
use crate::error::{config_error, Exit, Failure};
use crate::model::{FleetState, JobId};
use crate::mqtt::client::{Message, Subscriber};
use crate::mqtt::connect::ConnectOptions;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The most of a pane, and of a history, a log carries (the last part):
/// the part of a pane the registry keeps.
pub const LOG_LIMIT: usize = crate::registry::PANE_LIMIT;

/// How long `logs --follow` waits, after the job ended, for the pane.
const PANE_WAIT: Duration = Duration::from_secs(15);

/// The retained log of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobLog {
    pub job: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub state: FleetState,
    pub attempt: u32,
    pub runner: String,
    pub ts: f64,
    /// History lines dropped from the front to keep within `LOG_LIMIT`.
    #[serde(default)]
    pub omitted: usize,
    /// The history on the runner that holds the job, as `logs` prints it.
    pub lines: Vec<String>,
    /// The attempt's last pane capture, once the attempt ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pane: Option<String>,
}

impl JobLog {
    pub fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }

    fn heading(&self) -> String {
        format!(
            "job {} ({}), agent {}, {} at attempt {} on runner {}",
            self.job,
            self.name,
            self.agent.as_deref().unwrap_or("-"),
            self.state,
            self.attempt,
            self.runner
        )
    }

    /// Index (over the whole history) of the first line it carries.
    fn first(&self) -> usize {
        self.omitted
    }
}

/// The last `LOG_LIMIT` bytes of `lines`: how many were dropped, and the rest.
pub fn keep_last(lines: Vec<String>) -> (usize, Vec<String>) {
    let mut size = 0;
    let kept = lines
        .iter()
        .rev()
        .take_while(|l| {
            size += l.len() + 1;
            size <= LOG_LIMIT
        })
        .count();
    let omitted = lines.len() - kept;
    (omitted, lines.into_iter().skip(omitted).collect())
}

/// `logs ID [--follow]` for a job this host's registry does not have.
pub async fn show(config: &Config, id: &str, follow: bool) -> anyhow::Result<Exit> {
    let broker = fleet_broker(config)?;
    let job = JobId::parse(id)?;
    let topic = topics::log_topic(&broker.topic_prefix, &job);
    let mut subscriber = Subscriber::connect(
        &broker,
        &ConnectOptions::new("fleet-logs"),
        vec![topic.clone()],
    )
    .await?;
    let first = match retained(&mut subscriber, &broker).await {
        Some(log) => Some(log),
        None => match super::remote::one_state(&broker, &job).await {
            Ok(state) if follow && !state.is_terminal() => {
                // Submitted, not started yet: its runner publishes the log then.
                eprintln!("job {job} is {}; waiting for its log", state.state);
                first_log(&mut subscriber).await
            }
            Ok(state) => {
                print_state_only(&state);
                None
            }
            Err(_) => {
                subscriber.disconnect().await;
                return Err(no_log(&job, &topic).into());
            }
        },
    };
    let Some(log) = first else {
        subscriber.disconnect().await;
        return Ok(Exit::Success);
    };
    println!("{}", log.heading());
    let mut printer = Printer::default();
    printer.lines(&log);
    if follow {
        let last = follow_log(&mut subscriber, &mut printer, log).await;
        subscriber.disconnect().await;
        printer.pane(&last);
        return Ok(Exit::Success);
    }
    subscriber.disconnect().await;
    printer.pane(&log);
    Ok(Exit::Success)
}

/// The retained log of a fleet job (the MCP server's `logs`): `None` for a
/// job the fleet knows that no runner started yet; an error for one it
/// does not know.
pub async fn fetch(config: &Config, id: &str) -> anyhow::Result<Option<JobLog>> {
    let broker = fleet_broker(config)?;
    let job = JobId::parse(id)?;
    let topic = topics::log_topic(&broker.topic_prefix, &job);
    let mut subscriber = Subscriber::connect(
        &broker,
        &ConnectOptions::new("fleet-logs"),
        vec![topic.clone()],
    )
    .await?;
    let log = retained(&mut subscriber, &broker).await;
    subscriber.disconnect().await;
    if log.is_none() && super::remote::one_state(&broker, &job).await.is_err() {
        return Err(no_log(&job, &topic).into());
    }
    Ok(log)
}

/// A job with a state and no log (refused, or not started yet).
fn print_state_only(state: &super::message::JobStatus) {
    println!(
        "job {} ({}), agent {}, {} at attempt {}",
        state.job,
        state.name,
        state.agent.as_deref().unwrap_or("-"),
        state.state,
        state.attempt
    );
    if let Some(reason) = &state.reason {
        println!("  ({reason})");
    }
    println!("--- no log: no runner has started the job ---");
}

fn no_log(job: &JobId, topic: &str) -> Failure {
    config_error(format!(
        "no job {job} here, and no log of it in the fleet (nothing retained on {topic})"
    ))
    .help("check the id with `tmux-delegate status`; a runner publishes a job's log once it claimed the job")
}

/// The retained log, if the broker has one: it comes within a round trip
/// of the subscription.
async fn retained(subscriber: &mut Subscriber, broker: &BrokerSettings) -> Option<JobLog> {
    let wait = broker.connect_timeout.min(Duration::from_secs(2));
    let message = tokio::time::timeout(wait, subscriber.next()).await.ok()?;
    decode(&message)
}

/// The first log that comes (Ctrl-C: none).
async fn first_log(subscriber: &mut Subscriber) -> Option<JobLog> {
    loop {
        tokio::select! {
            message = subscriber.next() => {
                if let Some(log) = decode(&message) {
                    return Some(log);
                }
            }
            _ = tokio::signal::ctrl_c() => return None,
        }
    }
}

fn decode(message: &Message) -> Option<JobLog> {
    serde_json::from_slice(&message.payload).ok()
}

/// Prints each newer version of the log's new lines until the job ended
/// (and its pane came, or `PANE_WAIT` passed). Returns the last version.
async fn follow_log(subscriber: &mut Subscriber, printer: &mut Printer, mut log: JobLog) -> JobLog {
    let mut ended_at = log.is_terminal().then(tokio::time::Instant::now);
    loop {
        if log.pane.is_some() && log.is_terminal() {
            return log;
        }
        let next = match ended_at {
            Some(at) => tokio::time::timeout_at(at + PANE_WAIT, subscriber.next()).await,
            None => tokio::select! {
                message = subscriber.next() => Ok(message),
                _ = tokio::signal::ctrl_c() => return log,
            },
        };
        let Ok(message) = next else {
            return log;
        };
        let Some(newer) = decode(&message) else {
            continue;
        };
        if newer.attempt != log.attempt || newer.state != log.state {
            println!("{}", newer.heading());
        }
        printer.lines(&newer);
        if newer.is_terminal() && ended_at.is_none() {
            ended_at = Some(tokio::time::Instant::now());
        }
        log = newer;
    }
}

/// What of the history was printed already.
#[derive(Default)]
struct Printer {
    /// Index of the next history line to print.
    shown: usize,
    runner: Option<String>,
}

impl Printer {
    fn lines(&mut self, log: &JobLog) {
        for line in self.new_lines(log) {
            println!("{line}");
        }
    }

    /// The lines of `log` not printed yet (after what earlier versions of
    /// the log showed).
    fn new_lines(&mut self, log: &JobLog) -> Vec<String> {
        // Another runner's history (after a failover) starts afresh.
        if self.runner.as_deref() != Some(log.runner.as_str()) {
            self.runner = Some(log.runner.clone());
            self.shown = 0;
        }
        let mut lines = Vec::new();
        if log.first() > self.shown {
            lines.push(format!(
                "... {} line(s) not kept ...",
                log.first() - self.shown
            ));
            self.shown = log.first();
        }
        lines.extend(log.lines.iter().skip(self.shown - log.first()).cloned());
        self.shown = self.shown.max(log.first() + log.lines.len());
        lines
    }

    fn pane(&self, log: &JobLog) {
        match &log.pane {
            Some(pane) => {
                println!(
                    "--- pane of attempt {} (runner {}) ---",
                    log.attempt, log.runner
                );
                println!("{}", pane.trim_end_matches('\n'));
            }
            None if log.is_terminal() => {
                println!("--- no pane capture of attempt {} ---", log.attempt);
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(runner: &str, omitted: usize, lines: &[&str]) -> JobLog {
        JobLog {
            job: "j-1".into(),
            name: "j".into(),
            agent: None,
            state: FleetState::Job(crate::model::JobState::Running),
            attempt: 1,
            runner: runner.into(),
            ts: 1.0,
            omitted,
            lines: lines.iter().map(|l| (*l).to_owned()).collect(),
            pane: None,
        }
    }

    #[test]
    fn following_prints_each_line_once() {
        let mut printer = Printer::default();
        assert_eq!(printer.new_lines(&log("r0", 0, &["a", "b"])), ["a", "b"]);
        assert_eq!(printer.new_lines(&log("r0", 0, &["a", "b", "c"])), ["c"]);
        // The front was dropped to keep within the limit.
        assert_eq!(printer.new_lines(&log("r0", 2, &["c", "d"])), ["d"]);
        assert_eq!(
            printer.new_lines(&log("r0", 6, &["g"])),
            ["... 2 line(s) not kept ...", "g"]
        );
        assert!(printer.new_lines(&log("r0", 6, &["g"])).is_empty());
        // After a failover, the new runner's history from its start.
        assert_eq!(printer.new_lines(&log("r1", 0, &["x"])), ["x"]);
    }

    #[test]
    fn logs_keep_their_last_part() {
        let lines: Vec<String> = (0..10_000).map(|i| format!("line {i:05}")).collect();
        let (omitted, kept) = keep_last(lines.clone());
        assert_eq!(omitted + kept.len(), lines.len());
        assert!(kept.iter().map(|l| l.len() + 1).sum::<usize>() <= LOG_LIMIT);
        assert_eq!(kept.last(), lines.last());
        assert_eq!(keep_last(vec!["a".into()]), (0, vec!["a".to_owned()]));
    }
}
