//! `status [ID] [--json]`: every job with its state, attempt and last event.
//! A corrupt record is reported on stderr and skipped.

use crate::cli::StatusArgs;
use crate::config::Env;
use crate::error::Exit;
use crate::registry::{Record, Registry};

pub fn run(args: &StatusArgs) -> anyhow::Result<Exit> {
    let env = Env::from_process()?;
    let registry = Registry::open(&env)?;
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
        let rows: Vec<_> = records.iter().map(Record::summary).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if records.is_empty() {
        eprintln!("no jobs in {}", registry.root().display());
    } else {
        print_table(&records);
    }
    Ok(Exit::Success)
}

fn print_table(records: &[Record]) {
    let rows: Vec<[String; 6]> = records
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.spec.name.clone(),
                r.spec.agent.clone(),
                r.state.as_str().to_owned(),
                format!("{}/{}", r.attempt, r.spec.retry.max_attempts),
                r.last_event
                    .as_ref()
                    .map(|e| match &e.message {
                        Some(m) => format!("{} {m:?}", e.event),
                        None => e.event.to_string(),
                    })
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["ID", "NAME", "AGENT", "STATE", "ATTEMPT", "LAST EVENT"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]]);
    }
}
