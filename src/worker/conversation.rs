//! The attempt's conversation, as the agent's template says to capture it
//! (`[agents.NAME.conversation]`, SPEC section 14): the wrapper assigns
//! the id up front (`assign`) or reads the one the agent prints
//! (`printed`: its pane, or a file it writes), finds the transcript, and
//! when the agent ends reads its final answer (the `{result_file}` it
//! wrote, else its transcript, else the last lines it printed) and runs
//! the template's `export`. What it learns goes into the job record
//! (`registry.update`) before `exited` is sent, where the supervisor
//! counts the tokens (`usage_source`).
//!
//! A continued attempt's session is recorded only once the agent shows it
//! runs that conversation (it printed the id, or its transcript grew):
//! a resume that breaks leaves the attempt without one, and the next
//! attempt starts fresh (`model::conversation::plan`).

use crate::agents::conversation::{new_session_id, printed_id, Conversation, SessionCapture};
use crate::agents::{locate, transcript, AgentDef, Substitutions};
use crate::model::{JobId, Session, UsageSource};
use crate::registry::{Record, Registry};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long `export` may take.
const EXPORT_WAIT: Duration = Duration::from_secs(60);
/// How many of the agent's last lines are its answer when nothing better
/// says what it is.
const LAST_LINES: usize = 20;

/// What this attempt knows of its conversation, and what of it the record
/// already holds.
pub(super) struct Tracker {
    job: JobId,
    agent: String,
    conversation: Conversation,
    /// Reports through hooks: its events name the session and the answer.
    hooks: bool,
    workdir: PathBuf,
    /// The agent's environment over the window's, for path templates.
    env: BTreeMap<String, String>,
    paths: Paths,
    session: Option<String>,
    continued: bool,
    /// The agent showed it runs `session` (or the wrapper assigned it).
    confirmed: bool,
    recorded: bool,
    transcript: Option<PathBuf>,
    /// Where this attempt's part of the transcript begins.
    from: u64,
    /// The transcript template, its variables expanded, when it has a
    /// wildcard and is searched for.
    search: Option<String>,
    printed: Option<Printed>,
    /// The argv used the `{result_file}`.
    writes_result: bool,
}

/// The placeholders' values, owned.
#[derive(Default)]
struct Paths {
    attempt: String,
    job_dir: String,
    result_file: String,
    transcript: String,
    usage_file: String,
}

/// Where the id is printed: the pane, or files from their length at launch.
struct Printed {
    pattern: regex::Regex,
    files: Vec<(PathBuf, u64)>,
}

impl Tracker {
    /// The attempt's conversation before launch: `continues` names the
    /// conversation a continued attempt continues.
    pub(super) fn new(
        registry: &Registry,
        job: &JobId,
        record: &Record,
        agent: &AgentDef,
        attempt: u32,
        continues: Option<&str>,
    ) -> Tracker {
        let conversation = agent.conversation.clone();
        let job = job.clone();
        let job_dir = registry.job_dir(&job);
        let session = continues
            .map(str::to_owned)
            .or_else(|| (conversation.session == SessionCapture::Assign).then(new_session_id));
        let mut tracker = Tracker {
            job,
            agent: agent.name.clone(),
            hooks: agent.hooks.is_some(),
            workdir: record.spec.workdir.clone(),
            env: template_env(record, agent),
            paths: Paths {
                attempt: attempt.to_string(),
                job_dir: job_dir.display().to_string(),
                result_file: job_dir
                    .join(format!("result-{attempt}.txt"))
                    .display()
                    .to_string(),
                ..Paths::default()
            },
            session,
            continued: continues.is_some(),
            confirmed: continues.is_none() && conversation.session == SessionCapture::Assign,
            recorded: false,
            transcript: None,
            from: 0,
            search: None,
            printed: None,
            writes_result: false,
            conversation,
        };
        tracker.place_files(record, attempt);
        tracker
    }

    /// The transcript (the previous attempt's, for a continued one), the
    /// usage file, and where the printed id is looked for.
    fn place_files(&mut self, record: &Record, attempt: u32) {
        let _ = std::fs::remove_file(&self.paths.result_file);
        let previous = record
            .attempts
            .iter()
            .filter(|a| a.number < attempt)
            .max_by_key(|a| a.number);
        let earlier = previous
            .and_then(|a| a.session.as_ref()?.transcript.clone())
            .filter(|_| self.continued);
        match earlier {
            Some(path) => {
                self.transcript = Some(PathBuf::from(path));
            }
            None => {
                let expanded = self.first_expanded(&self.conversation.transcript.clone());
                match expanded {
                    Some(t) if locate::has_wildcard(&t) => self.search = Some(t),
                    Some(t) => self.transcript = Some(self.workdir.join(self.fill(&t))),
                    None => {}
                }
            }
        }
        if let Some(path) = &self.transcript {
            self.paths.transcript = path.display().to_string();
            if self.continued {
                self.from = transcript::mark(self.conversation.format, path);
            }
        }
        if let Some(usage) = self.conversation.usage_file.clone() {
            if let Some(path) = self.first_expanded(&[usage]) {
                self.paths.usage_file = self.workdir.join(self.fill(&path)).display().to_string();
            }
        }
        self.printed = self.printed_places();
    }

    fn printed_places(&self) -> Option<Printed> {
        if self.conversation.session != SessionCapture::Printed {
            return None;
        }
        let pattern = self.conversation.pattern.as_deref()?;
        let pattern = crate::agents::substitute_with(pattern, &self.values(""), regex::escape);
        let pattern = regex::Regex::new(&pattern).ok()?;
        let files = self
            .first_expanded(&self.conversation.printed_in)
            .map(|path| {
                let path = self.workdir.join(self.fill(&path));
                let len = std::fs::metadata(&path).map_or(0, |m| m.len());
                vec![(path, len)]
            })
            .unwrap_or_default();
        Some(Printed { pattern, files })
    }

    /// The first template whose variables are set, with them expanded.
    fn first_expanded(&self, templates: &[String]) -> Option<String> {
        let env = |name: &str| {
            self.env
                .get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok())
        };
        templates.iter().find_map(|t| locate::expand_env(t, &env))
    }

    fn fill(&self, template: &str) -> String {
        crate::agents::substitute(template, &self.values(""))
    }

    /// The values of the placeholders; `prompt` for the argv.
    pub(super) fn values<'a>(&'a self, prompt: &'a str) -> Substitutions<'a> {
        Substitutions {
            prompt,
            job: self.job.as_str(),
            settings: "",
            session: self.session.as_deref().unwrap_or(""),
            attempt: &self.paths.attempt,
            job_dir: &self.paths.job_dir,
            result_file: &self.paths.result_file,
            transcript: &self.paths.transcript,
            usage_file: &self.paths.usage_file,
        }
    }

    /// Notes which argv was launched, and records what is known before the
    /// launch: an assigned session, where the tokens will be.
    pub(super) fn launched(&mut self, registry: &Registry, argv: &[String]) {
        self.writes_result = argv.iter().any(|a| a.contains(&self.paths.result_file));
        self.save(registry, None);
    }

    /// Once the agent runs (every half second until all is known): the
    /// printed id, the transcript, and whether a continued conversation
    /// shows the new turn.
    pub(super) fn watch(&mut self, registry: &Registry) {
        if self.settled() {
            return;
        }
        let was = (
            self.confirmed,
            self.transcript.clone(),
            self.session.clone(),
        );
        self.read_printed_id();
        self.search_transcript();
        self.see_growth();
        if was
            != (
                self.confirmed,
                self.transcript.clone(),
                self.session.clone(),
            )
        {
            self.save(registry, None);
        }
    }

    /// Nothing more to learn while the agent runs.
    fn settled(&self) -> bool {
        self.recorded && self.search.is_none() || self.session.is_none() && self.printed.is_none()
    }

    fn read_printed_id(&mut self) {
        let Some(printed) = &self.printed else {
            return;
        };
        if self.confirmed {
            return;
        }
        let text = if printed.files.is_empty() {
            crate::tmux::own_pane_history().unwrap_or_default()
        } else {
            printed
                .files
                .iter()
                .filter_map(|(path, from)| read_after(path, *from))
                .collect()
        };
        if let Some(id) = printed_id(&printed.pattern, &text) {
            // A continued attempt that prints another id started a new
            // conversation: that one is its session.
            self.session = Some(id);
            self.confirmed = true;
        }
    }

    fn search_transcript(&mut self) {
        let (Some(pattern), Some(session)) = (&self.search, &self.session) else {
            return;
        };
        let pattern = self.fill(pattern);
        if let Some(found) = locate::find_transcript(&pattern, &self.workdir, session) {
            self.paths.transcript = found.display().to_string();
            self.transcript = Some(found);
            self.search = None;
        }
    }

    /// A continued conversation whose transcript grew past the mark runs.
    fn see_growth(&mut self) {
        if self.confirmed || !self.continued || self.conversation.session == SessionCapture::Events
        {
            return;
        }
        let Some(path) = &self.transcript else {
            return;
        };
        self.confirmed = transcript::mark(self.conversation.format, path) > self.from;
    }

    /// When the agent ended (its exit code, if it exited): the last look,
    /// the `export`, the answer; all of it recorded.
    pub(super) async fn finish(&mut self, registry: &Registry, code: Option<i32>) {
        self.read_printed_id();
        self.search_transcript();
        self.export().await;
        self.see_growth();
        let result = if code == Some(0) && !self.hooks {
            self.result()
        } else {
            None
        };
        self.save(registry, result);
    }

    /// Runs the template's `export` (opencode's sessions are in its
    /// database): its output becomes the attempt's transcript.
    async fn export(&mut self) {
        let (Some(argv), Some(_)) = (&self.conversation.export, &self.session) else {
            return;
        };
        let argv: Vec<String> = argv.iter().map(|a| self.fill(a)).collect();
        let path =
            Path::new(&self.paths.job_dir).join(format!("transcript-{}.json", self.paths.attempt));
        match run_export(&argv, &self.workdir, &self.env, &path).await {
            Ok(()) => {
                self.paths.transcript = path.display().to_string();
                self.transcript = Some(path);
            }
            Err(e) => super::say(&format!("[tmux-delegate] `{}` failed: {e}", argv.join(" "))),
        }
    }

    /// The agent's final answer: the file it was told to write, else its
    /// transcript's, else (no transcript at all) the last lines it printed.
    fn result(&self) -> Option<String> {
        let written = self
            .writes_result
            .then(|| std::fs::read_to_string(&self.paths.result_file).ok())
            .flatten()
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty());
        if written.is_some() {
            return written;
        }
        if let Some(path) = &self.transcript {
            return transcript::result(self.conversation.format, path, self.from);
        }
        let no_transcript =
            self.conversation.transcript.is_empty() && self.conversation.export.is_none();
        no_transcript
            .then(|| crate::tmux::own_pane_history().ok())
            .flatten()
            .and_then(|pane| last_lines(&pane, LAST_LINES))
    }

    /// Writes what is known (and `result`) into the attempt's record.
    fn save(&mut self, registry: &Registry, result: Option<String>) {
        let attempt: u32 = self.paths.attempt.parse().unwrap_or(0);
        let session = self
            .session
            .clone()
            .filter(|_| self.confirmed)
            .map(|id| Session {
                id,
                agent: Some(self.agent.clone()),
                transcript: self.transcript.as_ref().map(|p| p.display().to_string()),
            });
        let usage = self.usage_source();
        let saved = registry.update(&self.job, |r| {
            let info = r.attempt_mut(attempt);
            if session.is_some() {
                info.session = session.clone();
            }
            if usage.is_some() {
                info.usage_source = usage.clone();
            }
            // An answer the agent's own `completed` event carried wins.
            if info.result.is_none() {
                info.result = result.clone();
            }
        });
        match saved {
            Ok(_) => self.recorded |= session.is_some(),
            Err(e) => super::say(&format!(
                "[tmux-delegate] could not record the conversation: {e:#}"
            )),
        }
    }

    /// Where the attempt's tokens are: its usage file, else its transcript
    /// from the mark.
    fn usage_source(&self) -> Option<UsageSource> {
        let format = self.conversation.format;
        if !self.paths.usage_file.is_empty() {
            return Some(UsageSource {
                path: self.paths.usage_file.clone(),
                format,
                from: 0,
            });
        }
        self.transcript.as_ref().map(|path| UsageSource {
            path: path.display().to_string(),
            format,
            from: self.from,
        })
    }
}

/// The job's, the template's and the passed environment, over which the
/// window's own applies.
pub(super) fn template_env(record: &Record, agent: &AgentDef) -> BTreeMap<String, String> {
    agent
        .env
        .iter()
        .chain(&record.spec.env)
        .chain(&record.pass_env)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// What was written to `path` after byte `from`.
fn read_after(path: &Path, from: u64) -> Option<String> {
    use std::io::{Read, Seek};
    let mut file = std::fs::File::open(path).ok()?;
    file.seek(std::io::SeekFrom::Start(from)).ok()?;
    let mut bytes = Vec::new();
    file.take(16 * 1024 * 1024).read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The last `n` lines the agent printed in the pane `text`, without the
/// wrapper's own lines and trailing blanks.
fn last_lines(text: &str, n: usize) -> Option<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.starts_with("[tmux-delegate]") && !line.starts_with("tmux-delegate:"))
        .collect();
    let end = lines.iter().rposition(|line| !line.is_empty())? + 1;
    let start = end.saturating_sub(n);
    let answer = lines[start..end].join("\n");
    let answer = answer.trim();
    (!answer.is_empty()).then(|| answer.to_owned())
}

/// Runs `argv` in `workdir` with `env`, its output into `path` (0600).
async fn run_export(
    argv: &[String],
    workdir: &Path,
    env: &BTreeMap<String, String>,
    path: &Path,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let output = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(workdir)
        .envs(env)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(EXPORT_WAIT, output)
        .await
        .context("it took too long")?
        .context("cannot run it")?;
    anyhow::ensure!(output.status.success(), "it exited with {}", output.status);
    crate::registry::write_file(path, &String::from_utf8_lossy(&output.stdout), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_lines_are_the_agents_without_the_wrappers() {
        let pane = "[tmux-delegate] attempt 2 continues the agent's conversation s1\n\
                    thinking...\nthe answer\nis 42\n\n\n";
        assert_eq!(last_lines(pane, 2).as_deref(), Some("the answer\nis 42"));
        assert_eq!(
            last_lines(pane, 20).as_deref(),
            Some("thinking...\nthe answer\nis 42")
        );
        assert_eq!(last_lines("[tmux-delegate] only mine\n\n", 5), None);
        assert_eq!(last_lines("", 5), None);
    }
}
