//! Draws `top`: a title with the counts, the jobs table (the shared
//! renderer, coloured by state), a message line and the help line.

use super::app::{App, JobRow, Mode};
use crate::model::JobState;
use crate::ui::table::{cut_str, tail_str, Grid};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, TableState};
use ratatui::Frame;
use std::time::SystemTime;
use unicode_width::UnicodeWidthStr;

const HELP: &str =
    "↑↓ select  ⏎ attach  s send  a answer  l logs  x kill  r retry  / filter  q quit";
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
        _ => draw_table(frame, app, body, now),
    }
    frame.render_widget(
        Paragraph::new(message_line(app, usize::from(message.width))),
        message,
    );
    let help_text = match app.mode {
        Mode::Logs { .. } => LOGS_HELP,
        Mode::Send { .. } => SEND_HELP,
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
    let with_branch = visible.iter().any(|r| r.branch.is_some());
    let grid = grid(&visible, now, with_branch);
    let widths = grid.widths(area.width);
    let table = grid
        .table(&widths)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(app.selected_index());
    frame.render_stateful_widget(table, area, &mut state);
}

/// The jobs as the shared table renderer lays them out.
pub fn grid(rows: &[&JobRow], now: SystemTime, with_branch: bool) -> Grid {
    let mut header = vec!["NAME", "AGENT", "STATE", "TRY", "AGE", "LAST EVENT"];
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
            r.last_event.clone(),
        ];
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
        ];
        for (got, want) in lines.iter().zip(expected_top) {
            assert_eq!(got, want, "\n{}", lines.join("\n"));
        }
        assert_eq!(lines[23], HELP);
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
}
