//! `top`: every job in the registry, live. The registry is watched with
//! inotify, so a transition or event written by any supervisor shows within
//! one key-poll interval (40 ms); without a change the screen is redrawn
//! once a second (the AGE column). Under (or beside) the table, the
//! selected job's pane, read by `preview.rs` in the background (`p` hides
//! it). Keys become actions here: attach, logs, kill, retry and send (`s`,
//! `a`) run the same code as the commands of those names.

mod app;
mod draw;
mod feed;
mod pane;
mod preview;
mod reply;
mod watch;

use crate::config::Env;
use crate::error::config_error;
use crate::model::JobId;
use crate::registry::{Record, Registry};
use app::{Action, App, JobRow};
use ratatui::crossterm::event::{
    self, DisableBracketedPaste, EnableBracketedPaste, Event, KeyEventKind,
};
use ratatui::crossterm::execute;
use ratatui::DefaultTerminal;
use std::io::IsTerminal;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

/// How long to wait for a key before looking at the registry again.
const KEY_POLL: Duration = Duration::from_millis(40);
/// How often the screen is redrawn when nothing changed (ages move on).
const REDRAW: Duration = Duration::from_secs(1);

pub async fn run(registry: &Registry, env: &Env) -> anyhow::Result<()> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(config_error("`top` needs a terminal")
            .help("run it in a terminal, or in a tmux popup: tmux display-popup -E -w 90% -h 80% tmux-delegate top")
            .into());
    }
    let mut app = App::default();
    app.set_rows(load_all(registry));
    let watcher = match watch::Watcher::new(registry.root()) {
        Ok(watcher) => Some(watcher),
        Err(e) => {
            tracing::warn!("cannot watch the registry ({e}); re-reading it every second");
            None
        }
    };
    let feed = crate::config::Config::load(env.clone())
        .ok()
        .and_then(|config| feed::spawn(&config));
    let mut terminal = init_terminal()?;
    let mut session = Session {
        registry,
        env,
        watcher,
        feed,
        messages: mpsc::channel(),
        preview: preview::Previewer::new(registry),
    };
    let result = session.event_loop(&mut terminal, &mut app).await;
    restore_terminal();
    result
}

/// ratatui's terminal with bracketed paste on: a pasted line reaches `s`'s
/// line as one `Event::Paste`, its line breaks not taken for Enter.
fn init_terminal() -> std::io::Result<DefaultTerminal> {
    let terminal = ratatui::try_init()?;
    if let Err(e) = execute!(std::io::stdout(), EnableBracketedPaste) {
        ratatui::restore();
        return Err(e);
    }
    Ok(terminal)
}

fn restore_terminal() {
    // The terminal is handed back either way: nothing to do on an error.
    let _ = execute!(std::io::stdout(), DisableBracketedPaste);
    ratatui::restore();
}

struct Session<'a> {
    registry: &'a Registry,
    env: &'a Env,
    watcher: Option<watch::Watcher>,
    /// Events from the configured broker, when there is one.
    feed: Option<tokio::sync::mpsc::UnboundedReceiver<feed::Seen>>,
    /// Outcomes of actions that run in the background (kill, retry, a
    /// follow-up).
    messages: (mpsc::Sender<String>, mpsc::Receiver<String>),
    /// Reads the selected job's pane.
    preview: preview::Previewer,
}

impl Session<'_> {
    async fn event_loop(
        &mut self,
        terminal: &mut DefaultTerminal,
        app: &mut App,
    ) -> anyhow::Result<()> {
        let mut dirty = true;
        let mut drawn = Instant::now();
        let mut reread = Instant::now();
        loop {
            if dirty || drawn.elapsed() >= REDRAW {
                terminal.draw(|frame| draw::draw(frame, app, SystemTime::now()))?;
                drawn = Instant::now();
                dirty = false;
            }
            // Sleeping (not blocking in a poll) lets the broker feed run.
            tokio::select! {
                Some((job, text)) = next_seen(&mut self.feed) => dirty |= app.event(&job, text),
                pane = self.preview.next() => dirty |= app.show_pane(pane),
                () = tokio::time::sleep(KEY_POLL) => {}
            }
            while event::poll(Duration::ZERO)? {
                match event::read()? {
                    Event::Key(key) if key.kind == KeyEventKind::Press => {
                        let action = app.on_key(key);
                        if action == Action::Quit {
                            return Ok(());
                        }
                        self.perform(action, terminal, app).await?;
                        dirty = true;
                    }
                    Event::Paste(text) => dirty |= app.on_paste(&text) != Action::Nothing,
                    Event::Resize(..) => dirty = true,
                    _ => {}
                }
            }
            dirty |= self.apply_changes(app, &mut reread);
            while let Ok(message) = self.messages.1.try_recv() {
                app.message = Some(message);
                dirty = true;
            }
            self.preview.request(app.preview_target());
        }
    }

    /// Reloads the jobs the registry says changed; `true` when any did.
    fn apply_changes(&mut self, app: &mut App, reread: &mut Instant) -> bool {
        let Some(watcher) = &mut self.watcher else {
            if reread.elapsed() < REDRAW {
                return false;
            }
            *reread = Instant::now();
            app.set_rows(load_all(self.registry));
            return true;
        };
        let changes = watcher.changes();
        for id in &changes.removed {
            app.remove(id);
        }
        for id in &changes.jobs {
            let record = JobId::parse(id)
                .ok()
                .and_then(|job| self.registry.load(&job).ok());
            if let Some(record) = record {
                app.upsert(JobRow::of(&record));
            }
        }
        !changes.jobs.is_empty() || !changes.removed.is_empty()
    }

    async fn perform(
        &mut self,
        action: Action,
        terminal: &mut DefaultTerminal,
        app: &mut App,
    ) -> anyhow::Result<()> {
        match action {
            Action::Nothing | Action::Redraw | Action::Quit => {}
            Action::Attach(id) => app.message = Some(self.attach(&id, terminal)?),
            Action::Kill(id) => self.kill(id),
            Action::Retry(id) => app.message = Some(retry(&id, self.messages.0.clone())),
            Action::OpenSend(id) => self.open_send(id, app),
            Action::Send { id, text } => app.message = Some(self.send_line(&id, &text).await),
            Action::Answer(id) => app.message = Some(self.answer(&id).await),
            Action::OpenLogs(id) => {
                let lines = self.log_lines(&id).await;
                let height = terminal.size().map(|s| s.height).unwrap_or(24);
                app.show_logs(id, lines, height.saturating_sub(3));
            }
        }
        Ok(())
    }

    /// Inside tmux the client switches to the window and `top` stays; from
    /// a plain terminal `top` steps aside until the user detaches.
    fn attach(&self, id: &str, terminal: &mut DefaultTerminal) -> anyhow::Result<String> {
        let record = match self.record(id) {
            Ok(record) => record,
            Err(message) => return Ok(message),
        };
        if crate::tmux::job_window::switches(self.env, &record) {
            return Ok(match crate::tmux::job_window::attach(self.env, &record) {
                Ok(()) => format!("switched to {id}"),
                Err(e) => format!("{e:#}"),
            });
        }
        restore_terminal();
        let outcome = crate::tmux::job_window::attach(self.env, &record);
        *terminal = init_terminal()?;
        terminal.clear()?;
        Ok(match outcome {
            Ok(()) => format!("back from {id}"),
            Err(e) => format!("{e:#}"),
        })
    }

    /// `tmux-delegate kill ID` in the background (it waits for the
    /// supervisor to stop the window); its last line comes back as the message.
    fn kill(&self, id: String) {
        let sender = self.messages.0.clone();
        std::thread::spawn(move || {
            let message = match own_command(&["kill", &id]).output() {
                Ok(out) => {
                    last_line(&out.stderr).unwrap_or_else(|| format!("job {id}: kill asked"))
                }
                Err(e) => format!("cannot run kill: {e}"),
            };
            let _ = sender.send(message);
        });
    }

    /// The job's record as it is now; what went wrong, as a message.
    fn record(&self, id: &str) -> Result<Record, String> {
        JobId::parse(id)
            .map_err(anyhow::Error::from)
            .and_then(|job| self.registry.load(&job))
            .map_err(|e| format!("{e:#}"))
    }

    async fn log_lines(&self, id: &str) -> Vec<String> {
        let Ok(job) = JobId::parse(id) else {
            return vec![format!("invalid job id `{id}`")];
        };
        let record = match self.registry.load(&job) {
            Ok(record) => record,
            Err(e) => return vec![format!("{e:#}")],
        };
        let mut lines: Vec<String> = self
            .registry
            .history(&job)
            .unwrap_or_default()
            .iter()
            .map(crate::ui::history::describe)
            .collect();
        lines.extend(crate::tmux::job_window::pane_lines(&record).await);
        lines
    }
}

/// `tmux-delegate retry ID` in the background.
fn retry(id: &str, sender: mpsc::Sender<String>) -> String {
    match detached(&["retry", id], format!("retry of {id}"), sender) {
        Ok(()) => format!("retrying {id} in the background"),
        Err(e) => format!("cannot run retry: {e}"),
    }
}

/// `tmux-delegate ARGS` (a command that supervises an attempt: `retry`,
/// `send` to a finished job) as its own supervisor, detached from `top`
/// (its own process group, no terminal), so it goes on after `top` quits;
/// while `top` runs, a thread reaps it and reports how `what` ended.
fn detached(args: &[&str], what: String, sender: mpsc::Sender<String>) -> std::io::Result<()> {
    let mut command = own_command(args);
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = command.spawn()?;
    std::thread::spawn(move || {
        let ended = match child.wait() {
            Ok(status) => format!("{what} ended ({status})"),
            Err(e) => format!("{what}: {e}"),
        };
        let _ = sender.send(ended);
    });
    Ok(())
}

async fn next_seen(
    feed: &mut Option<tokio::sync::mpsc::UnboundedReceiver<feed::Seen>>,
) -> Option<feed::Seen> {
    match feed {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// This program with `args`, no terminal input.
fn own_command(args: &[&str]) -> std::process::Command {
    let exe = std::env::current_exe().unwrap_or_else(|_| "tmux-delegate".into());
    let mut command = std::process::Command::new(exe);
    command
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    command
}

fn last_line(bytes: &[u8]) -> Option<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .map(str::to_owned)
}

fn load_all(registry: &Registry) -> Vec<JobRow> {
    registry
        .list()
        .map(|(records, _corrupt)| records.iter().map(JobRow::of).collect())
        .unwrap_or_default()
}
