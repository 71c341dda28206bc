//! Claude Code's transcript: JSON lines; each assistant line carries its
//! message's `usage`, and a message split over several lines (one per
//! content block) repeats the same usage under the same `message.id`:
//! each message counts once, with its last line's figures.

use super::{count, json_lines, Prices, Tally};
use crate::model::Usage;

pub(super) fn usage(text: &str, prices: &Prices) -> Option<Usage> {
    let mut tally = Tally::default();
    for (n, entry) in json_lines(text) {
        if entry["type"] != "assistant" {
            continue;
        }
        let message = &entry["message"];
        let Some(usage) = message.get("usage").filter(|u| u.is_object()) else {
            continue;
        };
        let usage = Usage {
            input_tokens: count(usage, "input_tokens"),
            output_tokens: count(usage, "output_tokens"),
            cache_read_input_tokens: count(usage, "cache_read_input_tokens"),
            cache_creation_input_tokens: count(usage, "cache_creation_input_tokens"),
            cost_usd: None,
        };
        // A line without a message id is a message of its own.
        let id = message["id"]
            .as_str()
            .map_or_else(|| format!("line {n}"), str::to_owned);
        tally.add(id, usage, message["model"].as_str(), prices);
    }
    tally.total()
}

/// The text of the last assistant line that has some.
pub(super) fn result(text: &str) -> Option<String> {
    json_lines(text)
        .filter(|(_, entry)| entry["type"] == "assistant")
        .filter_map(|(_, entry)| {
            let texts: Vec<&str> = entry["message"]["content"]
                .as_array()?
                .iter()
                .filter(|block| block["type"] == "text")
                .filter_map(|block| block["text"].as_str())
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        })
        .last()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Price;

    #[test]
    fn each_assistant_message_counts_once_whatever_its_lines() {
        let transcript = [
            r#"{"type":"user","message":{"role":"user","content":"What is 6 x 7?"}}"#,
            // One message in two content-block lines: counted once.
            r#"{"type":"assistant","message":{"id":"msg_1","usage":{"input_tokens":12,"output_tokens":3,"cache_read_input_tokens":100}}}"#,
            r#"{"type":"assistant","message":{"id":"msg_1","usage":{"input_tokens":12,"output_tokens":5,"cache_read_input_tokens":100}}}"#,
            r#"{"type":"assistant","message":{"id":"msg_2","usage":{"input_tokens":20,"output_tokens":7,"cache_creation_input_tokens":4},"content":[{"type":"text","text":"forty-two"}]}}"#,
            "not json: a torn last line",
        ]
        .join("\n");
        assert_eq!(
            usage(&transcript, &Prices::new()),
            Some(Usage {
                input_tokens: 32,
                output_tokens: 12,
                cache_read_input_tokens: 100,
                cache_creation_input_tokens: 4,
                cost_usd: None,
            })
        );
        assert_eq!(result(&transcript).as_deref(), Some("forty-two"));
        assert_eq!(usage(r#"{"type":"user"}"#, &Prices::new()), None);
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
        assert_eq!(usage(&transcript, &prices).and_then(|u| u.cost_usd), None);
        prices.insert(
            "small".into(),
            Price {
                cache_read: Some(0.1),
                ..price(1.0, 5.0)
            },
        );
        let cost = usage(&transcript, &prices).and_then(|u| u.cost_usd);
        // big: 15 + 7.5; small: 2 + 0.1.
        assert!(cost.is_some_and(|c| (c - 24.6).abs() < 1e-9), "{cost:?}");
    }
}
