//! Draws `top`: a title with the counts, the jobs table (the shared
//! renderer, coloured by state), the selected job's pane under the table
//! (beside it on a wide terminal), a message line and the help line.

use super::app::{App, JobRow, Mode};
use crate::model::JobState;
use crate::ui::table::{cut_str, tail_str, wrap_str, Grid};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, TableState};
use ratatui::Frame;
use std::time::SystemTime;
use unicode_width::UnicodeWidthStr;

const HELP: &str =
    "↑↓ select  ⏎ attach  s send  a answer  p pane  l logs  x kill  r retry  / filter  q quit";
/// The help line in 80 columns: every key still there.
const HELP_NARROW: &str =
    "↑↓ ⏎ attach  s send  a answer  p pane  l logs  x kill  r retry  / filter  q quit";
/// From this width on, the preview goes beside the table rather than under it.
const WIDE: u16 = 160;
/// The preview beside the table is at least this wide: an agent's pane is
/// 80 columns in a detached session, and the border takes two.
const PREVIEW_COLUMNS: u16 = 82;
/// Under the table, the preview takes at least this many rows (its border
/// and three lines), or it is left out.
const PREVIEW_ROWS: u16 = 5;
const LOGS_HELP: &str = "↑↓ PgUp PgDn scroll  g/G top/end  q back";
const SEND_HELP: &str = "type a line (paste works)  ⏎ send  ⌫ erase  Esc cancel";

pub fn draw(frame: &mut Frame, app: &App, now: SystemTime) {
    let [title, body, message, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(title_line(app)), title);
    match &app.mode {
        Mode::Logs { id, lines, scroll } => {
            let text: Vec<Line> = lines.iter().map(|l| Line::raw(l.clone())).collect();
            let block = Block::bordered().title(format!(" logs of {id} "));
            frame.render_widget(Paragraph::new(text).block(block).scroll((*scroll, 0)), body);
        }
        _ => draw_jobs(frame, app, body, now),
    }
    frame.render_widget(
        Paragraph::new(message_line(app, usize::from(message.width))),
        message,
    );
    let help_text = match app.mode {
        Mode::Logs { .. } => LOGS_HELP,
        Mode::Send { .. } => SEND_HELP,
        _ if usize::from(help.width) < HELP.width() => HELP_NARROW,
        _ => HELP,
    };
    frame.render_widget(
        Paragraph::new(help_text).style(Style::default().add_modifier(Modifier::DIM)),
        help,
    );
}

fn title_line(app: &App) -> String {
    let total = app.all_rows().len();
    let shown = app.visible().len();
    let counts = app.summary();
    if shown == total {
        format!("tmux-delegate top: {total} jobs  {counts}")
    } else {
        format!("tmux-delegate top: {shown} of {total} jobs  {counts}")
    }
}

fn message_line(app: &App, width: usize) -> Line<'static> {
    let asking = Style::default().fg(Color::Red).add_modifier(Modifier::BOLD);
    match &app.mode {
        Mode::Filter => Line::raw(format!("/{}█", app.filter)),
        Mode::ConfirmKill(id) => Line::styled(
            format!("kill {id}? y to confirm, any other key to keep it"),
            asking,
        ),
        Mode::Send {
            id,
            line,
            follow_up,
        } => {
            let prompt = if *follow_up {
                format!("follow up {id}: ")
            } else {
                format!("send to {id}: ")
            };
            // The newest part of the line stays in sight, and the cursor.
            let room = width.saturating_sub(prompt.width() + 1);
            Line::raw(format!("{prompt}{}█", tail_str(line, room)))
        }
        Mode::ConfirmAnswer { dialog, .. } => {
            let room = width.saturating_sub("answer  with its first choice? y/n".width());
            Line::styled(
                format!(
                    "answer {} with its first choice? y/n",
                    cut_str(dialog, room)
                ),
                asking,
            )
        }
        _ => {
            let filter = (!app.filter.is_empty()).then(|| format!("filter: {}  ", app.filter));
            Line::raw(format!(
                "{}{}",
                filter.unwrap_or_default(),
                app.message.clone().unwrap_or_default()
            ))
        }
    }
}

/// The table and, when it is on and there is room, the selected job's pane.
fn draw_jobs(frame: &mut Frame, app: &App, area: Rect, now: SystemTime) {
    let rows = app.visible().len();
    match app.preview_target().zip(split(area, rows)) {
        Some((row, (table, preview))) => {
            draw_table(frame, app, table, now);
            draw_preview(frame, app, row, preview);
        }
        None => draw_table(frame, app, area, now),
    }
}

/// Where the table and the preview go in `area`: side by side from `WIDE`
/// columns on; else the table on top, as tall as its `rows` (and header)
/// but at most half, the preview under it. `None`: no room for a preview.
pub fn split(area: Rect, rows: usize) -> Option<(Rect, Rect)> {
    if area.width >= WIDE {
        let preview = PREVIEW_COLUMNS.max(area.width / 2);
        let [table, _, preview] = Layout::horizontal([
            Constraint::Min(0),
            Constraint::Length(1),
            Constraint::Length(preview),
        ])
        .areas(area);
        return Some((table, preview));
    }
    let wanted = u16::try_from(rows.saturating_add(1)).unwrap_or(u16::MAX);
    let table_rows = wanted.min(area.height / 2).max(2);
    if area.height < table_rows + PREVIEW_ROWS {
        return None;
    }
    let [table, preview] =
        Layout::vertical([Constraint::Length(table_rows), Constraint::Min(0)]).areas(area);
    Some((table, preview))
}

/// The selected job's pane in a box titled with its name and state: first
/// why it is in that state, whole (a waiting job's question, wrapped), then
/// the pane's last lines, in its colours.
fn draw_preview(frame: &mut Frame, app: &App, row: &JobRow, area: Rect) {
    let title = format!(" {} · {} ", row.name, row.state.as_str());
    let block = Block::bordered().title(Line::styled(title, state_style(row.state)));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width);
    let height = usize::from(inner.height);
    let dim = Style::default().add_modifier(Modifier::DIM);
    let mut lines: Vec<Line> = Vec::new();
    if let Some(detail) = &row.detail {
        let style = Style::default().add_modifier(Modifier::BOLD);
        lines.extend(
            wrap_str(detail, width)
                .into_iter()
                .map(|l| Line::styled(l, style)),
        );
    }
    let pane = app.selected_pane();
    let note = match pane {
        Some(pane) => pane.note.clone(),
        None => Some(format!("reading the pane of {}…", row.id)),
    };
    lines.extend(note.map(|note| Line::styled(note, dim)));
    if !lines.is_empty() {
        // The pane keeps three rows at least; a question longer than
        // that leaves only its start.
        lines.truncate(height.saturating_sub(3).max(1));
        lines.push(Line::styled("─".repeat(width), dim));
    }
    let room = height.saturating_sub(lines.len());
    if let Some(pane) = pane {
        let skip = pane.lines.len().saturating_sub(room);
        lines.extend(pane.lines[skip..].iter().cloned());
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn draw_table(frame: &mut Frame, app: &App, area: Rect, now: SystemTime) {
    let visible = app.visible();
    if visible.is_empty() {
        let text = if app.all_rows().is_empty() {
            "no jobs yet: `tmux-delegate run --prompt ...` starts one"
        } else {
            "no job matches the filter (Esc in / clears it)"
        };
        frame.render_widget(Paragraph::new(text), area);
        return;
    }
    let grid = grid(&visible, now);
    let widths = grid.widths(area.width);
    let table = grid
        .table(&widths)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(app.selected_index());
    frame.render_stateful_widget(table, area, &mut state);
}

/// The jobs as the shared table renderer lays them out. TOKENS and
/// BRANCH only when some row has one.
pub fn grid(rows: &[&JobRow], now: SystemTime) -> Grid {
    let with_tokens = rows.iter().any(|r| !r.tokens.is_empty());
    let with_branch = rows.iter().any(|r| r.branch.is_some());
    let mut header = vec!["NAME", "AGENT", "STATE", "TRY", "AGE"];
    if with_tokens {
        header.push("TOKENS");
    }
    header.push("LAST EVENT");
    if with_branch {
        header.push("BRANCH");
    }
    let mut grid = Grid::new(&header);
    for r in rows {
        let mut cells = vec![
            r.name.clone(),
            r.agent.clone(),
            r.state.as_str().to_owned(),
            format!("{}/{}", r.attempt, r.max_attempts),
            age(r, now),
        ];
        if with_tokens {
            cells.push(r.tokens.clone());
        }
        cells.push(r.last_event.clone());
        if with_branch {
            cells.push(r.branch.clone().unwrap_or_default());
        }
        grid.push_styled(cells, state_style(r.state));
    }
    grid
}

fn age(row: &JobRow, now: SystemTime) -> String {
    let Some(created) = row.created else {
        return String::new();
    };
    let secs = now
        .duration_since(created)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d", secs / 86_400),
    }
}

fn state_style(state: JobState) -> Style {
    let style = Style::default();
    match state {
        JobState::Waiting => style
            .fg(Color::Black)
            .bg(Color::Yellow)
            .add_modifier(Modifier::BOLD),
        JobState::Running => style.fg(Color::Green),
        JobState::Launching | JobState::Retrying | JobState::Pending => style.fg(Color::Cyan),
        JobState::Completed => style.fg(Color::Blue),
        JobState::Failed | JobState::TimedOut => style.fg(Color::Red),
        JobState::Cancelled | JobState::Skipped => style.fg(Color::DarkGray),
        // Waiting its turn: not yet started, so not the launch colour.
        JobState::Queued => style.fg(Color::Magenta),
        // Paused until a usage limit resets: nothing to do but wait.
        JobState::Limited => style.fg(Color::Yellow),
    }
}

#[cfg(test)]
mod tests {
    use super::super::app::tests::row;
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn screen(app: &App, width: u16, height: u16) -> (Vec<String>, ratatui::buffer::Buffer) {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(100);
        terminal.draw(|frame| draw(frame, app, now)).expect("draw");
        let buffer = terminal.backend().buffer().clone();
        (crate::ui::table::buffer_lines(&buffer), buffer)
    }

    fn sample() -> App {
        let mut app = App::default();
        let mut long = row("refactor", JobState::Running, 40);
        long.name = "refactor-the-parser-module-so-that-every-case-is-covered-by-a-test".into();
        long.last_event =
            "progress compiling every crate of the workspace with all features".into();
        app.set_rows(vec![
            long,
            row("ask", JobState::Waiting, 95),
            row("done", JobState::Completed, 10),
        ]);
        app
    }

    #[test]
    fn snapshot_80x24() {
        let (lines, buffer) = screen(&sample(), 80, 24);
        let expected_top = [
            "tmux-delegate top: 3 jobs  ⏸1 ▶1 ✓1",
            "NAME                      AGENT   STATE      TRY  AGE  LAST EVENT",
            "ask-name                  claude  waiting    1/3  5s   started",
            "refactor-the-parser-mod…  claude  running    1/3  1m   progress compiling every…",
            "done-name                 claude  completed  1/3  1m   started",
            // The selected (waiting) job's pane, under the table, until
            // its first read comes.
            "┌ ask-name · waiting ──────────────────────────────────────────────────────────┐",
            "│reading the pane of ask…                                                      │",
            "│──────────────────────────────────────────────────────────────────────────────│",
        ];
        for (got, want) in lines.iter().zip(expected_top) {
            assert_eq!(got, want, "\n{}", lines.join("\n"));
        }
        assert!(lines[21].starts_with('└'), "{}", lines[21]);
        assert_eq!(lines[23], HELP_NARROW);
        for line in &lines {
            assert!(unicode_width::UnicodeWidthStr::width(line.as_str()) <= 80);
        }
        // The waiting job is highlighted (and selected, so reversed too).
        let cell = &buffer[(0, 2)];
        assert_eq!(cell.bg, Color::Yellow);
        assert!(cell.modifier.contains(Modifier::REVERSED));
        assert_eq!(buffer[(0, 3)].fg, Color::Green);
    }

    #[test]
    fn small_and_resized_terminals_still_draw_every_part() {
        for (w, h) in [(40, 8), (120, 40), (20, 4)] {
            let (lines, _) = screen(&sample(), w, h);
            assert_eq!(lines.len(), usize::from(h));
            assert!(
                lines[0].starts_with("tmux-delegate top"),
                "{w}x{h}: {lines:?}"
            );
        }
    }

    #[test]
    fn kill_confirmation_and_filter_prompt_show_on_the_message_line() {
        let mut app = sample();
        app.mode = Mode::ConfirmKill("ask".into());
        let (lines, _) = screen(&app, 80, 24);
        assert_eq!(
            lines[22],
            "kill ask? y to confirm, any other key to keep it"
        );
        app.mode = Mode::Filter;
        app.filter = "ref".into();
        let (lines, _) = screen(&app, 80, 24);
        assert_eq!(lines[22], "/ref█");
        assert!(lines[0].contains("1 of 3 jobs"), "{}", lines[0]);
    }

    #[test]
    fn the_send_line_shows_its_newest_part_and_the_answer_question_fits() {
        let mut app = sample();
        app.start_send("ask".into(), false);
        app.on_paste("it's $HOME; echo é→✓");
        let (lines, _) = screen(&app, 80, 24);
        assert_eq!(lines[22], "send to ask: it's $HOME; echo é→✓█");
        assert_eq!(lines[23], SEND_HELP);
        app.on_paste(&" and more".repeat(10));
        let (lines, _) = screen(&app, 80, 24);
        assert!(
            lines[22].starts_with("send to ask: …") && lines[22].ends_with("and more█"),
            "{}",
            lines[22]
        );
        assert_eq!(
            unicode_width::UnicodeWidthStr::width(lines[22].as_str()),
            80
        );
        app.start_send("done".into(), true);
        let (lines, _) = screen(&app, 80, 24);
        assert_eq!(lines[22], "follow up done: █");

        app.mode = Mode::ConfirmAnswer {
            id: "ask".into(),
            dialog: "Claude Code asks whether you trust this folder: Quick safety check: Is this a project you created or one you trust?".into(),
        };
        let (lines, _) = screen(&app, 80, 24);
        assert!(
            lines[22].starts_with("answer Claude Code asks whether you trust")
                && lines[22].ends_with("… with its first choice? y/n"),
            "{}",
            lines[22]
        );
    }

    fn pane(id: &str, screen: &str) -> super::super::pane::Pane {
        super::super::pane::Pane::live(id, screen, None)
    }

    /// Where the preview's box starts: its top-left corner's (x, y).
    fn preview_corner(lines: &[String]) -> Option<(usize, usize)> {
        lines
            .iter()
            .enumerate()
            .find_map(|(y, line)| line.chars().position(|c| c == '┌').map(|x| (x, y)))
    }

    #[test]
    fn the_preview_goes_under_the_table_and_beside_it_from_160_columns() {
        let area = Rect::new(0, 1, 100, 25);
        let (table, preview) = split(area, 4).expect("room for both");
        assert_eq!((table.height, preview.y, preview.height), (5, 6, 20));
        assert_eq!(table.width, 100);
        // Many jobs: the table takes half, and scrolls.
        let (table, preview) = split(area, 100).expect("room for both");
        assert_eq!((table.height, preview.height), (12, 13));
        let (table, preview) = split(Rect::new(0, 1, 160, 40), 4).expect("room");
        assert_eq!((table.width, preview.x, preview.width), (77, 78, 82));
        assert_eq!((table.height, preview.height), (40, 40));
        let (_, preview) = split(Rect::new(0, 1, 240, 40), 4).expect("room");
        assert_eq!(preview.width, 120);
        assert_eq!(
            split(Rect::new(0, 1, 159, 40), 4).map(|(t, _)| t.width),
            Some(159)
        );
        assert_eq!(split(Rect::new(0, 1, 80, 6), 4), None, "no room under");

        // Drawn: 100x28 under, 200x30 beside.
        let mut app = sample();
        app.show_pane(pane("ask", "PANE-TOP\n\u{1b}[31mPANE-RED\u{1b}[0m\n"));
        let (lines, buffer) = screen(&app, 100, 28);
        assert_eq!(
            preview_corner(&lines),
            Some((0, 5)),
            "\n{}",
            lines.join("\n")
        );
        assert!(lines[6].starts_with("│PANE-TOP"), "{}", lines[6]);
        assert_eq!(buffer[(1, 7)].symbol(), "P");
        assert_eq!(buffer[(1, 7)].fg, Color::Red, "the pane's colours");
        let (lines, _) = screen(&app, 200, 30);
        assert_eq!(
            preview_corner(&lines),
            Some((100, 1)),
            "\n{}",
            lines.join("\n")
        );
        assert!(lines[1].starts_with("NAME"), "{}", lines[1]);
        assert!(lines[2].contains("│PANE-TOP"), "{}", lines[2]);
    }

    #[test]
    fn the_preview_shows_the_panes_last_lines_and_only_the_selected_jobs() {
        let mut app = sample();
        let screen_text: String = (1..=40).map(|i| format!("line {i}\n")).collect();
        app.show_pane(pane("ask", &screen_text));
        let (lines, _) = screen(&app, 80, 24);
        // Rows 5..=21 are the box: 15 rows inside for the pane's end.
        assert_eq!(lines[6], format!("│line 26{}│", " ".repeat(71)));
        assert!(lines[20].starts_with("│line 40"), "{}", lines[20]);
        // Another job selected: not the first job's pane under its name.
        app.on_key(ratatui::crossterm::event::KeyEvent::from(
            ratatui::crossterm::event::KeyCode::Down,
        ));
        let (lines, _) = screen(&app, 80, 24);
        let all = lines.join("\n");
        assert!(!all.contains("line 40"), "{all}");
        assert!(all.contains("reading the pane of refactor…"), "{all}");
        assert!(
            !app.show_pane(pane("ask", "late")),
            "a stale read is dropped"
        );
        assert!(app.show_pane(pane("refactor", "REFACTOR-PANE")));
        assert!(
            !app.show_pane(pane("refactor", "REFACTOR-PANE")),
            "unchanged"
        );
        let (lines, _) = screen(&app, 80, 24);
        assert!(lines.join("\n").contains("│REFACTOR-PANE"), "{lines:?}");
        // `p`: no preview, the table has the whole screen.
        app.on_key(ratatui::crossterm::event::KeyEvent::from(
            ratatui::crossterm::event::KeyCode::Char('p'),
        ));
        assert!(app.preview_target().is_none());
        let (lines, _) = screen(&app, 80, 24);
        assert_eq!(preview_corner(&lines), None, "\n{}", lines.join("\n"));
    }

    #[test]
    fn a_waiting_jobs_question_is_shown_whole_and_wrapped_above_its_pane() {
        let mut app = sample();
        let question = "Which of these should I refactor first: the parser, whose tests \
                        are slow, or the lexer, which has no tests at all? Say which.";
        let mut ask = row("ask", JobState::Waiting, 95);
        ask.detail = Some(format!("asks: {question}"));
        app.upsert(ask);
        app.show_pane(pane("ask", "> _\n"));
        let (lines, buffer) = screen(&app, 60, 20);
        let inside: Vec<String> = lines[6..18]
            .iter()
            .map(|l| {
                l.trim_start_matches('│')
                    .trim_end_matches('│')
                    .trim_end()
                    .to_owned()
            })
            .collect();
        let rule = inside
            .iter()
            .position(|l| l.starts_with('─'))
            .expect("rule");
        let shown = inside[..rule].join(" ");
        assert_eq!(shown, format!("asks: {question}"), "{inside:?}");
        assert!(rule > 1, "wrapped: {inside:?}");
        assert_eq!(inside[rule + 1], "> _");
        assert!(buffer[(1, 6)].modifier.contains(Modifier::BOLD));
    }

    #[test]
    fn tokens_show_in_their_own_column_once_a_job_has_them() {
        let mut app = sample();
        let (lines, _) = screen(&app, 120, 24);
        assert!(!lines[1].contains("TOKENS"), "{}", lines[1]);
        let mut done = row("done", JobState::Completed, 10);
        done.tokens = "1200/340 $0.0123".into();
        app.upsert(done);
        let (lines, _) = screen(&app, 120, 24);
        assert!(
            lines[1].contains("AGE  TOKENS            LAST EVENT"),
            "{}",
            lines[1]
        );
        let done_line = lines
            .iter()
            .find(|l| l.starts_with("done-name"))
            .expect("row");
        assert!(
            done_line.contains("1200/340 $0.0123  started"),
            "{done_line}"
        );
    }
}
