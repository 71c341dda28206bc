//! `top`'s state and keys, with no terminal and no I/O: rows in, keys in,
//! actions out (ratatui's examples' App, quinn-proto's habit).

use super::pane::Pane;
use crate::model::JobState;
use crate::registry::Record;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::time::SystemTime;

/// One job as `top` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub id: String,
    pub name: String,
    pub agent: String,
    pub state: JobState,
    pub attempt: u32,
    pub max_attempts: u32,
    pub created: Option<SystemTime>,
    pub last_event: String,
    pub branch: Option<String>,
    /// The dialog a screen rule sees on its screen (`a` answers it).
    pub dialog: Option<String>,
    /// Tokens (and cost) over its attempts, as `status` shows them.
    pub tokens: String,
    /// Why it is in its state, whole, for the preview's header: a waiting
    /// job's question, a limited job's wait, a failure's reason.
    pub detail: Option<String>,
}

impl JobRow {
    pub fn of(record: &Record) -> JobRow {
        JobRow {
            id: record.id.clone(),
            name: record.spec.name.clone(),
            agent: record.spec.agent.clone(),
            state: record.state,
            attempt: record.attempt,
            max_attempts: record.spec.retry.max_attempts,
            created: humantime::parse_rfc3339_weak(&record.created).ok(),
            // A waiting job shows its question (an event's, or a screen
            // rule's dialog), else the last event.
            last_event: record
                .question()
                .map(|q| format!("asks: {}", q.lines().next().unwrap_or_default()))
                .or_else(|| record.limited_note())
                .or_else(|| {
                    record.last_event.as_ref().map(|e| match &e.message {
                        Some(m) => format!("{} {}", e.event, m.lines().next().unwrap_or_default()),
                        None => e.event.to_string(),
                    })
                })
                .unwrap_or_default(),
            branch: None,
            dialog: record.dialog.clone(),
            tokens: crate::ui::tokens(record),
            detail: record
                .question()
                .map(|q| format!("asks: {q}"))
                .or_else(|| record.limited_note().map(|note| format!("limited {note}")))
                .or_else(|| record.reason()),
        }
    }

    /// Waiting jobs first (they need a human), then the live ones, then
    /// the finished ones.
    fn rank(&self) -> u8 {
        match self.state {
            JobState::Waiting => 0,
            JobState::Running | JobState::Launching => 1,
            JobState::Retrying | JobState::Limited => 2,
            JobState::Pending | JobState::Queued => 3,
            JobState::Failed | JobState::TimedOut => 4,
            JobState::Cancelled | JobState::Skipped => 5,
            JobState::Completed => 6,
        }
    }

    fn matches(&self, filter: &str) -> bool {
        if filter.is_empty() {
            return true;
        }
        let filter = filter.to_lowercase();
        [
            self.id.as_str(),
            self.name.as_str(),
            self.agent.as_str(),
            self.state.as_str(),
            self.branch.as_deref().unwrap_or_default(),
        ]
        .iter()
        .any(|field| field.to_lowercase().contains(&filter))
    }
}

/// What the screen shows besides the table.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Mode {
    #[default]
    Table,
    /// Typing a filter after `/`.
    Filter,
    /// `x` pressed on this job: `y` kills it.
    ConfirmKill(String),
    /// `s` pressed: a line being typed for this job (`follow_up`: it is
    /// finished, so the line starts a new attempt in its conversation).
    Send {
        id: String,
        line: String,
        follow_up: bool,
    },
    /// `a` pressed on a job showing `dialog`: `y` answers it with its
    /// first choice.
    ConfirmAnswer { id: String, dialog: String },
    /// A job's history and last pane, scrolled to `scroll`.
    Logs {
        id: String,
        lines: Vec<String>,
        scroll: u16,
    },
}

/// What the key asked the I/O shell to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Nothing,
    /// Something changed on screen.
    Redraw,
    Quit,
    Attach(String),
    Kill(String),
    Retry(String),
    OpenLogs(String),
    /// `s`: may a line go to this job? (The shell asks the record, then
    /// opens the line with `start_send`.)
    OpenSend(String),
    /// A typed line for the job.
    Send {
        id: String,
        text: String,
    },
    /// Choose the first option of the job's dialog.
    Answer(String),
}

#[derive(Debug, Default)]
pub struct App {
    rows: Vec<JobRow>,
    /// The selected job's id: the selection follows the job when rows move.
    selected: Option<String>,
    pub filter: String,
    pub mode: Mode,
    /// The last action's outcome, shown above the help line.
    pub message: Option<String>,
    /// `p` hides the selected job's pane (and stops reading it).
    pub preview_hidden: bool,
    /// The last pane read for the preview (maybe another job's, until the
    /// newly selected one's arrives).
    pane: Option<Pane>,
}

impl App {
    /// Replaces every row (a full reload).
    pub fn set_rows(&mut self, rows: Vec<JobRow>) {
        self.rows = rows;
        self.sort();
    }

    /// Adds or replaces one job's row.
    pub fn upsert(&mut self, row: JobRow) {
        match self.rows.iter_mut().find(|r| r.id == row.id) {
            Some(old) => *old = row,
            None => self.rows.push(row),
        }
        self.sort();
    }

    /// An event seen on the broker: the job's last-event cell (a message
    /// about the feed itself has no job). `true` when the screen changed.
    pub fn event(&mut self, job: &str, text: String) -> bool {
        if job.is_empty() {
            self.message = Some(text);
            return true;
        }
        match self.rows.iter_mut().find(|r| r.id == job) {
            Some(row) => {
                row.last_event = text;
                true
            }
            None => false,
        }
    }

    pub fn remove(&mut self, id: &str) {
        self.rows.retain(|r| r.id != id);
    }

    fn sort(&mut self) {
        // Newest first within a rank; created times tie-break by id.
        self.rows.sort_by(|a, b| {
            a.rank()
                .cmp(&b.rank())
                .then_with(|| b.created.cmp(&a.created))
                .then_with(|| a.id.cmp(&b.id))
        });
    }

    pub fn all_rows(&self) -> &[JobRow] {
        &self.rows
    }

    /// The rows the filter lets through, in display order.
    pub fn visible(&self) -> Vec<&JobRow> {
        self.rows
            .iter()
            .filter(|r| r.matches(&self.filter))
            .collect()
    }

    /// The index of the selected row among the visible ones (the first row
    /// when the selected job is filtered out or gone).
    pub fn selected_index(&self) -> Option<usize> {
        let visible = self.visible();
        if visible.is_empty() {
            return None;
        }
        let index = self
            .selected
            .as_ref()
            .and_then(|id| visible.iter().position(|r| &r.id == id));
        Some(index.unwrap_or(0))
    }

    pub fn selected_id(&self) -> Option<String> {
        let index = self.selected_index()?;
        self.visible().get(index).map(|r| r.id.clone())
    }

    /// The job whose pane the preview shows, when it is on and the table
    /// is on screen (the logs cover it).
    pub fn preview_target(&self) -> Option<&JobRow> {
        if self.preview_hidden || matches!(self.mode, Mode::Logs { .. }) {
            return None;
        }
        let index = self.selected_index()?;
        self.visible().get(index).copied()
    }

    /// A pane read for the preview: kept when it is the selected job's (a
    /// read that finishes after the selection moved is dropped). `true`
    /// when the screen changes.
    pub fn show_pane(&mut self, pane: Pane) -> bool {
        let wanted = self.preview_target().is_some_and(|row| row.id == pane.id);
        if !wanted || self.pane.as_ref() == Some(&pane) {
            return false;
        }
        self.pane = Some(pane);
        true
    }

    /// The selected job's pane, once read.
    pub fn selected_pane(&self) -> Option<&Pane> {
        let target = self.preview_target()?;
        self.pane.as_ref().filter(|pane| pane.id == target.id)
    }

    fn move_selection(&mut self, delta: isize) {
        let visible = self.visible();
        let Some(index) = self.selected_index() else {
            return;
        };
        let last = visible.len().saturating_sub(1);
        let next = index.saturating_add_signed(delta).min(last);
        self.selected = visible.get(next).map(|r| r.id.clone());
    }

    pub fn on_key(&mut self, key: KeyEvent) -> Action {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        match self.mode.clone() {
            Mode::Table => self.on_table_key(key.code),
            Mode::Filter => self.on_filter_key(key.code),
            Mode::ConfirmKill(id) => {
                self.mode = Mode::Table;
                if key.code == KeyCode::Char('y') {
                    self.message = Some(format!("killing {id}…"));
                    Action::Kill(id)
                } else {
                    self.message = Some("not killed".into());
                    Action::Redraw
                }
            }
            Mode::Send { .. } => self.on_send_key(key.code),
            Mode::ConfirmAnswer { id, dialog } => {
                self.mode = Mode::Table;
                if key.code == KeyCode::Char('y') {
                    self.message = Some(format!("answering {dialog}…"));
                    Action::Answer(id)
                } else {
                    self.message = Some("not answered".into());
                    Action::Redraw
                }
            }
            Mode::Logs { .. } => self.on_logs_key(key.code),
        }
    }

    fn on_table_key(&mut self, code: KeyCode) -> Action {
        let selected = self.selected_id();
        match (code, selected) {
            (KeyCode::Char('q') | KeyCode::Esc, _) => Action::Quit,
            (KeyCode::Up | KeyCode::Char('k'), _) => {
                self.move_selection(-1);
                Action::Redraw
            }
            (KeyCode::Down | KeyCode::Char('j'), _) => {
                self.move_selection(1);
                Action::Redraw
            }
            (KeyCode::PageUp, _) => {
                self.move_selection(-10);
                Action::Redraw
            }
            (KeyCode::PageDown, _) => {
                self.move_selection(10);
                Action::Redraw
            }
            (KeyCode::Char('/'), _) => {
                self.mode = Mode::Filter;
                Action::Redraw
            }
            (KeyCode::Char('p'), _) => {
                self.preview_hidden = !self.preview_hidden;
                Action::Redraw
            }
            (KeyCode::Enter, Some(id)) => Action::Attach(id),
            (KeyCode::Char('l'), Some(id)) => Action::OpenLogs(id),
            (KeyCode::Char('x'), Some(id)) => {
                self.mode = Mode::ConfirmKill(id);
                Action::Redraw
            }
            (KeyCode::Char('r'), Some(id)) => Action::Retry(id),
            (KeyCode::Char('s'), Some(id)) => Action::OpenSend(id),
            (KeyCode::Char('a'), Some(id)) => self.ask_to_answer(id),
            _ => Action::Nothing,
        }
    }

    /// `a`: the confirmation for the job's dialog, or why there is none.
    fn ask_to_answer(&mut self, id: String) -> Action {
        let dialog = self
            .rows
            .iter()
            .find(|r| r.id == id)
            .and_then(|r| r.dialog.clone());
        match dialog {
            Some(dialog) => self.mode = Mode::ConfirmAnswer { id, dialog },
            None => self.message = Some(format!("{id} shows no dialog: nothing to answer")),
        }
        Action::Redraw
    }

    /// Opens the line to type into for the job (`s`, once the shell found
    /// that a line may go to it).
    pub fn start_send(&mut self, id: String, follow_up: bool) {
        self.mode = Mode::Send {
            id,
            line: String::new(),
            follow_up,
        };
    }

    fn on_send_key(&mut self, code: KeyCode) -> Action {
        let Mode::Send { id, line, .. } = &mut self.mode else {
            return Action::Nothing;
        };
        match code {
            KeyCode::Enter if line.trim().is_empty() => {
                self.message = Some("nothing sent: the line is empty".into());
            }
            KeyCode::Enter => {
                let action = Action::Send {
                    id: id.clone(),
                    text: std::mem::take(line),
                };
                self.message = Some(format!("sending to {id}…"));
                self.mode = Mode::Table;
                return action;
            }
            KeyCode::Esc => self.message = Some("not sent".into()),
            KeyCode::Backspace => {
                line.pop();
                return Action::Redraw;
            }
            KeyCode::Char(c) => {
                line.push(c);
                return Action::Redraw;
            }
            _ => return Action::Nothing,
        }
        self.mode = Mode::Table;
        Action::Redraw
    }

    /// Pasted text (bracketed paste) goes into the line being typed, as
    /// one line: line breaks and tabs become spaces, other control
    /// characters go (the line is typed into the agent's prompt as it is).
    pub fn on_paste(&mut self, text: &str) -> Action {
        let Mode::Send { line, .. } = &mut self.mode else {
            return Action::Nothing;
        };
        let one_line = text
            .split(['\r', '\n'])
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        line.extend(one_line.chars().filter_map(|c| match c {
            '\t' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        }));
        Action::Redraw
    }

    fn on_filter_key(&mut self, code: KeyCode) -> Action {
        match code {
            KeyCode::Enter => self.mode = Mode::Table,
            KeyCode::Esc => {
                self.filter.clear();
                self.mode = Mode::Table;
            }
            KeyCode::Backspace => {
                self.filter.pop();
            }
            KeyCode::Char(c) => self.filter.push(c),
            _ => return Action::Nothing,
        }
        Action::Redraw
    }

    fn on_logs_key(&mut self, code: KeyCode) -> Action {
        let Mode::Logs { lines, scroll, .. } = &mut self.mode else {
            return Action::Nothing;
        };
        let last = u16::try_from(lines.len().saturating_sub(1)).unwrap_or(u16::MAX);
        match code {
            KeyCode::Char('q') | KeyCode::Esc | KeyCode::Char('l') => self.mode = Mode::Table,
            KeyCode::Up | KeyCode::Char('k') => *scroll = scroll.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => *scroll = (*scroll + 1).min(last),
            KeyCode::PageUp => *scroll = scroll.saturating_sub(20),
            KeyCode::PageDown | KeyCode::Char(' ') => *scroll = scroll.saturating_add(20).min(last),
            KeyCode::Home | KeyCode::Char('g') => *scroll = 0,
            KeyCode::End | KeyCode::Char('G') => *scroll = last,
            _ => return Action::Nothing,
        }
        Action::Redraw
    }

    /// Shows a job's log lines, scrolled to the end (the newest lines).
    pub fn show_logs(&mut self, id: String, lines: Vec<String>, height: u16) {
        let scroll = u16::try_from(lines.len())
            .unwrap_or(u16::MAX)
            .saturating_sub(height.saturating_sub(2));
        self.mode = Mode::Logs { id, lines, scroll };
    }

    /// Counts by state for the title line.
    pub fn summary(&self) -> String {
        super::super::summary::line(self.rows.iter().map(|r| r.state))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn row(id: &str, state: JobState, seconds: u64) -> JobRow {
        JobRow {
            id: id.into(),
            name: format!("{id}-name"),
            agent: "claude".into(),
            state,
            attempt: 1,
            max_attempts: 3,
            created: Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(seconds)),
            last_event: "started".into(),
            branch: None,
            dialog: None,
            tokens: String::new(),
            detail: None,
        }
    }

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn waiting_jobs_come_first_then_live_then_finished_newest_first() {
        let mut app = App::default();
        app.set_rows(vec![
            row("done", JobState::Completed, 1),
            row("run-old", JobState::Running, 2),
            row("run-new", JobState::Running, 3),
            row("ask", JobState::Waiting, 0),
            row("bad", JobState::Failed, 5),
        ]);
        let order: Vec<&str> = app.visible().iter().map(|r| r.id.as_str()).collect();
        assert_eq!(order, ["ask", "run-new", "run-old", "bad", "done"]);
    }

    #[test]
    fn the_selection_follows_its_job_and_keys_map_to_actions() {
        let mut app = App::default();
        app.set_rows(vec![
            row("a", JobState::Running, 2),
            row("b", JobState::Running, 1),
        ]);
        assert_eq!(app.selected_id().as_deref(), Some("a"));
        assert_eq!(app.on_key(key(KeyCode::Down)), Action::Redraw);
        assert_eq!(app.selected_id().as_deref(), Some("b"));
        // `b` starts waiting and moves to the top: still selected.
        app.upsert(row("b", JobState::Waiting, 1));
        assert_eq!(app.selected_index(), Some(0));
        assert_eq!(app.on_key(key(KeyCode::Enter)), Action::Attach("b".into()));
        assert_eq!(
            app.on_key(key(KeyCode::Char('r'))),
            Action::Retry("b".into())
        );
        assert_eq!(
            app.on_key(key(KeyCode::Char('l'))),
            Action::OpenLogs("b".into())
        );
        assert_eq!(app.on_key(key(KeyCode::Char('q'))), Action::Quit);
        assert_eq!(app.on_key(key(KeyCode::Esc)), Action::Quit);
    }

    #[test]
    fn kill_asks_for_y_and_anything_else_keeps_the_job() {
        let mut app = App::default();
        app.set_rows(vec![row("a", JobState::Running, 1)]);
        app.on_key(key(KeyCode::Char('x')));
        assert_eq!(app.mode, Mode::ConfirmKill("a".into()));
        assert_eq!(app.on_key(key(KeyCode::Char('n'))), Action::Redraw);
        assert_eq!(app.mode, Mode::Table);
        app.on_key(key(KeyCode::Char('x')));
        assert_eq!(
            app.on_key(key(KeyCode::Char('y'))),
            Action::Kill("a".into())
        );
    }

    fn typed(app: &mut App, text: &str) {
        for c in text.chars() {
            assert_eq!(app.on_key(key(KeyCode::Char(c))), Action::Redraw, "{c}");
        }
    }

    #[test]
    fn s_opens_a_line_that_enter_sends_backspace_edits_and_esc_drops() {
        let mut app = App::default();
        app.set_rows(vec![row("a", JobState::Waiting, 1)]);
        // The shell asks the record first, then opens the line.
        assert_eq!(
            app.on_key(key(KeyCode::Char('s'))),
            Action::OpenSend("a".into())
        );
        assert_eq!(app.mode, Mode::Table);
        app.start_send("a".into(), false);
        // Every character is text, `q` and `s` too; UTF-8 as typed.
        typed(&mut app, "it's $HOME; echo qs é→✓x");
        assert_eq!(app.on_key(key(KeyCode::Backspace)), Action::Redraw);
        assert_eq!(app.on_key(key(KeyCode::Left)), Action::Nothing);
        assert_eq!(
            app.on_key(key(KeyCode::Enter)),
            Action::Send {
                id: "a".into(),
                text: "it's $HOME; echo qs é→✓".into()
            }
        );
        assert_eq!(app.mode, Mode::Table);

        app.start_send("a".into(), false);
        typed(&mut app, "never mind");
        assert_eq!(app.on_key(key(KeyCode::Esc)), Action::Redraw);
        assert_eq!(app.mode, Mode::Table);
        assert_eq!(app.message.as_deref(), Some("not sent"));

        // An empty (or blank) line sends nothing.
        app.start_send("a".into(), true);
        typed(&mut app, "  ");
        assert_eq!(app.on_key(key(KeyCode::Enter)), Action::Redraw);
        assert_eq!(app.mode, Mode::Table);
        assert_eq!(
            app.message.as_deref(),
            Some("nothing sent: the line is empty")
        );
    }

    #[test]
    fn a_paste_joins_the_line_as_one_line_and_only_while_typing() {
        let mut app = App::default();
        app.set_rows(vec![row("a", JobState::Waiting, 1)]);
        assert_eq!(app.on_paste("ignored"), Action::Nothing);
        app.start_send("a".into(), false);
        typed(&mut app, "see: ");
        assert_eq!(
            app.on_paste("first line\r\nsecond\tline\n\u{1b}[31mthird"),
            Action::Redraw
        );
        let Mode::Send { line, .. } = &app.mode else {
            panic!("not typing: {:?}", app.mode)
        };
        assert_eq!(line, "see: first line second line [31mthird");
    }

    #[test]
    fn a_asks_for_y_to_answer_a_dialog_and_says_when_there_is_none() {
        let mut app = App::default();
        let mut asks = row("asks", JobState::Waiting, 2);
        asks.dialog = Some("Claude Code asks whether you trust this folder".into());
        app.set_rows(vec![asks, row("plain", JobState::Waiting, 1)]);
        assert_eq!(app.selected_id().as_deref(), Some("asks"));

        app.on_key(key(KeyCode::Char('a')));
        assert_eq!(
            app.mode,
            Mode::ConfirmAnswer {
                id: "asks".into(),
                dialog: "Claude Code asks whether you trust this folder".into()
            }
        );
        assert_eq!(app.on_key(key(KeyCode::Char('n'))), Action::Redraw);
        assert_eq!(app.mode, Mode::Table);
        assert_eq!(app.message.as_deref(), Some("not answered"));
        app.on_key(key(KeyCode::Char('a')));
        assert_eq!(
            app.on_key(key(KeyCode::Char('y'))),
            Action::Answer("asks".into())
        );
        assert_eq!(app.mode, Mode::Table);

        app.on_key(key(KeyCode::Down));
        assert_eq!(app.on_key(key(KeyCode::Char('a'))), Action::Redraw);
        assert_eq!(app.mode, Mode::Table);
        assert_eq!(
            app.message.as_deref(),
            Some("plain shows no dialog: nothing to answer")
        );
    }

    #[test]
    fn the_filter_narrows_the_rows_and_esc_clears_it() {
        let mut app = App::default();
        app.set_rows(vec![
            row("alpha", JobState::Running, 1),
            row("beta", JobState::Failed, 2),
        ]);
        app.on_key(key(KeyCode::Char('/')));
        for c in "bet".chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        assert_eq!(app.visible().len(), 1);
        assert_eq!(app.selected_id().as_deref(), Some("beta"));
        app.on_key(key(KeyCode::Esc));
        assert_eq!(app.visible().len(), 2);
        app.on_key(key(KeyCode::Char('/')));
        app.on_key(key(KeyCode::Char('z')));
        app.on_key(key(KeyCode::Enter));
        assert_eq!(app.mode, Mode::Table);
        assert_eq!(app.selected_id(), None);
        assert_eq!(app.on_key(key(KeyCode::Enter)), Action::Nothing);
    }

    #[test]
    fn the_preview_follows_the_selection_and_p_or_the_logs_stop_it() {
        let mut app = App::default();
        app.set_rows(vec![
            row("a", JobState::Running, 2),
            row("b", JobState::Running, 1),
        ]);
        let target = |app: &App| app.preview_target().map(|r| r.id.clone());
        assert_eq!(target(&app).as_deref(), Some("a"));
        assert!(app.show_pane(Pane::note("a", "pane of a".into())));
        assert_eq!(app.selected_pane().map(|p| p.id.as_str()), Some("a"));
        app.on_key(key(KeyCode::Down));
        assert_eq!(target(&app).as_deref(), Some("b"));
        assert_eq!(app.selected_pane(), None, "a's pane is not b's");
        assert_eq!(app.on_key(key(KeyCode::Char('p'))), Action::Redraw);
        assert_eq!(target(&app), None);
        assert!(!app.show_pane(Pane::note("b", "hidden".into())));
        app.on_key(key(KeyCode::Char('p')));
        assert_eq!(target(&app).as_deref(), Some("b"));
        app.show_logs("b".into(), vec!["line".into()], 20);
        assert_eq!(target(&app), None, "the logs cover the preview");
        // `p` while typing a line is a letter of the line.
        app.mode = Mode::Table;
        app.start_send("b".into(), false);
        app.on_key(key(KeyCode::Char('p')));
        assert!(!app.preview_hidden);
    }

    #[test]
    fn logs_scroll_within_their_lines() {
        let mut app = App::default();
        let lines: Vec<String> = (0..50).map(|i| format!("line {i}")).collect();
        app.show_logs("a".into(), lines, 22);
        let Mode::Logs { scroll, .. } = app.mode else {
            panic!("not in logs")
        };
        assert_eq!(scroll, 30, "opens at the newest lines");
        app.on_key(key(KeyCode::End));
        app.on_key(key(KeyCode::Down));
        let Mode::Logs { scroll, .. } = app.mode else {
            panic!("not in logs")
        };
        assert_eq!(scroll, 49);
        app.on_key(key(KeyCode::Char('q')));
        assert_eq!(app.mode, Mode::Table);
    }
}
