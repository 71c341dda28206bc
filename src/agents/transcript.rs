//! An agent's transcript, read for the tokens it reports (never
//! estimated). Claude Code's is JSON lines; each assistant line carries
//! its message's `usage`, and a message split over several lines (one per
//! content block) repeats the same usage under the same `message.id`: each
//! message counts once, with its last line's figures. Each message's cost
//! comes from the price of its own `message.model`.

use crate::model::{Price, Usage};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// How much of a transcript is read: a runaway file must not stall the
/// supervisor.
const TRANSCRIPT_MAX: u64 = 64 * 1024 * 1024;

/// The prices of `[pricing]`, by model name.
pub type Prices = BTreeMap<String, Price>;

/// The tokens of every assistant message in the transcript at `path`;
/// `None` when it cannot be read or reports none.
pub fn usage(path: &Path, prices: &Prices) -> Option<Usage> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(TRANSCRIPT_MAX)
        .read_to_string(&mut text)
        .ok()?;
    usage_of(&text, prices)
}

/// The tokens of the transcript `text` (one JSON object per line).
pub fn usage_of(text: &str, prices: &Prices) -> Option<Usage> {
    let mut by_message: BTreeMap<String, Usage> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if entry["type"] != "assistant" {
            continue;
        }
        let message = &entry["message"];
        let Some(mut usage) = message.get("usage").and_then(read_usage) else {
            continue;
        };
        usage.cost_usd = message["model"]
            .as_str()
            .and_then(|model| prices.get(model))
            .map(|price| price.cost(&usage));
        // A line without a message id is a message of its own.
        let id = message["id"]
            .as_str()
            .map_or_else(|| format!("line {n}"), str::to_owned);
        by_message.insert(id, usage);
    }
    by_message.into_values().reduce(Usage::plus)
}

fn read_usage(usage: &Value) -> Option<Usage> {
    let count = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
    usage.is_object().then(|| Usage {
        input_tokens: count("input_tokens"),
        output_tokens: count("output_tokens"),
        cache_read_input_tokens: count("cache_read_input_tokens"),
        cache_creation_input_tokens: count("cache_creation_input_tokens"),
        cost_usd: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_assistant_message_counts_once_whatever_its_lines() {
        let transcript = [
            r#"{"type":"user","message":{"role":"user","content":"What is 6 x 7?"}}"#,
            // One message in two content-block lines: counted once.
            r#"{"type":"assistant","message":{"id":"msg_1","usage":{"input_tokens":12,"output_tokens":3,"cache_read_input_tokens":100}}}"#,
            r#"{"type":"assistant","message":{"id":"msg_1","usage":{"input_tokens":12,"output_tokens":5,"cache_read_input_tokens":100}}}"#,
            r#"{"type":"assistant","message":{"id":"msg_2","usage":{"input_tokens":20,"output_tokens":7,"cache_creation_input_tokens":4}}}"#,
            "not json: a torn last line",
        ]
        .join("\n");
        assert_eq!(
            usage_of(&transcript, &Prices::new()),
            Some(Usage {
                input_tokens: 32,
                output_tokens: 12,
                cache_read_input_tokens: 100,
                cache_creation_input_tokens: 4,
                cost_usd: None,
            })
        );
        assert_eq!(usage_of(r#"{"type":"user"}"#, &Prices::new()), None);
        assert_eq!(
            usage(Path::new("/nonexistent/transcript.jsonl"), &Prices::new()),
            None
        );
    }

    #[test]
    fn each_message_costs_what_its_own_model_is_priced_at() {
        let transcript = [
            r#"{"type":"assistant","message":{"id":"a","model":"big","usage":{"input_tokens":1000000,"output_tokens":100000}}}"#,
            r#"{"type":"assistant","message":{"id":"b","model":"small","usage":{"input_tokens":2000000,"cache_read_input_tokens":1000000}}}"#,
        ]
        .join("\n");
        let price = |input, output| Price {
            input,
            output,
            cache_read: None,
            cache_write: None,
        };
        let mut prices = Prices::from([("big".to_owned(), price(15.0, 75.0))]);
        // A model without a price: no cost at all, never a guess.
        assert_eq!(
            usage_of(&transcript, &prices).and_then(|u| u.cost_usd),
            None
        );
        prices.insert(
            "small".into(),
            Price {
                cache_read: Some(0.1),
                ..price(1.0, 5.0)
            },
        );
        let cost = usage_of(&transcript, &prices).and_then(|u| u.cost_usd);
        // big: 15 + 7.5; small: 2 + 0.1.
        assert!(cost.is_some_and(|c| (c - 24.6).abs() < 1e-9), "{cost:?}");
    }
}
