//! `agents`: the agent templates, how each reports, and whether its program
//! is installed.

use crate::agents::{self, AgentDef, BUILTIN};
use crate::config::file::HookStyle;
use crate::config::{Config, Env};
use crate::error::Exit;
use crate::model::Liveness;
use crate::ui::table::Grid;
use std::path::Path;

fn reports(agent: &AgentDef) -> String {
    let how = match (agent.hooks, agent.complete_on_exit) {
        (Some(HookStyle::Claude), _) => {
            "Claude Code hooks (started, heartbeat, waiting, completed, error)"
        }
        (None, true) => "its exit code (0 = completed)",
        (None, false) => "its own events (tmux-delegate publish)",
    };
    let life = match agent.liveness {
        Liveness::Events => "events",
        Liveness::Output => "output",
        Liveness::Both => "events or output",
    };
    format!("{how}; alive: {life}")
}

/// Whether `program` can be run: a path that exists, or a name on PATH.
fn installed(program: &str, path_var: Option<&str>) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    path_var
        .map(|paths| std::env::split_paths(paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

pub fn run() -> anyhow::Result<Exit> {
    let config = Config::load(Env::from_process()?)?;
    let mut grid = Grid::new(&["AGENT", "SOURCE", "INSTALLED", "COMMAND", "REPORTS BY"]);
    let mut missing = Vec::new();
    for name in agents::names(&config) {
        let agent = agents::resolve(&config, &name)?;
        let source = match (
            BUILTIN.iter().any(|(n, _)| *n == name),
            config.agents.contains_key(&name),
        ) {
            (true, true) => "built-in, configured",
            (true, false) => "built-in",
            _ => "configured",
        };
        let program = agent.command.first().cloned().unwrap_or_default();
        let present = if installed(&program, config.env.var("PATH")) {
            "yes"
        } else {
            missing.push(format!(
                "{name}: `{program}` is not installed; {}",
                crate::agents::preflight::install_help(&program, &name)
            ));
            "no"
        };
        grid.push(vec![
            name,
            source.to_owned(),
            present.to_owned(),
            agent.command.join(" "),
            reports(&agent),
        ]);
    }
    grid.print();
    if !missing.is_empty() {
        println!();
        for line in &missing {
            println!("{line}");
        }
    }
    Ok(Exit::Success)
}
