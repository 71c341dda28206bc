//! tmux-delegate: parse the command line, run the command, exit with its code.
//! This is the only place that calls `process::exit`.

mod agents;
mod broker;
mod cli;
mod commands;
mod config;
mod error;
mod fleet;
mod mcp;
mod model;
mod mqtt;
mod proc;
mod registry;
mod supervisor;
mod tmux;
mod ui;
mod worker;
mod workspace;

use clap::Parser;
use std::io::Write;
use std::process::ExitCode;

/// The exit status of a command whose reader went away (`status | head -1`):
/// what a shell reports for a process ended by SIGPIPE, quietly.
const BROKEN_PIPE_EXIT: u8 = 128 + 13;

fn main() -> ExitCode {
    exit_quietly_on_broken_pipe();
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
        // The same quiet end when a command returns the EPIPE as an error.
        Err(e)
            if e.chain().any(|cause| {
                cause
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::from(BROKEN_PIPE_EXIT)
        }
        Err(e) => {
            // A closed stderr must not turn the command's exit code into a panic.
            let _ = writeln!(std::io::stderr(), "{}", error::render(&e));
            ExitCode::from(error::exit_of(&e).code())
        }
    }
}

/// Rust ignores SIGPIPE, so a write to a pipe whose reader is gone fails
/// with EPIPE, and `println!` (or a generator writing with `expect`) panics
/// with exit 101. Every command's output goes through such writes; rather
/// than guard each one, a panic caused by a broken pipe ends the process
/// quietly with the status a SIGPIPE death would give. Any other panic is
/// reported as before.
fn exit_quietly_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if is_broken_pipe(payload) {
            std::process::exit(i32::from(BROKEN_PIPE_EXIT));
        }
        default(info);
    }));
}

fn is_broken_pipe(message: &str) -> bool {
    message.contains("Broken pipe")
        || message.contains("os error 32")
        || message.contains("kind: BrokenPipe")
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
                // The MQTT client warns about refused publishes we report ourselves.
                .with_target(mqtt::CLIENT_LOG_TARGET, tracing::Level::ERROR)
                .with_target("rumqttd", embedded_broker_level(verbose));
            tracing_subscriber::registry()
                .with(format)
                .with(filter)
                .init();
        }
    }
}
