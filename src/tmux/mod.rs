//! The only code that runs tmux. Command lines are built with tmux_interface;
//! every tmux process is set up by `scrubbed`, which removes the secret
//! variables (a tmux client sends its whole environment to the server, and
//! a server this process starts would inherit them), and the supervisor's
//! calls go through `Tmux::run`, which also removes `TMUX` (so no call can
//! reach a server by accident) and checks tmux's exit status itself.

pub mod job_window;

use crate::config::TmuxSettings;
use crate::model::event::EVENT_KEY_VAR;
use anyhow::{bail, Context, Result};
use std::path::Path;
use tmux_interface::{
    CapturePane, DisplayMessage, KillWindow, ListWindows, NewSession, NewWindow, RenameWindow,
    SendKeys, SetOption, ShowEnvironment, Tmux as TmuxCli, TmuxCommand, TmuxCommands,
};

/// `#{...}` fields of one window, `|`-separated: tmux prints a tab as `_`
/// outside a UTF-8 locale, and only the last field (the session name, which
/// is free text) may contain a `|`.
const WINDOW_FORMAT: &str = "#{window_id}|#{pane_id}|#{pane_pid}|#{window_activity}|#{pane_dead}|#{pane_dead_status}|#{session_name}";
const LAUNCH_FORMAT: &str = "#{window_id}|#{pane_id}|#{pane_pid}";

/// Secrets no tmux process may carry, whoever starts it, on top of the
/// caller's own list (the password variables its config names).
const ALWAYS_SCRUBBED: [&str; 2] = [EVENT_KEY_VAR, "MQTT_PASSWORD"];

/// The one place a tmux process is set up: `command` without the secret
/// variables (`ALWAYS_SCRUBBED` and `scrub`) in its environment.
fn scrubbed(mut command: std::process::Command, scrub: &[String]) -> std::process::Command {
    for name in ALWAYS_SCRUBBED
        .into_iter()
        .chain(scrub.iter().map(String::as_str))
    {
        command.env_remove(name);
    }
    command
}

/// One window as seen by `list-windows -a`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowInfo {
    pub window_id: String,
    pub pane_id: String,
    pub pane_pid: i32,
    /// Unix seconds of the last output (tmux keeps whole seconds).
    pub activity: u64,
    pub dead: bool,
    pub dead_status: Option<i32>,
    pub session: String,
}

/// What `new-window -P` reports about a launched window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launched {
    pub window_id: String,
    pub pane_id: String,
    pub pane_pid: i32,
}

/// Which tmux server: a `-L` name, or (`-S`) the socket of the server the
/// caller runs inside; neither means the default server.
#[derive(Debug, Clone)]
enum Server {
    Default,
    Named(String),
    Path(String),
}

#[derive(Debug, Clone)]
pub struct Tmux {
    server: Server,
    scrub: Vec<String>,
}

/// A window name tmux will show as given: one line, no tabs.
pub fn sanitize_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    clean.trim().chars().take(60).collect()
}

impl Tmux {
    /// The server `settings` name (`socket`, else the one recorded from
    /// `TMUX`, else the default); `scrub` lists environment variables tmux
    /// must never see.
    pub fn new(settings: &TmuxSettings, scrub: Vec<String>) -> Tmux {
        let server = if !settings.socket.is_empty() {
            Server::Named(settings.socket.clone())
        } else if let Some(path) = &settings.socket_path {
            Server::Path(path.display().to_string())
        } else {
            Server::Default
        };
        Tmux { server, scrub }
    }

    /// One tmux process for `commands` (a `;`-separated sequence: tmux
    /// stops at the first that fails).
    fn command(&self, commands: TmuxCommands<'_>) -> tokio::process::Command {
        let mut cli = TmuxCli::with_commands(commands);
        match &self.server {
            Server::Default => {}
            Server::Named(name) => cli = cli.socket_name(name.clone()),
            Server::Path(path) => cli = cli.socket_path(path.clone()),
        }
        let mut std_command = scrubbed(cli.into_command(), &self.scrub);
        std_command.env_remove("TMUX").env_remove("TMUX_PANE");
        std_command.stdin(std::process::Stdio::null());
        tokio::process::Command::from(std_command)
    }

    async fn run(&self, command: TmuxCommand<'_>) -> Result<String> {
        self.run_sequence(TmuxCommands::new().add_command(command))
            .await
    }

    async fn run_sequence(&self, commands: TmuxCommands<'_>) -> Result<String> {
        let line = commands.to_vec().join(" ");
        let output = self
            .command(commands)
            .output()
            .await
            .context("running tmux (is it installed? apt-get install tmux)")?;
        if !output.status.success() {
            bail!(
                "tmux {line}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The session `auto` means: the current one inside tmux (default server
    /// only), else `delegate`.
    pub async fn resolve_session(&self, configured: &str, inside_tmux: bool) -> String {
        if configured != "auto" {
            return configured.to_owned();
        }
        if inside_tmux && !matches!(self.server, Server::Named(_)) {
            // `TMUX` stays: it names the session this process runs in.
            let mut command = scrubbed(std::process::Command::new("tmux"), &self.scrub);
            command.args(["display-message", "-p", "#{session_name}"]);
            if let Ok(output) = tokio::process::Command::from(command).output().await {
                let name = String::from_utf8_lossy(&output.stdout).trim().to_owned();
                if output.status.success() && !name.is_empty() {
                    return name;
                }
            }
        }
        "delegate".to_owned()
    }

    /// Starts `argv` (no shell) in a new window named `name` in `session`,
    /// creating the session (and server) when missing. The wrapper keeps its
    /// pane after exit (`keep_own_pane`), so this costs one tmux call.
    pub async fn launch(
        &self,
        session: &str,
        name: &str,
        workdir: &Path,
        argv: &[String],
    ) -> Result<Launched> {
        // Another process (a second `run` on a cold server) may create the
        // session between our new-window and new-session: then tmux says
        // "duplicate session" and the window goes into that session. And
        // closing the last window ends the server: a new-window that reaches
        // it while it exits gets "server exited unexpectedly"; the next try
        // finds no server and starts one (jobs run one after another hit it).
        let mut tries = 0;
        loop {
            tries += 1;
            match self.launch_once(session, name, workdir, argv).await {
                Err(e) if tries < 3 && (is_duplicate_session(&e) || is_server_exiting(&e)) => {
                    continue
                }
                result => return result,
            }
        }
    }

    async fn launch_once(
        &self,
        session: &str,
        name: &str,
        workdir: &Path,
        argv: &[String],
    ) -> Result<Launched> {
        let dir = workdir.display().to_string();
        let name = sanitize_name(name);
        let mut window = NewWindow::new()
            .detached()
            .print()
            .format(LAUNCH_FORMAT)
            .target_window(format!("={session}:"))
            .window_name(name.clone())
            .start_directory(dir.clone())
            .build();
        push_argv(&mut window, argv);
        let output = match self.run(window).await {
            Ok(output) => output,
            // Closing a session's last window destroys it (and the server
            // exits with its last session): create both on demand.
            Err(e) if is_missing(&e) => {
                let mut create = NewSession::new()
                    .detached()
                    .print()
                    .format(LAUNCH_FORMAT)
                    .session_name(session.to_owned())
                    .window_name(name)
                    .start_directory(dir)
                    .build();
                push_argv(&mut create, argv);
                self.run(create).await?
            }
            Err(e) => return Err(e),
        };
        parse_launched(&output)
    }

    /// Every window of the server in one call; no server means no windows.
    pub async fn list_windows(&self) -> Result<Vec<WindowInfo>> {
        match self
            .run(ListWindows::new().all().format(WINDOW_FORMAT).build())
            .await
        {
            Ok(text) => Ok(text.lines().filter_map(parse_window).collect()),
            Err(e) if is_no_server(&e) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    pub async fn kill_window(&self, window: &str) -> Result<()> {
        match self
            .run(KillWindow::new().target_window(window.to_owned()).build())
            .await
        {
            Err(e) if !is_missing(&e) => Err(e),
            _ => Ok(()),
        }
    }

    pub async fn rename_window(&self, window: &str, name: &str) -> Result<()> {
        self.run(
            RenameWindow::new()
                .target_window(window.to_owned())
                .new_name(sanitize_name(name))
                .build(),
        )
        .await
        .map(drop)
    }

    /// The pane's whole history (`capture-pane -p -J -S -`).
    pub async fn capture(&self, target: &str) -> Result<String> {
        self.run(
            CapturePane::new()
                .stdout()
                .join()
                .start_line("-")
                .target_pane(target.to_owned())
                .build(),
        )
        .await
    }

    /// A variable of the server's global environment (what a new window
    /// gets); `None` when no server runs (one started now would get this
    /// process's environment) or the variable is not set there.
    pub async fn global_env(&self, name: &str) -> Result<Option<String>> {
        let command = ShowEnvironment::new()
            .global()
            .variable(name.to_owned())
            .build();
        match self.run(command).await {
            Ok(text) => Ok(text
                .lines()
                .next()
                .and_then(|line| line.strip_prefix(&format!("{name}=")))
                .map(str::to_owned)),
            Err(e) if is_no_server(&e) || e.to_string().contains("unknown variable") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// What the pane shows now (its visible screen, wrapped lines joined):
    /// what screen rules read.
    pub async fn capture_screen(&self, target: &str) -> Result<String> {
        self.run(
            CapturePane::new()
                .stdout()
                .join()
                .target_pane(target.to_owned())
                .build(),
        )
        .await
    }

    /// What the pane shows now with its colours (`capture-pane -e -p`:
    /// SGR escapes kept, the visible screen only), and the pid of the
    /// pane's process, so the caller can tell that a window id still names
    /// the pane it launched (ids start again at @0 when a server
    /// restarts). One tmux process: `display-message ; capture-pane`.
    pub async fn capture_styled(&self, target: &str) -> Result<(Option<i32>, String)> {
        let commands = TmuxCommands::new()
            .add_command(
                DisplayMessage::new()
                    .print()
                    .target_pane(target.to_owned())
                    .message("#{pane_pid}")
                    .build(),
            )
            .add_command(
                CapturePane::new()
                    .stdout()
                    .escape_sequences()
                    .target_pane(target.to_owned())
                    .build(),
            );
        let text = self.run_sequence(commands).await?;
        let (pid, screen) = text.split_once('\n').unwrap_or((text.as_str(), ""));
        Ok((pid.trim().parse().ok(), screen.to_owned()))
    }

    /// Types `keys` (tmux key names such as `Enter`, `Down`, or text) into
    /// the pane.
    pub async fn send_keys(&self, target: &str, keys: &[String]) -> Result<()> {
        let mut command = SendKeys::new().target_pane(target.to_owned());
        for key in keys {
            command = command.key(key.clone());
        }
        self.run(command.build()).await.map(drop)
    }

    /// Types `text` into the pane byte for byte, then Enter. Sent as hex
    /// (`send-keys -H`): no key names, and a text that starts with `-` is
    /// not taken for a flag of send-keys.
    pub async fn send_text(&self, target: &str, text: &str) -> Result<()> {
        let mut command = SendKeys::new().hex().target_pane(target.to_owned());
        for byte in text.bytes() {
            command = command.key(format!("{byte:02x}"));
        }
        self.run(command.build()).await?;
        self.send_keys(target, &["Enter".to_owned()]).await
    }

    /// A blocking `tmux` command with the terminal (for `attach`).
    pub fn interactive(&self, args: &[&str]) -> std::process::Command {
        let mut command = scrubbed(std::process::Command::new("tmux"), &self.scrub);
        match &self.server {
            Server::Default => {}
            Server::Named(name) => {
                command.arg("-L").arg(name);
            }
            Server::Path(path) => {
                command.arg("-S").arg(path);
            }
        }
        command.args(args);
        command
    }

    /// The command a person types in another terminal to attach to
    /// `session` on this server, e.g. `tmux attach -t delegate`.
    pub fn attach_command(&self, session: &str) -> String {
        let server = match &self.server {
            Server::Default => String::new(),
            Server::Named(name) => format!(" -L {}", shell_word(name)),
            Server::Path(path) => format!(" -S {}", shell_word(path)),
        };
        format!("tmux{server} attach -t {}", shell_word(session))
    }
}

/// `word` quoted for a POSIX shell when it needs it.
pub fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Called by the window's wrapper, first thing: keeps its own pane (dead)
/// after it exits so the supervisor can read the exit status. Per window,
/// never global: a user's own windows on a shared server keep their
/// behaviour. Uses the server and pane of the environment tmux gave it.
pub fn keep_own_pane() -> Result<()> {
    let pane =
        std::env::var("TMUX_PANE").context("TMUX_PANE is not set: not inside a tmux pane")?;
    let command = SetOption::new()
        .window()
        .target_pane(pane)
        .option("remain-on-exit")
        .value("on")
        .build();
    run_in_own_server(command, "set-option remain-on-exit").map(drop)
}

/// Called by the window's wrapper when the agent failed: the last lines of
/// its own pane (the agent's last words), for `agent_config` rules.
pub fn own_pane_text() -> Result<String> {
    let pane =
        std::env::var("TMUX_PANE").context("TMUX_PANE is not set: not inside a tmux pane")?;
    let command = CapturePane::new()
        .stdout()
        .join()
        .start_line("-200")
        .target_pane(pane)
        .build();
    run_in_own_server(command, "capture-pane")
}

/// Called by a fleet job's wrapper when the attempt ended: its own pane,
/// scrollback included, for the job's log on other hosts.
pub fn own_pane_history() -> Result<String> {
    let pane =
        std::env::var("TMUX_PANE").context("TMUX_PANE is not set: not inside a tmux pane")?;
    let command = CapturePane::new()
        .stdout()
        .join()
        .start_line("-")
        .target_pane(pane)
        .build();
    run_in_own_server(command, "capture-pane")
}

/// Runs `command` (blocking) on the server of the pane this process runs
/// in, which `TMUX` names; returns its output, or tmux's complaint.
fn run_in_own_server(command: TmuxCommand<'_>, what: &str) -> Result<String> {
    let output = scrubbed(TmuxCli::with_command(command).into_command(), &[])
        .stdin(std::process::Stdio::null())
        .output()
        .context("running tmux")?;
    if !output.status.success() {
        bail!(
            "tmux {what}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Appends `-- argv...`: tmux execs several arguments directly, without a
/// shell. A lone program gets `env` in front so tmux never takes the
/// one-string (`sh -c`) form.
fn push_argv(command: &mut TmuxCommand<'_>, argv: &[String]) {
    command.push_param("--");
    if argv.len() == 1 {
        command.push_param("env");
    }
    for arg in argv {
        command.push_param(arg.clone());
    }
}

fn is_no_server(error: &anyhow::Error) -> bool {
    let text = error.to_string();
    text.contains("no server running") || text.contains("error connecting to")
}

fn is_duplicate_session(error: &anyhow::Error) -> bool {
    error.to_string().contains("duplicate session")
}

fn is_server_exiting(error: &anyhow::Error) -> bool {
    error.to_string().contains("server exited unexpectedly")
}

fn is_missing(error: &anyhow::Error) -> bool {
    let text = error.to_string();
    is_no_server(error)
        || text.contains("can't find")
        || text.contains("no such")
        || text.contains("no current")
}

fn parse_launched(output: &str) -> Result<Launched> {
    let line = output.lines().next().unwrap_or_default();
    let mut fields = line.split('|');
    match (
        fields.next(),
        fields.next(),
        fields.next().and_then(|p| p.parse().ok()),
    ) {
        (Some(window_id), Some(pane_id), Some(pane_pid)) if window_id.starts_with('@') => {
            Ok(Launched {
                window_id: window_id.to_owned(),
                pane_id: pane_id.to_owned(),
                pane_pid,
            })
        }
        _ => bail!("unexpected answer from tmux new-window: {line:?}"),
    }
}

fn parse_window(line: &str) -> Option<WindowInfo> {
    let mut fields = line.splitn(7, '|');
    let window_id = fields.next()?.to_owned();
    let pane_id = fields.next()?.to_owned();
    let pane_pid = fields.next()?.parse().unwrap_or(0);
    let activity = fields.next()?.parse().unwrap_or(0);
    let dead = fields.next()? == "1";
    let dead_status = fields.next()?.parse().ok();
    let session = fields.next()?.to_owned();
    Some(WindowInfo {
        window_id,
        pane_id,
        pane_pid,
        activity,
        dead,
        dead_status,
        session,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_lines_parse() {
        let info = parse_window("@3|%4|1234|1795610821|1|2|my | session").expect("parses");
        assert_eq!(info.window_id, "@3");
        assert_eq!(info.pane_pid, 1234);
        assert!(info.dead);
        assert_eq!(info.dead_status, Some(2));
        assert_eq!(info.session, "my | session");
        let alive = parse_window("@3|%4|1234|1795610821|0||delegate").expect("parses");
        assert_eq!(alive.dead_status, None);
    }

    #[test]
    fn every_tmux_process_loses_the_secrets() {
        let command = scrubbed(std::process::Command::new("tmux"), &["MY_PASSWORD".into()]);
        let removed: Vec<_> = command
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .collect();
        for name in ["MY_PASSWORD", "MQTT_PASSWORD", EVENT_KEY_VAR] {
            assert!(removed.iter().any(|r| r == name), "{name} not removed");
        }
    }

    #[test]
    fn argv_goes_after_double_dash_and_a_lone_program_is_wrapped() {
        let mut command = NewWindow::new().build();
        push_argv(&mut command, &["/bin/agent".into()]);
        let argv = command.to_vec();
        assert_eq!(&argv[argv.len() - 3..], ["--", "env", "/bin/agent"]);
        assert_eq!(sanitize_name("a\nb\tc"), "a b c");
    }
}
