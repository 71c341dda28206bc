//! `attach ID`: switch to (inside tmux) or attach to the job's window.

use crate::cli::IdArg;
use crate::config::Env;
use crate::error::Exit;
use crate::registry::Registry;
use crate::tmux::job_window::attach;

pub fn run(args: &IdArg) -> anyhow::Result<Exit> {
    let env = Env::from_process()?;
    let registry = Registry::open(&env)?;
    let (_, record) = registry.find(&args.id)?;
    attach(&env, &record)?;
    Ok(Exit::Success)
}
