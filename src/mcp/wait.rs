//! `wait` and `status`: the jobs' `status --json` rows, local ones from
//! the registry, fleet ones from their retained states. `wait` returns
//! once every job is finished or its timeout passed, never later.

use super::params::WaitParams;
use super::place::{row, Place};
use super::progress::Progress;
use crate::error::config_error;
use crate::fleet::remote::{self, StateWatch};
use crate::model::{FleetState, JobId};
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// `wait`'s timeout when the call gives none, and the most it may ask.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// The most jobs one `wait` follows.
const MAX_IDS: usize = 200;
/// How often the registry is read again for local jobs.
const POLL: Duration = Duration::from_millis(250);
/// A progress notification at least this often, changes or not.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// `status {id?}`: one row, or every job's (the fleet's, on a fleet host
/// with no local jobs, as `status` decides).
pub async fn status(id: Option<&str>) -> anyhow::Result<Value> {
    if let Some(id) = id {
        return row(&Place::of(id)?).await;
    }
    if let Some(config) = remote::status_config(false, None)? {
        return Ok(serde_json::to_value(remote::rows(&config, None).await?)?);
    }
    let env = crate::config::Env::from_process()?;
    let registry = crate::registry::Registry::open(&env)?;
    let (records, corrupt) = registry.list()?;
    for bad in corrupt {
        tracing::warn!("skipping job {}: {}", bad.id, bad.problem);
    }
    Ok(Value::Array(
        records
            .iter()
            .map(crate::workspace::inspect::status_row)
            .collect(),
    ))
}

/// The timeout a call asked for, checked.
fn timeout_of(asked: Option<f64>) -> anyhow::Result<Duration> {
    match asked {
        None => Ok(DEFAULT_TIMEOUT),
        Some(secs) if secs.is_finite() && (0.0..=MAX_TIMEOUT.as_secs_f64()).contains(&secs) => {
            Ok(Duration::from_secs_f64(secs))
        }
        Some(secs) => Err(config_error(format!(
            "timeout_s {secs} is out of range: it is 0 to {} seconds",
            MAX_TIMEOUT.as_secs()
        ))
        .help("wait again after it returns to wait longer")
        .into()),
    }
}

/// One job being waited for, and its row as last read.
struct Waited {
    place: Place,
    row: Value,
}

impl Waited {
    fn state(&self) -> Option<FleetState> {
        self.row["state"].as_str().and_then(FleetState::parse)
    }

    fn finished(&self) -> bool {
        self.state().is_some_and(FleetState::is_terminal)
    }
}

pub async fn wait(params: WaitParams, progress: Option<&Progress>) -> anyhow::Result<Value> {
    let timeout = timeout_of(params.timeout_s)?;
    let deadline = Instant::now() + timeout;
    if params.ids.is_empty() || params.ids.len() > MAX_IDS {
        return Err(config_error(format!(
            "wait takes 1 to {MAX_IDS} ids; {} given",
            params.ids.len()
        ))
        .help("give the ids `run` returned")
        .into());
    }
    let mut jobs = Vec::new();
    for id in &params.ids {
        let place = Place::of(id)?;
        let row = row(&place).await?;
        jobs.push(Waited { place, row });
    }
    let mut watch = fleet_watch(&jobs).await?;
    let mut told = (String::new(), Instant::now());
    loop {
        let done = jobs.iter().all(Waited::finished)
            || (params.return_when_waiting
                && jobs
                    .iter()
                    .any(|j| j.state() == Some(crate::model::JobState::Waiting.into())));
        let now = Instant::now();
        if let Some(progress) = progress {
            let summary = summary(&jobs);
            if summary != told.0 || now >= told.1 + HEARTBEAT {
                progress.tell(timeout.as_secs_f64(), summary.clone()).await;
                told = (summary, now);
            }
        }
        if done || now >= deadline {
            break;
        }
        let next = deadline.min(now + POLL);
        match &mut watch {
            Some(watch) => watch.next_before(next).await,
            None => tokio::time::sleep_until(next).await,
        }
        refresh(&mut jobs, watch.as_ref())?;
    }
    if let Some(watch) = watch {
        watch.close().await;
    }
    Ok(Value::Array(jobs.into_iter().map(|j| j.row).collect()))
}

/// One subscription to the fleet jobs' states, when there are any.
async fn fleet_watch(jobs: &[Waited]) -> anyhow::Result<Option<StateWatch>> {
    let mut config = None;
    let mut ids: Vec<JobId> = Vec::new();
    for job in jobs {
        if let Place::Fleet { config: c, job } = &job.place {
            config.get_or_insert(c);
            ids.push(job.clone());
        }
    }
    match config {
        Some(config) => Ok(Some(StateWatch::start(config, &ids).await?)),
        None => Ok(None),
    }
}

/// The rows read again: local ones from the registry, fleet ones as the
/// watch last heard them.
fn refresh(jobs: &mut [Waited], watch: Option<&StateWatch>) -> anyhow::Result<()> {
    for waited in jobs.iter_mut() {
        match &waited.place {
            Place::Local { registry, job, .. } => {
                waited.row = crate::workspace::inspect::status_row(&registry.load(job)?);
            }
            Place::Fleet { job, .. } => {
                if let Some(row) = watch.and_then(|w| w.row(job)) {
                    waited.row = serde_json::to_value(row)?;
                }
            }
        }
    }
    Ok(())
}

/// "1 of 3 finished: fix-a completed, fix-b running, fix-c waiting".
fn summary(jobs: &[Waited]) -> String {
    let finished = jobs.iter().filter(|j| j.finished()).count();
    let states: Vec<String> = jobs
        .iter()
        .map(|j| {
            format!(
                "{} {}",
                j.row["name"].as_str().unwrap_or_default(),
                j.state().map_or("unknown", FleetState::as_str)
            )
        })
        .collect();
    format!(
        "{finished} of {} finished: {}",
        jobs.len(),
        states.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_is_600_s_unless_asked_and_never_above_an_hour() {
        assert_eq!(timeout_of(None).expect("default"), DEFAULT_TIMEOUT);
        assert_eq!(
            timeout_of(Some(1.5)).expect("asked"),
            Duration::from_millis(1500)
        );
        assert_eq!(timeout_of(Some(0.0)).expect("a look"), Duration::ZERO);
        for bad in [3600.5, -1.0, f64::NAN, f64::INFINITY] {
            let error = timeout_of(Some(bad)).expect_err("out of range");
            assert!(
                crate::error::render(&error).contains("0 to 3600 seconds"),
                "{bad}"
            );
        }
    }
}
