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
mod workspace;

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
fn embedded_broker_level(verbose: u8) -> tracing_subscriber::filter::LevelFilter {
    if verbose >= 2 {
        tracing_subscriber::filter::LevelFilter::INFO
    } else {
        tracing_subscriber::filter::LevelFilter::OFF
    }
}

/// Logs go to stderr; `TMUX_DELEGATE_LOG` (an env-filter) overrides `-v`.
fn init_logging(verbose: u8) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let format = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    match std::env::var("TMUX_DELEGATE_LOG") {
        Ok(directives) => {
            let filter = tracing_subscriber::EnvFilter::try_new(&directives).unwrap_or_else(|e| {
                eprintln!("warning: TMUX_DELEGATE_LOG={directives}: {e}; using `warn`");
                tracing_subscriber::EnvFilter::new("warn")
            });
            tracing_subscriber::registry()
                .with(format)
                .with(filter)
                .init();
        }
        Err(_) => {
            // A plain target filter (no regex engine): `publish` runs once per
            // event and its start-up time is measured against mosquitto_pub.
            let level = match verbose {
                0 => tracing::Level::WARN,
                1 => tracing::Level::INFO,
                _ => tracing::Level::DEBUG,
            };
            let filter = tracing_subscriber::filter::Targets::new()
                .with_default(level)
                // rumqttc warns about refused publishes we report ourselves.
                .with_target("rumqttc", tracing::Level::ERROR)
                .with_target("rumqttd", embedded_broker_level(verbose));
            tracing_subscriber::registry()
                .with(format)
                .with(filter)
                .init();
        }
    }
}
