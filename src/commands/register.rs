//! `register --prompt TEXT [JOB.toml]`: store a job record (with the worker's
//! broker block and a fresh event key) and print its id, like the original
//! `registry.py register --prompt`.

use crate::cli::RegisterArgs;
use crate::config::job::{load_job_file, JobFlags};
use crate::config::{Config, Env};
use crate::error::{config_error, Exit};
use crate::mqtt::sign::EventKey;
use crate::registry::{new_job_id, now_rfc3339, JobState, Record, Registry, RECORD_VERSION};

pub fn run(args: RegisterArgs) -> anyhow::Result<Exit> {
    let env = Env::from_process()?;
    let config = Config::load(env)?;
    let flags = JobFlags::from(args.job);
    let spec_file = match &args.spec {
        Some(path) => {
            let mut jobs = load_job_file(path)?;
            if jobs.len() != 1 {
                return Err(config_error(format!(
                    "{} holds {} jobs; `register` takes one",
                    path.display(),
                    jobs.len()
                ))
                .help("use `tmux-delegate run` for a [[jobs]] list")
                .into());
            }
            Some((path.as_path(), jobs.remove(0)))
        }
        None => None,
    };
    let spec = config.resolve_job(spec_file, &flags)?;
    if spec.prompt.trim().is_empty() {
        return Err(config_error("a job needs a prompt")
            .help("pass --prompt TEXT, or set `prompt` in the job spec")
            .into());
    }
    let broker = config.worker_broker()?;
    let registry = Registry::open(&config.env)?;
    let id = new_job_id(&spec.name);
    let now = now_rfc3339();
    let record = Record {
        version: RECORD_VERSION,
        id: id.to_string(),
        spec,
        broker,
        event_key: EventKey::generate().to_hex(),
        state: JobState::Pending,
        attempt: 1,
        created: now.clone(),
        updated: now,
        last_event: None,
        failure: None,
        attempts: Vec::new(),
        pass_env: std::collections::BTreeMap::new(),
        supervised: false,
        agent: None,
        supervisor_pid: None,
        cancel_requested: false,
        resume: None,
        workspace: None,
        queue: None,
    };
    registry.create(&record)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "id": record.id,
                "name": record.spec.name,
                "agent": record.spec.agent,
                "topic": record.broker.as_ref().map(|b| crate::mqtt::topic::events_topic(&b.topic_prefix, &id)),
                "record": registry.job_dir(&id).join("record.json"),
            })
        );
    } else {
        println!("{id}");
    }
    Ok(Exit::Success)
}
