//! How an agent's conversation is captured, as template data
//! (`[agents.NAME.conversation]`, SPEC section 14), so a custom agent can
//! declare what the built-ins do: where its conversation id comes from,
//! where its transcript is, how it is read, and where its tokens are. The
//! window's wrapper acts on it (`worker::conversation`); the parts here
//! are pure and tested on what the real CLIs print.

use crate::model::TranscriptFormat;
use serde::{Deserialize, Serialize};

/// Where an attempt's conversation id comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionCapture {
    /// The agent's own events name it (`started` with `data.session_id`,
    /// as Claude Code's SessionStart hook sends).
    #[default]
    Events,
    /// The wrapper makes a UUID before the launch (`{session}` in
    /// `command`, e.g. `gemini --session-id {session}`) and records it.
    Assign,
    /// The agent prints it: `pattern`'s first group, read from the pane
    /// (or from `printed_in`, files the agent writes) while it runs.
    Printed,
}

/// `[agents.NAME.conversation]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conversation {
    #[serde(default)]
    pub session: SessionCapture,
    /// `printed`: a regex whose first group is the id; placeholders
    /// (`{job}`, `{attempt}`) are replaced by their values, escaped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// `printed`: files to read instead of the pane (path templates, the
    /// first whose variables are set; only what was written after the
    /// launch is read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub printed_in: Vec<String>,
    /// Where the transcript is: path templates (`~`, `$VAR`, `*` and `?`
    /// within a path segment, and the placeholders), the first whose
    /// variables are set. With a wildcard, the first file in name order
    /// whose name or first line holds the session id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transcript: Vec<String>,
    /// A command (argv) that prints the transcript, run by the wrapper
    /// when the attempt ends (opencode keeps its sessions in a database):
    /// its output is kept as the attempt's transcript in the job's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<Vec<String>>,
    /// How the transcript is read.
    #[serde(default)]
    pub format: TranscriptFormat,
    /// Where the tokens are when not in the transcript (a path template:
    /// Aider's analytics log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_file: Option<String>,
}

impl Conversation {
    /// The problem with this table, if any (checked when the agent is
    /// resolved, so `run` refuses a bad template before anything starts).
    pub fn problem(&self) -> Option<String> {
        if self.session == SessionCapture::Printed && self.pattern.is_none() {
            return Some("`session = \"printed\"` needs a `pattern`".into());
        }
        if let Some(pattern) = &self.pattern {
            let sample = crate::agents::Substitutions {
                job: "job",
                attempt: "1",
                ..crate::agents::Substitutions::default()
            };
            let pattern = crate::agents::substitute_with(pattern, &sample, regex::escape);
            match regex::Regex::new(&pattern) {
                Err(e) => return Some(format!("pattern: {e}")),
                Ok(re) if re.captures_len() < 2 => {
                    return Some("pattern: needs a group `( )` around the id".into())
                }
                Ok(_) => {}
            }
        }
        if self
            .export
            .as_ref()
            .is_some_and(|argv| argv.first().is_none_or(String::is_empty))
        {
            return Some("export: the command is empty".into());
        }
        None
    }
}

/// A conversation id as agents make them (UUIDs, `ses_...`): it becomes an
/// argument of the agent's command line when the job is continued.
pub fn valid_session_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The id `pattern` (its first group) finds in `text`: the first match
/// whose group is a valid id.
pub fn printed_id(pattern: &regex::Regex, text: &str) -> Option<String> {
    pattern
        .captures_iter(text)
        .filter_map(|c| c.get(1).map(|m| m.as_str().to_owned()))
        .find(|id| valid_session_id(id))
}

/// A new conversation id: a random (version 4) UUID.
pub fn new_session_id() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_ids_are_read_from_what_the_real_clis_print() {
        // Codex 0.171.0's banner, as the pane shows it.
        let codex = "OpenAI Codex v0.171.0\n--------\nworkdir: /tmp/w\nmodel: fake-model\n\
                     session id: 01a23eaa-1e61-7d62-b039-40baef9be8eb\n--------\nuser\nhi\n";
        let pattern = regex::Regex::new(r"session id: ([0-9a-f-]{36})").expect("regex");
        assert_eq!(
            printed_id(&pattern, codex).as_deref(),
            Some("01a23eaa-1e61-7d62-b039-40baef9be8eb")
        );
        // opencode 1.18.33's log line for the session it created.
        let log = "timestamp=2026-12-04T01:43:28.238Z level=INFO run=8124edcf message=created \
                   id=ses_dc1478125ffexcwkORTR2fFb7U slug=crisp-squid version=1.18.33 \
                   directory=/tmp/w title=\"tmux-delegate job-ab12 attempt 1\" agent=undefined\n";
        let pattern = regex::Regex::new(
            r#"message=created id=(ses_[0-9A-Za-z]+) .*title="tmux-delegate job-ab12 attempt 1""#,
        )
        .expect("regex");
        assert_eq!(
            printed_id(&pattern, log).as_deref(),
            Some("ses_dc1478125ffexcwkORTR2fFb7U")
        );
        let other = log.replace("attempt 1", "attempt 2");
        assert_eq!(printed_id(&pattern, &other), None);
        // Garbage, and a match that is no valid id.
        let loose = regex::Regex::new(r"id: (\S+)").expect("regex");
        assert_eq!(
            printed_id(&loose, "id: a;rm\u{0}-rf id: ok-1"),
            Some("ok-1".into())
        );
        assert_eq!(printed_id(&loose, "\u{1b}[0m\u{0}\u{ff}"), None);
    }

    #[test]
    fn a_new_session_id_is_a_version_4_uuid() {
        let id = new_session_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!("89ab".contains(&id[19..20]), "{id}");
        assert!(valid_session_id(&id));
        assert_ne!(id, new_session_id());
    }

    #[test]
    fn a_bad_table_is_named() {
        let printed = Conversation {
            session: SessionCapture::Printed,
            ..Conversation::default()
        };
        assert!(printed.problem().is_some_and(|p| p.contains("pattern")));
        let no_group = Conversation {
            pattern: Some("session id: \\S+".into()),
            ..printed.clone()
        };
        assert!(no_group.problem().is_some_and(|p| p.contains("group")));
        let bad = Conversation {
            pattern: Some("(unclosed".into()),
            ..printed
        };
        assert!(bad.problem().is_some());
        assert_eq!(Conversation::default().problem(), None);
    }
}
