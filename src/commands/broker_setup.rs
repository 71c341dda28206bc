//! `broker setup DIR --host NAME`: write a production Mosquitto bundle.

use crate::broker::setup::{self, Options};
use crate::cli::SetupArgs;
use crate::config::{Config, Env};
use crate::error::Exit;

fn args_fleet_note(written: &setup::Written) -> bool {
    written.files.iter().any(|f| f.ends_with("runner.toml"))
}

pub fn run(args: SetupArgs) -> anyhow::Result<Exit> {
    // The ACL's topic prefix follows the configuration, as the clients will.
    let config = Config::load(Env::from_process()?)?;
    let options = Options {
        dir: args.dir,
        host: args.host,
        port: args.port,
        bind: args.bind,
        client_certs: args.client_certs,
        add_localhost: args.add_localhost,
        force: args.force,
        topic_prefix: config.topic_prefix(),
        fleet: args.fleet,
    };
    let written = setup::run(&options)?;
    println!(
        "wrote a Mosquitto bundle for {}:{}:",
        options.host, options.port
    );
    for file in &written.files {
        println!("  {}", file.display());
    }
    if args_fleet_note(&written) {
        println!(
            "fleet: runner.toml goes to each runner host, submitter.toml to each submitting host"
        );
    }
    if written.handed_to_mosquitto {
        println!("the broker's files belong to the `mosquitto` user");
    }
    println!(
        "\nstart the broker:   mosquitto -c {}\n\
         point clients at it: copy {} to your project (or ~/.config/tmux-delegate/config.toml)\n\
         verify everything:  cd {} && tmux-delegate doctor",
        written.conf.display(),
        written.client_config.display(),
        written
            .client_config
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    Ok(Exit::Success)
}
