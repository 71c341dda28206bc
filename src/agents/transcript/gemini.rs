//! Gemini CLI's chat file (`~/.gemini/tmp/<project>/chats/session-<time>-<id8>.jsonl`):
//! JSON lines, appended to by `gemini --resume`. The first line names the
//! session; each message is a line of its own (`type` `user` or
//! `gemini`), and a `$set` line may rewrite `messages` whole. A `gemini`
//! message carries `tokens` {`input`, `output`, `cached`, `thoughts`,
//! `tool`} as the API's usageMetadata said: the prompt count includes the
//! cached part, so input here is `input + tool - cached`, the cached part
//! the cache read, and thoughts are output. Each message id counts once.

use super::{count, json_lines, Prices, Tally};
use crate::model::Usage;
use serde_json::Value;

/// Every message object in the text: plain lines and `$set.messages`.
fn messages(text: &str) -> Vec<(usize, Value)> {
    let mut found = Vec::new();
    for (n, entry) in json_lines(text) {
        match entry.get("$set").and_then(|set| set.get("messages")) {
            Some(Value::Array(set)) => found.extend(set.iter().cloned().map(|m| (n, m))),
            Some(_) => {}
            None => found.push((n, entry)),
        }
    }
    found
}

pub(super) fn usage(text: &str, prices: &Prices) -> Option<Usage> {
    let mut tally = Tally::default();
    for (n, message) in messages(text) {
        if message["type"] != "gemini" {
            continue;
        }
        let Some(tokens) = message.get("tokens").filter(|t| t.is_object()) else {
            continue;
        };
        let cached = count(tokens, "cached");
        let usage = Usage {
            input_tokens: (count(tokens, "input") + count(tokens, "tool")).saturating_sub(cached),
            output_tokens: count(tokens, "output") + count(tokens, "thoughts"),
            cache_read_input_tokens: cached,
            cache_creation_input_tokens: 0,
            cost_usd: None,
        };
        let id = message["id"]
            .as_str()
            .map_or_else(|| format!("line {n}"), str::to_owned);
        tally.add(id, usage, message["model"].as_str(), prices);
    }
    tally.total()
}

/// The content of the last `gemini` message that has text.
pub(super) fn result(text: &str) -> Option<String> {
    messages(text)
        .into_iter()
        .rev()
        .filter(|(_, m)| m["type"] == "gemini")
        .filter_map(|(_, m)| content_text(&m["content"]))
        .find(|t| !t.trim().is_empty())
}

/// A message's content: a string, or parts with `text`.
fn content_text(content: &Value) -> Option<String> {
    match content {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
            (!texts.is_empty()).then(|| texts.join(""))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real Gemini CLI 0.61.0 chat file (a turn, then `--resume` and a
    /// second turn), trimmed; the second answer's figures changed.
    const CHAT: &str = r#"{"sessionId":"3f0c5a8e-1111-4222-8333-444455556666","projectHash":"a7ad6e7408eb03bb7b596e098d19ae9eb2c634130d1584a3e11d7617986271b9","startTime":"2026-12-04T01:29:34.185Z","lastUpdated":"2026-12-04T01:29:34.185Z","kind":"main"}
{"$set":{"messages":[{"id":"d04923d38bb0f6017037e74183378ef4","timestamp":"2026-12-04T01:29:34.186Z","type":"user","content":[{"text":"<session_context>\nThis is the Gemini CLI.\n</session_context>"}]}],"lastUpdated":"2026-12-04T01:29:34.186Z"}}
{"id":"3e8667f2-2633-4210-8fee-15fb10a50b0b","timestamp":"2026-12-04T01:29:34.233Z","type":"user","content":[{"text":"What is six times seven?"}]}
{"$set":{"lastUpdated":"2026-12-04T01:29:34.233Z"}}
{"id":"566014d8-e456-42ad-9aa5-200f13eefc62","timestamp":"2026-12-04T01:29:34.292Z","type":"gemini","content":"forty-two","thoughts":[],"tokens":{"input":13,"output":5,"cached":3,"thoughts":0,"tool":0,"total":18},"model":"gemini-3.8-flash"}
{"$set":{"lastUpdated":"2026-12-04T01:29:34.292Z"}}
{"$set":{"sessionId":"3f0c5a8e-1111-4222-8333-444455556666"}}
{"$set":{"messages":[{"id":"d04923d38bb0f6017037e74183378ef4","timestamp":"2026-12-04T01:29:34.186Z","type":"user","content":[{"text":"<session_context>\n</session_context>"}]}],"lastUpdated":"2026-12-04T01:30:09.198Z"}}
{"id":"5ab8bfd5-7516-4082-adac-a90c9e447acb","timestamp":"2026-12-04T01:30:09.248Z","type":"user","content":[{"text":"-z plus one"}]}
{"id":"f453967f-c9c0-4b18-a9e8-ae17072bfe4d","timestamp":"2026-12-04T01:30:09.296Z","type":"gemini","content":[{"text":"forty-"},{"text":"three"}],"tokens":{"input":20,"output":6,"cached":0,"thoughts":4,"tool":2,"total":32},"model":"gemini-3.8-flash"}
{"id":"f453967f-c9c0-4b18-a9e8-ae17072bfe4d","timestamp":"2026-12-04T01:30:09.296Z","type":"gemini","content":[{"text":"forty-"},{"text":"three"}],"tokens":{"input":20,"output":6,"cached":0,"thoughts":4,"tool":2,"total":32},"model":"gemini-3.8-flash"}
{"$set":{"lastUpdated":"2026-12-04T01:30:09.296Z"}}
"#;

    #[test]
    fn each_answer_counts_once_with_cached_input_apart_and_thoughts_as_output() {
        assert_eq!(
            usage(CHAT, &Prices::new()),
            Some(Usage {
                input_tokens: 10 + 22,
                output_tokens: 5 + 10,
                cache_read_input_tokens: 3,
                cache_creation_input_tokens: 0,
                cost_usd: None,
            })
        );
        assert_eq!(result(CHAT).as_deref(), Some("forty-three"));
        let first_turn: String = CHAT.lines().take(6).collect::<Vec<_>>().join("\n");
        assert_eq!(result(&first_turn).as_deref(), Some("forty-two"));
    }
}
