//! Aider writes two files the template names for each job: its chat
//! history markdown (`--chat-history-file`; `--restore-chat-history`
//! sends it back to the model) and its analytics log (`--analytics-log`,
//! local, one per attempt). In the history a user message is `#### `
//! lines, aider's own notes are `> ` lines, and the answer is the plain
//! lines after the last user message. Tokens are the log's `message_send`
//! events: `prompt_tokens` (the API's prompt count, cached tokens
//! included: the log does not tell them apart) and `completion_tokens`.
//! With `--no-stream` (the template) they are the API's usage; streaming,
//! aider would estimate them itself. The log redacts the model's name, so
//! no price applies.

use super::{count, json_lines};
use crate::model::Usage;

pub(super) fn usage(text: &str) -> Option<Usage> {
    json_lines(text)
        .filter(|(_, event)| event["event"] == "message_send")
        .map(|(_, event)| {
            let properties = &event["properties"];
            Usage {
                input_tokens: count(properties, "prompt_tokens"),
                output_tokens: count(properties, "completion_tokens"),
                ..Usage::default()
            }
        })
        .reduce(Usage::plus)
}

/// The plain lines after the last user message of the history.
pub(super) fn result(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let last_user = lines.iter().rposition(|line| line.starts_with("#### "))?;
    let answer: Vec<&str> = lines[last_user + 1..]
        .iter()
        .map(|line| line.trim_end())
        .filter(|line| !line.starts_with('>') && !line.starts_with("# aider chat started"))
        .collect();
    Some(answer.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Aider 0.86.2's chat history after a turn and a restored second turn.
    const HISTORY: &str = "
# aider chat started at 2026-12-04 01:38:00

> /work/real-agents/aider/bin/aider --yes-always --no-stream --message=What is six times seven?  
> Aider v0.86.2  
> Model: openai/fake-model with whole edit format  

#### What is six times seven?  

forty-two

> Tokens: 13 sent, 5 received.  

# aider chat started at 2026-12-04 01:38:06

> Restored previous conversation history.  

#### -z plus one  
#### (two lines)  

forty-three
is the answer

> Tokens: 13 sent, 5 received.  
";

    /// Its analytics log (`--analytics-log`), trimmed.
    const ANALYTICS: &str = r#"{"event": "launched", "properties": {}, "user_id": "4fd21b8f", "time": 1796348006}
{"event": "message_send_starting", "properties": {}, "user_id": "4fd21b8f", "time": 1796348009}
{"event": "message_send", "properties": {"main_model": "openai/REDACTED", "edit_format": "whole", "prompt_tokens": 13, "completion_tokens": 5, "total_tokens": 18, "cost": 0, "total_cost": 0.0}, "user_id": "4fd21b8f", "time": 1796348010}
{"event": "message_send", "properties": {"main_model": "openai/REDACTED", "prompt_tokens": 600, "completion_tokens": 20}, "time": 1796348011}
{"event": "exit", "properties": {"reason": "Completed --message"}, "user_id": "4fd21b8f", "time": 1796348010}
"#;

    #[test]
    fn the_answer_is_what_follows_the_last_user_message() {
        assert_eq!(
            crate::agents::transcript::result_of(crate::model::TranscriptFormat::Aider, HISTORY, 0)
                .as_deref(),
            Some("forty-three\nis the answer")
        );
        let asked_only = "#### Count the files  \n";
        assert_eq!(result(asked_only).as_deref().map(str::trim), Some(""));
    }

    #[test]
    fn tokens_are_the_message_send_events() {
        assert_eq!(
            usage(ANALYTICS),
            Some(Usage {
                input_tokens: 613,
                output_tokens: 25,
                ..Usage::default()
            })
        );
    }
}
