//! One file per subcommand; this module only routes.

mod add;
mod agents;
mod attach;
#[cfg(feature = "embedded-broker")]
mod broker_serve;
mod broker_setup;
mod clean;
mod diff;
mod doctor;
mod exec;
mod generate;
mod init;
mod kill;
mod logs;
mod mcp;
mod merge;
mod publish;
mod register;
mod resume;
mod retry;
mod run;
mod runner;
mod send;
mod status;
mod submit;
mod top;
mod watch;

use crate::cli::{BrokerCommand, Command};
use crate::error::Exit;

pub async fn dispatch(command: Command) -> anyhow::Result<Exit> {
    match command {
        Command::Register(args) => register::run(args),
        Command::Add(args) => add::run(args).await,
        Command::Publish(args) => publish::run(args).await,
        Command::Watch(args) => watch::run(args).await,
        Command::Status(args) => status::run(&args).await,
        Command::Top => top::run().await,
        Command::Completions { shell } => generate::completions(shell),
        Command::Man(args) => match args.dir {
            Some(dir) => generate::man_pages(&dir),
            None => generate::man(),
        },
        Command::Run(args) => run::run(args).await,
        Command::Logs(args) => logs::run(args).await,
        Command::Attach(args) => attach::run(&args),
        Command::Kill(args) => kill::run(&args).await,
        Command::Send(args) => send::run(&args).await,
        Command::Retry(args) => retry::run(&args).await,
        Command::Resume => resume::run().await,
        Command::Init(args) => init::run(&args),
        Command::Agents => agents::run(),
        Command::Mcp => mcp::run().await,
        #[cfg(feature = "embedded-broker")]
        Command::Broker(BrokerCommand::Serve {
            port,
            bind,
            show_passwords,
        }) => broker_serve::run(port, bind, show_passwords).await,
        #[cfg(not(feature = "embedded-broker"))]
        Command::Broker(BrokerCommand::Serve { .. }) => Err(crate::error::Failure::new(
            Exit::Usage,
            "this build has no embedded broker (the `embedded-broker` feature is off)",
        )
        .into()),
        Command::Broker(BrokerCommand::Setup(args)) => broker_setup::run(args),
        Command::Doctor(args) => doctor::run(&args).await,
        Command::Exec(args) => exec::run(args).await,
        Command::Diff(args) => diff::run(&args),
        Command::Merge(args) => merge::run(&args),
        Command::Clean(args) => clean::run(&args),
        Command::Runner(args) => runner::run(args).await,
        Command::Submit(args) => submit::run(args).await,
    }
}
