//! The built-in agent templates end to end with the REAL agent CLIs: the
//! real binary, real tmux on a private socket, the embedded broker, and the
//! real Claude Code / Codex / Gemini CLI / opencode / Aider talking to fake
//! provider APIs on loopback (`tests/real_agents/fake_provider.py`).
//!
//! Every test here is `#[ignore]`d, so a plain `cargo test` shows them as
//! ignored, never as passed. They run when asked for by name:
//! `scripts/test-real-agents.sh claude codex` (which `scripts/setup test`
//! calls for `REAL_AGENTS`, default `claude,codex`) runs `cargo test --test
//! real_agents -- --ignored claude codex`. The CLIs come from the cache
//! `scripts/install-real-agents.sh` fills (`target/real-agents`, or
//! `REAL_AGENTS_DIR`); an agent asked for but not installed is a failure
//! naming the install script. Every agent runs with a fresh fake HOME.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A fake API key: Claude Code approves a custom key by its last 20 chars.
const API_KEY: &str = "sk-ant-fake-key-0123456789abcdefghij";
/// How long one job may take on a loaded 2-core machine (they take 2–20 s).
const JOB_LIMIT: Duration = Duration::from_secs(240);

// ------------------------------------------------------------ the CLIs

/// Where the CLIs are installed.
fn cache_dir() -> PathBuf {
    std::env::var_os("REAL_AGENTS_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/real-agents"),
        PathBuf::from,
    )
}

/// The installed program of an agent under test; a failure naming the
/// install script when it is missing.
fn installed(agent: &str, program: &str) -> PathBuf {
    let path = cache_dir().join(agent).join("bin").join(program);
    assert!(
        path.is_file(),
        "{agent} is under test but {} is not installed: run `scripts/install-real-agents.sh {agent}`",
        path.display()
    );
    path
}

// ---------------------------------------------------------- fake provider

/// `fake_provider.py` on a free loopback port, stopped on drop.
struct Provider {
    port: u16,
    record: PathBuf,
    _process: Guard,
}

impl Provider {
    fn start(dir: &Path, script: &Value) -> Provider {
        let script_path = dir.join("provider-script.json");
        std::fs::write(&script_path, script.to_string()).expect("script");
        let record = dir.join("provider-requests.jsonl");
        let port_file = dir.join("provider.port");
        let child = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/real_agents/fake_provider.py"))
            .arg("--script")
            .arg(&script_path)
            .arg("--record")
            .arg(&record)
            .arg("--port-file")
            .arg(&port_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("provider.log")).expect("log"))
            .spawn()
            .expect("python3 runs the fake provider");
        let process = Guard(Some(child));
        let port = wait_for(Duration::from_secs(20), || {
            std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|text| text.trim().parse::<u16>().ok())
        })
        .expect("the fake provider wrote its port");
        Provider {
            port,
            record,
            _process: process,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request the provider answered, in order.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Every text the user role sent, over all model requests.
    fn user_texts(&self) -> Vec<String> {
        self.requests()
            .iter()
            .flat_map(|r| r["user_texts"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect()
    }
}

/// A script: write `path` with `content` using the agent's own tool, then
/// say "done". Agents without tools (aider) get `plain` as the answer.
fn write_then_done(path: &Path, content: &str, plain: &str) -> Value {
    serde_json::json!({
        "turns": [
            {"write": {"path": path.display().to_string(), "content": content}},
            {"text": "done"}
        ],
        "plain": plain,
    })
}

// ----------------------------------------------------------------- world

/// One agent's private world: fake HOME, workdir, tmux server, PATH with
/// only the agent's own program added (aider's venv bin holds a python
/// too), the embedded broker, and a 2 s kill grace.
fn agent_world(agent: &str, program: &str) -> World {
    agent_world_with(agent, program, "")
}

/// `agent_world` with `config` as the config file.
fn agent_world_with(agent: &str, program: &str, config: &str) -> World {
    let real = installed(agent, program);
    let world = World::builder(Broker::Embedded)
        .kill_grace("2s")
        .build(config);
    std::fs::create_dir_all(world.scratch("work")).expect("workdir");
    std::os::unix::fs::symlink(&real, world.bin.join(program)).expect("symlink");
    world
}

/// The agent's working directory, as the agent sees it.
fn workdir(world: &World) -> PathBuf {
    world.scratch("work").canonicalize().expect("workdir")
}

/// Writes a job spec: `[env]` goes to the agent, `extra` is more TOML.
fn job_spec(
    world: &World,
    name: &str,
    agent: &str,
    prompt: &str,
    env: &[(&str, String)],
    extra: &str,
) -> PathBuf {
    let mut spec = toml::Table::new();
    spec.insert("name".into(), name.into());
    spec.insert("agent".into(), agent.into());
    spec.insert("prompt".into(), prompt.into());
    spec.insert(
        "workdir".into(),
        workdir(world).display().to_string().into(),
    );
    let env: toml::Table = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), toml::Value::from(v.as_str())))
        .collect();
    spec.insert("env".into(), env.into());
    let path = world.home.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!("{}\n{extra}\n", toml::to_string(&spec).expect("toml")),
    )
    .expect("spec");
    path
}

/// `run --json SPEC` to its end; returns (exit code, stdout, stderr).
fn run_spec(world: &World, spec: &Path) -> (Option<i32>, String, String) {
    let out = Guard(Some(
        world
            .td()
            .arg("run")
            .arg("--json")
            .arg(spec)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run"),
    ))
    .wait_output(JOB_LIMIT);
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// `run --json SPEC` in the background, its lines collected.
fn spawn_spec(world: &World, spec: &Path) -> Lines {
    let mut command = world.td();
    command.arg("run").arg("--json").arg(spec);
    Lines::spawn(&mut command)
}

fn status_json(world: &World) -> Value {
    let out = run(world.td().args(["status", "--json"]));
    serde_json::from_slice::<Value>(&out.stdout).expect("status --json")
}

/// The job named `name` in `status --json`.
fn job_status(world: &World, name: &str) -> Value {
    status_json(world)
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["name"] == name).cloned())
        .unwrap_or(Value::Null)
}

/// The pane of the window whose name contains `name`.
fn pane(world: &World, name: &str) -> Option<String> {
    world
        .tmux
        .output(&["list-panes", "-a", "-F", "#{pane_id}\t#{window_name}"])
        .lines()
        .find(|line| line.split('\t').nth(1).is_some_and(|w| w.contains(name)))
        .and_then(|line| line.split('\t').next().map(str::to_owned))
}

fn pane_screen(world: &World, pane: &str) -> String {
    world.tmux.output(&["capture-pane", "-p", "-t", pane])
}

/// What went on, for a failure message.
fn story(world: &World, provider: &Provider, out: &str, err: &str) -> String {
    let panes = world
        .tmux
        .output(&["list-panes", "-a", "-F", "#{pane_id}"])
        .lines()
        .map(|pane| format!("--- pane {pane}:\n{}", pane_screen(world, pane)))
        .collect::<String>();
    let requests: Vec<String> = provider
        .requests()
        .iter()
        .map(|r| {
            format!(
                "{} {} {} answered={}",
                r["method"], r["path"], r["api"], r["answered"]
            )
        })
        .collect();
    format!(
        "stdout:\n{out}\nstderr:\n{err}\nprovider requests:\n{}\n{panes}\nstatus: {}",
        requests.join("\n"),
        status_json(world)
    )
}

impl Drop for World {
    /// Stops what the agents left: Claude Code ignores the SIGHUP a closing
    /// tmux sends, so every process in a pane's session is killed by pid
    /// (all of them started by this test) before the server goes.
    fn drop(&mut self) {
        let pids = self.tmux.output(&["list-panes", "-a", "-F", "#{pane_pid}"]);
        for session in pids.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
            let members = Command::new("ps")
                .args(["-o", "pid=", "--sid", &session.to_string()])
                .output()
                .map(|o| text(&o.stdout))
                .unwrap_or_default();
            for pid in members.split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
    }
}

// ------------------------------------------------------ per-agent setups

/// How one CLI is pointed at the fake provider: files in its fake HOME and
/// variables in the job's `[env]`.
trait Agent {
    /// The cache directory and program name.
    const CLI: (&'static str, &'static str);
    /// Prepares HOME for a provider at `url`; returns the job's env.
    fn setup(world: &World, url: &str) -> Vec<(&'static str, String)>;
    /// Whether `prompt` reached the model unchanged in `texts`.
    fn arrived(texts: &[String], prompt: &str) -> bool {
        texts.iter().any(|t| t == prompt)
    }
    /// Whether a conversation id looks like the ones this CLI makes (or is
    /// given): a UUID.
    fn valid_session(id: &str) -> bool {
        id.len() == 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
    }
    /// Whether a request the provider answered is a turn of the
    /// conversation (its tokens are in the transcript): one that offers
    /// tools (side requests, such as Gemini CLI's routing, offer none).
    fn is_turn(request: &Value) -> bool {
        request["answered"].is_array()
            && request["body"]["tools"]
                .as_array()
                .is_some_and(|t| !t.is_empty())
    }
    /// (input, output, cache read) tokens of one answered turn as the agent
    /// counts what the fake API reported (10 fresh + 3 cached input, 5 out).
    fn one_turn() -> (u64, u64, u64) {
        (10, 5, 3)
    }
    /// A script whose first turn never gets an answer.
    fn hanging_first_turn() -> Value {
        serde_json::json!({"hang_first": 1, "turns": [{"text": "done"}], "plain": "done"})
    }
}

struct Claude;
impl Claude {
    /// `~/.claude.json` as a user who has set Claude Code up once: onboarding
    /// done, the API key approved, and (when `trusted`) the workdir trusted.
    fn seed(world: &World, trusted: bool) {
        let mut projects = serde_json::Map::new();
        if trusted {
            projects.insert(
                workdir(world).display().to_string(),
                serde_json::json!({"hasTrustDialogAccepted": true, "projectOnboardingSeenCount": 1}),
            );
        }
        let state = serde_json::json!({
            "hasCompletedOnboarding": true,
            "customApiKeyResponses": {"approved": [&API_KEY[API_KEY.len() - 20..]], "rejected": []},
            "projects": projects,
        });
        std::fs::write(world.home.join(".claude.json"), state.to_string()).expect(".claude.json");
    }
}
impl Agent for Claude {
    const CLI: (&'static str, &'static str) = ("claude", "claude");
    fn setup(world: &World, url: &str) -> Vec<(&'static str, String)> {
        Claude::seed(world, true);
        vec![
            ("ANTHROPIC_BASE_URL", url.to_owned()),
            ("ANTHROPIC_API_KEY", API_KEY.to_owned()),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
            ("DISABLE_TELEMETRY", "1".into()),
            ("DISABLE_AUTOUPDATER", "1".into()),
        ]
    }
}

struct Codex;
impl Agent for Codex {
    const CLI: (&'static str, &'static str) = ("codex", "codex");
    fn setup(world: &World, url: &str) -> Vec<(&'static str, String)> {
        let dir = world.home.join(".codex");
        std::fs::create_dir_all(&dir).expect(".codex");
        std::fs::write(
            dir.join("config.toml"),
            format!(
                "model = \"fake-model\"\nmodel_provider = \"fake\"\n\
                 [model_providers.fake]\nname = \"fake\"\nbase_url = \"{url}/v1\"\n\
                 env_key = \"FAKE_PROVIDER_KEY\"\nwire_api = \"responses\"\n"
            ),
        )
        .expect("config.toml");
        vec![("FAKE_PROVIDER_KEY", "fake".into())]
    }
}

struct Gemini;
impl Agent for Gemini {
    const CLI: (&'static str, &'static str) = ("gemini", "gemini");
    fn setup(world: &World, url: &str) -> Vec<(&'static str, String)> {
        let dir = world.home.join(".gemini");
        std::fs::create_dir_all(&dir).expect(".gemini");
        std::fs::write(
            dir.join("settings.json"),
            r#"{"security": {"auth": {"selectedType": "gemini-api-key"}}}"#,
        )
        .expect("settings.json");
        // The user trusted the workdir once (what interactive `gemini`
        // writes when you answer its trust dialog).
        std::fs::write(
            dir.join("trustedFolders.json"),
            serde_json::json!({ workdir(world).display().to_string(): "TRUST_FOLDER" }).to_string(),
        )
        .expect("trustedFolders.json");
        vec![
            ("GEMINI_API_KEY", "fake".into()),
            ("GOOGLE_GEMINI_BASE_URL", url.to_owned()),
        ]
    }
}

struct Opencode;
impl Agent for Opencode {
    const CLI: (&'static str, &'static str) = ("opencode", "opencode");
    fn setup(world: &World, url: &str) -> Vec<(&'static str, String)> {
        let dir = world.home.join(".config/opencode");
        std::fs::create_dir_all(&dir).expect("opencode config dir");
        let config = serde_json::json!({
            "provider": {"fake": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Fake",
                "options": {"baseURL": format!("{url}/v1"), "apiKey": "fake"},
                "models": {"fake-model": {"name": "Fake model", "tool_call": true}},
            }},
            "model": "fake/fake-model",
            "small_model": "fake/fake-model",
            "autoupdate": false,
            "share": "disabled",
        });
        std::fs::write(dir.join("opencode.json"), config.to_string()).expect("opencode.json");
        vec![
            ("OPENCODE_DISABLE_MODELS_FETCH", "1".into()),
            ("OPENCODE_DISABLE_AUTOUPDATE", "1".into()),
        ]
    }
    fn valid_session(id: &str) -> bool {
        id.starts_with("ses_") && id.len() > 10
    }
    /// opencode joins its message arguments and wraps one that contains a
    /// space in double quotes (inner quotes escaped) before the model sees it.
    fn arrived(texts: &[String], prompt: &str) -> bool {
        let quoted = if prompt.contains(' ') {
            format!("\"{}\"", prompt.replace('"', "\\\""))
        } else {
            prompt.to_owned()
        };
        texts.contains(&quoted)
    }
}

struct Aider;
impl Agent for Aider {
    const CLI: (&'static str, &'static str) = ("aider", "aider");
    fn setup(_world: &World, url: &str) -> Vec<(&'static str, String)> {
        vec![
            ("OPENAI_API_BASE", format!("{url}/v1")),
            ("OPENAI_API_KEY", "fake".into()),
            ("AIDER_MODEL", "openai/fake-model".into()),
            ("AIDER_CHECK_UPDATE", "false".into()),
            ("AIDER_ANALYTICS", "false".into()),
            ("AIDER_SHOW_MODEL_WARNINGS", "false".into()),
        ]
    }
    /// Aider sends the message followed by a blank line and its edit-format
    /// reminder in the same user turn.
    fn arrived(texts: &[String], prompt: &str) -> bool {
        texts
            .iter()
            .any(|t| t == prompt || t.starts_with(&format!("{prompt}\n\n")))
    }
    /// Aider offers no tools: every chat request it makes is a turn.
    fn is_turn(request: &Value) -> bool {
        request["answered"].is_array() && request["api"] == "chat"
    }
    /// Aider's analytics log has the API's prompt count, cached tokens
    /// inside it.
    fn one_turn() -> (u64, u64, u64) {
        (13, 5, 0)
    }
    fn hanging_first_turn() -> Value {
        serde_json::json!({"hang_first": 1, "hang_any": true, "turns": [{"text": "done"}], "plain": "done"})
    }
}

// ------------------------------------------------------------- scenarios

/// The template `template` (agent `A`) edits a file in the workdir and its
/// job completes, with the prompt `-z foo` arriving verbatim.
fn edits_a_file_and_completes<A: Agent>(template: &str) {
    let world = agent_world(A::CLI.0, A::CLI.1);
    let target = workdir(&world).join("hello.txt");
    let content = format!("hi from {template}\n");
    // Aider has no tools: its whole-file edit format is a file name line
    // and a fenced block.
    let plain = format!("hello.txt\n```\n{content}```\n");
    let provider = Provider::start(
        world.dir.path(),
        &write_then_done(&target, &content, &plain),
    );
    let env = A::setup(&world, &provider.url());
    let prompt = "-z foo";
    let spec = job_spec(&world, "edit-job", template, prompt, &env, "");
    let started = Instant::now();
    let (code, out, err) = run_spec(&world, &spec);
    let story = story(&world, &provider, &out, &err);
    assert_eq!(code, Some(0), "{template}: run failed\n{story}");
    eprintln!("{template}: edit job completed in {:?}", started.elapsed());
    assert_eq!(
        job_status(&world, "edit-job")["state"],
        "completed",
        "{story}"
    );
    assert_eq!(
        std::fs::read_to_string(&target).unwrap_or_default(),
        content,
        "{template}: the file was not written\n{story}"
    );
    assert!(
        A::arrived(&provider.user_texts(), prompt),
        "{template}: {prompt:?} did not reach the model verbatim: {:?}\n{story}",
        provider.user_texts()
    );
}

/// Prompts that look like the CLI's own options reach the model as prompts
/// and the job completes.
fn option_like_prompts_arrive_verbatim<A: Agent>(template: &str) {
    let world = agent_world(A::CLI.0, A::CLI.1);
    let provider = Provider::start(
        world.dir.path(),
        &serde_json::json!({"turns": [{"text": "done"}], "plain": "done"}),
    );
    let env = A::setup(&world, &provider.url());
    for (n, prompt) in ["--version", "--help"].into_iter().enumerate() {
        let name = format!("dash-{n}");
        let spec = job_spec(&world, &name, template, prompt, &env, "");
        let (code, out, err) = run_spec(&world, &spec);
        let story = story(&world, &provider, &out, &err);
        assert_eq!(code, Some(0), "{template} {prompt}: run failed\n{story}");
        assert!(
            A::arrived(&provider.user_texts(), prompt),
            "{template}: {prompt:?} did not reach the model verbatim: {:?}\n{story}",
            provider.user_texts()
        );
    }
}

#[test]
#[ignore = "real agent claude: scripts/test-real-agents.sh claude"]
fn claude_edits_a_file_and_completes() {
    edits_a_file_and_completes::<Claude>("claude");
}

/// SPEC section 14 with the real Claude Code: a completed job's `result`
/// is the model's answer, its `session` names a transcript that exists
/// (SessionStart's `session_id` and `transcript_path`), and its `usage`
/// is what the fake API reported for the conversation's one request
/// (`input_tokens` 10, `output_tokens` 5).
#[test]
#[ignore = "real agent claude: scripts/test-real-agents.sh claude"]
fn claude_reports_its_session_result_and_tokens() {
    claude_reports_session_result_and_tokens("claude");
}

/// A completed Claude job of `template`: its answer, a 36-character
/// session id whose transcript file exists, and the tokens the fake API
/// reported for its one request (10 in, 5 out).
fn claude_reports_session_result_and_tokens(template: &str) {
    let world = agent_world("claude", "claude");
    let answer = "forty-two is the answer";
    let provider = Provider::start(
        world.dir.path(),
        &serde_json::json!({"turns": [{"text": answer}], "plain": answer}),
    );
    let env = Claude::setup(&world, &provider.url());
    let spec = job_spec(
        &world,
        "answer",
        template,
        "What is six times seven?",
        &env,
        "",
    );
    let (code, out, err) = run_spec(&world, &spec);
    let story = story(&world, &provider, &out, &err);
    assert_eq!(code, Some(0), "{story}");
    let row = job_status(&world, "answer");
    assert_eq!(
        row["result"].as_str().map(str::trim),
        Some(answer),
        "{row}\n{story}"
    );
    let session = row["session"]["id"].as_str().unwrap_or_default();
    assert_eq!(session.len(), 36, "a UUID: {row}");
    let transcript = row["session"]["transcript"].as_str().unwrap_or_default();
    assert!(
        transcript.ends_with(&format!("{session}.jsonl")) && Path::new(transcript).is_file(),
        "{row}"
    );
    let answered = provider
        .requests()
        .iter()
        .filter(|r| r["answered"].is_array())
        .count();
    eprintln!(
        "{template}: {answered} answered request(s), usage {}",
        row["usage"]
    );
    let story = format!(
        "{story}\ntranscript:\n{}",
        std::fs::read_to_string(transcript).unwrap_or_default()
    );
    assert_eq!(row["usage"]["input_tokens"], 10, "{row}\n{story}");
    assert_eq!(row["usage"]["output_tokens"], 5, "{row}\n{story}");
}

/// SPEC section 14: a real Claude Code whose first turn hangs (the fake
/// API never answers) is declared `hung`, and attempt 2 continues the same
/// conversation (`--resume ID`): the API sees the original prompt as an
/// earlier user message and the continuation last, not the prompt as the
/// first message of a new conversation.
#[test]
#[ignore = "real agent claude: scripts/test-real-agents.sh claude"]
fn claude_continues_its_conversation_after_a_hung_first_turn() {
    let world = agent_world("claude", "claude");
    let provider = Provider::start(
        world.dir.path(),
        &serde_json::json!({"hang_first": 1, "turns": [{"text": "done"}], "plain": "done"}),
    );
    let env = Claude::setup(&world, &provider.url());
    let prompt = "Count the files in this folder";
    let spec = job_spec(
        &world,
        "hangs",
        "claude",
        prompt,
        &env,
        "[timeouts]\nidle = \"15s\"\n\n[retry]\nbackoff = \"0s\"\n",
    );
    let (code, out, err) = run_spec(&world, &spec);
    let story = story(&world, &provider, &out, &err);
    assert_eq!(code, Some(0), "{story}");
    let id = job_status(&world, "hangs")["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let record = world.record(&id);
    assert_eq!(record["attempt"], 2, "{record}\n{story}");
    let first = record["attempts"][0]["session"]["id"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(
        first.len(),
        36,
        "attempt 1 named its conversation: {record}"
    );
    assert_eq!(record["attempts"][1]["continued_from"], first, "{record}");
    assert_eq!(
        record["attempts"][1]["session"]["id"], first,
        "the same conversation: {record}"
    );
    let requests = provider.requests();
    let hung = requests
        .iter()
        .position(|r| r["hung"] == true)
        .expect("a hung request");
    let texts = |r: &Value| -> Vec<String> {
        r["user_texts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(
        texts(&requests[hung]).last().map(String::as_str),
        Some(prompt),
        "{story}"
    );
    let resumed = requests[hung + 1..]
        .iter()
        .find(|r| texts(r).iter().any(|t| t.contains("(attempt 1) ended")))
        .unwrap_or_else(|| panic!("no request continued the conversation\n{story}"));
    let seen = texts(resumed);
    let original = seen.iter().position(|t| t.trim() == prompt);
    let continuation = seen.iter().position(|t| t.contains("(attempt 1) ended"));
    assert!(
        matches!((original, continuation), (Some(o), Some(c)) if o < c),
        "the original prompt comes first, as history: {seen:?}"
    );
}

#[test]
#[ignore = "real agent claude: scripts/test-real-agents.sh claude"]
fn claude_gets_option_like_prompts_verbatim() {
    option_like_prompts_arrive_verbatim::<Claude>("claude");
}

#[test]
#[ignore = "real agent claude: scripts/test-real-agents.sh claude"]
fn claude_print_edits_a_file_and_completes() {
    edits_a_file_and_completes::<Claude>("claude-print");
}

#[test]
#[ignore = "real agent claude: scripts/test-real-agents.sh claude"]
fn claude_print_gets_option_like_prompts_verbatim() {
    option_like_prompts_arrive_verbatim::<Claude>("claude-print");
}

#[test]
#[ignore = "real agent codex: scripts/test-real-agents.sh codex"]
fn codex_edits_a_file_and_completes() {
    edits_a_file_and_completes::<Codex>("codex");
}

#[test]
#[ignore = "real agent codex: scripts/test-real-agents.sh codex"]
fn codex_gets_option_like_prompts_verbatim() {
    option_like_prompts_arrive_verbatim::<Codex>("codex");
}

#[test]
#[ignore = "real agent gemini: scripts/test-real-agents.sh gemini"]
fn gemini_edits_a_file_and_completes() {
    edits_a_file_and_completes::<Gemini>("gemini");
}

#[test]
#[ignore = "real agent gemini: scripts/test-real-agents.sh gemini"]
fn gemini_gets_option_like_prompts_verbatim() {
    option_like_prompts_arrive_verbatim::<Gemini>("gemini");
}

#[test]
#[ignore = "real agent opencode: scripts/test-real-agents.sh opencode"]
fn opencode_edits_a_file_and_completes() {
    edits_a_file_and_completes::<Opencode>("opencode");
}

#[test]
#[ignore = "real agent opencode: scripts/test-real-agents.sh opencode"]
fn opencode_gets_option_like_prompts_verbatim() {
    option_like_prompts_arrive_verbatim::<Opencode>("opencode");
}

#[test]
#[ignore = "real agent aider: scripts/test-real-agents.sh aider"]
fn aider_edits_a_file_and_completes() {
    edits_a_file_and_completes::<Aider>("aider");
}

#[test]
#[ignore = "real agent aider: scripts/test-real-agents.sh aider"]
fn aider_gets_option_like_prompts_verbatim() {
    option_like_prompts_arrive_verbatim::<Aider>("aider");
}

// ------------------------------------- conversations (SPEC section 14)

/// The user texts of one recorded request.
fn request_texts(request: &Value) -> Vec<String> {
    request["user_texts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect()
}

/// Whether `text` is `prompt` as agent `A` sends it (or restores it from
/// its history: Aider's markdown keeps two trailing spaces).
fn says<A: Agent>(text: &str, prompt: &str) -> bool {
    text.trim() == prompt || A::arrived(&[text.to_owned()], prompt)
}

/// Whether `request` carries `earlier` as history before `later`.
fn earlier_turn_is_history<A: Agent>(request: &Value, earlier: &str, later: &str) -> bool {
    let seen = request_texts(request);
    let first = seen.iter().position(|t| says::<A>(t, earlier));
    let then = seen
        .iter()
        .rposition(|t| says::<A>(t, later) || t.contains(later));
    matches!((first, then), (Some(f), Some(l)) if f < l)
}

/// The tokens of `turns` answered turns, as `status --json` shows them.
fn expected_usage<A: Agent>(turns: u64) -> (u64, u64, u64) {
    let (input, output, cached) = A::one_turn();
    (turns * input, turns * output, turns * cached)
}

fn usage_of(usage: &Value) -> (u64, u64, u64) {
    let count = |key: &str| usage[key].as_u64().unwrap_or(u64::MAX);
    (
        count("input_tokens"),
        count("output_tokens"),
        count("cache_read_input_tokens"),
    )
}

/// A completed job's `result` is the model's answer, its `session` names
/// the conversation (an id of the CLI's kind, the agent, and a transcript
/// file that exists), and its `usage` is what the fake API reported for
/// the conversation's turns.
fn reports_its_session_result_and_tokens<A: Agent>(template: &str) {
    let world = agent_world(A::CLI.0, A::CLI.1);
    let answer = "forty-two is the answer";
    let provider = Provider::start(
        world.dir.path(),
        &serde_json::json!({"turns": [{"text": answer}], "plain": answer}),
    );
    let env = A::setup(&world, &provider.url());
    let spec = job_spec(
        &world,
        "answer",
        template,
        "What is six times seven?",
        &env,
        "",
    );
    let (code, out, err) = run_spec(&world, &spec);
    let story = story(&world, &provider, &out, &err);
    assert_eq!(code, Some(0), "{story}");
    let row = job_status(&world, "answer");
    assert_eq!(row["result"], answer, "{row}\n{story}");
    let session = &row["session"];
    assert!(
        A::valid_session(session["id"].as_str().unwrap_or_default()),
        "{row}"
    );
    assert_eq!(session["agent"], template, "{row}");
    let transcript = session["transcript"].as_str().unwrap_or_default();
    assert!(Path::new(transcript).is_file(), "{row}\n{story}");
    let turns = provider.requests().iter().filter(|r| A::is_turn(r)).count() as u64;
    assert!(turns >= 1, "{story}");
    eprintln!("{template}: {turns} turn(s), usage {}", row["usage"]);
    assert_eq!(
        usage_of(&row["usage"]),
        expected_usage::<A>(turns),
        "{row}\ntranscript {transcript}:\n{}\n{story}",
        std::fs::read_to_string(transcript).unwrap_or_default()
    );
}

/// The fake API never answers the first turn: the job goes `hung` after
/// `timeouts.idle`, and attempt 2 continues the same conversation: its
/// request carries the original prompt as history and the continuation
/// after it, not the prompt as the first message of a new conversation.
fn continues_its_conversation_after_a_hung_first_turn<A: Agent>(template: &str) {
    let world = agent_world(A::CLI.0, A::CLI.1);
    let provider = Provider::start(world.dir.path(), &A::hanging_first_turn());
    let env = A::setup(&world, &provider.url());
    let prompt = "Count the files in this folder";
    let retry = "[timeouts]\nidle = \"15s\"\n\n[retry]\nbackoff = \"0s\"\n";
    let spec = job_spec(&world, "hangs", template, prompt, &env, retry);
    let (code, out, err) = run_spec(&world, &spec);
    let story = story(&world, &provider, &out, &err);
    assert_eq!(code, Some(0), "{story}");
    let record = world.record(&world.id("hangs"));
    assert_eq!(record["attempt"], 2, "{record}\n{story}");
    let first = record["attempts"][0]["session"]["id"]
        .as_str()
        .unwrap_or_default();
    assert!(
        A::valid_session(first),
        "attempt 1 named its conversation: {record}\n{story}"
    );
    assert_eq!(record["attempts"][1]["continued_from"], first, "{record}");
    assert_eq!(
        record["attempts"][1]["session"]["id"], first,
        "the same conversation: {record}"
    );
    assert_eq!(record["attempts"][1]["result"], "done", "{record}");
    let requests = provider.requests();
    let hung = requests
        .iter()
        .position(|r| r["hung"] == true)
        .unwrap_or_else(|| panic!("no hung request\n{story}"));
    assert!(
        request_texts(&requests[hung])
            .iter()
            .any(|t| says::<A>(t, prompt)),
        "{story}"
    );
    let resumed = requests[hung + 1..]
        .iter()
        .filter(|r| A::is_turn(r))
        .find(|r| {
            request_texts(r)
                .iter()
                .any(|t| t.contains("(attempt 1) ended"))
        })
        .unwrap_or_else(|| panic!("no request continued the conversation\n{story}"));
    assert!(
        earlier_turn_is_history::<A>(resumed, prompt, "(attempt 1) ended"),
        "the original prompt comes first, as history: {:?}",
        request_texts(resumed)
    );
}

/// `send ID TEXT` to a completed job: attempt 2 continues its
/// conversation with TEXT (the fake API sees the first turn as history),
/// and counts its own tokens, not the first turn's again.
fn send_continues_a_completed_conversation<A: Agent>(template: &str) {
    let world = agent_world(A::CLI.0, A::CLI.1);
    let provider = Provider::start(
        world.dir.path(),
        &serde_json::json!({"turns": [{"text": "forty-two"}], "plain": "forty-two"}),
    );
    let env = A::setup(&world, &provider.url());
    let prompt = "What is six times seven?";
    let spec = job_spec(&world, "follow", template, prompt, &env, "");
    let (code, out, err) = run_spec(&world, &spec);
    assert_eq!(code, Some(0), "{}", story(&world, &provider, &out, &err));
    let id = world.id("follow");
    let before = provider.requests().len();
    let follow_up = "And what is that plus one?";
    let (code, out, err) = world.finish(&["send", &id, follow_up], JOB_LIMIT);
    let story = story(&world, &provider, &out, &err);
    assert_eq!(code, Some(0), "{story}");
    let record = world.record(&id);
    assert_eq!(record["attempt"], 2, "{record}\n{story}");
    let first = record["attempts"][0]["session"]["id"].clone();
    assert!(
        A::valid_session(first.as_str().unwrap_or_default()),
        "{record}"
    );
    assert_eq!(record["attempts"][1]["continued_from"], first, "{record}");
    assert_eq!(record["attempts"][1]["session"]["id"], first, "{record}");
    assert_eq!(record["attempts"][1]["result"], "forty-two", "{record}");
    let requests = provider.requests();
    let later: Vec<&Value> = requests[before..]
        .iter()
        .filter(|r| A::is_turn(r))
        .collect();
    assert!(
        later
            .iter()
            .any(|r| earlier_turn_is_history::<A>(r, prompt, follow_up)),
        "the first turn is history before the follow-up\n{story}"
    );
    assert_eq!(
        usage_of(&record["attempts"][1]["usage"]),
        expected_usage::<A>(later.len() as u64),
        "attempt 2 counts its own turns only: {record}"
    );
}

#[test]
#[ignore = "real agent codex: scripts/test-real-agents.sh codex"]
fn codex_reports_its_session_result_and_tokens() {
    reports_its_session_result_and_tokens::<Codex>("codex");
}

#[test]
#[ignore = "real agent codex: scripts/test-real-agents.sh codex"]
fn codex_continues_its_conversation_after_a_hung_first_turn() {
    continues_its_conversation_after_a_hung_first_turn::<Codex>("codex");
}

#[test]
#[ignore = "real agent codex: scripts/test-real-agents.sh codex"]
fn codex_send_continues_a_completed_conversation() {
    send_continues_a_completed_conversation::<Codex>("codex");
}

#[test]
#[ignore = "real agent gemini: scripts/test-real-agents.sh gemini"]
fn gemini_reports_its_session_result_and_tokens() {
    reports_its_session_result_and_tokens::<Gemini>("gemini");
}

#[test]
#[ignore = "real agent gemini: scripts/test-real-agents.sh gemini"]
fn gemini_continues_its_conversation_after_a_hung_first_turn() {
    continues_its_conversation_after_a_hung_first_turn::<Gemini>("gemini");
}

#[test]
#[ignore = "real agent gemini: scripts/test-real-agents.sh gemini"]
fn gemini_send_continues_a_completed_conversation() {
    send_continues_a_completed_conversation::<Gemini>("gemini");
}

#[test]
#[ignore = "real agent opencode: scripts/test-real-agents.sh opencode"]
fn opencode_reports_its_session_result_and_tokens() {
    reports_its_session_result_and_tokens::<Opencode>("opencode");
}

#[test]
#[ignore = "real agent opencode: scripts/test-real-agents.sh opencode"]
fn opencode_continues_its_conversation_after_a_hung_first_turn() {
    continues_its_conversation_after_a_hung_first_turn::<Opencode>("opencode");
}

#[test]
#[ignore = "real agent opencode: scripts/test-real-agents.sh opencode"]
fn opencode_send_continues_a_completed_conversation() {
    send_continues_a_completed_conversation::<Opencode>("opencode");
}

#[test]
#[ignore = "real agent aider: scripts/test-real-agents.sh aider"]
fn aider_reports_its_session_result_and_tokens() {
    reports_its_session_result_and_tokens::<Aider>("aider");
}

#[test]
#[ignore = "real agent aider: scripts/test-real-agents.sh aider"]
fn aider_continues_its_conversation_after_a_hung_first_turn() {
    continues_its_conversation_after_a_hung_first_turn::<Aider>("aider");
}

#[test]
#[ignore = "real agent aider: scripts/test-real-agents.sh aider"]
fn aider_send_continues_a_completed_conversation() {
    send_continues_a_completed_conversation::<Aider>("aider");
}

// ------------------------------------------------ Claude Code's screens

/// Waits until the job `name` is `waiting`; returns its status and the
/// message shown for it: the transition's reason (a screen rule's question)
/// or the last event's message (a Notification hook).
fn wait_waiting(
    world: &World,
    running: &mut Lines,
    name: &str,
    limit: Duration,
) -> Option<(Value, String)> {
    if !running.wait_line("\"to\":\"waiting\"", limit) {
        return None;
    }
    let transition: Value = running
        .stdout
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or(Value::Null);
    let job = job_status(world, name);
    let message = transition["reason"]
        .as_str()
        .or_else(|| job["last_event"]["message"].as_str())
        .unwrap_or_default()
        .to_owned();
    Some((job, message))
}

/// A Bash command (which `acceptEdits` does not cover) makes Claude Code ask
/// for permission: the job is `waiting`, a person answers in the window, and
/// the job completes.
#[test]
#[ignore = "real agent claude: scripts/test-real-agents.sh claude"]
fn claude_permission_prompt_waits_then_is_answered_in_the_window_and_completes() {
    let world = agent_world("claude", "claude");
    let marker = workdir(&world).join("approved.txt");
    let command = format!(
        "python3 -c \"open('{}', 'w').write('approved')\"",
        marker.display()
    );
    let provider = Provider::start(
        world.dir.path(),
        &serde_json::json!({"turns": [{"shell": command}, {"text": "done"}], "plain": "done"}),
    );
    let env = Claude::setup(&world, &provider.url());
    let spec = job_spec(
        &world,
        "ask-job",
        "claude",
        "run the approved command",
        &env,
        "",
    );
    let mut running = spawn_spec(&world, &spec);
    let waiting = wait_waiting(&world, &mut running, "ask-job", Duration::from_secs(90));
    let story = |running: &Lines| {
        story(
            &world,
            &provider,
            &running.stdout.join("\n"),
            &running.stderr.join("\n"),
        )
    };
    let Some((job, _)) = waiting else {
        panic!(
            "the permission prompt was not reported as waiting\n{}",
            story(&running)
        );
    };
    assert_eq!(job["state"], "waiting", "{job}");
    assert!(!marker.exists(), "the command ran before it was approved");
    let pane = pane(&world, "ask-job").unwrap_or_else(|| panic!("no window\n{}", story(&running)));
    let asked = wait_for(Duration::from_secs(30), || {
        pane_screen(&world, &pane)
            .contains("Do you want to proceed?")
            .then_some(())
    });
    assert!(
        asked.is_some(),
        "no permission question on screen:\n{}",
        pane_screen(&world, &pane)
    );
    // A person answers "1. Yes" (the highlighted choice) in the window.
    assert!(world
        .tmux
        .command(&["send-keys", "-t", &pane, "Enter"])
        .status()
        .expect("tmux")
        .success());
    let code = running.finish(JOB_LIMIT);
    assert_eq!(code.code(), Some(0), "{}", story(&running));
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap_or_default(),
        "approved"
    );
    assert_eq!(job_status(&world, "ask-job")["state"], "completed");
}

/// Every API call fails (400): Claude Code's StopFailure hook publishes
/// `error` with the API's message, the attempt fails at once, the retry
/// policy runs its course, and `run` exits 1 showing the message — never
/// `waiting`. Needs the StopFailure hook (branch agents-core).
#[test]
#[ignore = "real agent claude: scripts/test-real-agents.sh claude"]
fn claude_api_error_fails_the_job_fast_with_the_apis_message() {
    let world = agent_world("claude", "claude");
    let message = "fake-provider: model fake-model is not available to this key";
    let provider = Provider::start(
        world.dir.path(),
        &serde_json::json!({"error": {"status": 400, "message": message}}),
    );
    let env = Claude::setup(&world, &provider.url());
    let spec = job_spec(
        &world,
        "api-error-job",
        "claude",
        "say done",
        &env,
        "[retry]\nmax_attempts = 2\nbackoff = \"1s\"\n",
    );
    let started = Instant::now();
    let mut running = spawn_spec(&world, &spec);
    let exited = wait_for(Duration::from_secs(120), || {
        running.guard.child().try_wait().ok().flatten()
    });
    if exited.is_none() {
        running.wait_line("(collect what was printed)", Duration::ZERO);
        panic!(
            "run did not end within 120 s\n{}",
            story(
                &world,
                &provider,
                &running.stdout.join("\n"),
                &running.stderr.join("\n")
            )
        );
    }
    let code = running.finish(Duration::from_secs(10));
    let elapsed = started.elapsed();
    let out = running.stdout.join("\n");
    let err = running.stderr.join("\n");
    let story = story(&world, &provider, &out, &err);
    eprintln!(
        "claude api error: run exited {:?} after {elapsed:?}",
        code.code()
    );
    assert_eq!(code.code(), Some(1), "{story}");
    assert!(
        !out.contains("\"to\":\"waiting\"") && !out.contains("\"to\":\"hung\""),
        "an API error must not look like waiting or hung\n{story}"
    );
    assert!(
        format!("{out}\n{err}").contains(message),
        "the API's message is not shown\n{story}"
    );
    // Two attempts of a few seconds each and a 1 s backoff: well under a
    // minute even on a loaded machine (the idle timeout is 10 minutes).
    assert!(
        elapsed < Duration::from_secs(60),
        "took {elapsed:?}\n{story}"
    );
}

/// A workdir Claude Code has not been told to trust: its trust dialog
/// blocks before any hook fires; a screen rule reports the job `waiting`
/// with the question, and it is not retried into. Needs the screen rules
/// (branch agents-core).
#[test]
#[ignore = "real agent claude: scripts/test-real-agents.sh claude"]
fn claude_trust_dialog_is_reported_as_waiting() {
    let world = agent_world("claude", "claude");
    let provider = Provider::start(
        world.dir.path(),
        &serde_json::json!({"turns": [{"text": "done"}], "plain": "done"}),
    );
    let env = Claude::setup(&world, &provider.url());
    Claude::seed(&world, false);
    let spec = job_spec(&world, "trust-job", "claude", "say done", &env, "");
    let started = Instant::now();
    let mut running = spawn_spec(&world, &spec);
    let waiting = wait_waiting(&world, &mut running, "trust-job", Duration::from_secs(45));
    let story = story(
        &world,
        &provider,
        &running.stdout.join("\n"),
        &running.stderr.join("\n"),
    );
    let (job, message) =
        waiting.unwrap_or_else(|| panic!("the trust dialog was not reported as waiting\n{story}"));
    eprintln!(
        "claude trust dialog: waiting after {:?}: {message}",
        started.elapsed()
    );
    assert!(
        message.to_lowercase().contains("trust"),
        "message {message:?}\n{story}"
    );
    assert_eq!(job["attempt"], 1, "{job}");
    // The question is the job's `reason` in `status --json`, not only in
    // the transition (SPEC section 14).
    let reason = job["reason"].as_str().unwrap_or_default();
    assert!(
        reason.to_lowercase().contains("trust"),
        "status --json reason {reason:?}: {job}"
    );
    assert!(
        provider.requests().iter().all(|r| r["api"] != "anthropic"),
        "Claude Code called the API before the folder was trusted\n{story}"
    );
    let id = job["id"].as_str().expect("id").to_owned();
    assert!(run(world.td().args(["kill", &id])).status.success());
    assert_eq!(running.finish(Duration::from_secs(60)).code(), Some(1));
}

/// The user texts of one recorded model request.
fn texts_of(request: &Value) -> Vec<String> {
    request["user_texts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect()
}

/// Waits until the fake API has answered a request whose last user text
/// is `last`; that request's user texts.
fn request_ending_with(provider: &Provider, last: &str, limit: Duration) -> Option<Vec<String>> {
    wait_for(limit, || {
        provider
            .requests()
            .iter()
            .filter(|r| r["answered"].is_array())
            .map(texts_of)
            .find(|texts| texts.last().is_some_and(|t| t.trim() == last))
    })
}

/// `send ID TEXT` to a real Claude Code waiting at its prompt between
/// turns (`on_stop = "waiting"`): the text arrives as the next user turn,
/// with the first turn as history, and the job waits again after it.
#[test]
#[ignore = "real agent claude: scripts/test-real-agents.sh claude"]
fn claude_send_reaches_a_waiting_agent_as_a_new_turn_with_its_history() {
    let real = installed("claude", "claude");
    let world = World::builder(Broker::Embedded)
        .kill_grace("2s")
        .build("[agents.claude]\non_stop = \"waiting\"\n");
    std::fs::create_dir_all(world.scratch("work")).expect("workdir");
    std::os::unix::fs::symlink(&real, world.bin.join("claude")).expect("symlink");
    let provider = Provider::start(
        world.dir.path(),
        &serde_json::json!({"turns": [{"text": "the first answer"}], "plain": "the first answer"}),
    );
    let env = Claude::setup(&world, &provider.url());
    let prompt = "What is six times seven?";
    let spec = job_spec(&world, "talk", "claude", prompt, &env, "");
    let mut running = spawn_spec(&world, &spec);
    let story = |running: &Lines| {
        story(
            &world,
            &provider,
            &running.stdout.join("\n"),
            &running.stderr.join("\n"),
        )
    };
    let Some((job, _)) = wait_waiting(&world, &mut running, "talk", Duration::from_secs(90)) else {
        panic!("the first turn did not end waiting\n{}", story(&running));
    };
    assert_eq!(job["result"], "the first answer", "{job}");
    let id = job["id"].as_str().expect("id").to_owned();
    // Quotes, `$` and `;` are data: typed literally, never through a shell.
    let follow = "And what is it times eight? Say 'it's $HOME; done'";
    let sent = run(world.td().args(["send", &id, follow]));
    assert!(sent.status.success(), "send: {}", text(&sent.stderr));
    let seen = request_ending_with(&provider, follow, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("the sent text never reached the API\n{}", story(&running)));
    assert!(
        seen.iter().any(|t| t.trim() == prompt),
        "the first turn is history of the second: {seen:?}"
    );
    // The new turn shows (UserPromptSubmit hook), then its end.
    assert!(
        running.wait_line("\"to\":\"running\"", Duration::from_secs(60))
            && running.wait_line("\"to\":\"waiting\"", Duration::from_secs(60)),
        "the second turn did not show as running, then waiting\n{}",
        story(&running)
    );
    let record = world.record(&id);
    assert_eq!(record["attempt"], 1, "one attempt, two turns: {record}");
    assert!(run(world.td().args(["kill", &id])).status.success());
    running.finish(Duration::from_secs(60));
}

/// `send ID TEXT` to a completed Claude Code job: a follow-up attempt
/// that continues its conversation (`--resume`), so the API sees the first
/// turn as history and the follow-up last; the job completes again with
/// the new answer.
#[test]
#[ignore = "real agent claude: scripts/test-real-agents.sh claude"]
fn claude_send_to_a_completed_job_continues_its_conversation() {
    let world = agent_world("claude", "claude");
    let provider = Provider::start(
        world.dir.path(),
        &serde_json::json!({"turns": [{"text": "forty-two"}], "plain": "forty-two"}),
    );
    let env = Claude::setup(&world, &provider.url());
    let prompt = "What is six times seven?";
    let spec = job_spec(&world, "follow", "claude", prompt, &env, "");
    let (code, out, err) = run_spec(&world, &spec);
    assert_eq!(code, Some(0), "{}", story(&world, &provider, &out, &err));
    let id = job_status(&world, "follow")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let follow = "Now divide it by six.";
    let (code, out, err) = world.finish(&["send", &id, follow], JOB_LIMIT);
    let story = story(&world, &provider, &out, &err);
    assert_eq!(code, Some(0), "{story}");
    let seen = request_ending_with(&provider, follow, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("the follow-up never reached the API\n{story}"));
    assert!(
        seen.iter().any(|t| t.trim() == prompt),
        "the first turn is history of the follow-up: {seen:?}\n{story}"
    );
    let record = world.record(&id);
    assert_eq!(record["state"], "completed", "{record}");
    assert_eq!(record["attempt"], 2, "{record}");
    let first = record["attempts"][0]["session"]["id"].clone();
    assert_eq!(record["attempts"][1]["continued_from"], first, "{record}");
    assert_eq!(record["attempts"][1]["session"]["id"], first, "{record}");
}

/// Two Claude jobs of a Claude subscriber (`CLAUDE_CODE_OAUTH_TOKEN`)
/// under `max_parallel = 1`; the fake API answers the first turn 429 with
/// the unified rate-limit headers, resetting at the next whole minute at
/// least 20 s ahead. Claude Code shows "You've hit your session limit ·
/// resets ..." and its StopFailure hook says `rate_limit`: the first job
/// is `limited` (not failed, its attempt not charged), the second stays
/// `queued`; after the reset (the time read from Claude's own words, plus
/// `limits.grace`) the first continues in its own conversation and both
/// complete (SPEC section 14, issue 24).
#[test]
#[ignore = "real agent claude: scripts/test-real-agents.sh claude"]
fn claude_usage_limit_pauses_the_queue_until_the_reset_then_both_complete() {
    let real = installed("claude", "claude");
    let world = World::builder(Broker::Embedded).kill_grace("2s").build(
        "[defaults]\nmax_parallel = 1\n\n[defaults.retry]\nmax_attempts = 2\n\n\
         [defaults.limits]\ngrace = \"1s\"\nwait = \"10m\"\n",
    );
    std::fs::create_dir_all(world.scratch("work")).expect("workdir");
    std::os::unix::fs::symlink(&real, world.bin.join("claude")).expect("symlink");
    let reset = next_minute();
    let provider = Provider::start(
        world.dir.path(),
        &serde_json::json!({"limit": {"count": 1, "reset": reset},
                            "turns": [{"text": "done"}], "plain": "done"}),
    );
    let mut env = Claude::setup(&world, &provider.url());
    env.retain(|(k, _)| *k != "ANTHROPIC_API_KEY");
    env.push((
        "CLAUDE_CODE_OAUTH_TOKEN",
        "sk-ant-oat01-fake-subscriber".into(),
    ));
    env.push(("TZ", "UTC".into()));
    let mut jobs = String::new();
    for (name, prompt) in [("first", "Say A"), ("second", "Say B")] {
        let spec = job_spec(&world, name, "claude", prompt, &env, "");
        let text = std::fs::read_to_string(&spec).expect("spec");
        let (head, env_table) = text.split_once("[env]").expect("an [env] table");
        jobs.push_str(&format!("[[jobs]]\n{head}\n[jobs.env]{env_table}\n"));
    }
    let jobs_file = world.home.join("jobs.toml");
    std::fs::write(&jobs_file, jobs).expect("jobs");
    let (code, out, err) = run_spec(&world, &jobs_file);
    let story = story(&world, &provider, &out, &err);
    assert_eq!(code, Some(0), "{story}");
    let transitions: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let to = |name: &str, state: &str| {
        transitions
            .iter()
            .find(|t| t["name"] == name && t["to"] == state)
            .cloned()
    };
    let limited = to("first", "limited").unwrap_or_else(|| panic!("not limited\n{story}"));
    eprintln!("claude limit: {}", limited["reason"]);
    assert!(
        limited["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("limit"),
        "{limited}"
    );
    assert!(to("second", "queued").is_some(), "{story}");
    assert!(
        to("first", "failed").is_none() && to("second", "failed").is_none(),
        "nothing failed\n{story}"
    );
    // It went on only after the reset (rounded up to the minute) and grace.
    let relaunch = transitions
        .iter()
        .find(|t| t["name"] == "first" && t["from"] == "limited")
        .expect("the first job went on");
    let at = relaunch["ts"].as_f64().unwrap_or_default();
    assert!(
        at >= reset as f64,
        "went on at {at}, before the reset {reset}"
    );
    assert!(
        at < reset as f64 + 30.0,
        "went on at {at}, long after the reset {reset}"
    );
    let id = job_status(&world, "first")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let record = world.record(&id);
    assert_eq!(record["state"], "completed", "{record}");
    assert_eq!(record["attempts"][0]["outcome"], "limited", "{record}");
    let session = record["attempts"][0]["session"]["id"].clone();
    assert_eq!(record["attempts"][1]["continued_from"], session, "{record}");
    let continued = request_ending_with_part(&provider, "usage limit")
        .unwrap_or_else(|| panic!("no request continued the conversation\n{story}"));
    assert!(
        continued.iter().any(|t| t.trim() == "Say A"),
        "the first turn is history: {continued:?}"
    );
    assert_eq!(job_status(&world, "second")["state"], "completed");
}

/// The user texts of the first answered request whose last user text
/// contains `part`.
fn request_ending_with_part(provider: &Provider, part: &str) -> Option<Vec<String>> {
    provider
        .requests()
        .iter()
        .filter(|r| r["answered"].is_array())
        .map(texts_of)
        .find(|texts| texts.last().is_some_and(|t| t.contains(part)))
}

/// The same limit with an API key: Claude Code says `API Error: Request
/// rejected (429) · ... rate limit` and names no reset time, so the job
/// waits `limits.wait` (shortened here), then continues in its
/// conversation and completes; the attempt is not charged (`max_attempts
/// = 1`).
#[test]
#[ignore = "real agent claude: scripts/test-real-agents.sh claude"]
fn claude_rate_limit_without_a_reset_time_waits_the_fallback_and_completes() {
    let real = installed("claude", "claude");
    let world = World::builder(Broker::Embedded)
        .kill_grace("2s")
        .build("[defaults.retry]\nmax_attempts = 1\n\n[defaults.limits]\nwait = \"3s\"\n");
    std::fs::create_dir_all(world.scratch("work")).expect("workdir");
    std::os::unix::fs::symlink(&real, world.bin.join("claude")).expect("symlink");
    let provider = Provider::start(
        world.dir.path(),
        &serde_json::json!({"limit": {"count": 1}, "turns": [{"text": "done"}], "plain": "done"}),
    );
    let env = Claude::setup(&world, &provider.url());
    let spec = job_spec(&world, "keyed", "claude", "Say A", &env, "");
    let (code, out, err) = run_spec(&world, &spec);
    let story = story(&world, &provider, &out, &err);
    assert_eq!(code, Some(0), "{story}");
    assert!(out.contains("\"to\":\"limited\""), "{story}");
    let id = job_status(&world, "keyed")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let record = world.record(&id);
    eprintln!("claude rate limit: {}", record["attempts"][0]);
    assert_eq!(record["state"], "completed", "{record}");
    assert_eq!(record["attempts"][0]["outcome"], "limited", "{record}");
    let continued = request_ending_with_part(&provider, "usage limit")
        .unwrap_or_else(|| panic!("no request continued the conversation\n{story}"));
    assert!(
        continued.iter().any(|t| t.trim() == "Say A"),
        "{continued:?}"
    );
}

/// `claude -p` (the claude-print template): the wrapper assigns the
/// conversation's id up front (`--session-id`), its transcript is found
/// under `~/.claude/projects`, and the job has its result (what it printed)
/// and the tokens the fake API reported.
#[test]
#[ignore = "real agent claude: scripts/test-real-agents.sh claude"]
fn claude_print_reports_its_session_result_and_tokens() {
    claude_reports_session_result_and_tokens("claude-print");
}

// ------------------------------------------- usage limits of the others

/// The fake API answers the first `limit["count"]` turns 429 in its own
/// shape (`limit`, see fake_provider.py): the CLI gives up and says so, its
/// built-in screen rule makes the attempt `limited`, not failed, and not
/// charged (`max_attempts = 1`); after the wait (`limits.wait = "3s"`
/// without a reset time, `grace = "1s"` after one) it continues in its
/// conversation: the continuation, which says it was paused by a usage
/// limit, carries the prompt as history, and the job completes. Returns
/// the limited attempt's transition and when it went on.
fn limited_then_continues<A: Agent>(template: &str, limit: Value) -> (Value, f64) {
    let world = agent_world_with(
        A::CLI.0,
        A::CLI.1,
        "[defaults.retry]\nmax_attempts = 1\n\n[defaults.limits]\nwait = \"3s\"\ngrace = \"1s\"\n",
    );
    let provider = Provider::start(
        world.dir.path(),
        &serde_json::json!({"limit": limit, "turns": [{"write": {"path": workdir(&world).join("a.txt").display().to_string(), "content": "A\n"}}, {"text": "done"}], "plain": "done"}),
    );
    let mut env = A::setup(&world, &provider.url());
    env.push(("TZ", "UTC".into()));
    let prompt = "Say A";
    let spec = job_spec(&world, "limited", template, prompt, &env, "");
    let (code, out, err) = run_spec(&world, &spec);
    let story = story(&world, &provider, &out, &err);
    assert_eq!(code, Some(0), "{story}");
    let transitions: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let limited = transitions
        .iter()
        .find(|t| t["to"] == "limited")
        .cloned()
        .unwrap_or_else(|| panic!("not limited\n{story}"));
    eprintln!("{template} limit: {}", limited["reason"]);
    assert!(
        !out.contains("\"to\":\"failed\""),
        "nothing failed\n{story}"
    );
    let went_on = transitions
        .iter()
        .find(|t| t["from"] == "limited")
        .and_then(|t| t["ts"].as_f64())
        .unwrap_or_else(|| panic!("it never went on\n{story}"));
    let record = world.record(&world.id("limited"));
    assert_eq!(record["state"], "completed", "{record}\n{story}");
    assert_eq!(record["attempts"][0]["outcome"], "limited", "{record}");
    let session = record["attempts"][0]["session"]["id"].clone();
    assert!(
        A::valid_session(session.as_str().unwrap_or_default()),
        "{record}"
    );
    assert_eq!(record["attempts"][1]["continued_from"], session, "{record}");
    let continued = provider
        .requests()
        .into_iter()
        .filter(|r| A::is_turn(r))
        .find(|r| request_texts(r).iter().any(|t| t.contains("usage limit")))
        .unwrap_or_else(|| panic!("no request continued the conversation\n{story}"));
    assert!(
        earlier_turn_is_history::<A>(&continued, prompt, "usage limit"),
        "the prompt is history before the continuation: {:?}",
        request_texts(&continued)
    );
    (limited, went_on)
}

/// The next whole minute at least 20 s ahead (CLIs print a reset time to
/// the minute; the margin covers a CLI's start on a loaded machine, so the
/// limit is met before its reset).
fn next_minute() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    (now + 20).div_ceil(60) * 60
}

/// Codex at a ChatGPT plan's usage limit (`usage_limit_reached` with
/// `resets_at`): "You've hit your usage limit. ... try again at 3:59 AM.",
/// no retry; the job goes on only after that minute (plus grace).
#[test]
#[ignore = "real agent codex: scripts/test-real-agents.sh codex"]
fn codex_rate_limit_usage_limit_pauses_until_the_reset_then_continues() {
    let reset = next_minute();
    let (limited, went_on) = limited_then_continues::<Codex>(
        "codex",
        serde_json::json!({"count": 1, "kind": "usage", "reset": reset}),
    );
    assert!(
        limited["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("try again at"),
        "{limited}"
    );
    assert!(
        went_on >= reset as f64,
        "went on at {went_on}, before {reset}"
    );
    assert!(
        went_on < reset as f64 + 30.0,
        "went on at {went_on}, long after {reset}"
    );
}

/// Codex at an API rate limit: 1 + 5 retries honouring `retry-after`
/// (1 s here), then "exceeded retry limit, last status: 429"; no reset
/// time, so `limits.wait`.
#[test]
#[ignore = "real agent codex: scripts/test-real-agents.sh codex"]
fn codex_rate_limit_without_a_reset_time_waits_the_fallback_and_completes() {
    let (limited, _) = limited_then_continues::<Codex>(
        "codex",
        serde_json::json!({"count": 6, "kind": "rate", "retry_after": 1}),
    );
    assert!(
        limited["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("429"),
        "{limited}"
    );
}

/// Gemini CLI at a daily quota (RESOURCE_EXHAUSTED, per-day quota id): it
/// does not retry, prints "TerminalQuotaError: You have exhausted your
/// daily quota on this model." and exits 1. (A per-minute quota it retries
/// 10 times over about 4 minutes first: measured, too slow for a test.)
/// The limit meets its second turn: a limit on the first turn leaves it no
/// conversation to resume (it drops the unanswered prompt from its chat
/// file, and `--resume` then exits 42 "No previous sessions found").
#[test]
#[ignore = "real agent gemini: scripts/test-real-agents.sh gemini"]
fn gemini_rate_limit_daily_quota_waits_the_fallback_and_completes() {
    let (limited, _) = limited_then_continues::<Gemini>(
        "gemini",
        serde_json::json!({"count": 1, "kind": "quota", "after": 1}),
    );
    assert!(
        limited["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("daily quota"),
        "{limited}"
    );
}

/// opencode at an OpenAI-style rate limit: 1 + 5 retries, then "Error: Rate
/// limit reached ... Please try again in 1s.", exit 1.
#[test]
#[ignore = "real agent opencode: scripts/test-real-agents.sh opencode"]
fn opencode_rate_limit_waits_then_continues_and_completes() {
    let (limited, _) = limited_then_continues::<Opencode>(
        "opencode",
        serde_json::json!({"count": 6, "kind": "rate", "retry_after": 1}),
    );
    assert!(
        limited["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("Rate limit reached"),
        "{limited}"
    );
}

/// Aider at a rate limit: 9 rounds of 3 requests (its client's retries)
/// with its own backoff (0.125 s doubling to 32 s, about a minute), then
/// "The API provider has rate limited you. ..." and exit 0: the rule is
/// looked for at a zero exit too.
#[test]
#[ignore = "real agent aider: scripts/test-real-agents.sh aider"]
fn aider_rate_limit_waits_then_continues_and_completes() {
    let (limited, _) = limited_then_continues::<Aider>(
        "aider",
        serde_json::json!({"count": 27, "any": true, "kind": "rate", "retry_after": 1}),
    );
    assert!(
        limited["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("rate limited you"),
        "{limited}"
    );
}

/// SPEC section 15 with real MCP clients: the real Claude Code in print
/// mode is the orchestrator (`--mcp-config` naming `tmux-delegate mcp`,
/// `--allowedTools mcp__delegate`); the fake API has it call
/// `mcp__delegate__run` (a job for a real interactive Claude Code in a
/// tmux window, which talks to the same fake API and answers `plain`),
/// then `mcp__delegate__wait`, and then echoes the wait's result. Its
/// final answer holds the worker's `result`; the job is `completed`.
#[test]
#[ignore = "real agent claude: scripts/test-real-agents.sh claude"]
fn claude_orchestrates_through_mcp_delegating_to_a_claude_worker() {
    let world = agent_world("claude", "claude");
    let answer = "forty-two, says the worker";
    let provider = Provider::start(
        world.dir.path(),
        &serde_json::json!({
            "turns": [
                {"call": {"name": "mcp__delegate__run", "args": {
                    "prompt": "What is six times seven?", "agent": "claude", "name": "worker"}}},
                {"call": {"name": "mcp__delegate__wait", "args": {"ids": ["worker"], "timeout_s": 200}}},
                {"echo_last_tool_result": true, "text": "The worker's rows: "}
            ],
            "plain": answer,
        }),
    );
    let env = Claude::setup(&world, &provider.url());
    // The worker's environment reaches it from the server's as `pass_env`.
    let names: Vec<String> = env.iter().map(|(k, _)| format!("{k:?}")).collect();
    world.write_config(&format!("[defaults]\npass_env = [{}]\n", names.join(", ")));
    // The server runs in the worker's (trusted) workdir, under its config.
    let work = workdir(&world);
    std::fs::copy(
        world.path("tmux-delegate.toml"),
        work.join("tmux-delegate.toml"),
    )
    .expect("the workdir's config");
    let mut server_env: serde_json::Map<String, Value> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(v.as_str())))
        .collect();
    for (key, value) in [
        ("HOME", world.home.display().to_string()),
        ("PATH", world.path_var()),
        ("TMUX_TMPDIR", world.tmux.tmpdir.display().to_string()),
        (
            "TMUX_DELEGATE_HOME",
            world.home.join("state").display().to_string(),
        ),
    ] {
        server_env.insert(key.to_owned(), value.into());
    }
    let mcp_config = world.scratch("mcp.json");
    std::fs::write(
        &mcp_config,
        serde_json::json!({"mcpServers": {"delegate": {
            "command": BIN, "args": ["mcp"], "env": server_env}}})
        .to_string(),
    )
    .expect("mcp config");
    let mut orchestrator = Command::new(world.bin.join("claude"));
    orchestrator
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("HOME", &world.home)
        .env("PATH", world.path_var())
        .env("MCP_TOOL_TIMEOUT", "300000")
        .current_dir(&work)
        .arg("-p")
        .arg("--mcp-config")
        .arg(&mcp_config)
        .args(["--allowedTools", "mcp__delegate", "--"])
        .arg("Delegate the question to a worker and tell me its answer.")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = Guard(Some(orchestrator.spawn().expect("claude -p"))).wait_output(JOB_LIMIT);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let story = story(&world, &provider, &stdout, &stderr);
    assert_eq!(out.status.code(), Some(0), "{story}");
    let called: Vec<String> = provider
        .requests()
        .iter()
        .filter(|r| r["answered"][0] == "call")
        .filter_map(|r| r["answered"][1].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        called,
        ["mcp__delegate__run", "mcp__delegate__wait"],
        "{story}"
    );
    assert!(
        stdout.contains("The worker's rows: ") && stdout.contains(answer),
        "{story}"
    );
    let row = job_status(&world, "worker");
    assert_eq!(
        (&row["state"], &row["result"], &row["agent"]),
        (
            &Value::from("completed"),
            &Value::from(answer),
            &Value::from("claude")
        ),
        "{row}\n{story}"
    );
}
