//! Job records on disk (SPEC section 7): `<home>/jobs/<id>/record.json` and
//! `events.jsonl`. Directories 0700, files 0600, records written atomically
//! (temp file + rename), read-modify-write serialised with flock. A corrupt
//! record is reported and skipped, never fatal for the other jobs.

use crate::config::job::JobSpec;
use crate::config::{BrokerSettings, Env};
use crate::error::{config_error, Failure};
use crate::model::{EventKind, JobId, Signature};
use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::model::{
    AttemptInfo, FailureInfo, JobState, LastEvent, ResumePoint, StatusRow, Transition,
};

pub const RECORD_VERSION: u32 = 1;

/// The stop path's view of an attempt (`AttemptInfo` lives in the model,
/// which knows nothing of processes).
impl AttemptInfo {
    /// The agent's process group, as the wrapper recorded it.
    pub fn agent_group(&self) -> Option<crate::proc::AgentGroup> {
        self.pgid.map(|pgid| crate::proc::AgentGroup {
            pgid,
            leader_start: self.pgid_start,
        })
    }
}

/// `record.json`: the spec, resolved config, broker block, event key and state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub id: String,
    pub spec: JobSpec,
    /// The worker's connection (superset of the original scripts' block).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<BrokerSettings>,
    /// Hex HMAC key for this job's events.
    pub event_key: String,
    pub state: JobState,
    pub attempt: u32,
    pub created: String,
    pub updated: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event: Option<LastEvent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureInfo>,
    /// Why the job entered its state, from the transition: the question of
    /// a `waiting` job (an event's message, or a screen rule's dialog),
    /// what a queued job waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    /// The dialog a screen rule sees on the agent's screen (a question to
    /// answer with keys, not with text), as of the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialog: Option<String>,
    /// What the next attempt was asked to do (`retry --fresh`, `send` to a
    /// finished job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_turn: Option<crate::model::conversation::NextTurn>,
    #[serde(default)]
    pub attempts: Vec<AttemptInfo>,
    /// `pass_env` values captured from the environment of `run`.
    #[serde(default)]
    pub pass_env: BTreeMap<String, String>,
    /// Whether a supervisor (`run`) owns the state; `register`ed jobs are
    /// driven by their events alone.
    #[serde(default)]
    pub supervised: bool,
    /// The resolved agent the window's wrapper runs (set by `run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<crate::agents::AgentDef>,
    /// PID of the supervisor process that owns the job, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor_pid: Option<i32>,
    /// Set by `kill ID`: the supervisor stops the job and marks it cancelled.
    #[serde(default)]
    pub cancel_requested: bool,
    /// Kept up to date by the supervisor for a `resume` after a crash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumePoint>,
    /// The job's git worktree (workspace = "worktree"); absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<crate::workspace::Workspace>,
    /// Queue settings (SPEC section 11): caps, dependencies, priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<crate::supervisor::queue::QueueSpec>,
    /// A fleet job's runner process (SPEC section 13). Its window's wrapper
    /// stops the attempt when this process is gone: the pool runs the job
    /// again elsewhere, and two live attempts must not outlast the fencing
    /// window. Absent for `run` jobs, whose agents outlive a dead supervisor
    /// (`resume` adopts them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet_owner: Option<FleetOwner>,
}

/// The process a fleet job's attempt lives and dies with: a pid and its
/// start time, so a pid reused after the runner died is not taken for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetOwner {
    pub runner: String,
    pub pid: i32,
    /// `starttime` of `/proc/PID/stat` (clock ticks since boot), when read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
}

impl FleetOwner {
    /// This process, as the owner of the jobs of runner `runner`.
    pub fn this_process(runner: &str) -> Option<FleetOwner> {
        let pid = i32::try_from(std::process::id()).ok()?;
        Some(FleetOwner {
            runner: runner.to_owned(),
            pid,
            start: crate::proc::start_time(pid),
        })
    }

    /// Whether the owner still runs (a zombie or a reused pid does not).
    pub fn is_alive(&self) -> bool {
        crate::proc::process_alive(self.pid, self.start)
    }
}

impl Record {
    /// A new job's record: pending at attempt 1, created now, owned by no
    /// supervisor, with nothing recorded yet. Callers set what they know
    /// more (`Record { supervised: true, ..Record::new(..) }`).
    pub fn new(id: &JobId, spec: JobSpec, event_key: String) -> Record {
        let now = now_rfc3339();
        Record {
            version: RECORD_VERSION,
            id: id.to_string(),
            spec,
            broker: None,
            event_key,
            state: JobState::Pending,
            attempt: 1,
            created: now.clone(),
            updated: now,
            last_event: None,
            failure: None,
            state_reason: None,
            dialog: None,
            next_turn: None,
            attempts: Vec::new(),
            pass_env: BTreeMap::new(),
            supervised: false,
            agent: None,
            supervisor_pid: None,
            cancel_requested: false,
            resume: None,
            workspace: None,
            queue: None,
            fleet_owner: None,
        }
    }

    /// The job as `status --json` (and outcome hooks) show it.
    pub fn row(&self) -> StatusRow {
        StatusRow {
            id: self.id.clone(),
            name: self.spec.name.clone(),
            agent: Some(self.spec.agent.clone()),
            state: self.state.into(),
            attempt: self.attempt,
            max_attempts: Some(self.spec.retry.max_attempts),
            created: self.created.clone(),
            updated: self.updated.clone(),
            last_event: self.last_event.clone(),
            failure: self.failure.clone(),
            reason: self.reason(),
            until: self.limited_until().map(crate::model::row::rfc3339),
            work: crate::model::Work::of(&self.attempts),
            fleet: None,
        }
    }

    /// A `limited` job: when its wait for the limit's reset ends (Unix
    /// seconds, from its checkpoint).
    pub fn limited_until(&self) -> Option<f64> {
        (self.state == JobState::Limited)
            .then(|| self.resume.and_then(|r| r.backoff_until))
            .flatten()
    }

    /// What `status` and `top` show of a `limited` job: when it continues,
    /// and why.
    pub fn limited_note(&self) -> Option<String> {
        let until = crate::model::row::rfc3339(self.limited_until()?);
        let why = self.state_reason.as_deref().unwrap_or("a usage limit");
        Some(format!("until {until}: {why}"))
    }

    /// The row as JSON, for outcome hooks and `status --json`.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::to_value(self.row()).unwrap_or_default()
    }

    /// Why the job is in its state, as far as the record says: the
    /// question of a `waiting` job (from its transition: an event's message
    /// or a screen rule's dialog; else its last event's message), what a
    /// waiting-to-start job waits for, the reason of a failure (or of
    /// another end: a cancel).
    pub fn reason(&self) -> Option<String> {
        let waits = matches!(
            self.state,
            JobState::Waiting
                | JobState::Queued
                | JobState::Retrying
                | JobState::Pending
                | JobState::Limited
        );
        match (&self.failure, &self.state_reason) {
            (Some(failure), _) if self.state.is_finished() => Some(failure.reason.clone()),
            (_, Some(reason)) if waits || self.state.is_finished() => Some(reason.clone()),
            _ if self.state == JobState::Waiting => {
                self.last_event.as_ref().and_then(|e| e.message.clone())
            }
            _ => None,
        }
    }

    /// The question a `waiting` job asks (`status` and `top` show it in
    /// place of the last event).
    pub fn question(&self) -> Option<String> {
        (self.state == JobState::Waiting)
            .then(|| self.reason())
            .flatten()
    }

    /// The record of attempt `n`, created on first use.
    pub fn attempt_mut(&mut self, n: u32) -> &mut AttemptInfo {
        if let Some(i) = self.attempts.iter().position(|a| a.number == n) {
            return &mut self.attempts[i];
        }
        self.attempts.push(AttemptInfo {
            number: n,
            ..AttemptInfo::default()
        });
        self.attempts
            .last_mut()
            .unwrap_or_else(|| unreachable!("just pushed"))
    }

    /// The job's worktree, or exit 2 for a job that runs in its workdir
    /// (what `diff`, `merge` and `clean` need before they start).
    pub fn worktree(&self) -> Result<&crate::workspace::Workspace, Failure> {
        self.workspace.as_ref().ok_or_else(|| {
            config_error(format!(
                "job {} has no worktree: it ran in {} as it is",
                self.id,
                self.spec.workdir.display()
            ))
            .help("give jobs their own worktree with `run --worktree` or workspace = \"worktree\"")
        })
    }

    pub fn attempt_info(&self, n: u32) -> Option<&AttemptInfo> {
        self.attempts.iter().find(|a| a.number == n)
    }
}

/// Writing a transition: one pure change of the record, and one call that
/// puts it into the history and the record together (the supervisor's
/// driver, the stop path of `kill`, and `watch` for a job no supervisor
/// owns all write transitions through these two).
impl Record {
    /// The record after `t`: its state and attempt; the failure when there
    /// is one (a completion clears it; a skip says why the job never ran);
    /// and, for an end, no owner any more and the attempt's `ended` and
    /// `outcome` (at `now`, RFC 3339).
    pub fn apply_transition(&mut self, t: &Transition, now: &str) {
        self.state = t.to;
        self.attempt = t.attempt;
        self.state_reason.clone_from(&t.reason);
        if t.failure.is_some() || t.to == JobState::Completed {
            self.failure.clone_from(&t.failure);
        }
        if t.to == JobState::Skipped {
            // Why it never ran (`status` shows it): a dependency's end.
            self.failure = Some(FailureInfo {
                kind: "skipped".into(),
                reason: t.reason.clone().unwrap_or_default(),
            });
        }
        if t.to.is_finished() {
            self.supervisor_pid = None;
        }
        // A usage limit ends the attempt too (uncharged: kind `limited`).
        if t.to.is_finished() || t.to == JobState::Limited {
            if let Some(info) = self.attempts.iter_mut().find(|a| a.number == t.attempt) {
                info.ended = Some(now.to_owned());
                info.outcome = Some(t.to.as_str().to_owned());
            }
        }
    }
}

impl Registry {
    /// Appends `t` to the job's history and applies it (and `also`) to its
    /// record, under the registry's lock: no other writer sees one without
    /// the other. Returns the record as written.
    pub fn record_transition(
        &self,
        id: &JobId,
        t: &Transition,
        also: impl FnOnce(&mut Record),
    ) -> Result<Record> {
        let _lock = self.lock()?;
        let mut record = self.load(id)?;
        self.append(
            id,
            &LogEntry::Transition {
                ts: t.ts,
                attempt: t.attempt,
                from: t.from,
                to: t.to,
                reason: t.reason.clone(),
            },
        )?;
        let now = now_rfc3339();
        record.apply_transition(t, &now);
        also(&mut record);
        record.updated = now;
        write_atomic(&self.job_dir(id).join("record.json"), &record)?;
        Ok(record)
    }
}

/// One line of `events.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LogEntry {
    Event {
        ts: f64,
        attempt: u32,
        event: EventKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<serde_json::Value>,
        signature: Signature,
        /// The sender's own timestamp, when it gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sent: Option<f64>,
        /// Why the event was not acted on, if it was not (stale attempt, bad signature).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ignored: Option<String>,
    },
    Transition {
        ts: f64,
        attempt: u32,
        from: JobState,
        to: JobState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// An attempt's window was opened, closed or kept.
    Window {
        ts: f64,
        attempt: u32,
        window: String,
        action: String,
    },
}

/// A record that could not be read, reported instead of breaking listings.
#[derive(Debug, Clone)]
pub struct Corrupt {
    pub id: String,
    pub problem: String,
}

/// Below this much free space `status` warns (`Registry::space_warning`).
const LOW_SPACE: u64 = 256 * 1024;

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// A new job id: the name's slug and a random suffix, always a valid [`JobId`].
pub fn new_job_id(name: &str) -> JobId {
    use rand::distributions::{Alphanumeric, DistString};
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let slug: String = slug.chars().take(40).collect();
    let slug = slug.trim_end_matches('-');
    let suffix = Alphanumeric
        .sample_string(&mut rand::thread_rng(), 6)
        .to_ascii_lowercase();
    let id = if slug.is_empty() {
        format!("job-{suffix}")
    } else {
        format!("{slug}-{suffix}")
    };
    JobId::parse(&id).unwrap_or_else(|_| unreachable!("slug and suffix are id-safe"))
}

pub struct Registry {
    root: PathBuf,
}

impl Registry {
    /// `$TMUX_DELEGATE_HOME`, else `$XDG_STATE_HOME/tmux-delegate`, else
    /// `~/.local/state/tmux-delegate`. Created 0700 on first use.
    pub fn open(env: &Env) -> Result<Registry> {
        let root = match env.var("TMUX_DELEGATE_HOME") {
            Some(dir) => crate::config::expand_path(Path::new(dir), &env.cwd, env.home.as_deref()),
            None => env.xdg_dir("XDG_STATE_HOME", ".local/state").ok_or_else(|| {
                config_error("cannot locate the registry: neither TMUX_DELEGATE_HOME, XDG_STATE_HOME nor HOME is set")
                    .help("set TMUX_DELEGATE_HOME to a directory for job records")
            })?,
        };
        Ok(Registry { root })
    }

    pub fn at(root: PathBuf) -> Registry {
        Registry { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn jobs_dir(&self) -> PathBuf {
        self.root.join("jobs")
    }

    pub fn job_dir(&self, id: &JobId) -> PathBuf {
        self.jobs_dir().join(id.as_str())
    }

    /// The last pane capture of a fleet job's attempt, saved by its
    /// window's wrapper for the job's log (0600, like the record).
    pub fn pane_file(&self, id: &JobId, attempt: u32) -> PathBuf {
        self.job_dir(id).join(format!("pane-{attempt}.txt"))
    }

    /// Saves an attempt's last pane capture (its last `PANE_LIMIT` bytes)
    /// as `pane_file`. Only logged when it fails: the pane is for the log,
    /// and the job goes on without it.
    pub fn save_pane(&self, id: &JobId, attempt: u32, pane: &str) {
        let path = self.pane_file(id, attempt);
        if let Err(e) = write_file(&path, tail(pane, PANE_LIMIT), 0o600) {
            tracing::warn!("job {id}: cannot save its pane for its log: {e:#}");
        }
    }

    fn ensure_dirs(&self) -> Result<()> {
        let jobs = self.jobs_dir();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&jobs)
            .with_context(|| format!("creating the registry directory {}", jobs.display()))?;
        for dir in [&self.root, &jobs] {
            let mode = fs::metadata(dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                    .with_context(|| format!("making {} private (0700)", dir.display()))?;
            }
        }
        Ok(())
    }

    /// Holds the registry's lock until dropped: every read-modify-write of a
    /// record happens under it.
    fn lock(&self) -> Result<Flock<File>> {
        self.ensure_dirs()?;
        let path = self.root.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("opening the registry lock {}", path.display()))?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| anyhow::anyhow!("locking {}: {errno}", path.display()))
    }

    /// Stores a new job; fails if the id exists. The job's directory
    /// appears complete or not at all: it is built under a hidden name and
    /// renamed into place, so a full disk leaves no empty job behind.
    pub fn create(&self, record: &Record) -> Result<()> {
        let id = JobId::parse(&record.id)?;
        let _lock = self.lock()?;
        let dir = self.job_dir(&id);
        if dir.exists() {
            anyhow::bail!("the job directory {} exists already", dir.display());
        }
        let building = tempfile::Builder::new()
            .prefix(&format!(".new-{id}-"))
            .permissions(fs::Permissions::from_mode(0o700))
            .tempdir_in(self.jobs_dir())
            .with_context(|| {
                format!("creating a job directory in {}", self.jobs_dir().display())
            })?;
        write_atomic(&building.path().join("record.json"), record)?;
        fs::rename(building.path(), &dir)
            .with_context(|| format!("creating the job directory {}", dir.display()))?;
        // Renamed: nothing left for the guard to remove.
        let _ = building.keep();
        Ok(())
    }

    /// A warning when the registry's filesystem is (nearly) full: a
    /// supervisor that cannot write keeps its states in memory and writes
    /// them again, so what the records say may be behind.
    pub fn space_warning(&self) -> Option<String> {
        let stat = nix::sys::statvfs::statvfs(&self.root).ok()?;
        let free = stat.blocks_available().saturating_mul(stat.fragment_size());
        (free < LOW_SPACE).then(|| {
            format!(
                "the registry's filesystem ({}) has {} KiB free: a supervisor that cannot record a state \
                 keeps it in memory and writes it again, so these records may be behind; free some space",
                self.root.display(),
                free / 1024
            )
        })
    }

    pub fn exists(&self, id: &JobId) -> bool {
        self.job_dir(id).join("record.json").is_file()
    }

    pub fn load(&self, id: &JobId) -> Result<Record> {
        let path = self.job_dir(id).join("record.json");
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(self.not_found(id.as_str()).into())
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let record = parse_record(&text).map_err(|e| corrupt_record(&path, &e))?;
        check_id(&record, id.as_str()).map_err(|e| corrupt_record(&path, &e))?;
        Ok(record)
    }

    /// The job a command line names by `id_or_name`: its id and record, or
    /// "no job `X` in the registry" (listing, for a job name, the ids of
    /// the jobs with that name).
    pub fn find(&self, id_or_name: &str) -> Result<(JobId, Record)> {
        let by_id = JobId::parse(id_or_name).map(|id| (self.load(&id), id));
        if let Ok((Ok(record), id)) = by_id {
            return Ok((id, record));
        }
        // The name of exactly one job names it; of several, the error
        // lists their ids.
        let named = self.ids_named(id_or_name);
        if let [only] = named.as_slice() {
            let id = JobId::parse(only)?;
            let record = self.load(&id)?;
            return Ok((id, record));
        }
        match by_id {
            Ok((Err(e), _)) if named.is_empty() => Err(e),
            // A name may hold characters an id may not ("fix parser").
            Err(invalid) if named.is_empty() => Err(invalid.into()),
            _ => Err(self.not_found(id_or_name).into()),
        }
    }

    /// The "no job" error for `id_or_name`, exit 2.
    pub fn not_found(&self, id_or_name: &str) -> Failure {
        let named = self.ids_named(id_or_name);
        let failure = Failure::new(
            crate::error::Exit::Usage,
            format!(
                "no job `{id_or_name}` in the registry {}",
                self.root.display()
            ),
        );
        match named.as_slice() {
            [] => failure.help("`tmux-delegate status` lists the jobs"),
            [only] => failure.help(format!(
                "`{id_or_name}` is the name of job {only}: give its id"
            )),
            several => failure.help(format!(
                "`{id_or_name}` names {} jobs: give the id of one: {}",
                several.len(),
                several.join(", ")
            )),
        }
    }

    /// The ids of the readable records whose job is named `name`, oldest first.
    pub fn ids_named(&self, name: &str) -> Vec<String> {
        self.list()
            .map(|(records, _)| records)
            .unwrap_or_default()
            .into_iter()
            .filter(|record| record.spec.name == name)
            .map(|record| record.id)
            .collect()
    }

    /// Loads, changes and atomically rewrites a record under the lock.
    pub fn update(&self, id: &JobId, change: impl FnOnce(&mut Record)) -> Result<Record> {
        let _lock = self.lock()?;
        let mut record = self.load(id)?;
        change(&mut record);
        record.updated = now_rfc3339();
        write_atomic(&self.job_dir(id).join("record.json"), &record)?;
        Ok(record)
    }

    /// Appends one line to the job's `events.jsonl`, whole or not at all: a
    /// write the disk cut short is taken back, and a line torn by an
    /// earlier crash is ended first so it never swallows the new one.
    pub fn append(&self, id: &JobId, entry: &LogEntry) -> Result<()> {
        let path = self.job_dir(id).join("events.jsonl");
        let mut line = serde_json::to_string(entry)?;
        line.push('\n');
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        if ends_torn(&file) {
            line.insert(0, '\n');
        }
        // One write per line: O_APPEND keeps concurrent writers' lines whole.
        match file.write(line.as_bytes()) {
            Ok(n) if n == line.len() => Ok(()),
            Ok(n) => {
                take_back(&mut file, n);
                Err(anyhow::anyhow!(
                    "appending to {}: only {n} of {} bytes written (is the disk full?)",
                    path.display(),
                    line.len()
                ))
            }
            Err(e) => Err(e).with_context(|| format!("appending to {}", path.display())),
        }
    }

    /// The job's history; malformed lines are skipped.
    pub fn history(&self, id: &JobId) -> Result<Vec<LogEntry>> {
        let path = self.job_dir(id).join("events.jsonl");
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(BufReader::new(file)
            .lines()
            .map_while(std::result::Result::ok)
            .filter_map(|line| serde_json::from_str(&line).ok())
            .collect())
    }

    /// Every readable record (oldest first) and the ones that could not be read.
    pub fn list(&self) -> Result<(Vec<Record>, Vec<Corrupt>)> {
        let dir = self.jobs_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Vec::new(), Vec::new()))
            }
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        let mut records = Vec::new();
        let mut corrupt = Vec::new();
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path().join("record.json");
            if being_built_or_empty(&entry.path(), &id) {
                continue;
            }
            match fs::read_to_string(&path)
                .map_err(anyhow::Error::from)
                .and_then(|text| parse_record(&text))
                .and_then(|record| check_id(&record, &id).map(|()| record))
            {
                Ok(record) => records.push(record),
                Err(e) => corrupt.push(Corrupt {
                    id,
                    problem: {
                        let failure = corrupt_record(&path, &e);
                        format!(
                            "{failure}\nhelp: {}",
                            failure.help.as_deref().unwrap_or_default()
                        )
                    },
                }),
            }
        }
        records.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
        corrupt.sort_by(|a, b| a.id.cmp(&b.id));
        Ok((records, corrupt))
    }
}

/// A job directory `create` is still building (or a crash left
/// half-built), or an empty one an older version left on a full disk:
/// not a job, and not corrupt.
fn being_built_or_empty(dir: &Path, name: &str) -> bool {
    name.starts_with(".new-") || fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
}

/// Whether the file's last byte is not a newline (a line torn by a crash
/// or a full disk).
fn ends_torn(file: &File) -> bool {
    use std::os::unix::fs::FileExt;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut last = [0u8; 1];
    len > 0 && file.read_exact_at(&mut last, len - 1).is_ok() && last[0] != b'\n'
}

/// Removes the `written` bytes a short append left at the end, unless
/// another writer appended after them.
fn take_back(file: &mut File, written: usize) {
    use std::io::Seek;
    let (Ok(end), Ok(len)) = (file.stream_position(), file.metadata().map(|m| m.len())) else {
        return;
    };
    let written = u64::try_from(written).unwrap_or(u64::MAX);
    if end == len && written <= end {
        let _ = file.set_len(end - written);
    }
}

/// A record must name the job of its directory with a valid id: a foreign
/// or invalid one would make commands act on (or publish to) another job.
fn check_id(record: &Record, dir_name: &str) -> Result<()> {
    if let Err(e) = JobId::parse(&record.id) {
        anyhow::bail!("its id {:?} is not a valid job id: {e:#}", record.id);
    }
    if record.id != dir_name {
        anyhow::bail!(
            "its id `{}` names another job than its directory `{dir_name}`",
            record.id
        );
    }
    Ok(())
}

/// A record that cannot be read: one line with the reason (no "Caused by"
/// chain: the reason is the whole story) and how to get past it.
fn corrupt_record(path: &Path, problem: &anyhow::Error) -> Failure {
    let dir = path.parent().unwrap_or(path);
    Failure::new(
        crate::error::Exit::Usage,
        format!("the job record {} is corrupt: {problem:#}", path.display()),
    )
    .help(format!(
        "move it aside (`mv {dir} {dir}.corrupt`) or delete the job's directory {dir}; \
         the other jobs are not affected",
        dir = dir.display()
    ))
}

fn parse_record(text: &str) -> Result<Record> {
    let value: serde_json::Value = serde_json::from_str(text).context("not valid JSON")?;
    let version = value.get("version").and_then(serde_json::Value::as_u64);
    if version.is_some_and(|v| v > u64::from(RECORD_VERSION)) {
        anyhow::bail!(
            "record version {} is newer than this tmux-delegate understands ({RECORD_VERSION})",
            version.unwrap_or_default()
        );
    }
    serde_json::from_value(value).context("not a job record")
}

/// The most of an attempt's pane the registry keeps (its last part): what
/// a fleet job's log carries to other hosts.
pub const PANE_LIMIT: usize = 64 * 1024;

/// The last `limit` bytes of `text`, from a line start when there is one.
pub fn tail(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut start = text.len() - limit;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let rest = &text[start..];
    match rest.find('\n') {
        Some(newline) => &rest[newline + 1..],
        None => rest,
    }
}

/// Writes `content` to `path` atomically with permissions `mode`: a temp
/// file in the same directory (`.write.*.partial`), fsync, rename. The only
/// writer of whole files in the crate; the directory must exist.
pub fn write_file(path: &Path, content: &str, mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(".write.")
        .suffix(".partial")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    temp.write_all(content.as_bytes())
        .and_then(|()| {
            temp.as_file()
                .set_permissions(fs::Permissions::from_mode(mode))
        })
        .and_then(|()| temp.as_file().sync_all())
        .with_context(|| format!("writing {}", temp.path().display()))?;
    temp.persist(path)
        .with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// Writes `value` as pretty JSON to `path`, atomically and 0600.
pub fn write_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    write_file(path, &text, 0o600)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::tests::env_with;
    use crate::config::Config;

    pub fn sample_record(dir: &Path, id: &str) -> Record {
        let config = Config::load(env_with(&[], dir)).expect("config");
        let spec = config
            .resolve_job(
                None,
                &crate::config::job::JobFlags {
                    prompt: Some("do it".into()),
                    ..Default::default()
                },
            )
            .expect("spec");
        Record {
            id: id.into(),
            ..Record::new(&JobId::parse("sample").expect("id"), spec, "00".into())
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn records_are_private_and_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::at(dir.path().join("state"));
        let record = sample_record(dir.path(), "job-1");
        registry.create(&record).expect("create");
        let id = JobId::parse("job-1").expect("id");
        assert_eq!(registry.load(&id).expect("load"), record);
        assert_eq!(mode(&dir.path().join("state")), 0o700);
        assert_eq!(mode(&registry.job_dir(&id)), 0o700);
        assert_eq!(mode(&registry.job_dir(&id).join("record.json")), 0o600);
        assert!(registry.create(&record).is_err(), "duplicate id accepted");
        registry
            .append(
                &id,
                &LogEntry::Transition {
                    ts: 1.0,
                    attempt: 1,
                    from: JobState::Pending,
                    to: JobState::Running,
                    reason: None,
                },
            )
            .expect("append");
        assert_eq!(mode(&registry.job_dir(&id).join("events.jsonl")), 0o600);
        assert_eq!(registry.history(&id).expect("history").len(), 1);
        let updated = registry
            .update(&id, |r| r.state = JobState::Completed)
            .expect("update");
        assert_eq!(updated.state, JobState::Completed);
        let leftovers: Vec<_> = fs::read_dir(registry.job_dir(&id))
            .expect("ls")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
            .collect();
        assert!(leftovers.is_empty(), "temp files left behind");
    }

    #[test]
    fn corrupt_records_are_reported_and_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::at(dir.path().join("state"));
        registry
            .create(&sample_record(dir.path(), "good"))
            .expect("create");
        let bad = registry.jobs_dir().join("bad");
        fs::create_dir_all(&bad).expect("mkdir");
        fs::write(bad.join("record.json"), "{ not json").expect("write");
        let (records, corrupt) = registry.list().expect("list");
        assert_eq!(records.len(), 1);
        assert_eq!(corrupt.len(), 1);
        assert_eq!(corrupt[0].id, "bad");
    }

    #[test]
    fn records_with_a_bad_or_foreign_id_are_reported_and_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::at(dir.path().join("state"));
        for id in ["good", "bad", "foreign"] {
            registry
                .create(&sample_record(dir.path(), id))
                .expect("create");
        }
        for (dir_id, new_id) in [("bad", "no/such id"), ("foreign", "good")] {
            let path = registry.jobs_dir().join(dir_id).join("record.json");
            let mut record = sample_record(dir.path(), dir_id);
            record.id = new_id.into();
            write_atomic(&path, &record).expect("rewrite");
        }
        let (records, corrupt) = registry.list().expect("list");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].id, "good");
        let skipped: Vec<&str> = corrupt.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(skipped, ["bad", "foreign"]);
        let foreign = JobId::parse("foreign").expect("id");
        let error = registry.load(&foreign).expect_err("a foreign record");
        assert!(format!("{error:#}").contains("another job"), "{error:#}");
    }

    #[test]
    fn committed_v1_fixture_still_loads() {
        let text = include_str!("../tests/fixtures/record-v1.json");
        let record = parse_record(text).expect("v1 fixture loads");
        assert_eq!(record.id, "fix-flaky-test-a1b2c3");
        assert_eq!(
            record.broker.expect("broker").username.as_deref(),
            Some("claude-worker")
        );
        assert!(record.workspace.is_none());
        assert!(!record.spec.workspace.is_worktree());
    }

    fn transition(attempt: u32, from: JobState, to: JobState) -> Transition {
        Transition {
            ts: 1.0,
            attempt,
            from,
            to,
            reason: Some("why".into()),
            failure: None,
        }
    }

    #[test]
    fn an_end_closes_its_attempt_and_frees_the_job() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut record = sample_record(dir.path(), "job-1");
        record.supervisor_pid = Some(42);
        record.attempt_mut(1).window = Some("@1".into());
        record.attempt_mut(2).window = Some("@2".into());
        let mut running = record.clone();
        running.apply_transition(&transition(2, JobState::Launching, JobState::Running), "t1");
        assert_eq!((running.state, running.attempt), (JobState::Running, 2));
        assert_eq!(
            running.supervisor_pid,
            Some(42),
            "a running job keeps its owner"
        );
        assert!(running.attempts.iter().all(|a| a.ended.is_none()));
        record.apply_transition(&transition(2, JobState::Running, JobState::Cancelled), "t2");
        assert_eq!(record.state, JobState::Cancelled);
        assert_eq!(record.supervisor_pid, None);
        let second = record.attempt_info(2).expect("attempt 2");
        assert_eq!(second.ended.as_deref(), Some("t2"));
        assert_eq!(second.outcome.as_deref(), Some("cancelled"));
        let first = record.attempt_info(1).expect("attempt 1");
        assert_eq!(
            (first.ended.as_deref(), first.outcome.as_deref()),
            (None, None)
        );
    }

    #[test]
    fn a_transition_sets_clears_or_keeps_the_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let failure = FailureInfo {
            kind: "hung".into(),
            reason: "no event".into(),
        };
        let mut record = sample_record(dir.path(), "job-1");
        let mut failed = transition(1, JobState::Running, JobState::Retrying);
        failed.failure = Some(failure.clone());
        record.apply_transition(&failed, "t");
        assert_eq!(record.failure.as_ref(), Some(&failure));
        record.apply_transition(&transition(2, JobState::Retrying, JobState::Launching), "t");
        assert_eq!(
            record.failure.as_ref(),
            Some(&failure),
            "kept until the end"
        );
        record.apply_transition(&transition(2, JobState::Running, JobState::Completed), "t");
        assert_eq!(record.failure, None, "a completion clears it");
        record.apply_transition(&transition(0, JobState::Queued, JobState::Skipped), "t");
        let skipped = record.failure.expect("a skip says why");
        assert_eq!(
            (skipped.kind.as_str(), skipped.reason.as_str()),
            ("skipped", "why")
        );
    }

    #[test]
    fn record_transition_writes_the_history_and_the_record_together() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::at(dir.path().join("state"));
        let mut record = sample_record(dir.path(), "job-1");
        record.attempt_mut(1);
        registry.create(&record).expect("create");
        let id = JobId::parse("job-1").expect("id");
        let written = registry
            .record_transition(
                &id,
                &transition(1, JobState::Running, JobState::Failed),
                |r| r.cancel_requested = true,
            )
            .expect("transition");
        assert_eq!(registry.load(&id).expect("load"), written);
        assert_eq!(written.state, JobState::Failed);
        assert!(
            written.cancel_requested,
            "`also` applied under the same lock"
        );
        assert_eq!(
            written.attempt_info(1).and_then(|a| a.outcome.as_deref()),
            Some("failed")
        );
        assert_eq!(
            registry.history(&id).expect("history"),
            [LogEntry::Transition {
                ts: 1.0,
                attempt: 1,
                from: JobState::Running,
                to: JobState::Failed,
                reason: Some("why".into()),
            }]
        );
    }

    #[test]
    fn a_waiting_job_s_reason_is_its_question_whatever_asked_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut record = sample_record(dir.path(), "job-1");
        let mut waiting = transition(1, JobState::Running, JobState::Waiting);
        // A screen rule's dialog: no event carries it.
        waiting.reason = Some("Claude Code asks whether you trust this folder".into());
        record.apply_transition(&waiting, "now");
        assert_eq!(
            record.row().reason.as_deref(),
            Some("Claude Code asks whether you trust this folder")
        );
        let back = Transition {
            reason: Some("the agent is working again".into()),
            ..transition(1, JobState::Waiting, JobState::Running)
        };
        record.apply_transition(&back, "now");
        assert_eq!(record.row().reason, None, "a running job waits for nothing");
        // A record from before `state_reason`: the waiting event's message.
        record.state = JobState::Waiting;
        record.state_reason = None;
        record.last_event = Some(LastEvent {
            event: crate::model::EventKind::Waiting,
            attempt: 1,
            ts: 1.0,
            message: Some("may I push?".into()),
        });
        assert_eq!(record.row().reason.as_deref(), Some("may I push?"));
        record.apply_transition(&transition(1, JobState::Waiting, JobState::Failed), "now");
        assert_eq!(record.row().reason.as_deref(), Some("why"), "why it ended");
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_never_swallows_the_next_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::at(dir.path().join("state"));
        registry
            .create(&sample_record(dir.path(), "job-1"))
            .expect("create");
        let id = JobId::parse("job-1").expect("id");
        let entry = |attempt| LogEntry::Transition {
            ts: 1.0,
            attempt,
            from: JobState::Pending,
            to: JobState::Running,
            reason: None,
        };
        registry.append(&id, &entry(1)).expect("append");
        // A crash (or a full disk) cut the next line short.
        let path = registry.job_dir(&id).join("events.jsonl");
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(b"{\"type\":\"transition\",\"ts\":2.0,\"att")
            .expect("torn");
        drop(file);
        assert_eq!(registry.history(&id).expect("history"), [entry(1)]);
        registry.append(&id, &entry(3)).expect("append");
        assert_eq!(
            registry.history(&id).expect("history"),
            [entry(1), entry(3)]
        );
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.ends_with("}\n"), "{text}");
    }

    #[test]
    fn a_job_directory_appears_whole_and_empty_leftovers_are_not_jobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::at(dir.path().join("state"));
        registry
            .create(&sample_record(dir.path(), "job-1"))
            .expect("create");
        assert!(
            registry
                .create(&sample_record(dir.path(), "job-1"))
                .is_err(),
            "an id is registered once"
        );
        // What an older version left when the disk was full, and a
        // creation under way.
        std::fs::create_dir(registry.jobs_dir().join("job-2")).expect("mkdir");
        std::fs::create_dir(registry.jobs_dir().join(".new-job-3-x")).expect("mkdir");
        let (records, corrupt) = registry.list().expect("list");
        assert_eq!(records.len(), 1);
        assert!(corrupt.is_empty(), "{corrupt:?}");
        let entries: Vec<_> =
            std::fs::read_dir(registry.job_dir(&JobId::parse("job-1").expect("id")))
                .expect("job dir")
                .flatten()
                .map(|e| e.file_name())
                .collect();
        assert_eq!(entries, ["record.json"], "no temporary file left");
        assert_eq!(
            mode(&registry.job_dir(&JobId::parse("job-1").expect("id"))),
            0o700
        );
    }

    #[test]
    fn a_saved_pane_keeps_its_last_part() {
        let text = "é".repeat(PANE_LIMIT) + "\nlast line\n";
        let kept = tail(&text, PANE_LIMIT);
        assert!(kept.len() <= PANE_LIMIT && kept.ends_with("last line\n"));
        assert_eq!(tail("short\n", PANE_LIMIT), "short\n");
    }

    #[test]
    fn generated_ids_are_valid() {
        for name in ["Fix the flaky test!", "", "ünïcödé", &"x".repeat(100)] {
            let id = new_job_id(name);
            assert!(id.as_str().len() <= 64, "{id}");
        }
        assert!(new_job_id("Fix it").as_str().starts_with("fix-it-"));
    }
}
