//! `status [ID] [--json]`: every job with its state, attempt and last event.
//! A corrupt record is reported on stderr and skipped. Fleet jobs
//! (`--fleet`, or on a fleet host without the job) come from the broker.

use crate::cli::StatusArgs;
use crate::config::Env;
use crate::error::Exit;
use crate::fleet::remote;
use crate::registry::{Record, Registry};
use crate::ui::table::Grid;

pub async fn run(args: &StatusArgs) -> anyhow::Result<Exit> {
    if !args.tmux {
        if let Some(config) = remote::status_config(args.fleet, args.id.as_deref())? {
            return remote::status(&config, args.id.as_deref(), args.json).await;
        }
    }
    local(args)
}

/// The jobs of this host's registry.
fn local(args: &StatusArgs) -> anyhow::Result<Exit> {
    let env = Env::from_process()?;
    let registry = Registry::open(&env)?;
    if args.tmux {
        // Run by tmux every status-interval: counts only, never an error
        // line in the status bar.
        let line = crate::ui::summary::line(crate::ui::summary::states(registry.root()));
        if !line.is_empty() {
            println!("{line}");
        }
        return Ok(Exit::Success);
    }
    if let Some(warning) = registry.space_warning() {
        eprintln!("warning: {warning}");
    }
    let records = match &args.id {
        Some(id) => vec![registry.find(id)?.1],
        None => {
            let (records, corrupt) = registry.list()?;
            for bad in corrupt {
                eprintln!("warning: skipping job {}: {}", bad.id, bad.problem);
            }
            records
        }
    };
    if args.json {
        let rows: Vec<_> = records
            .iter()
            .map(crate::workspace::inspect::status_row)
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if records.is_empty() {
        eprintln!("no jobs in {}", registry.root().display());
        if broker_configured(&env) {
            eprintln!("help: a broker is configured: `tmux-delegate status --fleet` lists the fleet's jobs");
        }
    } else {
        print_table(&records);
    }
    Ok(Exit::Success)
}

/// Whether this host names a broker (env or config): the jobs may be in
/// the fleet. A config that does not load names none here (`status` must
/// not fail on it).
fn broker_configured(env: &Env) -> bool {
    crate::config::Config::load(env.clone())
        .is_ok_and(|config| matches!(config.observer_broker(), Ok(Some(_))))
}

/// The most of a last event's text the table shows, piped too (a terminal
/// cuts the table to its width anyway): `--json` and `logs` have it whole.
const LAST_EVENT_MAX: usize = 240;

fn print_table(records: &[Record]) {
    let mut grid = Grid::new(&[
        "ID",
        "NAME",
        "AGENT",
        "STATE",
        "ATTEMPT",
        "TOKENS",
        "LAST EVENT",
    ]);
    for r in records {
        grid.push(vec![
            r.id.clone(),
            r.spec.name.clone(),
            r.spec.agent.clone(),
            r.state.as_str().to_owned(),
            format!("{}/{}", r.attempt, r.spec.retry.max_attempts),
            crate::ui::tokens(r),
            // A waiting job's question comes first, wherever it came from.
            r.question()
                .map(|question| format!("asks: {question:?}"))
                .or_else(|| r.limited_note())
                .or_else(|| {
                    r.last_event.as_ref().map(|e| match &e.message {
                        Some(m) => format!("{} {m:?}", e.event),
                        None => e.event.to_string(),
                    })
                })
                // A skipped job has no event: its reason instead.
                .or_else(|| r.failure.as_ref().map(|f| f.reason.clone()))
                .map(|text| crate::ui::table::cut_str(&text, LAST_EVENT_MAX))
                .unwrap_or_default(),
        ]);
    }
    grid.print();
}
