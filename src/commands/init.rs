//! `init [--agent NAME]`: write ./tmux-delegate.toml for this project.
//! `init --mcp [--write]`: what registers `tmux-delegate mcp` (SPEC
//! section 15) with Claude Code, Codex and Gemini CLI, printed; with
//! `--write`, also written where no such file exists yet (as `init` never
//! overwrites its own file).

use crate::cli::InitArgs;
use crate::config::{Config, Env, PROJECT_FILES};
use crate::error::{config_error, Exit};
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};

const TEMPLATE: &str = include_str!("../../templates/init.toml");

/// The name the server is registered under: its tools are `mcp__delegate__run`, ...
const SERVER_NAME: &str = "delegate";

pub fn run(args: &InitArgs) -> anyhow::Result<Exit> {
    if args.mcp {
        return register_mcp(&Env::from_process()?, args.write);
    }
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
    write_new(&path, &TEMPLATE.replace("{agent}", &agent))?;
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

/// Creates `path` with `text`; an existing file is an error, never replaced.
fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// One client's registration: the command that does it, and the file
/// that holds it.
struct Registration {
    client: &'static str,
    command: String,
    file: PathBuf,
    text: String,
}

/// This program as the clients should start it: by name when PATH finds
/// this very binary under it, else by its absolute path.
fn server_program(env: &Env) -> String {
    let exe = std::env::current_exe().ok();
    let found = crate::agents::preflight::find_program("tmux-delegate", env.var("PATH"), &env.cwd);
    let same = |a: &Path, b: &Path| a.canonicalize().ok() == b.canonicalize().ok();
    match (exe, found) {
        (Some(exe), Some(found)) if same(&exe, &found) => "tmux-delegate".to_owned(),
        (Some(exe), _) => exe.display().to_string(),
        (None, _) => "tmux-delegate".to_owned(),
    }
}

fn registrations(env: &Env) -> Vec<Registration> {
    let program = server_program(env);
    let quoted = shell_word(&program);
    let json_file = |server: serde_json::Value| {
        let mut text =
            serde_json::to_string_pretty(&serde_json::json!({"mcpServers": {SERVER_NAME: server}}))
                .unwrap_or_default();
        text.push('\n');
        text
    };
    let codex_home = env
        .var("CODEX_HOME")
        .map(PathBuf::from)
        .or_else(|| env.home.as_ref().map(|h| h.join(".codex")))
        .unwrap_or_else(|| PathBuf::from("~/.codex"));
    vec![
        Registration {
            client: "Claude Code",
            command: format!("claude mcp add {SERVER_NAME} -- {quoted} mcp"),
            file: env.cwd.join(".mcp.json"),
            text: json_file(
                serde_json::json!({"type": "stdio", "command": program, "args": ["mcp"]}),
            ),
        },
        Registration {
            client: "Codex",
            command: format!("codex mcp add {SERVER_NAME} -- {quoted} mcp"),
            file: codex_home.join("config.toml"),
            text: format!(
                "[mcp_servers.{SERVER_NAME}]\ncommand = {}\nargs = [\"mcp\"]\n",
                toml::Value::String(program.clone())
            ),
        },
        Registration {
            client: "Gemini CLI",
            command: format!("gemini mcp add {SERVER_NAME} {quoted} mcp"),
            file: env.cwd.join(".gemini").join("settings.json"),
            text: json_file(serde_json::json!({"command": program, "args": ["mcp"]})),
        },
    ]
}

/// `word` as one shell word (quoted only when it has to be).
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+=:@".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Prints each client's registration; with `write`, writes each file that
/// does not exist yet. An existing file is left as it is: exit 2, with the
/// lines to add to it.
fn register_mcp(env: &Env, write: bool) -> anyhow::Result<Exit> {
    let mut left = Vec::new();
    for registration in registrations(env) {
        let Registration {
            client,
            command,
            file,
            text,
        } = registration;
        println!("{client}: {command}");
        if !write {
            println!("  or in {}:\n{}", file.display(), indent(&text));
            continue;
        }
        if file.exists() {
            println!(
                "  {} exists, left as it is; unless it has them, add:\n{}",
                file.display(),
                indent(&text)
            );
            left.push(file.display().to_string());
            continue;
        }
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        write_new(&file, &text)?;
        println!("  wrote {}", file.display());
    }
    println!(
        "its tools: mcp__{SERVER_NAME}__run, __wait, __status, __send, __kill, __logs, __diff"
    );
    if left.is_empty() {
        return Ok(Exit::Success);
    }
    Err(config_error(format!("not changed: {}", left.join(", ")))
        .help("add the lines shown to each, or run the client's command shown")
        .into())
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(cwd: &Path, home: &Path) -> Env {
        Env {
            vars: std::collections::HashMap::new(),
            cwd: cwd.to_path_buf(),
            home: Some(home.to_path_buf()),
        }
    }

    #[test]
    fn each_client_gets_a_command_and_a_file_that_start_the_server() {
        let dir = tempfile::tempdir().expect("tempdir");
        let all = registrations(&env(&dir.path().join("p"), &dir.path().join("h")));
        let program = server_program(&env(dir.path(), dir.path()));
        let claude = &all[0];
        assert_eq!(
            claude.command,
            format!("claude mcp add delegate -- {} mcp", shell_word(&program))
        );
        let json: serde_json::Value = serde_json::from_str(&claude.text).expect("json");
        assert_eq!(json["mcpServers"]["delegate"]["args"][0], "mcp");
        assert_eq!(json["mcpServers"]["delegate"]["command"], program.as_str());
        assert_eq!(claude.file, dir.path().join("p/.mcp.json"));
        let codex: toml::Table = toml::from_str(&all[1].text).expect("toml");
        assert_eq!(
            codex["mcp_servers"]["delegate"]["command"].as_str(),
            Some(program.as_str())
        );
        assert_eq!(all[1].file, dir.path().join("h/.codex/config.toml"));
        assert_eq!(all[2].file, dir.path().join("p/.gemini/settings.json"));
    }

    #[test]
    fn a_path_with_spaces_is_one_shell_word() {
        assert_eq!(
            shell_word("/usr/bin/tmux-delegate"),
            "/usr/bin/tmux-delegate"
        );
        assert_eq!(shell_word("/opt/my tools/td"), "'/opt/my tools/td'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
