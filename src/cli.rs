//! The command line (clap derive only). Behaviour lives in `commands/`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "tmux-delegate",
    version,
    about = "Delegate a job to a coding agent in its own tmux window and supervise it over MQTT",
    long_about = "Delegate a job to a coding agent (Claude Code, Codex, Aider, Gemini, any CLI) in its own \
tmux window and supervise it to the end. The agent reports started / heartbeat / waiting / completed / error \
over MQTT; the supervisor kills or retries the window on timeout, hang or error.\n\n\
Broker settings come from flags, the MQTT_* environment variables (MQTT_BROKER, MQTT_PORT, MQTT_TLS, \
MQTT_USERNAME, MQTT_PASSWORD, MQTT_CA_CERTS, MQTT_CERTFILE, MQTT_KEYFILE, MQTT_CLIENT_ID_PREFIX, \
MQTT_TOPIC_PREFIX), the project's tmux-delegate.toml and the user's ~/.config/tmux-delegate/config.toml, \
in that order.",
    after_help = "Exit codes: 0 success, 1 job failed, 2 usage or configuration error, 3 broker unreachable \
or auth refused, 4 publish refused by the broker (ACL), 75 a supervisor stopped before it could record \
every state it observed (a full or failing disk: free space, then `resume`), 124 timed out, 130 interrupted."
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug); TMUX_DELEGATE_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register jobs, launch each in a tmux window and supervise them to the end.
    Run(RunArgs),
    /// Register a job without launching it; prints the new job id.
    Register(RegisterArgs),
    /// Hand jobs to the running queue (a live `run` of this registry, else a
    /// detached supervisor started for them); prints the new job ids.
    Add(AddArgs),
    /// Publish one event for a job (signed with the job's key when known).
    Publish(PublishArgs),
    /// Print a job's events (or every job's) until a terminal event arrives.
    Watch(WatchArgs),
    /// List jobs with their state, attempt and last event.
    #[command(visible_alias = "list")]
    Status(StatusArgs),
    /// Full-screen live view of every job and the selected one's pane: attach,
    /// send, logs, kill and retry by key.
    #[command(
        long_about = "Full-screen live view of every job in the registry: name, agent, state \
(waiting jobs first, highlighted), attempt, age, tokens (once reported), last event. It follows \
the registry live. Under the table (beside it from 160 columns on): the selected job's pane, \
live and in colour, under its question when it waits; only that pane is read.\n\n\
Keys: Up/Down select, Enter attach (switch-client inside tmux), p hide or show the pane, \
s send a line (a follow-up to a finished job), a answer a dialog (y to confirm), l logs \
(scrollable), x kill (y to confirm), r retry, / filter, q or Esc quit.\n\n\
In tmux: bind-key T display-popup -E -w 90% -h 80% tmux-delegate top"
    )]
    Top,
    /// Show a job's event and transition history and its last pane capture.
    Logs(LogsArgs),
    /// Switch to (or attach to) a job's tmux window.
    Attach(IdArg),
    /// Answer a job without attaching: a line of text for an agent waiting at
    /// its prompt, or keys for a dialog on its screen.
    #[command(long_about = "Answer a job without attaching to its window.\n\n\
`send ID TEXT` types TEXT into the window of a job that is `waiting` at its prompt, byte for byte \
(no shell, no tmux key names), then Enter: the agent gets it as a new turn of its conversation. \
A job that is mid-turn (`running`) is refused unless --now; a job showing a dialog (a screen \
rule's question, see `status`) is refused: answer it with `send ID --keys KEY...`, where KEY is \
one of Enter, Escape, Up, Down, Left, Right, Tab, Space, BSpace, y, n or a digit.\n\n\
Exit 2 with the reason when it cannot send.")]
    Send(SendArgs),
    /// Stop a job gracefully and mark it cancelled.
    Kill(IdArg),
    /// Start a new attempt of a finished job (it continues the agent's
    /// conversation where it can).
    Retry(RetryArgs),
    /// Re-adopt unfinished jobs after a supervisor crash.
    Resume,
    /// Write ./tmux-delegate.toml for this project from the templates (or,
    /// with --mcp, register the MCP server with the agents' CLIs).
    Init(InitArgs),
    /// List the agent templates.
    Agents,
    /// Run or set up an MQTT broker.
    #[command(subcommand)]
    Broker(BrokerCommand),
    /// Verify the configured broker end to end (the cut-over checks).
    Doctor(DoctorArgs),
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout, or write every page to a directory.
    Man(ManArgs),
    /// Show a worktree job's changes (committed and not) against its base.
    Diff(DiffArgs),
    /// Merge a worktree job's branch into the main checkout's current branch.
    Merge(IdArg),
    /// Remove worktrees of finished jobs; never unmerged or uncommitted work
    /// unless --force.
    Clean(CleanArgs),
    /// Internal: the job window's wrapper process.
    #[command(hide = true)]
    Exec(ExecArgs),
    /// Serve a fleet pool on this host: take jobs from the broker and run
    /// them in the local tmux (SPEC section 13).
    Runner(RunnerArgs),
    /// Hand jobs to a fleet pool from any host; prints their ids.
    Submit(SubmitArgs),
    /// Serve the Model Context Protocol on stdio, so another agent can
    /// delegate: tools run, wait, status, send, kill, logs, diff.
    #[command(
        long_about = "Serve the Model Context Protocol (MCP) on stdin/stdout, so an agent \
(Claude Code, Codex, Gemini CLI, any MCP client) delegates jobs as a person does here: `run` starts \
a job under a detached supervisor, `wait` returns its status row (with the agent's `result`) once \
it finished, `send` answers it, `kill` stops it; `status`, `logs`, `diff` as the commands. It starts \
only agents this directory's config defines.\n\n\
Register it with Claude Code: claude mcp add delegate -- tmux-delegate mcp\n\
(`tmux-delegate init --mcp` prints the lines for Codex and Gemini CLI too.)"
    )]
    Mcp,
}

#[derive(Debug, Args)]
pub struct RunnerArgs {
    /// The pool to serve (default: `fleet.pool`, else `default`).
    #[arg(long)]
    pub pool: Option<String>,
    /// This runner's name (default: `fleet.name`, else the host name).
    #[arg(long)]
    pub name: Option<String>,
    /// How many jobs run here at once (default: `fleet.max_parallel`, else 4).
    #[arg(long)]
    pub max_parallel: Option<u32>,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Job spec files (TOML: one job, or several as [[jobs]]); only name,
    /// agent, prompt and a workdir relative to the runner's root travel.
    #[arg(value_name = "JOB.toml")]
    pub specs: Vec<PathBuf>,
    #[command(flatten)]
    pub job: JobArgs,
    /// The pool to submit to (default: `fleet.pool`, else `default`).
    #[arg(long)]
    pub pool: Option<String>,
    /// Wait until every job ended; exits like `run` (0 completed, 1 failed).
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds (exit 124).
    #[arg(long, value_name = "SECS", requires = "wait")]
    pub timeout: Option<f64>,
    /// With --wait: print every state change as JSON.
    #[arg(long, requires = "wait")]
    pub json: bool,
}

/// What a job is, from the command line (overrides the job spec).
#[derive(Debug, Args, Clone, Default)]
pub struct JobArgs {
    /// The prompt given to the agent (one argv element, never a shell string;
    /// it may start with `-`).
    #[arg(long, allow_hyphen_values = true)]
    pub prompt: Option<String>,
    /// Agent template name (see `tmux-delegate agents`).
    #[arg(long)]
    pub agent: Option<String>,
    /// Job name (also the tmux window name).
    #[arg(long)]
    pub name: Option<String>,
    /// Working directory of the agent.
    #[arg(long)]
    pub workdir: Option<PathBuf>,
}

impl From<JobArgs> for crate::config::job::JobFlags {
    fn from(args: JobArgs) -> Self {
        crate::config::job::JobFlags {
            prompt: args.prompt,
            agent: args.agent,
            name: args.name,
            workdir: args.workdir,
            workspace: None,
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Job spec files (TOML: one job, or several as [[jobs]]).
    #[arg(value_name = "JOB.toml")]
    pub specs: Vec<PathBuf>,
    #[command(flatten)]
    pub job: JobArgs,
    /// Give each job its own git worktree and branch (workspace = "worktree").
    #[arg(long)]
    pub worktree: bool,
    /// Start each job only after the job NAME (of this run, or an id or
    /// name in `status`) ended; replaces the spec's `after`.
    #[arg(long, value_name = "NAME")]
    pub after: Vec<String>,
    /// Run the supervisor in its own tmux window so this terminal can close.
    #[arg(long)]
    pub detach: bool,
    /// One JSON object per transition on stdout instead of the live table.
    #[arg(long)]
    pub json: bool,
    /// At most N attempts running at once, across every `run` of this
    /// registry (overrides `max_parallel` in [defaults]); the rest queue.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: Option<u32>,
    /// Internal (`--detach`): the 0600 launch file with this run's
    /// arguments and environment.
    #[arg(long, hide = true, conflicts_with_all = ["detach", "specs"])]
    pub detached_from: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Job spec files (TOML: one job, or several as [[jobs]]).
    #[arg(value_name = "JOB.toml")]
    pub specs: Vec<PathBuf>,
    #[command(flatten)]
    pub job: JobArgs,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Job spec file (one job).
    #[arg(value_name = "JOB.toml")]
    pub spec: Option<PathBuf>,
    #[command(flatten)]
    pub job: JobArgs,
    /// Print the record summary as JSON instead of the bare id.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Job id (inside a job window: DELEGATE_JOB_ID).
    #[arg(long, env = "DELEGATE_JOB_ID")]
    pub job: String,
    /// started, heartbeat, progress, waiting, completed, error, exited or lost.
    #[arg(long)]
    pub event: String,
    /// A human-readable message.
    #[arg(long, conflicts_with = "message_from_stdin")]
    pub message: Option<String>,
    /// Take the message from stdin: the `message` field of a JSON object
    /// (as hook runners such as Claude Code's pass), else the text itself.
    #[arg(long)]
    pub message_from_stdin: bool,
    /// With --message-from-stdin: the JSON field(s) to take the message
    /// from, the first non-empty one wins (default: `message`).
    #[arg(long, value_name = "FIELD", requires = "message_from_stdin")]
    pub message_field: Vec<String>,
    /// Extra data as a JSON value.
    #[arg(long, conflicts_with = "data_field")]
    pub data: Option<String>,
    /// Take these fields of a JSON object on stdin (a hook's input, e.g.
    /// Claude Code's `session_id`, `transcript_path`,
    /// `last_assistant_message`) into the event's data; repeatable.
    #[arg(long, value_name = "FIELD")]
    pub data_field: Vec<String>,
    /// Attempt number (default: inside a window DELEGATE_ATTEMPT, else the record's).
    #[arg(long)]
    pub attempt: Option<u32>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["text", "keys"])))]
pub struct SendArgs {
    /// Job id (or the name of one job).
    pub id: String,
    /// The text to type (one argument; quote it). It may start with `-`.
    #[arg(allow_hyphen_values = true)]
    pub text: Option<String>,
    /// Keys for a dialog instead of text.
    #[arg(long, num_args = 1.., value_name = "KEY")]
    pub keys: Vec<String>,
    /// Type the text even while the agent is mid-turn.
    #[arg(long)]
    pub now: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["job", "all"])))]
pub struct WatchArgs {
    /// Watch one job; exits 0 on completed, 1 on error, 124 on timeout.
    #[arg(long)]
    pub job: Option<String>,
    /// Watch every job's events.
    #[arg(long)]
    pub all: bool,
    /// Give up after this many seconds (exit 124 for --job).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// One JSON object per event on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this job (its id).
    pub id: Option<String>,
    /// A JSON array with one object per job.
    #[arg(long, conflicts_with = "tmux")]
    pub json: bool,
    /// One short line of counts by state for tmux's status-right (waiting
    /// first, e.g. `⏸1 ▶3 ✓12 ✗1`); nothing when there are no jobs.
    #[arg(long, conflicts_with = "id")]
    pub tmux: bool,
    /// The fleet's jobs (state, runner, attempt) from the broker's retained
    /// states (the default on a `[fleet]` host with no local jobs).
    #[arg(long, conflicts_with = "tmux")]
    pub fleet: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The job's id, as `run` and `status` show it.
    pub id: String,
    /// Keep printing new history lines.
    #[arg(long, short)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct IdArg {
    /// The job's id, as `run` and `status` show it.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The job's id, as `run` and `status` show it (or the name of one job).
    pub id: String,
    /// Start a new conversation instead of continuing the agent's.
    #[arg(long)]
    pub fresh: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Job id (or name, when one job has it).
    pub id: String,
    /// Only the changed files and line counts.
    #[arg(long)]
    pub stat: bool,
}

#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Jobs to clean (default with --finished: every finished job).
    pub ids: Vec<String>,
    /// Every finished job's worktree.
    #[arg(long)]
    pub finished: bool,
    /// Also remove uncommitted changes and delete unmerged branches.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command into DIR (tmux-delegate.1,
    /// tmux-delegate-run.1, ...) instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Default agent for the project.
    #[arg(long, conflicts_with = "mcp")]
    pub agent: Option<String>,
    /// Print what registers `tmux-delegate mcp` as the MCP server
    /// `delegate` with Claude Code, Codex and Gemini CLI (instead of
    /// writing tmux-delegate.toml).
    #[arg(long)]
    pub mcp: bool,
    /// With --mcp: also write it, into each of .mcp.json, .gemini/settings.json
    /// (here) and ~/.codex/config.toml that does not exist yet (an existing
    /// file is never changed).
    #[arg(long, requires = "mcp")]
    pub write: bool,
}

#[derive(Debug, Subcommand)]
pub enum BrokerCommand {
    /// Run the embedded MQTT broker in the foreground.
    Serve {
        /// Port to listen on (0: a free one).
        #[arg(long, default_value_t = 1883)]
        port: u16,
        /// Address to listen on; anything but loopback exposes a plain-text broker.
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Also print the generated passwords (they are always in 0600 files).
        #[arg(long)]
        show_passwords: bool,
    },
    /// Write a production Mosquitto bundle (conf, ACL, passwords, private CA).
    Setup(SetupArgs),
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Directory for the bundle (created if missing).
    pub dir: PathBuf,
    /// The broker's host name as clients reach it (the certificate's SAN).
    #[arg(long)]
    pub host: String,
    /// TLS port of the listener.
    #[arg(long, default_value_t = 8883)]
    pub port: u16,
    /// Listen address (default: every interface).
    #[arg(long)]
    pub bind: Option<String>,
    /// Require client certificates (mTLS) and generate them.
    #[arg(long)]
    pub client_certs: bool,
    /// Also certify localhost and 127.0.0.1.
    #[arg(long)]
    pub add_localhost: bool,
    /// Overwrite an existing bundle (new passwords and certificates).
    #[arg(long)]
    pub force: bool,
    /// Also the fleet's `runner` and `submitter` users, their ACL lines, a
    /// submitter key and runner.toml / submitter.toml (SPEC section 13).
    #[arg(long)]
    pub fleet: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Check only the job (worker) side: connect and publish as the worker,
    /// e.g. on a remote worker machine that has no observer credential.
    #[arg(long)]
    pub job_broker: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The job whose attempt this window runs.
    #[arg(long)]
    pub job: String,
    /// The attempt number this window runs.
    #[arg(long)]
    pub attempt: u32,
    /// The registry directory (the supervisor's; the tmux server's own
    /// environment may not know it).
    #[arg(long)]
    pub registry: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every argument of every command, hidden ones included, says in
    /// `--help` what it is.
    #[test]
    fn every_argument_has_help() {
        fn missing(command: &clap::Command, path: &str, out: &mut Vec<String>) {
            let path = format!("{path} {}", command.get_name());
            for arg in command.get_arguments() {
                let generated = matches!(arg.get_id().as_str(), "help" | "version");
                if !generated && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    out.push(format!("{path}: {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                missing(sub, &path, out);
            }
        }
        let mut command = Cli::command();
        command.build();
        let mut out = Vec::new();
        missing(&command, "", &mut out);
        assert!(out.is_empty(), "arguments without help: {out:#?}");
    }
}
