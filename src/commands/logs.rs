//! `logs ID [--follow]`: a job's event and transition history, then the
//! last capture of its current window's pane.

use crate::cli::LogsArgs;
use crate::config::Env;
use crate::error::Exit;
use crate::registry::{Record, Registry};
use crate::tmux::job_window::pane_lines;
use crate::ui::history::describe;
use std::time::Duration;

pub async fn run(args: LogsArgs) -> anyhow::Result<Exit> {
    if let Some(config) = crate::fleet::remote::job_config(&args.id)? {
        return crate::fleet::joblog::show(&config, &args.id, args.follow).await;
    }
    let env = Env::from_process()?;
    let registry = Registry::open(&env)?;
    let (job, record) = registry.find(&args.id)?;
    println!(
        "job {} ({}), agent {}, {} at attempt {}",
        record.id,
        record.spec.name,
        record.spec.agent,
        record.state.as_str(),
        record.attempt
    );
    print_work(&record);
    let mut shown = 0;
    for entry in registry.history(&job)? {
        println!("{}", describe(&entry));
        shown += 1;
    }
    if !args.follow {
        print_pane(&record).await;
        return Ok(Exit::Success);
    }
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(Exit::Interrupted),
        }
        let entries = registry.history(&job)?;
        for entry in entries.iter().skip(shown) {
            println!("{}", describe(entry));
        }
        shown = entries.len();
        let record = registry.load(&job)?;
        if record.state.is_finished() {
            print_pane(&record).await;
            return Ok(Exit::Success);
        }
    }
}

/// The job's conversation, tokens and answer (SPEC section 14), when known.
fn print_work(record: &Record) {
    let work = crate::model::Work::of(&record.attempts);
    if let Some(session) = &work.session {
        match &session.transcript {
            Some(path) => println!("session {} (transcript {path})", session.id),
            None => println!("session {}", session.id),
        }
    }
    if let Some(usage) = work.usage {
        println!(
            "tokens: {} in, {} out, {} cache read, {} cache written",
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_input_tokens,
            usage.cache_creation_input_tokens
        );
    }
    if let Some(result) = &work.result {
        println!("result:\n{result}");
    }
}

async fn print_pane(record: &Record) {
    for line in pane_lines(record).await {
        println!("{line}");
    }
}
