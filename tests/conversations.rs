//! The agent's work, not only its process (SPEC section 14): an agent that
//! reports like Claude Code's hooks do (SessionStart's `session_id` and
//! `transcript_path`, Stop's `last_assistant_message`, a JSONL transcript
//! with `message.usage`) gets a job whose `status --json` has its
//! `session`, `result` and `usage`, which `logs` shows too and the
//! `on_done` hook reads. Real Mosquitto, tmux on a private socket, the
//! real binary.

mod common;

use common::*;
use std::time::Duration;

/// Publishes like the Claude Code template's hooks: the hook's JSON input
/// on stdin, the named fields into the event's data.
const AGENT: &str = r#"
transcript="$PWD/transcript-$DELEGATE_ATTEMPT.jsonl"
printf '{"session_id":"5f1c2d3e-0000-4000-8000-00000000abcd","transcript_path":"%s","source":"startup"}' "$transcript" |
  "$TMUX_DELEGATE_BIN" publish --event started --data-field session_id --data-field transcript_path --data-field source
cat > "$transcript" <<'JSONL'
{"type":"user","message":{"role":"user","content":"What is six times seven?"}}
{"type":"assistant","message":{"id":"msg_1","model":"claude-test","usage":{"input_tokens":120,"output_tokens":4,"cache_read_input_tokens":900}}}
{"type":"assistant","message":{"id":"msg_1","model":"claude-test","usage":{"input_tokens":120,"output_tokens":9,"cache_read_input_tokens":900}}}
{"type":"assistant","message":{"id":"msg_2","model":"claude-test","usage":{"input_tokens":30,"output_tokens":6,"cache_creation_input_tokens":50}}}
JSONL
printf '{"last_assistant_message":"forty-two is the answer","stop_hook_active":false}' |
  "$TMUX_DELEGATE_BIN" publish --event completed --message 'finished its turn' --data-field last_assistant_message
exec sleep 30
"#;

#[test]
fn a_completed_job_has_its_session_result_and_tokens_in_every_view() {
    let world = World::mosquitto("");
    let agent = script(&world.scratch("claude-like.sh"), AGENT);
    let done = world.scratch("on_done.json");
    world.write_config(&format!(
        "[broker]\nhost = \"127.0.0.1\"\nport = {}\n\n\
         [agents.like]\ncommand = [\"{}\"]\ncomplete_on_exit = false\n\n\
         [hooks]\non_done = [\"sh\", \"-c\", \"cat > {}\"]\n\n\
         [pricing.\"claude-test\"]\ninput = 3.0\noutput = 15.0\ncache_read = 0.3\ncache_write = 3.75\n",
        world.port(),
        agent.display(),
        done.display()
    ));
    let (code, out, err) = world.finish(
        &[
            "run", "--json", "--agent", "like", "--name", "answer", "--prompt", "6 x 7?",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    let id = world.id("answer");
    // A late `watch --json` gets the retained `completed`, with its result.
    let (_, watched, err) = world.finish(
        &["watch", "--job", &id, "--json", "--timeout", "10"],
        Duration::from_secs(20),
    );
    let completed: serde_json::Value =
        serde_json::from_str(watched.lines().next().unwrap_or_default()).expect(&err);
    assert_eq!(
        completed["result"], "forty-two is the answer",
        "{completed}"
    );
    let row = world.job("answer");
    assert_eq!(row["result"], "forty-two is the answer", "{row}");
    assert_eq!(
        row["session"]["id"], "5f1c2d3e-0000-4000-8000-00000000abcd",
        "{row}"
    );
    let transcript = row["session"]["transcript"].as_str().expect("transcript");
    assert!(std::path::Path::new(transcript).is_file(), "{row}");
    // msg_1's two lines count once, with its last line's figures; the cost
    // is (150 x 3 + 15 x 15 + 900 x 0.3 + 50 x 3.75) / 1e6 dollars.
    let usage = &row["usage"];
    assert_eq!(
        (
            &usage["input_tokens"],
            &usage["output_tokens"],
            &usage["cache_read_input_tokens"],
            &usage["cache_creation_input_tokens"]
        ),
        (
            &serde_json::json!(150),
            &serde_json::json!(15),
            &serde_json::json!(900),
            &serde_json::json!(50)
        ),
        "{row}"
    );
    let cost = usage["cost_usd"].as_f64().expect("a cost");
    assert!((cost - 0.0011325).abs() < 1e-12, "{row}");
    let (_, table, _) = world.finish(&["status"], Duration::from_secs(10));
    assert!(
        table.contains("TOKENS") && table.contains("150/15"),
        "{table}"
    );
    let (_, logs, _) = world.finish(&["logs", &id], Duration::from_secs(10));
    for needle in [
        "session 5f1c2d3e-0000-4000-8000-00000000abcd",
        "tokens: 150 in, 15 out",
        "forty-two is the answer",
    ] {
        assert!(logs.contains(needle), "{needle}: {logs}");
    }
    let hook: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&done).expect("on_done ran")).expect("json");
    assert_eq!(hook["result"], "forty-two is the answer", "{hook}");
}

/// Attempt 1 names its conversation and hangs; attempt 2 is started with
/// the agent's `continue_command` (the conversation's id, a message that
/// says why attempt 1 ended and repeats the task) and fails before its
/// first event (the resume itself broke); so attempt 3 starts a new
/// conversation with the original command and completes.
#[test]
fn a_retry_continues_the_conversation_and_a_broken_resume_falls_back_to_fresh() {
    let world = World::mosquitto("");
    let argv_log = world.scratch("argv.log");
    let agent = script(
        &world.scratch("resumable.sh"),
        &format!(
            "printf '%s\\n' \"attempt $DELEGATE_ATTEMPT: $(printf '%s' \"$*\" | tr '\\n' ' ')\" >> {log}\n\
             case \"$DELEGATE_ATTEMPT\" in\n\
             1) printf '{{\"session_id\":\"conv-1\"}}' | \"$TMUX_DELEGATE_BIN\" publish --event started --data-field session_id\n\
                exec sleep 600 ;;\n\
             2) exit 1 ;;\n\
             esac\n\
             \"$TMUX_DELEGATE_BIN\" publish --event started\n\
             \"$TMUX_DELEGATE_BIN\" publish --event completed --message done\nexec sleep 30",
            log = argv_log.display()
        ),
    );
    world.write_config(&format!(
        "[broker]\nhost = \"127.0.0.1\"\nport = {}\n\n\
         [agents.resumable]\ncommand = [\"{a}\", \"--\", \"{{prompt}}\"]\n\
         continue_command = [\"{a}\", \"--resume\", \"{{session}}\", \"--\", \"{{prompt}}\"]\n\
         complete_on_exit = false\nliveness = \"events\"\n\n\
         [defaults.timeouts]\nidle = \"2s\"\n\n\
         [defaults.retry]\nmax_attempts = 3\nbackoff = \"0s\"\n",
        world.port(),
        a = agent.display()
    ));
    let (code, out, err) = world.finish(
        &[
            "run",
            "--json",
            "--agent",
            "resumable",
            "--name",
            "resume",
            "--prompt",
            "Fix the parser",
        ],
        Duration::from_secs(90),
    );
    let log = std::fs::read_to_string(&argv_log).unwrap_or_default();
    assert_eq!(code, Some(0), "{out}\n{err}\n{log}");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert_eq!(lines[0], "attempt 1: -- Fix the parser", "{log}");
    assert!(
        lines[1].starts_with("attempt 2: --resume conv-1 -- "),
        "{log}"
    );
    assert!(
        lines[1].contains("(attempt 1)")
            && lines[1].contains("hung")
            && lines[1].ends_with("Fix the parser"),
        "the continuation says why and repeats the task: {log}"
    );
    assert_eq!(lines[2], "attempt 3: -- Fix the parser", "{log}");
    let id = world.id("resume");
    let record = world.record(&id);
    assert_eq!(record["state"], "completed", "{record}");
    assert_eq!(
        record["attempts"][1]["continued_from"], "conv-1",
        "{record}"
    );
    assert!(
        record["attempts"][2]["continued_from"].is_null(),
        "{record}"
    );
    assert_eq!(
        record["attempts"][2]["fresh_because"],
        "attempt 2 continued conversation conv-1 and failed before its first event",
        "{record}"
    );
    assert!(record["attempts"][1]["fresh_because"].is_null(), "{record}");
}

/// `send ID TEXT` answers an agent waiting at its prompt without
/// attaching: the text arrives byte for byte (quotes, `$(...)`, a leading
/// dash, no shell, no tmux key names), and the job completes; keys go only
/// to a dialog (exit 2 with why). To the completed job, `send` is a
/// follow-up: attempt 2 continues its conversation with the text as its
/// message; `retry --fresh` then starts a new conversation.
#[test]
fn send_answers_a_waiting_agent_and_follows_up_a_finished_one() {
    let world = World::mosquitto("");
    let heard = world.scratch("heard.txt");
    let argv_log = world.scratch("argv.log");
    let agent = script(
        &world.scratch("asks.sh"),
        &format!(
            "printf '%s\\n' \"attempt $DELEGATE_ATTEMPT: $*\" >> {log}\n\
             printf '{{\"session_id\":\"conv-9\"}}' | \"$TMUX_DELEGATE_BIN\" publish --event started --data-field session_id\n\
             if [ \"$DELEGATE_ATTEMPT\" = 1 ]; then\n\
               \"$TMUX_DELEGATE_BIN\" publish --event waiting --message 'Which file next?'\n\
               IFS= read -r answer\n\
               printf '%s' \"$answer\" > {heard}\n\
             fi\n\
             \"$TMUX_DELEGATE_BIN\" publish --event completed --message done\nexec sleep 30",
            heard = heard.display(),
            log = argv_log.display()
        ),
    );
    world.write_config(&format!(
        "[broker]\nhost = \"127.0.0.1\"\nport = {}\n\n\
         [agents.asks]\ncommand = [\"{a}\", \"--\", \"{{prompt}}\"]\n\
         continue_command = [\"{a}\", \"--resume\", \"{{session}}\", \"--\", \"{{prompt}}\"]\n\
         complete_on_exit = false\n",
        world.port(),
        a = agent.display()
    ));
    let mut running = world.spawn(&[
        "run", "--json", "--agent", "asks", "--name", "asks", "--prompt", "p",
    ]);
    assert!(
        running.wait_line("\"to\":\"waiting\"", Duration::from_secs(20)),
        "{:?}",
        running.stderr
    );
    let id = world.id("asks");
    let (code, _, err) = world.finish(&["send", &id, "--keys", "Enter"], Duration::from_secs(10));
    assert_eq!(code, Some(2), "keys without a dialog: {err}");
    assert!(err.contains("no dialog"), "{err}");
    let text = "-z it's $(touch /tmp/td-send-pwned) `id` \"q\" C-c";
    let (code, _, err) = world.finish(&["send", &id, text], Duration::from_secs(10));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        running.finish(Duration::from_secs(30)).code(),
        Some(0),
        "{:?}",
        running.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&heard).expect("the agent heard"),
        text
    );
    assert!(!std::path::Path::new("/tmp/td-send-pwned").exists());
    let (code, _, err) = world.finish(&["send", &id, "--keys", "Enter"], Duration::from_secs(10));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is completed"), "{err}");

    let (code, out, err) =
        world.finish(&["send", &id, "and now the tests"], Duration::from_secs(60));
    assert_eq!(code, Some(0), "{out}\n{err}");
    let (code, out, err) = world.finish(&["retry", &id, "--fresh"], Duration::from_secs(60));
    assert_eq!(code, Some(0), "{out}\n{err}");
    let log = std::fs::read_to_string(&argv_log).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines,
        [
            "attempt 1: -- p",
            "attempt 2: --resume conv-9 -- and now the tests",
            "attempt 3: -- p",
        ],
        "{log}"
    );
    let record = world.record(&id);
    assert_eq!(record["state"], "completed", "{record}");
    assert_eq!(
        record["attempts"][1]["continued_from"], "conv-9",
        "{record}"
    );
}

/// A job over its budget (`max_tokens`, counted from the transcript at a
/// heartbeat, mid-turn) is stopped with failure kind `budget` and not
/// retried, though attempts are left.
#[test]
fn an_attempt_over_its_token_budget_stops_as_budget_and_is_not_retried() {
    let world = World::mosquitto("");
    let agent = script(
        &world.scratch("spender.sh"),
        r#"transcript="$PWD/spent-$DELEGATE_ATTEMPT.jsonl"
printf '{"session_id":"spend-1","transcript_path":"%s"}' "$transcript" |
  "$TMUX_DELEGATE_BIN" publish --event started --data-field session_id --data-field transcript_path
printf '%s\n' '{"type":"assistant","message":{"id":"m1","usage":{"input_tokens":400,"output_tokens":200}}}' > "$transcript"
"$TMUX_DELEGATE_BIN" publish --event heartbeat
exec sleep 60
"#,
    );
    world.write_config(&format!(
        "[broker]\nhost = \"127.0.0.1\"\nport = {}\n\n\
         [defaults]\nmax_tokens = 500\n\n\
         [agents.spender]\ncommand = [\"{}\"]\ncomplete_on_exit = false\nliveness = \"events\"\n\n\
         [defaults.retry]\nmax_attempts = 3\nbackoff = \"0s\"\n",
        world.port(),
        agent.display()
    ));
    let (code, out, err) = world.finish(
        &[
            "run", "--json", "--agent", "spender", "--name", "spend", "--prompt", "p",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(1), "{out}\n{err}");
    let row = world.job("spend");
    assert_eq!(row["state"], "failed", "{row}");
    assert_eq!(row["attempt"], 1, "not retried: {row}");
    assert_eq!(row["failure"]["kind"], "budget", "{row}");
    assert!(
        row["failure"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("600 tokens") && r.contains("max_tokens = 500")),
        "{row}"
    );
    assert_eq!(row["usage"]["input_tokens"], 400, "{row}");
}

/// SPEC section 14, usage limits: an agent meets a limit (Claude Code's
/// StopFailure `error: "rate_limit"`, here without a reset time, as with an
/// API key); the job is `limited` (not failed, the attempt not charged),
/// the other job of the same agent stays queued (`max_parallel = 1`), and
/// after the wait (`limits.wait`, shortened) the first continues in its own
/// conversation and both complete.
#[test]
fn a_usage_limit_pauses_the_job_and_the_queue_then_both_complete() {
    let world = World::mosquitto("");
    let log = world.scratch("argv.log");
    let hooked = world.scratch("on_limited.json");
    let agent = script(
        &world.scratch("limited.sh"),
        &format!(
            "printf '%s|%s|%s|%s\\n' \"$DELEGATE_JOB_ID\" \"$DELEGATE_ATTEMPT\" \"$(printf '%s' \"$*\" | head -c 30)\" \"$(printf '%s' \"$*\" | grep -c 'usage limit')\" >> {log}\n\
             if [ \"$1\" = once ] && [ \"$DELEGATE_ATTEMPT\" = 1 ]; then\n\
               printf '{{\"session_id\":\"conv-L\"}}' | \"$TMUX_DELEGATE_BIN\" publish --event started --data-field session_id\n\
               printf '{{\"error\":\"rate_limit\",\"last_assistant_message\":\"API Error: Request rejected (429) · This request would exceed your account'\"'\"'s rate limit.\"}}' |\n\
                 \"$TMUX_DELEGATE_BIN\" publish --event error --message-from-stdin --message-field last_assistant_message --data-field error\n\
               exec sleep 60\n\
             fi\n\
             \"$TMUX_DELEGATE_BIN\" publish --event started\n\
             \"$TMUX_DELEGATE_BIN\" publish --event completed --message done\nexec sleep 30",
            log = log.display()
        ),
    );
    world.write_config(&format!(
        "[broker]\nhost = \"127.0.0.1\"\nport = {}\n\n\
         [agents.limited]\ncommand = [\"{a}\", \"{{prompt}}\"]\n\
         continue_command = [\"{a}\", \"--resume\", \"{{session}}\", \"{{prompt}}\"]\n\
         complete_on_exit = false\nliveness = \"events\"\n\n\
         [defaults]\nmax_parallel = 1\n\n\
         [defaults.retry]\nmax_attempts = 1\n\n\
         [defaults.limits]\nwait = \"2s\"\n\n\
         [hooks]\non_limited = [\"sh\", \"-c\", \"cat > {hook}\"]\n",
        world.port(),
        a = agent.display(),
        hook = hooked.display()
    ));
    std::fs::write(
        world.home.join("jobs.toml"),
        "[[jobs]]\nname = \"first\"\nagent = \"limited\"\nprompt = \"once\"\n\n\
         [[jobs]]\nname = \"second\"\nagent = \"limited\"\nprompt = \"always\"\n",
    )
    .expect("jobs");
    let (code, out, err) = world.finish(&["run", "--json", "jobs.toml"], Duration::from_secs(90));
    let argv = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, Some(0), "{out}\n{err}\n{argv}");
    let transitions: Vec<serde_json::Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let went = |name: &str, to: &str| {
        transitions
            .iter()
            .any(|t| t["name"] == name && t["to"] == to)
    };
    assert!(went("first", "limited"), "{out}");
    assert!(
        !went("first", "failed") && !went("second", "failed"),
        "nothing failed: {out}"
    );
    assert!(went("second", "queued"), "{out}");
    // The second job started only after the first had continued: the
    // first job's attempt 2 comes before any line of the second.
    let first = world.id("first");
    let lines: Vec<&str> = argv.lines().collect();
    let resumed = lines
        .iter()
        .position(|l| l.starts_with(&format!("{first}|2|--resume conv-L ")))
        .unwrap_or_else(|| panic!("attempt 2 did not continue conv-L: {argv}"));
    let second_started = lines
        .iter()
        .position(|l| !l.starts_with(&first))
        .expect("the second job ran");
    assert!(resumed < second_started, "{argv}");
    let record = world.record(&first);
    assert_eq!(record["state"], "completed", "{record}");
    assert_eq!(record["attempts"][0]["outcome"], "limited", "{record}");
    assert_eq!(
        record["attempts"][1]["continued_from"], "conv-L",
        "{record}"
    );
    assert!(
        lines[resumed].ends_with("|1"),
        "the continuation says it was paused by a usage limit: {argv}"
    );
    assert_eq!(world.record(&world.id("second"))["state"], "completed");
    // `on_limited` ran once, with the job limited and when it continues.
    let hook: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&hooked).expect("on_limited ran"))
            .expect("json");
    assert_eq!(hook["state"], "limited", "{hook}");
    assert!(hook["until"].is_string(), "{hook}");
    assert!(
        hook["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("rate limit"),
        "{hook}"
    );
}

/// A usage limit read from the agent's last words at its exit (a screen
/// rule with `state = "limited"`, template data any agent can declare):
/// an agent that prints its provider's limit and exits 1 is `limited`, not
/// failed, and its next attempt continues the conversation it named.
#[test]
fn an_agent_that_exits_at_a_limit_is_limited_by_its_screen_rule_and_continues() {
    let world = World::mosquitto("");
    let log = world.scratch("argv.log");
    let agent = script(
        &world.scratch("exits-at-limit.sh"),
        &format!(
            "printf '%s|%s\\n' \"$DELEGATE_ATTEMPT\" \"$1\" >> {log}\n\
             if [ \"$DELEGATE_ATTEMPT\" = 1 ]; then\n\
               printf '{{\"session_id\":\"conv-X\"}}' | \"$TMUX_DELEGATE_BIN\" publish --event started --data-field session_id\n\
               echo 'ERROR: Rate limit reached for fake-model. Please try again later.'\n\
               exit 1\n\
             fi\n\
             \"$TMUX_DELEGATE_BIN\" publish --event started\n\
             \"$TMUX_DELEGATE_BIN\" publish --event completed --message done\nexec sleep 30",
            log = log.display()
        ),
    );
    world.write_config(&format!(
        "[broker]\nhost = \"127.0.0.1\"\nport = {}\n\n\
         [agents.exits]\ncommand = [\"{a}\", \"{{prompt}}\"]\n\
         continue_command = [\"{a}\", \"--resume={{session}}\"]\n\
         complete_on_exit = false\nliveness = \"events\"\n\n\
         [[agents.exits.screens]]\nmatch = \"(Rate limit reached[^\\\\n]*)\"\nstate = \"limited\"\n\n\
         [defaults.retry]\nmax_attempts = 1\n\n\
         [defaults.limits]\nwait = \"1s\"\n",
        world.port(),
        a = agent.display()
    ));
    let (code, out, err) = world.finish(
        &[
            "run", "--json", "--agent", "exits", "--name", "exits", "--prompt", "go",
        ],
        Duration::from_secs(60),
    );
    let argv = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, Some(0), "{out}\n{err}\n{argv}");
    assert!(out.contains("\"to\":\"limited\""), "{out}");
    assert!(out.contains("Rate limit reached for fake-model"), "{out}");
    assert_eq!(argv, "1|go\n2|--resume=conv-X\n", "{out}");
    let record = world.record(&world.id("exits"));
    assert_eq!(record["attempts"][0]["outcome"], "limited", "{record}");
    assert_eq!(record["state"], "completed", "{record}");
}

/// A custom agent that captures its conversation as Codex does, declared
/// as template data (`[agents.NAME.conversation]`): it prints its id
/// (`session = "printed"`, read from the pane), keeps a Codex-format
/// rollout named by it under `$SESSIONS` (found by a wildcard path
/// template), and writes its answer to `{result_file}`. Attempt 1 prints
/// its id, records one response and hangs; attempt 2 continues the
/// conversation (its argv has the id), appends its own response, and
/// counts only that one (the mark taken at its launch).
#[test]
fn a_custom_agent_declares_how_its_conversation_is_captured() {
    let world = World::mosquitto("");
    let sessions = world.scratch("sessions");
    let agent = script(
        &world.scratch("codex-like.sh"),
        r#"result="$1"; shift
if [ "$1" = resume ]; then id="$2"; else id=0199aaaa-1111-4222-8333-444455556666; fi
echo "session id: $id"
mkdir -p "$SESSIONS/2026/12"
rollout="$SESSIONS/2026/12/rollout-2026-12-04T01-27-46-$id.jsonl"
printf '{"type":"turn_context","payload":{"model":"m"}}\n' >> "$rollout"
printf '{"type":"token_usage_record","payload":{"response_id":"r%s","usage":{"input_tokens":%s,"cached_input_tokens":3,"output_tokens":5}}}\n' "$DELEGATE_ATTEMPT" "$((DELEGATE_ATTEMPT * 100 + 3))" >> "$rollout"
[ "$DELEGATE_ATTEMPT" = 1 ] && exec sleep 600
printf 'the answer, from attempt %s\n' "$DELEGATE_ATTEMPT" > "$result"
echo "some last words"
"#,
    );
    world.write_config(&format!(
        "[broker]\nhost = \"127.0.0.1\"\nport = {}\n\n\
         [agents.like]\ncommand = [\"{a}\", \"{{result_file}}\", \"--\", \"{{prompt}}\"]\n\
         continue_command = [\"{a}\", \"{{result_file}}\", \"resume\", \"{{session}}\", \"--\", \"{{prompt}}\"]\n\
         env = {{ SESSIONS = \"{s}\" }}\nliveness = \"output\"\n\n\
         [agents.like.conversation]\nsession = \"printed\"\n\
         pattern = 'session id: ([0-9a-f-]{{36}})'\n\
         transcript = [\"$UNSET_HOME_OF_LIKE/x/*.jsonl\", \"$SESSIONS/*/*/rollout-*-{{session}}.jsonl\"]\n\
         format = \"codex\"\n\n\
         [defaults.timeouts]\nidle = \"2s\"\n\n\
         [defaults.retry]\nbackoff = \"0s\"\n",
        world.port(),
        a = agent.display(),
        s = sessions.display()
    ));
    let (code, out, err) = world.finish(
        &[
            "run", "--json", "--agent", "like", "--name", "like", "--prompt", "-z go",
        ],
        Duration::from_secs(90),
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    let record = world.record(&world.id("like"));
    let id = "0199aaaa-1111-4222-8333-444455556666";
    assert_eq!(record["attempt"], 2, "{record}");
    assert_eq!(record["attempts"][0]["session"]["id"], id, "{record}");
    assert_eq!(
        record["attempts"][0]["session"]["agent"], "like",
        "{record}"
    );
    let transcript = record["attempts"][0]["session"]["transcript"]
        .as_str()
        .unwrap_or_default();
    assert!(
        transcript.starts_with(&sessions.display().to_string())
            && transcript.ends_with(&format!("{id}.jsonl")),
        "{record}"
    );
    assert_eq!(record["attempts"][1]["continued_from"], id, "{record}");
    assert_eq!(record["attempts"][1]["session"]["id"], id, "{record}");
    // Attempt 1 hung with no answer; attempt 2's came from its result file.
    assert!(record["attempts"][0]["result"].is_null(), "{record}");
    assert_eq!(
        record["attempts"][1]["result"], "the answer, from attempt 2",
        "{record}"
    );
    let tokens = |n: usize| {
        let usage = &record["attempts"][n]["usage"];
        (
            usage["input_tokens"].as_u64(),
            usage["cache_read_input_tokens"].as_u64(),
            usage["output_tokens"].as_u64(),
        )
    };
    assert_eq!(tokens(0), (Some(100), Some(3), Some(5)), "{record}");
    assert_eq!(tokens(1), (Some(200), Some(3), Some(5)), "{record}");
    let row = world.job("like");
    assert_eq!(row["usage"]["input_tokens"], 300, "{row}");
    assert_eq!(row["result"], "the answer, from attempt 2", "{row}");
}

/// An agent with no transcript and no result file: its `result` is the
/// last lines it printed, without the wrapper's own.
#[test]
fn without_a_transcript_the_result_is_what_the_agent_printed_last() {
    let world = World::mosquitto("");
    world.write_config(&format!(
        "[broker]\nhost = \"127.0.0.1\"\nport = {}\n",
        world.port()
    ));
    let (code, out, err) = world.finish(
        &[
            "run",
            "--json",
            "--agent",
            "shell",
            "--name",
            "echo",
            "--prompt",
            "-z the answer",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    let row = world.job("echo");
    assert_eq!(row["result"], "-z the answer", "{row}");
}
