//! `completions SHELL` and `man [--dir DIR]`: generated from the clap definition.

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
    // No `help` page exists (`--dir` does not write one): do not refer to it.
    clap_mangen::Man::new(Cli::command().disable_help_subcommand(true))
        .render(&mut std::io::stdout())
        .context("writing the man page to stdout")?;
    Ok(Exit::Success)
}

/// One page per command (`tmux-delegate-run.1`, `tmux-delegate-broker-serve.1`,
/// ...), so every page the main one refers to exists.
pub fn man_pages(dir: &std::path::Path) -> anyhow::Result<Exit> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("writing the man pages to {}", dir.display()))?;
    eprintln!("wrote the man pages to {}", dir.display());
    Ok(Exit::Success)
}
