//! `completions SHELL` and `man`: generated from the clap definition.

use crate::cli::Cli;
use crate::error::Exit;
use anyhow::Context;
use clap::CommandFactory;

pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<Exit> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "tmux-delegate", &mut std::io::stdout());
    Ok(Exit::Success)
}

pub fn man() -> anyhow::Result<Exit> {
    clap_mangen::Man::new(Cli::command())
        .render(&mut std::io::stdout())
        .context("writing the man page to stdout")?;
    Ok(Exit::Success)
}
