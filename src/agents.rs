//! Agent templates: the built-ins in `templates/agents/*.toml` (embedded in
//! the binary) and `[agents.NAME]` from any config file, which override them
//! field by field. A template's `command` is an argv; `{prompt}` (and
//! `{job}`) are substituted inside its elements, never through a shell.

use crate::config::file::{parse_toml, AgentFile, Liveness};
use crate::config::Config;
use crate::error::{config_error, Failure};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The built-in templates, embedded at build time.
pub const BUILTIN: &[(&str, &str)] = &[
    ("aider", include_str!("../templates/agents/aider.toml")),
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
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub complete_on_exit: bool,
    pub liveness: Liveness,
}

impl AgentDef {
    /// The argv for `prompt` and `job`: each placeholder is replaced inside
    /// its element, so the prompt stays one argument byte for byte.
    pub fn argv(&self, prompt: &str, job: &str) -> Vec<String> {
        self.command
            .iter()
            .map(|arg| arg.replace("{prompt}", prompt).replace("{job}", job))
            .collect()
    }
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
    let command = custom.command.or(base.command).ok_or_else(|| {
        config_error(format!("agent `{name}` has no `command`")).help(format!(
            "set [agents.{name}] command = [\"program\", \"{{prompt}}\"]"
        ))
    })?;
    let mut env = base.env.unwrap_or_default();
    env.extend(custom.env.unwrap_or_default());
    Ok(AgentDef {
        name: name.to_owned(),
        command,
        env,
        // Custom agents complete on exit 0 unless they say otherwise.
        complete_on_exit: custom
            .complete_on_exit
            .or(base.complete_on_exit)
            .unwrap_or(true),
        liveness: custom.liveness.or(base.liveness).unwrap_or(Liveness::Both),
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
            let argv = agent.argv(NASTY, "job-1");
            assert_eq!(
                argv.iter().filter(|a| a.as_str() == NASTY).count(),
                1,
                "{name}: {argv:?}"
            );
        }
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
        assert_eq!(mine.argv("a b", "j"), vec!["./run.sh", "--task=a b"]);
        assert!(mine.complete_on_exit);
        let failure = resolve(&config, "codx").expect_err("unknown");
        assert_eq!(
            failure.help.as_deref(),
            Some("a similar agent exists: `codex`")
        );
    }
}
