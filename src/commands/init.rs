//! `init [--agent NAME]`: write ./tmux-delegate.toml for this project.

use crate::cli::InitArgs;
use crate::config::{Config, Env, PROJECT_FILES};
use crate::error::{config_error, Exit};
use anyhow::Context;
use std::io::Write;

const TEMPLATE: &str = include_str!("../../templates/init.toml");

pub fn run(args: &InitArgs) -> anyhow::Result<Exit> {
    let config = Config::load(Env::from_process()?)?;
    if let Some(existing) = PROJECT_FILES
        .iter()
        .map(|name| config.env.cwd.join(name))
        .find(|path| path.exists())
    {
        return Err(
            config_error(format!("{} already exists", existing.display()))
                .help("edit it, or remove it first to start over")
                .into(),
        );
    }
    let agent = args
        .agent
        .clone()
        .unwrap_or_else(|| config.defaults.agent.clone());
    let def = crate::agents::resolve(&config, &agent)?;
    let path = config.env.cwd.join(PROJECT_FILES[0]);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(TEMPLATE.replace("{agent}", &agent).as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {} (default agent: {agent})", path.display());
    println!("delegate from here or any directory below: tmux-delegate run --prompt \"...\"");
    if let Some(program) = def.command.first() {
        use crate::agents::preflight::{find_program, install_help};
        if find_program(program, config.env.var("PATH"), &config.env.cwd).is_none() {
            println!(
                "note: `{program}` (agent {agent}) is not installed here; {}",
                install_help(program, &agent)
            );
        }
    }
    Ok(Exit::Success)
}
