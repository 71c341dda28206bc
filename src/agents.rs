//! Agent templates: the built-ins in `templates/agents/*.toml` (embedded in
//! the binary) and `[agents.NAME]` from any config file, which override them
//! field by field. A template's `command` is an argv; `{prompt}` (and
//! `{job}`) are substituted inside its elements, never through a shell.

use crate::config::file::parse_toml;

use crate::config::file::AgentFile;

use crate::config::file::HookStyle;

use crate::model::Liveness;

use crate::config::file::OnStop;
use crate::config::Config;
use crate::error::{config_error, Failure};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub mod limits;
pub mod preflight;
pub mod screens;
pub mod transcript;

/// The built-in templates, embedded at build time.
pub const BUILTIN: &[(&str, &str)] = &[
    ("aider", include_str!("../templates/agents/aider.toml")),
    ("claude", include_str!("../templates/agents/claude.toml")),
    (
        "claude-print",
        include_str!("../templates/agents/claude-print.toml"),
    ),
    ("codex", include_str!("../templates/agents/codex.toml")),
    ("gemini", include_str!("../templates/agents/gemini.toml")),
    (
        "opencode",
        include_str!("../templates/agents/opencode.toml"),
    ),
    ("shell", include_str!("../templates/agents/shell.toml")),
];

/// A resolved agent: what the window's wrapper runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentDef {
    pub name: String,
    /// argv with `{prompt}` still in it.
    pub command: Vec<String>,
    /// The argv that continues conversation `{session}` with `{prompt}`;
    /// none: every attempt starts a new conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continue_command: Option<Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub complete_on_exit: bool,
    pub liveness: Liveness,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<HookStyle>,
    #[serde(default = "default_on_stop")]
    pub on_stop: OnStop,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Screen rules: the user's first, then the built-ins for the program.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub screens: Vec<screens::ScreenRule>,
}

fn default_on_stop() -> OnStop {
    OnStop::Completed
}

/// Values substituted into an agent's argv.
pub struct Substitutions<'a> {
    pub prompt: &'a str,
    pub job: &'a str,
    /// The generated settings file, for agents with `hooks`.
    pub settings: &'a str,
    /// The conversation a continued attempt continues.
    pub session: &'a str,
}

impl AgentDef {
    /// The argv: each placeholder is replaced inside its element, in one
    /// pass, so the prompt stays one argument byte for byte (and a prompt
    /// that contains `{job}` is not rewritten).
    pub fn argv(&self, values: &Substitutions<'_>) -> Vec<String> {
        substitute_all(&self.command, values)
    }

    /// The argv that continues `values.session`, if the agent can.
    pub fn continue_argv(&self, values: &Substitutions<'_>) -> Option<Vec<String>> {
        self.continue_command
            .as_ref()
            .map(|command| substitute_all(command, values))
    }
}

fn substitute_all(command: &[String], values: &Substitutions<'_>) -> Vec<String> {
    command.iter().map(|arg| substitute(arg, values)).collect()
}

fn substitute(template: &str, values: &Substitutions<'_>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let (value, len) = if tail.starts_with("{prompt}") {
            (Some(values.prompt), "{prompt}".len())
        } else if tail.starts_with("{job}") {
            (Some(values.job), "{job}".len())
        } else if tail.starts_with("{settings}") {
            (Some(values.settings), "{settings}".len())
        } else if tail.starts_with("{session}") {
            (Some(values.session), "{session}".len())
        } else {
            (None, 1)
        };
        out.push_str(value.unwrap_or("{"));
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

fn builtin(name: &str) -> Result<Option<AgentFile>, Failure> {
    BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, text)| parse_toml(Path::new(&format!("templates/agents/{n}.toml")), text))
        .transpose()
}

/// Every known agent name: built-ins and configured ones.
pub fn names(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = BUILTIN.iter().map(|(n, _)| (*n).to_owned()).collect();
    names.extend(config.agents.keys().cloned());
    names.sort();
    names.dedup();
    names
}

/// Resolves `name`: the config's `[agents.NAME]` over the built-in template.
pub fn resolve(config: &Config, name: &str) -> Result<AgentDef, Failure> {
    let base = builtin(name)?;
    let custom = config.agents.get(name);
    if base.is_none() && custom.is_none() {
        let known = names(config);
        let refs: Vec<&str> = known.iter().map(String::as_str).collect();
        let failure = config_error(format!("unknown agent `{name}`"));
        return Err(match crate::config::diagnostics::nearest(name, &refs) {
            Some(best) => failure.help(format!("a similar agent exists: `{best}`")),
            None => failure.help(format!(
                "known agents: {}; or define [agents.{name}] command = [...] in tmux-delegate.toml",
                known.join(", ")
            )),
        });
    }
    let base = base.unwrap_or_default();
    let custom = custom.cloned().unwrap_or_default();
    // The template's way to continue belongs to the template's command:
    // a config that replaces the command names its own (or none).
    let continue_command = if custom.command.is_some() {
        custom.continue_command
    } else {
        custom.continue_command.or(base.continue_command)
    };
    let command = custom.command.or(base.command).ok_or_else(|| {
        config_error(format!("agent `{name}` has no `command`")).help(format!(
            "set [agents.{name}] command = [\"program\", \"{{prompt}}\"]"
        ))
    })?;
    let mut env = base.env.unwrap_or_default();
    env.extend(custom.env.unwrap_or_default());
    let mut rules = custom.screens.unwrap_or_default();
    rules.extend(base.screens.unwrap_or_default());
    rules.extend(screens::builtin(&command[0]));
    // Compiled here (run, agents, init) to report a bad rule early; never
    // when loading the config, which `publish` does on every event.
    screens::ScreenSet::compile(&rules).map_err(|e| {
        config_error(format!("agents.{name}.{e}")).help(
            "write `match` as a regex (https://docs.rs/regex/#syntax), e.g. match = \"(Do you trust the files in this folder\\?)\"",
        )
    })?;
    Ok(AgentDef {
        name: name.to_owned(),
        command,
        continue_command,
        env,
        // Custom agents complete on exit 0 unless they say otherwise.
        complete_on_exit: custom
            .complete_on_exit
            .or(base.complete_on_exit)
            .unwrap_or(true),
        liveness: custom.liveness.or(base.liveness).unwrap_or(Liveness::Both),
        hooks: custom.hooks.or(base.hooks),
        on_stop: custom.on_stop.or(base.on_stop).unwrap_or(OnStop::Completed),
        description: custom.description.or(base.description),
        screens: rules,
    })
}

/// Quotes a word for the POSIX shell Claude Code runs hook commands with.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// A Claude Code settings file whose hooks report to tmux-delegate. Each
/// hook command is silent and always exits 0: a SessionStart hook's stdout
/// would be added to Claude's context, and exit code 2 from a Stop hook
/// would block the stop. The commands name no secret: `publish` finds the
/// job, attempt, key and broker in the agent's environment.
pub fn claude_settings(exe: &Path, on_stop: OnStop) -> serde_json::Value {
    let publish = |args: &str| {
        serde_json::json!({
            "type": "command",
            "command": format!("{} publish {args} >/dev/null 2>&1 || true", shell_quote(&exe.display().to_string())),
        })
    };
    // The turn's answer rides along (`data.last_assistant_message`): the
    // job's `result` when it completes.
    let stop = match on_stop {
        OnStop::Completed => {
            "--event completed --message 'Claude Code finished its turn' --data-field last_assistant_message"
        }
        OnStop::Waiting => {
            "--event waiting --message 'Claude Code finished its turn and waits for input' --data-field last_assistant_message"
        }
    };
    serde_json::json!({
        "hooks": {
            // The conversation's id and transcript: the attempt's `session`.
            "SessionStart": [{ "hooks": [publish("--event started --message 'Claude Code session started' --data-field session_id --data-field transcript_path --data-field source")] }],
            "PostToolUse": [{ "matcher": "*", "hooks": [publish("--event heartbeat")] }],
            // A new turn (a `send`, or a person typing in the window): a job
            // waiting at its prompt is working again.
            "UserPromptSubmit": [{ "hooks": [publish("--event heartbeat --message 'Claude Code took a new turn'")] }],
            "Notification": [{ "hooks": [publish("--event waiting --message-from-stdin")] }],
            "Stop": [{ "hooks": [publish(stop)] }],
            // An API error ends the turn with StopFailure instead of Stop:
            // the attempt fails with the API's words (the retry policy decides).
            "StopFailure": [{ "hooks": [publish("--event error --message-from-stdin --message-field last_assistant_message --message-field error")] }],
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env_with;

    const NASTY: &str = "it's $(touch /tmp/pwned) `id` \"quoted\" \\ ; | & > * ?\nsecond line\ttab";

    #[test]
    fn every_builtin_template_parses_and_keeps_the_prompt_as_one_element() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config::load(env_with(&[], dir.path())).expect("config");
        for (name, _) in BUILTIN {
            let agent = resolve(&config, name).expect(name);
            let argv = agent.argv(&Substitutions {
                prompt: NASTY,
                job: "job-1",
                settings: "/s.json",
                session: "s-1",
            });
            assert_eq!(
                argv.iter().filter(|a| a.contains(NASTY)).count(),
                1,
                "{name}: {argv:?}"
            );
            assert!(prompt_is_never_an_option(&argv, NASTY), "{name}: {argv:?}");
        }
    }

    /// The element holding the prompt is the prompt itself after `--` (or
    /// after `sh -c SCRIPT NAME`, where it is `$1`), or a `--flag=` element
    /// whose value is the prompt: a prompt starting with `-` stays a prompt.
    fn prompt_is_never_an_option(argv: &[String], prompt: &str) -> bool {
        let Some(at) = argv.iter().position(|a| a.contains(prompt)) else {
            return false;
        };
        let element = &argv[at];
        if element == prompt {
            let after_double_dash = at > 0 && argv[at - 1] == "--";
            let shell_positional = argv.len() > 3 && argv[1] == "-c" && at >= 4;
            return after_double_dash || shell_positional;
        }
        element
            .strip_suffix(prompt)
            .is_some_and(|flag| flag.starts_with("--") && flag.ends_with('='))
    }

    #[test]
    fn a_dash_prompt_stays_the_prompt_in_every_builtin_template() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config::load(env_with(&[], dir.path())).expect("config");
        for prompt in ["-z foo", "--version", "--help"] {
            for (name, _) in BUILTIN {
                let argv = resolve(&config, name).expect(name).argv(&Substitutions {
                    prompt,
                    job: "job-1",
                    settings: "/s.json",
                    session: "s-1",
                });
                assert!(prompt_is_never_an_option(&argv, prompt), "{name}: {argv:?}");
            }
        }
    }

    #[test]
    fn claude_hook_commands_are_silent_quoted_and_never_fail() {
        let settings =
            claude_settings(Path::new("/opt/it's here/tmux-delegate"), OnStop::Completed);
        let hooks = settings["hooks"].as_object().expect("hooks");
        for event in [
            "SessionStart",
            "PostToolUse",
            "Notification",
            "Stop",
            "StopFailure",
        ] {
            let command = hooks[event][0]["hooks"][0]["command"]
                .as_str()
                .expect(event);
            assert!(
                command.starts_with("'/opt/it'\\''s here/tmux-delegate' publish"),
                "{command}"
            );
            assert!(command.ends_with(">/dev/null 2>&1 || true"), "{command}");
        }
        assert!(hooks["Stop"][0]["hooks"][0]["command"]
            .as_str()
            .expect("stop")
            .contains("--event completed"));
        assert!(hooks["StopFailure"][0]["hooks"][0]["command"]
            .as_str()
            .expect("stop failure")
            .contains("--event error --message-from-stdin --message-field last_assistant_message"));
        let waiting = claude_settings(Path::new("/t"), OnStop::Waiting);
        assert!(waiting["hooks"]["Stop"][0]["hooks"][0]["command"]
            .as_str()
            .expect("stop")
            .contains("--event waiting"));
    }

    #[test]
    fn config_overrides_a_builtin_field_by_field_and_unknown_names_suggest() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("tmux-delegate.toml"),
            "[agents.codex]\nliveness = \"events\"\n[agents.mine]\ncommand = [\"./run.sh\", \"--task={prompt}\"]\n",
        )
        .expect("write");
        let config = Config::load(env_with(&[], dir.path())).expect("config");
        let codex = resolve(&config, "codex").expect("codex");
        assert_eq!(codex.liveness, Liveness::Events);
        assert_eq!(codex.command[0], "codex");
        let mine = resolve(&config, "mine").expect("mine");
        let values = Substitutions {
            prompt: "a {job} b",
            job: "j",
            settings: "",
            session: "s-1",
        };
        assert_eq!(mine.argv(&values), vec!["./run.sh", "--task=a {job} b"]);
        assert!(mine.complete_on_exit);
        let failure = resolve(&config, "codx").expect_err("unknown");
        assert_eq!(
            failure.help.as_deref(),
            Some("a similar agent exists: `codex`")
        );
    }

    #[test]
    fn screen_rules_merge_user_first_then_builtins_and_bad_ones_are_reported_at_resolve() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("tmux-delegate.toml"),
            "[[agents.claude.screens]]\nmatch = \"(Proceed\\\\?)\"\nkeys = [\"Enter\"]\n\
             [[agents.broken.screens]]\nmatch = \"(unclosed\"\n[agents.broken]\ncommand = [\"b\"]\n\
             [defaults.retry]\non = [\"agent_config\", \"exit\"]\n",
        )
        .expect("write");
        let config =
            Config::load(env_with(&[], dir.path())).expect("config loads without compiling rules");
        let claude = resolve(&config, "claude").expect("claude");
        assert_eq!(claude.screens[0].pattern, "(Proceed\\?)");
        assert_eq!(claude.screens[0].keys, Some(vec!["Enter".to_owned()]));
        assert!(claude.screens.len() > 1, "built-ins follow");
        let failure = resolve(&config, "broken").expect_err("bad regex");
        assert!(
            failure
                .to_string()
                .contains("agents.broken.screens[0].match"),
            "{failure}"
        );
        assert_eq!(
            config.defaults.retry.on.clone().unwrap_or_default(),
            vec![
                crate::model::FailureKind::AgentConfig,
                crate::model::FailureKind::Exit
            ]
        );
    }
}
