//! An agent's transcript, read for the tokens it reports (never
//! estimated) and for its final answer, one reader per agent CLI
//! (`TranscriptFormat`), each tested on samples the real CLI wrote:
//! `claude` (Claude Code's JSON lines), `codex` (its rollout JSON lines),
//! `gemini` (Gemini CLI's chat JSON lines), `opencode` (`opencode export`),
//! `aider` (its chat history markdown, and its analytics log for tokens).
//!
//! A continued conversation appends to its transcript (Claude Code, Codex,
//! Gemini CLI, Aider) or is exported whole (opencode): an attempt's part
//! starts at a mark taken when it was launched (`mark`), so each attempt
//! counts its own tokens once. Each message's cost comes from the price
//! of its own model, and only where `[pricing."MODEL"]` names it.

use crate::model::{Price, TranscriptFormat, Usage, UsageSource};
use std::collections::BTreeMap;
use std::io::{Read, Seek};
use std::path::Path;

mod aider;
mod claude;
mod codex;
mod gemini;
mod opencode;

/// How much of a transcript is read: a runaway file must not stall the
/// supervisor.
const TRANSCRIPT_MAX: u64 = 64 * 1024 * 1024;

/// The prices of `[pricing]`, by model name.
pub type Prices = BTreeMap<String, Price>;

/// The tokens the attempt's part of `source` reports; `None` when it
/// cannot be read or reports none.
pub fn usage(source: &UsageSource, prices: &Prices) -> Option<Usage> {
    let (text, from) = part(source.format, Path::new(&source.path), source.from)?;
    usage_of(source.format, &text, from, prices)
}

/// The tokens of transcript `text` in `format`; `from` counts earlier
/// messages for a format that is read whole (opencode's export).
pub fn usage_of(format: TranscriptFormat, text: &str, from: u64, prices: &Prices) -> Option<Usage> {
    match format {
        TranscriptFormat::Claude => claude::usage(text, prices),
        TranscriptFormat::Codex => codex::usage(text, prices),
        TranscriptFormat::Gemini => gemini::usage(text, prices),
        TranscriptFormat::Opencode => opencode::usage(text, skip(from), prices),
        TranscriptFormat::Aider => aider::usage(text),
    }
}

/// The agent's final answer in the attempt's part of the transcript at
/// `path` (from `from`, a mark), if it wrote one.
pub fn result(format: TranscriptFormat, path: &Path, from: u64) -> Option<String> {
    let (text, from) = part(format, path, from)?;
    result_of(format, &text, from)
}

/// The final answer in transcript `text`.
pub fn result_of(format: TranscriptFormat, text: &str, from: u64) -> Option<String> {
    let answer = match format {
        TranscriptFormat::Claude => claude::result(text),
        TranscriptFormat::Codex => codex::result(text),
        TranscriptFormat::Gemini => gemini::result(text),
        TranscriptFormat::Opencode => opencode::result(text, skip(from)),
        TranscriptFormat::Aider => aider::result(text),
    }?;
    let answer = answer.trim();
    (!answer.is_empty()).then(|| answer.to_owned())
}

/// Where the next attempt's part of the transcript at `path` will begin:
/// its length in bytes, or (opencode's export) its number of messages.
pub fn mark(format: TranscriptFormat, path: &Path) -> u64 {
    match format {
        TranscriptFormat::Opencode => {
            read_from(path, 0).map_or(0, |text| opencode::messages(&text) as u64)
        }
        _ => std::fs::metadata(path).map_or(0, |m| m.len()),
    }
}

/// The text of the attempt's part, and the `from` its reader still needs.
fn part(format: TranscriptFormat, path: &Path, from: u64) -> Option<(String, u64)> {
    match format {
        TranscriptFormat::Opencode => Some((read_from(path, 0)?, from)),
        _ => Some((read_from(path, from)?, 0)),
    }
}

fn skip(from: u64) -> usize {
    usize::try_from(from).unwrap_or(usize::MAX)
}

/// The file at `path` from byte `from` (from its start when it is now
/// shorter: a new file), at most `TRANSCRIPT_MAX` bytes.
fn read_from(path: &Path, from: u64) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    if from <= len {
        file.seek(std::io::SeekFrom::Start(from)).ok()?;
    }
    let mut bytes = Vec::new();
    file.take(TRANSCRIPT_MAX).read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Each message's tokens, keyed so a message written twice counts once.
#[derive(Default)]
struct Tally(BTreeMap<String, Usage>);

impl Tally {
    /// Keeps `usage` for message `id` (its latest figures win), priced at
    /// its `model`'s price when there is one.
    fn add(&mut self, id: String, mut usage: Usage, model: Option<&str>, prices: &Prices) {
        usage.cost_usd = model
            .and_then(|model| prices.get(model))
            .map(|price| price.cost(&usage));
        self.0.insert(id, usage);
    }

    fn total(self) -> Option<Usage> {
        self.0.into_values().reduce(Usage::plus)
    }
}

/// A count in a JSON object; 0 when absent.
fn count(object: &serde_json::Value, key: &str) -> u64 {
    object
        .get(key)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

/// The JSON objects of a JSON-lines text, each with its line number; torn
/// or foreign lines are skipped.
fn json_lines(text: &str) -> impl Iterator<Item = (usize, serde_json::Value)> + '_ {
    text.lines().enumerate().filter_map(|(n, line)| {
        serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .filter(serde_json::Value::is_object)
            .map(|value| (n, value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_reads_its_own_part_of_an_appended_transcript() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.jsonl");
        let line = |id: &str| {
            format!(
                "{{\"type\":\"assistant\",\"message\":{{\"id\":\"{id}\",\"usage\":{{\"input_tokens\":10,\"output_tokens\":5}}}}}}\n"
            )
        };
        std::fs::write(&path, line("a")).expect("write");
        let from = mark(TranscriptFormat::Claude, &path);
        assert_eq!(from, line("a").len() as u64);
        std::fs::write(&path, format!("{}{}", line("a"), line("b"))).expect("write");
        let source = |from| UsageSource {
            path: path.display().to_string(),
            format: TranscriptFormat::Claude,
            from,
        };
        let prices = Prices::new();
        assert_eq!(usage(&source(0), &prices).map(|u| u.input_tokens), Some(20));
        assert_eq!(
            usage(&source(from), &prices).map(|u| u.input_tokens),
            Some(10)
        );
        // A file shorter than the mark is a new one: read from its start.
        std::fs::write(&path, line("c")).expect("write");
        assert_eq!(
            usage(&source(from + 1), &prices).map(|u| u.input_tokens),
            Some(10)
        );
        let missing = UsageSource {
            path: "/nonexistent/t.jsonl".into(),
            ..source(0)
        };
        assert_eq!(usage(&missing, &prices), None);
        assert_eq!(mark(TranscriptFormat::Codex, Path::new("/nonexistent")), 0);
    }

    #[test]
    fn garbage_is_no_usage_and_no_answer_in_every_format() {
        let formats = [
            TranscriptFormat::Claude,
            TranscriptFormat::Codex,
            TranscriptFormat::Gemini,
            TranscriptFormat::Opencode,
            TranscriptFormat::Aider,
        ];
        let garbage = [
            "",
            "not json at all\n\u{0}\u{1}",
            "{\"type\":\"assistant\"}\n[1,2,3]\nnull\n{\"usage\":\"lots\"}",
            "{\"messages\": 7, \"info\": []}",
            "   \n\n",
        ];
        for format in formats {
            for text in garbage {
                assert_eq!(
                    usage_of(format, text, 0, &Prices::new()),
                    None,
                    "{format:?} {text:?}"
                );
                assert_eq!(result_of(format, text, 0), None, "{format:?} {text:?}");
            }
        }
    }
}
