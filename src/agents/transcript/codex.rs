//! Codex's rollout (`$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<time>-<id>.jsonl`):
//! JSON lines, appended to by `codex exec resume`. Each model response
//! adds one `token_usage_record` line with its `usage`; OpenAI counts
//! cached input inside `input_tokens`, so the input here is
//! `input_tokens - cached_input_tokens` and the cached part is the cache
//! read (`reasoning_output_tokens` are already in `output_tokens`). The
//! model is the latest `turn_context` line's. The final answer is the
//! `task_complete` event's `last_agent_message` (the template also has
//! Codex write it with `--output-last-message`).

use super::{count, json_lines, Prices, Tally};
use crate::model::Usage;

pub(super) fn usage(text: &str, prices: &Prices) -> Option<Usage> {
    let mut tally = Tally::default();
    let mut model: Option<String> = None;
    for (n, entry) in json_lines(text) {
        let payload = &entry["payload"];
        match entry["type"].as_str() {
            Some("turn_context") => {
                if let Some(m) = payload["model"].as_str() {
                    model = Some(m.to_owned());
                }
            }
            Some("token_usage_record") => {
                let Some(usage) = payload.get("usage").filter(|u| u.is_object()) else {
                    continue;
                };
                let cached = count(usage, "cached_input_tokens");
                let usage = Usage {
                    input_tokens: count(usage, "input_tokens").saturating_sub(cached),
                    output_tokens: count(usage, "output_tokens"),
                    cache_read_input_tokens: cached,
                    cache_creation_input_tokens: count(usage, "cache_write_input_tokens"),
                    cost_usd: None,
                };
                let id = payload["response_id"]
                    .as_str()
                    .map_or_else(|| format!("line {n}"), str::to_owned);
                tally.add(id, usage, model.as_deref(), prices);
            }
            _ => {}
        }
    }
    tally.total()
}

pub(super) fn result(text: &str) -> Option<String> {
    json_lines(text)
        .filter(|(_, e)| e["type"] == "event_msg" && e["payload"]["type"] == "task_complete")
        .filter_map(|(_, e)| {
            e["payload"]["last_agent_message"]
                .as_str()
                .map(str::to_owned)
        })
        .last()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Price;

    /// Lines of a real Codex 0.171.0 rollout (`codex exec`, then `codex
    /// exec resume` of the same thread), trimmed to the keys read here.
    const ROLLOUT: &str = r#"{"timestamp":"2026-12-04T01:27:46.297Z","ordinal":0,"type":"session_meta","payload":{"session_id":"01a23eaa-1e61-7d62-b039-40baef9be8eb","id":"01a23eaa-1e61-7d62-b039-40baef9be8eb","cwd":"/tmp/m/cx/work","originator":"codex_exec","cli_version":"0.171.0","source":"exec"}}
{"timestamp":"2026-12-04T01:27:46.399Z","ordinal":5,"type":"turn_context","payload":{"turn_id":"01a23eaa-1f54-72a3-be8e-f815458e7294","cwd":"/tmp/m/cx/work","approval_policy":"never","model":"fake-model"}}
{"timestamp":"2026-12-04T01:27:46.439Z","ordinal":7,"type":"response_item","payload":{"type":"message","role":"user","content":[{"type":"input_text","text":"What is six times seven?"}]}}
{"timestamp":"2026-12-04T01:27:46.539Z","ordinal":10,"type":"response_item","payload":{"type":"message","status":"completed","id":"msg_00000266534","role":"assistant","content":[{"type":"output_text","text":"forty-two","annotations":[]}]}}
{"timestamp":"2026-12-04T01:27:46.540Z","ordinal":11,"type":"token_usage_record","payload":{"thread_id":"01a23eaa-1e61-7d62-b039-40baef9be8eb","response_id":"resp_00000166534","usage":{"input_tokens":13,"cached_input_tokens":3,"cache_write_input_tokens":0,"output_tokens":5,"reasoning_output_tokens":0,"total_tokens":18},"thread_token_usage":{"input_tokens":13,"cached_input_tokens":3,"output_tokens":5,"total_tokens":18}}}
{"timestamp":"2026-12-04T01:27:46.541Z","ordinal":12,"type":"event_msg","payload":{"type":"token_count","info":{"total_token_usage":{"input_tokens":13,"cached_input_tokens":3,"output_tokens":5,"total_tokens":18}}}}
{"timestamp":"2026-12-04T01:27:46.560Z","ordinal":13,"type":"event_msg","payload":{"type":"task_complete","last_agent_message":"forty-two","duration_ms":273}}
{"timestamp":"2026-12-04T01:28:22.100Z","ordinal":16,"type":"turn_context","payload":{"turn_id":"01a23eab-5bdc-7961-bfd9-c0746aa0f89d","model":"other-model"}}
{"timestamp":"2026-12-04T01:28:22.448Z","ordinal":20,"type":"token_usage_record","payload":{"response_id":"resp_00000147424","usage":{"input_tokens":113,"cached_input_tokens":100,"cache_write_input_tokens":2,"output_tokens":7,"reasoning_output_tokens":4,"total_tokens":120}}}
{"timestamp":"2026-12-04T01:28:22.449Z","ordinal":21,"type":"event_msg","payload":{"type":"task_complete","last_agent_message":"forty-three"}}
{"timestamp":"2026-12-04T01:28:22.4"#;

    #[test]
    fn each_response_counts_once_with_cached_input_apart() {
        assert_eq!(
            usage(ROLLOUT, &Prices::new()),
            Some(Usage {
                input_tokens: 10 + 13,
                output_tokens: 5 + 7,
                cache_read_input_tokens: 3 + 100,
                cache_creation_input_tokens: 2,
                cost_usd: None,
            })
        );
        assert_eq!(result(ROLLOUT).as_deref(), Some("forty-three"));
    }

    #[test]
    fn each_response_is_priced_at_its_turns_model() {
        let price = Price {
            input: 1.0,
            output: 10.0,
            cache_read: Some(0.5),
            cache_write: None,
        };
        let prices = Prices::from([
            ("fake-model".to_owned(), price),
            ("other-model".to_owned(), price),
        ]);
        let cost = usage(ROLLOUT, &prices).and_then(|u| u.cost_usd);
        let expected = (23.0 + 12.0 * 10.0 + 103.0 * 0.5 + 2.0) / 1_000_000.0;
        assert!(
            cost.is_some_and(|c| (c - expected).abs() < 1e-12),
            "{cost:?}"
        );
        // One model without a price: no cost.
        let one = Prices::from([("fake-model".to_owned(), price)]);
        assert_eq!(usage(ROLLOUT, &one).and_then(|u| u.cost_usd), None);
    }
}
