//! tmux-delegate: parse the command line, run the command, exit with its code.
//! This is the only place that calls `process::exit`.

mod agents;
mod broker;
mod cli;
mod commands;
mod config;
mod error;
mod mqtt;
mod proc;
mod registry;
mod supervisor;
mod tmux;
mod worker;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(error::Exit::JobFailed.code());
        }
    };
    match runtime.block_on(commands::dispatch(cli.command)) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            eprintln!("{}", error::render(&e));
            ExitCode::from(error::exit_of(&e).code())
        }
    }
}

/// rumqttd logs ~5 lines per connection and a spurious ERROR on every
/// normal disconnect: silent unless asked for with -vv.
fn embedded_broker_logs(verbose: u8) -> &'static str {
    if verbose >= 2 {
        "rumqttd=info"
    } else {
        "rumqttd=off"
    }
}

/// Logs go to stderr; `TMUX_DELEGATE_LOG` (an env-filter) overrides `-v`.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("TMUX_DELEGATE_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!(
                // rumqttc warns about refused publishes we report ourselves.
                "{default},rumqttc=error,{}",
                embedded_broker_logs(verbose)
            ))
        });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
