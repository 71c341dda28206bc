//! opencode keeps its sessions in a SQLite database; `opencode export ID`
//! prints one as a JSON document, which the window's wrapper saves when
//! an attempt ends: {`info`, `messages`: [{`info`: {`role`, `tokens`,
//! `modelID`, `providerID`}, `parts`: [{`type`: `text`, `text`}, ...]}]}.
//! An assistant message's `tokens` are {`input` (without the cache),
//! `output`, `reasoning`, `cache`: {`read`, `write`}}; reasoning is output.
//! A continued session is exported whole: an attempt's part is the
//! messages after the `skip` earlier ones. A message is priced as
//! `providerID/modelID` when `[pricing]` names that, else as `modelID`.

use super::{count, Prices, Tally};
use crate::model::Usage;
use serde_json::Value;

fn exported(text: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|doc| doc.get("messages")?.as_array().cloned())
        .unwrap_or_default()
}

/// How many messages the export holds.
pub(super) fn messages(text: &str) -> usize {
    exported(text).len()
}

fn assistant_messages(text: &str, skip: usize) -> impl Iterator<Item = Value> {
    exported(text)
        .into_iter()
        .skip(skip)
        .filter(|m| m["info"]["role"] == "assistant")
}

pub(super) fn usage(text: &str, skip: usize, prices: &Prices) -> Option<Usage> {
    let mut tally = Tally::default();
    for (n, message) in assistant_messages(text, skip).enumerate() {
        let info = &message["info"];
        let Some(tokens) = info.get("tokens").filter(|t| t.is_object()) else {
            continue;
        };
        let cache = &tokens["cache"];
        let usage = Usage {
            input_tokens: count(tokens, "input"),
            output_tokens: count(tokens, "output") + count(tokens, "reasoning"),
            cache_read_input_tokens: count(cache, "read"),
            cache_creation_input_tokens: count(cache, "write"),
            cost_usd: None,
        };
        let model = info["modelID"].as_str();
        let qualified = info["providerID"]
            .as_str()
            .zip(model)
            .map(|(provider, model)| format!("{provider}/{model}"))
            .filter(|name| prices.contains_key(name));
        let id = info["id"]
            .as_str()
            .map_or_else(|| format!("message {n}"), str::to_owned);
        tally.add(id, usage, qualified.as_deref().or(model), prices);
    }
    tally.total()
}

/// The text parts of the last assistant message that has some.
pub(super) fn result(text: &str, skip: usize) -> Option<String> {
    assistant_messages(text, skip)
        .filter_map(|message| {
            let texts: Vec<&str> = message["parts"]
                .as_array()?
                .iter()
                .filter(|part| part["type"] == "text")
                .filter_map(|part| part["text"].as_str())
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        })
        .last()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Price;

    /// `opencode export` of a real opencode 1.18.33 session (a write tool
    /// call, then an answer; then a continued turn), trimmed.
    const EXPORT: &str = r#"{"info":{"id":"ses_dc14e93a8ffeiR4yCETP3GIxCm","directory":"/tmp/m/oc/work","title":"done","tokens":{"input":30,"output":15,"reasoning":0,"cache":{"read":9,"write":0}}},
     "messages":[
      {"info":{"role":"user","id":"msg_1","sessionID":"ses_dc14e93a8ffeiR4yCETP3GIxCm"},"parts":[{"type":"text","text":"\"write hello\""}]},
      {"info":{"role":"assistant","id":"msg_2","modelID":"fake-model","providerID":"fake","tokens":{"total":18,"input":10,"output":5,"reasoning":0,"cache":{"write":0,"read":3}},"finish":"tool-calls"},
       "parts":[{"type":"step-start"},{"type":"tool","tool":"write","state":{"status":"completed","output":"Wrote file successfully."}},{"type":"step-finish"}]},
      {"info":{"role":"assistant","id":"msg_3","modelID":"fake-model","providerID":"fake","tokens":{"total":18,"input":10,"output":5,"reasoning":0,"cache":{"write":0,"read":3}},"finish":"stop"},
       "parts":[{"type":"step-start"},{"type":"text","text":"done writing"},{"type":"step-finish"}]},
      {"info":{"role":"user","id":"msg_4"},"parts":[{"type":"text","text":"\"and now?\""}]},
      {"info":{"role":"assistant","id":"msg_5","modelID":"big-model","providerID":"fake","tokens":{"total":40,"input":20,"output":8,"reasoning":2,"cache":{"write":1,"read":9}},"finish":"stop"},
       "parts":[{"type":"step-start"},{"type":"text","text":"all done"},{"type":"step-finish"}]}
     ]}"#;

    #[test]
    fn an_attempts_messages_count_after_the_earlier_ones() {
        assert_eq!(messages(EXPORT), 5);
        assert_eq!(
            usage(EXPORT, 0, &Prices::new()),
            Some(Usage {
                input_tokens: 40,
                output_tokens: 20,
                cache_read_input_tokens: 15,
                cache_creation_input_tokens: 1,
                cost_usd: None,
            })
        );
        let second = usage(EXPORT, 3, &Prices::new()).expect("the continued turn");
        assert_eq!((second.input_tokens, second.output_tokens), (20, 10));
        assert_eq!(result(EXPORT, 0).as_deref(), Some("all done"));
        assert_eq!(usage(EXPORT, 5, &Prices::new()), None);
    }

    #[test]
    fn a_message_is_priced_by_provider_and_model_or_by_model() {
        let price = Price {
            input: 1.0,
            output: 1.0,
            cache_read: None,
            cache_write: None,
        };
        let prices = Prices::from([("fake/big-model".to_owned(), price)]);
        let cost = usage(EXPORT, 3, &prices).and_then(|u| u.cost_usd);
        assert!(
            cost.is_some_and(|c| (c - 40.0 / 1e6).abs() < 1e-12),
            "{cost:?}"
        );
        let by_model = Prices::from([("big-model".to_owned(), price)]);
        assert!(usage(EXPORT, 3, &by_model)
            .and_then(|u| u.cost_usd)
            .is_some());
    }
}
