//! Screen rules (pure): pane text in, decisions out. Hooks cannot see a
//! dialog an agent shows before its first hook (Claude Code's folder trust,
//! custom API key, login and first-run screens) or a prompt it waits at
//! without telling anyone; a rule recognises such a screen by a regex.
//!
//! Two kinds of rule, written `[[agents.NAME.screens]]`:
//! - `state = "waiting"` (default): matched against the pane's visible
//!   screen while an attempt shows no sign of life; a match reports
//!   `waiting` with the matched question, and `keys` (opt-in) answers it.
//! - `state = "agent_config"`: matched against the last lines of the pane
//!   when the agent exits with a non-zero code; a match fails the attempt
//!   as kind `agent_config` (not retried) with the agent's words and `fix`.
//! - `state = "limited"`: matched against the last lines of the pane when
//!   the agent exits (any code); a match makes the attempt `limited`.
//!
//! Rules are compiled only by the supervisor and the window's wrapper, never
//! on `publish`'s start-up path.

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use ScreenState::{AgentConfig, Limited, Waiting};

/// What a matching screen means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScreenState {
    /// The agent waits for a human (a dialog, a question).
    #[default]
    Waiting,
    /// The agent refused its configuration and exited (untrusted folder,
    /// missing key): checked on the pane's last lines at a non-zero exit.
    AgentConfig,
    /// The agent met a usage or rate limit and exited: checked on the
    /// pane's last lines at any exit (Aider exits 0 after giving up on a
    /// rate limit), before `agent_config` rules.
    /// The attempt is `limited` (SPEC section 14); the captured text is
    /// where the reset time is read from, so capture the whole line.
    Limited,
}

/// One rule as written in a template or config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScreenRule {
    /// A regex over the screen text (box-drawing characters removed, each
    /// line trimmed, runs of blanks made one space; `^`/`$` match at lines).
    /// The first capture group, when there is one, is the message.
    #[serde(rename = "match")]
    pub pattern: String,
    #[serde(default)]
    pub state: ScreenState,
    /// tmux key names sent to the pane to answer the screen (opt-in), e.g.
    /// `["Enter"]` or `["Down", "Enter"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<String>>,
    /// tmux key names that choose the dialog's first option, for a person
    /// who answers it from `top` (`a`); default `["Enter"]`, for a dialog
    /// whose first option is preselected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_choice: Option<Vec<String>>,
    /// Put before the matched text in the message: "MESSAGE: matched".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For `agent_config`: how to fix it, added to the failure's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// A screen that a waiting rule matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// The question, in the agent's words.
    pub message: String,
    /// Keys to answer it with; empty: leave it to a human.
    pub keys: Vec<String>,
    /// Keys that choose its first option (`top`'s `a`).
    pub first_choice: Vec<String>,
}

/// Compiled rules for one agent.
#[derive(Debug, Clone, Default)]
pub struct ScreenSet {
    rules: Vec<(Regex, ScreenRule)>,
}

/// The most of a message kept (the whole screen is never an event).
const MESSAGE_MAX: usize = 300;
/// How many of the pane's last lines an `agent_config` rule looks at.
pub const EXIT_TAIL_LINES: usize = 40;

impl ScreenSet {
    /// Compiles `rules`; the error names the rule (index) and the problem.
    pub fn compile(rules: &[ScreenRule]) -> Result<ScreenSet, String> {
        let mut compiled = Vec::with_capacity(rules.len());
        for (index, rule) in rules.iter().enumerate() {
            let regex = RegexBuilder::new(&rule.pattern)
                .multi_line(true)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("screens[{index}].match: {e}"))?;
            if regex.is_match("") {
                return Err(format!(
                    "screens[{index}].match `{}` matches an empty screen, so it would match every screen",
                    rule.pattern
                ));
            }
            for (field, keys) in [("keys", &rule.keys), ("first_choice", &rule.first_choice)] {
                if keys
                    .as_ref()
                    .is_some_and(|k| k.is_empty() || k.iter().any(String::is_empty))
                {
                    return Err(format!(
                        "screens[{index}].{field} must list tmux key names, e.g. [\"Enter\"]"
                    ));
                }
            }
            compiled.push((regex, rule.clone()));
        }
        Ok(ScreenSet { rules: compiled })
    }

    /// Whether any rule is watched on live screens.
    pub fn watches_screens(&self) -> bool {
        self.rules
            .iter()
            .any(|(_, r)| r.state == ScreenState::Waiting)
    }

    /// The first waiting rule that matches the visible `screen`.
    pub fn waiting(&self, screen: &str) -> Option<Shown> {
        let text = normalize(screen);
        self.first(ScreenState::Waiting, &text)
            .map(|(rule, message)| Shown {
                message,
                keys: rule.keys.clone().unwrap_or_default(),
                first_choice: rule
                    .first_choice
                    .clone()
                    .unwrap_or_else(|| vec!["Enter".to_owned()]),
            })
    }

    /// The first `agent_config` rule matching the pane's last lines at a
    /// non-zero exit: the agent's words, then the fix.
    pub fn refusal(&self, pane: &str) -> Option<String> {
        let text = normalize(&last_lines(pane, EXIT_TAIL_LINES));
        self.first(ScreenState::AgentConfig, &text)
            .map(|(rule, message)| match &rule.fix {
                Some(fix) => format!("{message}; fix: {fix}"),
                None => message,
            })
    }

    /// The first `limited` rule matching the pane's last lines when the
    /// agent exits: the agent's words (where its reset time is).
    pub fn limit(&self, pane: &str) -> Option<String> {
        let text = normalize(&last_lines(pane, EXIT_TAIL_LINES));
        self.first(ScreenState::Limited, &text)
            .map(|(_, message)| message)
    }

    fn first(&self, state: ScreenState, text: &str) -> Option<(&ScreenRule, String)> {
        self.rules
            .iter()
            .filter(|(_, rule)| rule.state == state)
            .find_map(|(regex, rule)| {
                let captures = regex.captures(text)?;
                let matched = captures
                    .get(1)
                    .or_else(|| captures.get(0))
                    .map_or("", |m| m.as_str());
                let matched = one_line(matched);
                let message = match &rule.message {
                    Some(prefix) if matched.is_empty() => prefix.clone(),
                    Some(prefix) => format!("{prefix}: {matched}"),
                    None => matched,
                };
                Some((rule, cap(&message)))
            })
    }
}

/// Screen text as rules see it: box-drawing characters become blanks, each
/// line is trimmed and its runs of blanks become one space.
pub fn normalize(screen: &str) -> String {
    screen
        .lines()
        .map(|line| {
            let clean: String = line
                .chars()
                .map(|c| if is_decoration(c) { ' ' } else { c })
                .collect();
            clean.split_whitespace().collect::<Vec<_>>().join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_decoration(c: char) -> bool {
    // Box drawing and block elements (U+2500..U+259F).
    ('\u{2500}'..='\u{259f}').contains(&c)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cap(text: &str) -> String {
    if text.chars().count() <= MESSAGE_MAX {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(MESSAGE_MAX - 1).collect();
    out.push('…');
    out
}

/// The last `n` non-empty lines of `text`.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn rule(pattern: &str, state: ScreenState, message: Option<&str>, fix: Option<&str>) -> ScreenRule {
    ScreenRule {
        pattern: pattern.to_owned(),
        state,
        keys: None,
        first_choice: None,
        message: message.map(str::to_owned),
        fix: fix.map(str::to_owned),
    }
}

/// The built-in rules for an agent program (the basename of argv[0]); they
/// follow the user's own rules, so a user rule for the same screen wins.
pub fn builtin(program: &str) -> Vec<ScreenRule> {
    let name = std::path::Path::new(program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(program);
    match name {
        "claude" => claude_rules(),
        "codex" => codex_rules(),
        "gemini" => gemini_rules(),
        "opencode" => opencode_rules(),
        "aider" => aider_rules(),
        _ => Vec::new(),
    }
}

fn claude_rules() -> Vec<ScreenRule> {
    vec![
        // Claude Code 2.1: the folder-trust dialog.
        rule(
            r"(Quick safety check:? [^?\n]*\?)",
            Waiting,
            Some("Claude Code asks whether you trust this folder"),
            None,
        ),
        rule(
            r"^(Accessing workspace:?)",
            Waiting,
            Some("Claude Code asks whether you trust this folder"),
            None,
        ),
        // Claude Code 1.x/2.0: the same dialog, older words.
        rule(r"(Do you trust the files in this folder\?)", Waiting, None, None),
        // ANTHROPIC_API_KEY whose last 20 characters were never approved:
        // "2. No (recommended)" is preselected, so Up reaches "1. Yes".
        ScreenRule {
            first_choice: Some(vec!["Up".into(), "Enter".into()]),
            ..rule(
                r"(?s)Detected a custom API key.*?(Do you want to use this API key\?)",
                Waiting,
                Some("Claude Code found ANTHROPIC_API_KEY"),
                None,
            )
        },
        // Not logged in and no usable key: the login method menu or the
        // browser sign-in page.
        rule(
            r"(Select login method:?|Browser didn't open\? Use the url below to sign in)",
            Waiting,
            Some("Claude Code needs a login"),
            None,
        ),
        // First run (no onboarding yet): the theme picker.
        rule(
            r"(Choose the text style that looks best with your terminal)",
            Waiting,
            Some("Claude Code's first-run setup"),
            None,
        ),
        // A permission prompt: a question followed by numbered choices.
        rule(
            r"(Do you want to [^?\n]*\?)\s*(?:❯\s*)?1\. Yes",
            Waiting,
            Some("Claude Code asks permission"),
            None,
        ),
        rule(
            r"(Invalid API key[^\n]*)",
            AgentConfig,
            None,
            Some("set ANTHROPIC_API_KEY (and list it in pass_env) or log in once by running `claude`"),
        ),
    ]
}

fn codex_rules() -> Vec<ScreenRule> {
    vec![
        // Codex 0.171 at a ChatGPT plan's usage limit (one request, no
        // retry): "ERROR: You’ve hit your usage limit. Upgrade to Pro
        // (...) or try again at 3:59 AM." (a typographic apostrophe).
        rule(r"(You.ve hit your usage limit[^\n]*)", Limited, None, None),
        // A rate limit: five retries (honouring `retry-after`), then
        // "ERROR: exceeded retry limit, last status: 429 Too Many Requests".
        rule(
            r"(exceeded retry limit, last status: 429[^\n]*)",
            Limited,
            Some("Codex was rate limited"),
            None,
        ),
        // Out of API credits (`insufficient_quota`), no retry.
        rule(r"(Quota exceeded\. Check your plan[^\n]*)", Limited, None, None),
        rule(
            r"(Not inside a trusted directory[^\n]*)",
            AgentConfig,
            None,
            Some("run the job in a git repository, or add \"--skip-git-repo-check\" after \"exec\" in [agents.codex] command"),
        ),
    ]
}

fn gemini_rules() -> Vec<ScreenRule> {
    vec![
        // Gemini CLI 0.61 at a daily quota (no retry): "... TerminalQuotaError:
        // You have exhausted your daily quota on this model."; at a
        // per-minute quota, after 10 attempts (about 4 minutes):
        // "... RetryableQuotaError: <the API's message> Please retry in 2s."
        rule(r"((?:Terminal|Retryable)QuotaError: [^\n]*)", Limited, None, None),
        rule(
            r"(Gemini CLI is not running in a trusted directory\.?)",
            AgentConfig,
            None,
            Some("set env = { GEMINI_CLI_TRUST_WORKSPACE = \"true\" } in [agents.gemini], add \"--skip-trust\" to its command, or trust the folder once in an interactive `gemini`"),
        ),
    ]
}

/// opencode 1.18 retries a 429 five times, then prints the provider's
/// message after "Error: " and exits 1.
fn opencode_rules() -> Vec<ScreenRule> {
    vec![rule(
        r"^Error: ([^\n]*(?i:rate limit|quota)[^\n]*)",
        Limited,
        None,
        None,
    )]
}

/// Aider 0.86 retries for about a minute, then says so and exits 0:
/// only its last line is the limit (it is not an answer).
fn aider_rules() -> Vec<ScreenRule> {
    vec![rule(
        r"(The API provider has rate limited you\.[^\n]*)\z",
        Limited,
        None,
        None,
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claude() -> ScreenSet {
        ScreenSet::compile(&builtin("/usr/local/bin/claude")).expect("built-in rules compile")
    }

    /// Claude Code 2.1's trust dialog in an 80-column pane.
    const TRUST_2_1: &str = "\
╭──────────────────────────────────────────────────────────────────────────────╮
│                                                                              │
│ Accessing workspace:                                                         │
│                                                                              │
│ /home/dev/src/app                                                            │
│                                                                              │
│ Quick safety check: Is this a project you created or one you trust? (Like    │
│ your own code, a well-known open source project, or work from your team).    │
│ If not, take a moment to review what's in this folder first.                 │
│                                                                              │
│ Claude Code'll be able to read, edit, and execute files here.                │
│                                                                              │
│ Security guide                                                               │
│                                                                              │
│ ❯ 1. Yes, I trust this folder                                                │
│   2. No, exit                                                                │
│                                                                              │
╰──────────────────────────────────────────────────────────────────────────────╯
  Enter to confirm · Esc to cancel
";

    const TRUST_OLD: &str = "\
╭───────────────────────────────────────────────────────────────────────────╮
│                                                                           │
│ Do you trust the files in this folder?                                    │
│                                                                           │
│ /home/dev/src/app                                                         │
│                                                                           │
│ Claude Code may read files in this folder. Reading untrusted files may    │
│ lead Claude Code to behave in unexpected ways.                            │
│                                                                           │
│ With your permission Claude Code may execute files in this folder.        │
│ Executing untrusted code is unsafe.                                       │
│                                                                           │
│ https://docs.anthropic.com/s/claude-code-security                         │
│                                                                           │
│ ❯ 1. Yes, proceed                                                         │
│   2. No, exit                                                             │
│                                                                           │
╰───────────────────────────────────────────────────────────────────────────╯
   Enter to confirm · Esc to exit
";

    const API_KEY: &str = "\
╭──────────────────────────────────────────────────────────────────────────────╮
│                                                                              │
│ Detected a custom API key in your environment                                │
│                                                                              │
│ ANTHROPIC_API_KEY: sk-ant-...AbCdEfGhIjKlMnOpQrSt                            │
│                                                                              │
│ Do you want to use this API key?                                             │
│                                                                              │
│   1. Yes                                                                     │
│ ❯ 2. No (recommended)                                                        │
│                                                                              │
╰──────────────────────────────────────────────────────────────────────────────╯
   Enter to confirm · Esc to exit
";

    const LOGIN: &str = "\
 Claude Code can be used with your Claude subscription or billed based on API
 usage through your Console account.

 Select login method:

 ❯ 1. Claude account with subscription · Pro, Max, Team, or Enterprise

   2. Anthropic Console account · API usage billing

   3. 3rd-party platform · Amazon Bedrock, Microsoft Foundry, or Vertex AI
";

    const FIRST_RUN: &str = "\
 Welcome to Claude Code v2.1.197
 …………………………………………………………………………………………………………………………………………………………

 Let's get started.

 Choose the text style that looks best with your terminal
 To change this later, run /theme

 ❯ 1. Dark mode ✔
   2. Light mode
   3. Dark mode (colorblind-friendly)
";

    const PERMISSION: &str = "\
● I'll delete the build directory.

╭──────────────────────────────────────────────────────────────────────────────╮
│ Bash command                                                                 │
│                                                                              │
│   rm -rf build                                                               │
│   Remove the build directory                                                 │
│                                                                              │
│ Do you want to proceed?                                                      │
│ ❯ 1. Yes                                                                     │
│   2. Yes, and don't ask again for rm commands in /home/dev/src/app           │
│   3. No, and tell Claude what to do differently (esc)                        │
│                                                                              │
╰──────────────────────────────────────────────────────────────────────────────╯
";

    /// Claude at work: its own text asks a question, but no dialog is shown.
    const WORKING: &str = "\
> Summarise the README

● Read(README.md)
  ⎿  Read 120 lines (ctrl+r to expand)

● The README describes the CLI. Do you want to know more about the broker?

✻ Thinking… (12s · ↓ 310 tokens · esc to interrupt)

╭──────────────────────────────────────────────────────────────────────────────╮
│ >                                                                            │
╰──────────────────────────────────────────────────────────────────────────────╯
  ? for shortcuts
";

    fn waiting(screen: &str) -> Option<String> {
        claude().waiting(screen).map(|s| s.message)
    }

    #[test]
    fn claude_code_screens_are_recognised_with_their_question() {
        assert_eq!(
            waiting(TRUST_2_1).as_deref(),
            Some("Claude Code asks whether you trust this folder: Quick safety check: Is this a project you created or one you trust?")
        );
        assert_eq!(
            waiting(TRUST_OLD).as_deref(),
            Some("Do you trust the files in this folder?")
        );
        assert_eq!(
            waiting(API_KEY).as_deref(),
            Some("Claude Code found ANTHROPIC_API_KEY: Do you want to use this API key?")
        );
        assert_eq!(
            waiting(LOGIN).as_deref(),
            Some("Claude Code needs a login: Select login method:")
        );
        assert_eq!(
            waiting(FIRST_RUN).as_deref(),
            Some("Claude Code's first-run setup: Choose the text style that looks best with your terminal")
        );
        assert_eq!(
            waiting(PERMISSION).as_deref(),
            Some("Claude Code asks permission: Do you want to proceed?")
        );
    }

    /// `top`'s `a` chooses each dialog's first option: Enter where the
    /// screen preselects it (❯ on "1."), Up first where it does not.
    #[test]
    fn claude_code_dialogs_first_choice_reaches_option_one() {
        let first = |screen: &str| claude().waiting(screen).map(|s| s.first_choice);
        for screen in [TRUST_2_1, TRUST_OLD, LOGIN, FIRST_RUN, PERMISSION] {
            assert!(screen.contains("❯ 1."), "{screen}");
            assert_eq!(first(screen), Some(vec!["Enter".to_owned()]), "{screen}");
        }
        assert!(API_KEY.contains("❯ 2. No"));
        assert_eq!(
            first(API_KEY),
            Some(vec!["Up".to_owned(), "Enter".to_owned()])
        );
    }
    #[test]
    fn a_working_agent_is_not_waiting_even_when_its_text_asks_a_question() {
        assert_eq!(waiting(WORKING), None);
        assert_eq!(waiting(""), None);
        // Built-in rules are per program.
        let codex = ScreenSet::compile(&builtin("codex")).expect("codex");
        assert_eq!(codex.waiting(TRUST_OLD), None);
        assert!(!codex.watches_screens());
        assert!(builtin("my-agent").is_empty());
    }

    #[test]
    fn refusals_at_exit_name_the_agents_words_and_the_fix() {
        let codex = ScreenSet::compile(&builtin("codex")).expect("codex");
        let pane = "$ codex exec 'fix it'\nNot inside a trusted directory and --skip-git-repo-check was not specified.\n\n[tmux-delegate] the agent exited with code 1\n";
        let reason = codex.refusal(pane).expect("refusal");
        assert!(
            reason.starts_with("Not inside a trusted directory and --skip-git-repo-check was not specified.; fix: "),
            "{reason}"
        );
        assert!(reason.contains("--skip-git-repo-check"), "{reason}");
        let gemini = ScreenSet::compile(&builtin("gemini")).expect("gemini");
        let pane = "Gemini CLI is not running in a trusted directory. To proceed, either use `--skip-trust`, set the `GEMINI_CLI_TRUST_WORKSPACE=true` environment variable, or trust this directory in interactive mode.\n";
        let reason = gemini.refusal(pane).expect("refusal");
        assert!(reason.contains("GEMINI_CLI_TRUST_WORKSPACE"), "{reason}");
        assert_eq!(gemini.refusal("TypeError: fetch failed\n"), None);
        // A waiting rule never classifies an exit, and a refusal rule never
        // makes a live screen wait.
        assert_eq!(claude().refusal(TRUST_OLD), None);
        assert_eq!(gemini.waiting(pane), None);
    }

    #[test]
    fn a_limit_rule_names_the_agents_words_at_exit_and_nothing_else() {
        let rules = ScreenSet::compile(&[
            rule(
                r"(You've hit your usage limit[^\n]*)",
                ScreenState::Limited,
                None,
                None,
            ),
            rule(
                r"(Invalid API key[^\n]*)",
                ScreenState::AgentConfig,
                None,
                None,
            ),
        ])
        .expect("rules");
        let pane = "working...\nYou've hit your usage limit. Try again in 2h 13m.\n[tmux-delegate] the agent exited with code 1\n";
        assert_eq!(
            rules.limit(pane).as_deref(),
            Some("You've hit your usage limit. Try again in 2h 13m.")
        );
        // Not a refusal, not a dialog; a refusal is not a limit.
        assert_eq!(rules.refusal(pane), None);
        assert_eq!(rules.waiting(pane), None);
        assert_eq!(
            rules.limit("Invalid API key · Fix external API key\n"),
            None
        );
    }

    /// What each CLI printed at a limit against the fake provider
    /// (docs/real-agents-findings.md, "Usage limits"), as its pane shows it.
    #[test]
    fn built_in_limit_rules_capture_what_each_cli_printed() {
        let limit = |program: &str, pane: &str| {
            ScreenSet::compile(&builtin(program))
                .expect(program)
                .limit(pane)
        };
        let codex_usage = "user\nSay A\nERROR: You’ve hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro), visit https://chatgpt.com/settings/usage to purchase more credits or try again at 3:59 AM.\nERROR: You’ve hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro), visit https://chatgpt.com/settings/usage to purchase more credits or try again at 3:59 AM.\n";
        let message = limit("codex", codex_usage).expect("codex usage limit");
        assert!(
            message.starts_with("You’ve hit your usage limit. Upgrade to Pro"),
            "{message}"
        );
        assert!(message.ends_with("or try again at 3:59 AM."), "{message}");
        let codex_rate = "ERROR: Reconnecting... 5/5\nERROR: exceeded retry limit, last status: 429 Too Many Requests\n";
        assert_eq!(
            limit("codex", codex_rate).as_deref(),
            Some(
                "Codex was rate limited: exceeded retry limit, last status: 429 Too Many Requests"
            )
        );
        assert_eq!(
            limit(
                "codex",
                "ERROR: Quota exceeded. Check your plan and billing details.\n"
            )
            .as_deref(),
            Some("Quota exceeded. Check your plan and billing details.")
        );
        assert_eq!(
            limit(
                "codex",
                "ERROR: exceeded retry limit, last status: 500 Internal Server Error\n"
            ),
            None
        );
        let gemini = "Error when talking to Gemini API Full report available at: /tmp/gemini-client-error-Turn.run-sendMessageStream-2026-12-04T03-01-17-428Z.json TerminalQuotaError: You have exhausted your daily quota on this model.\n  cause: {\n    code: 429,\n  },\n  status: 429\n}\nAn unexpected critical error occurred:[object Object]\n";
        assert_eq!(
            limit("gemini", gemini).as_deref(),
            Some("TerminalQuotaError: You have exhausted your daily quota on this model.")
        );
        let opencode = "> build · fake-model\n\nError: Rate limit reached for fake-model in organization org-fake on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 2s.\n";
        assert_eq!(
            limit("opencode", opencode).as_deref(),
            Some("Rate limit reached for fake-model in organization org-fake on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 2s.")
        );
        assert!(limit(
            "opencode",
            "Error: You exceeded your current quota, please check your plan and billing details.\n"
        )
        .is_some());
        let gemini_rate = "Suggested retry after 2s.. Max attempts reached\nError when talking to Gemini API Full report available at: /tmp/gemini-client-error-Turn.run-sendMessageStream-2026-12-04T03-05-29-441Z.json RetryableQuotaError: You exceeded your current quota, please check your plan and billing details. Please retry in 2s.\nSuggested retry after 2s.\n    at classifyGoogleError (file:///x.js:1:1)\n";
        assert_eq!(
            limit("gemini", gemini_rate).as_deref(),
            Some("RetryableQuotaError: You exceeded your current quota, please check your plan and billing details. Please retry in 2s.")
        );
        assert_eq!(limit("opencode", "Error: Invalid API key\n"), None);
        let aider = "litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit reached for\nfake-model in organization org-fake on requests per min (RPM): Limit 3, Used 3,\nRequested 1. Please try again in 2s.\nThe API provider has rate limited you. Try again later or check your quotas.\n\n";
        assert_eq!(
            limit("aider", aider).as_deref(),
            Some("The API provider has rate limited you. Try again later or check your quotas.")
        );
        // Aider went on after a retry that worked: its last words are the
        // answer, not the limit.
        let recovered =
            format!("{aider}Retrying in 0.2 seconds...\nhello.txt\nApplied edit to hello.txt\n");
        assert_eq!(limit("aider", &recovered), None);
        assert_eq!(limit("claude", codex_rate), None);
    }

    #[test]
    fn refusal_looks_only_at_the_last_lines() {
        let codex = ScreenSet::compile(&builtin("codex")).expect("codex");
        let mut pane =
            "Not inside a trusted directory and --skip-git-repo-check was not specified.\n"
                .to_owned();
        for i in 0..EXIT_TAIL_LINES {
            pane.push_str(&format!("later line {i}\n"));
        }
        assert_eq!(codex.refusal(&pane), None);
    }

    #[test]
    fn user_rules_capture_keys_and_reject_bad_patterns() {
        let rules: Vec<ScreenRule> = toml::from_str::<toml::Table>(
            "[[s]]\nmatch = \"(Continue\\\\? \\\\[y/N\\\\])\"\nkeys = [\"y\", \"Enter\"]\nfirst_choice = [\"y\", \"Enter\"]\n",
        )
        .expect("toml")["s"]
            .clone()
            .try_into()
            .expect("rules");
        let set = ScreenSet::compile(&rules).expect("compile");
        assert_eq!(
            set.waiting("Deleting 3 files.\nContinue? [y/N] "),
            Some(Shown {
                message: "Continue? [y/N]".into(),
                keys: vec!["y".into(), "Enter".into()],
                first_choice: vec!["y".into(), "Enter".into()],
            })
        );
        let bad = |pattern: &str| {
            ScreenSet::compile(&[rule(pattern, ScreenState::Waiting, None, None)])
                .expect_err(pattern)
        };
        assert!(bad("(unclosed").starts_with("screens[0].match: "));
        assert!(bad("x*").contains("matches an empty screen"));
        let mut no_keys = rule("a", ScreenState::Waiting, None, None);
        no_keys.keys = Some(vec![]);
        assert!(ScreenSet::compile(&[no_keys]).is_err());
        let mut no_choice = rule("a", ScreenState::Waiting, None, None);
        no_choice.first_choice = Some(vec![String::new()]);
        assert_eq!(
            ScreenSet::compile(&[no_choice]).expect_err("empty key"),
            "screens[0].first_choice must list tmux key names, e.g. [\"Enter\"]"
        );
    }

    #[test]
    fn long_messages_are_capped() {
        let set = ScreenSet::compile(&[rule("(Q.*)", ScreenState::Waiting, None, None)])
            .expect("compile");
        let long = format!("Q{}", "x".repeat(1000));
        let message = set.waiting(&long).expect("match").message;
        assert_eq!(message.chars().count(), MESSAGE_MAX);
        assert!(message.ends_with('…'));
    }
}
