//! Is the agent's program there? Resolved the way the window will resolve
//! it (its PATH, its working directory), with the command that installs
//! each known agent.

use super::AgentDef;
use crate::config::job::JobSpec;
use crate::config::Config;
use crate::error::{config_error, Failure};
use std::path::{Path, PathBuf};

/// Before anything is registered: tmux and every job's agent program must
/// exist, the program as the window will find it — on the PATH of the tmux
/// server's global environment when a server runs (else this process's,
/// which a server started now inherits), unless the job or agent sets PATH.
pub async fn check<'a>(
    config: &Config,
    jobs: impl IntoIterator<Item = (&'a JobSpec, &'a AgentDef)>,
) -> Result<(), Failure> {
    let own_path = config.env.var("PATH").map(str::to_owned);
    if find_program("tmux", own_path.as_deref(), &config.env.cwd).is_none() {
        return Err(
            config_error("tmux is not installed (not found on PATH)").help(format!(
                "install it: {}",
                install_hint("tmux").unwrap_or_default()
            )),
        );
    }
    let settings = crate::config::TmuxSettings::resolve(&config.defaults.tmux)
        .with_current_server(&config.env);
    let tmux = crate::tmux::Tmux::new(&settings, vec!["MQTT_PASSWORD".to_owned()]);
    let server_path = match tmux.global_env("PATH").await {
        Ok(path) => path,
        Err(e) => {
            tracing::debug!("cannot read the tmux server's PATH: {e:#}");
            None
        }
    };
    let window_path = server_path.or(own_path);
    for (spec, agent) in jobs {
        let Some(program) = agent.command.first() else {
            continue;
        };
        let path = spec
            .env
            .get("PATH")
            .or_else(|| agent.env.get("PATH"))
            .map(String::as_str)
            .or(window_path.as_deref());
        if find_program(program, path, &spec.workdir).is_none() {
            let place = if program.starts_with('/') {
                String::new()
            } else if program.contains('/') {
                format!(" (relative to {})", spec.workdir.display())
            } else {
                " (not on the PATH the job's window gets)".to_owned()
            };
            return Err(config_error(format!(
                "job `{}`: the agent `{}` needs `{program}`, which is not installed{place}",
                spec.name, agent.name
            ))
            .help(install_help(program, &agent.name)));
        }
    }
    Ok(())
}

/// How to install a known agent program (by the basename of argv[0]).
pub fn install_hint(program: &str) -> Option<&'static str> {
    let name = Path::new(program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(program);
    Some(match name {
        "claude" => "npm i -g @anthropic-ai/claude-code",
        "codex" => "npm i -g @openai/codex",
        "gemini" => "npm i -g @google/gemini-cli",
        "opencode" => "npm i -g opencode-ai",
        "aider" => "pip install aider-chat",
        "tmux" => "sudo apt-get install tmux (Debian/Ubuntu), brew install tmux (macOS)",
        _ => return None,
    })
}

/// What to tell a user whose `program` is missing.
pub fn install_help(program: &str, agent: &str) -> String {
    match install_hint(program) {
        Some(hint) => format!("install it: {hint}"),
        None => format!(
            "install `{program}`, or set [agents.{agent}] command = [\"/path/to/program\", ...] in tmux-delegate.toml"
        ),
    }
}

/// Where `program` is: a path with a `/` (relative to `workdir`), else the
/// first executable file of that name on `path_var`.
pub fn find_program(program: &str, path_var: Option<&str>, workdir: &Path) -> Option<PathBuf> {
    if program.contains('/') {
        let path = workdir.join(program);
        return is_executable(&path).then_some(path);
    }
    std::env::split_paths(path_var?)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_path_or_relative_to_the_workdir() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        let agent = bin.join("agent");
        std::fs::write(&agent, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(bin.join("plain"), "not executable").expect("write");
        let path = format!("/nonexistent:{}", bin.display());
        assert_eq!(find_program("agent", Some(&path), dir.path()), Some(agent));
        assert_eq!(find_program("plain", Some(&path), dir.path()), None);
        assert_eq!(find_program("agent", None, dir.path()), None);
        assert!(find_program("./bin/agent", None, dir.path()).is_some());
        assert!(find_program("./agent", None, dir.path()).is_none());
    }

    #[test]
    fn known_agents_have_an_install_command() {
        assert_eq!(
            install_hint("/usr/bin/claude"),
            Some("npm i -g @anthropic-ai/claude-code")
        );
        assert_eq!(install_hint("aider"), Some("pip install aider-chat"));
        assert!(install_help("my-agent", "mine").contains("[agents.mine] command"));
        assert_eq!(
            install_help("codex", "codex"),
            "install it: npm i -g @openai/codex"
        );
    }
}
