//! What `top`'s preview shows of a job: the lines of its pane, styled from
//! the SGR escapes `capture-pane -e` keeps, or a note saying why there are
//! none. Plain data: `preview.rs` reads panes, `draw.rs` shows them.

use ratatui::text::Line;

/// One read of a job's pane.
#[derive(Debug, Clone, PartialEq)]
pub struct Pane {
    /// The job's id.
    pub id: String,
    /// The pane's lines, top to bottom, without the blank ones at its end.
    pub lines: Vec<Line<'static>>,
    /// Where the lines come from when they are not the live window's, or
    /// why there are none.
    pub note: Option<String>,
}

impl Pane {
    /// A window's screen as `capture-pane -e -p` prints it.
    pub fn live(id: &str, screen: &str, note: Option<String>) -> Pane {
        Pane {
            id: id.to_owned(),
            lines: styled_lines(screen),
            note,
        }
    }

    /// A pane saved as plain text when its attempt ended.
    pub fn saved(id: &str, text: &str, note: String) -> Pane {
        let mut lines: Vec<Line<'static>> = text.lines().map(|l| Line::raw(l.to_owned())).collect();
        drop_blank_end(&mut lines);
        Pane {
            id: id.to_owned(),
            lines,
            note: Some(note),
        }
    }

    /// No lines to show, and why.
    pub fn note(id: &str, note: String) -> Pane {
        Pane {
            id: id.to_owned(),
            lines: Vec::new(),
            note: Some(note),
        }
    }
}

/// `screen`'s lines with its SGR escapes (colours, bold, reverse…) as
/// ratatui styles. A style runs on across line ends, as on the terminal:
/// tmux does not repeat it at the start of the next line. Escapes other
/// than SGR are dropped.
pub fn styled_lines(screen: &str) -> Vec<Line<'static>> {
    use ansi_to_tui::IntoText;
    let mut lines = match screen.into_text() {
        Ok(text) => text.lines,
        // It gives up only on bytes it cannot read (never in a `&str`):
        // the text without its escapes then, rather than nothing.
        Err(_) => screen
            .lines()
            .map(|l| Line::raw(l.replace('\u{1b}', "")))
            .collect(),
    };
    drop_blank_end(&mut lines);
    lines
}

/// A screen is as tall as its pane: the blank rows under the last output
/// would push that output out of a smaller preview.
fn drop_blank_end(lines: &mut Vec<Line<'static>>) {
    while lines
        .last()
        .is_some_and(|line| line.spans.iter().all(|s| s.content.trim().is_empty()))
    {
        lines.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::style::{Color, Modifier, Style};
    use ratatui::text::Span;

    fn spans(line: &Line<'_>) -> Vec<(String, Style)> {
        line.spans
            .iter()
            .filter(|s| !s.content.is_empty())
            .map(|s| (s.content.to_string(), s.style))
            .collect()
    }

    /// What tmux 3.3a prints for a pane showing red text, a bold 256-colour
    /// run that goes on over the line's end, and a true-colour background.
    #[test]
    fn sgr_escapes_become_styles_and_a_style_runs_on_to_the_next_line() {
        let screen = "\u{1b}[31mred\u{1b}[39m plain \u{1b}[1m\u{1b}[38;5;208mbold-orange\n\
                      second line still\n\
                      \u{1b}[0m\u{1b}[39m\u{1b}[48;2;10;20;30mrgbbg\u{1b}[49m\n\n\n";
        let lines = styled_lines(screen);
        assert_eq!(lines.len(), 3, "the blank rows at the end go: {lines:?}");
        let first = spans(&lines[0]);
        assert_eq!(first[0].0, "red");
        assert_eq!(first[0].1.fg, Some(Color::Red));
        assert_eq!(first[1].0, " plain ");
        assert_eq!(first[1].1.fg, Some(Color::Reset));
        assert_eq!(first[2].0, "bold-orange");
        assert_eq!(first[2].1.fg, Some(Color::Indexed(208)));
        assert!(first[2].1.add_modifier.contains(Modifier::BOLD));
        let second = spans(&lines[1]);
        assert_eq!(second[0].0, "second line still");
        assert_eq!(second[0].1.fg, Some(Color::Indexed(208)));
        assert!(second[0].1.add_modifier.contains(Modifier::BOLD));
        let third = spans(&lines[2]);
        assert_eq!(third[0].0, "rgbbg");
        assert_eq!(third[0].1.bg, Some(Color::Rgb(10, 20, 30)));
        assert_ne!(third[0].1.fg, Some(Color::Indexed(208)), "reset by 0m");
        assert!(!third[0].1.add_modifier.contains(Modifier::BOLD));
    }

    #[test]
    fn reverse_video_and_text_without_escapes_come_through_as_they_are() {
        let lines = styled_lines("\u{1b}[7m> 1. Yes\u{1b}[27m\n  2. No é→✓\n");
        let first = spans(&lines[0]);
        assert_eq!(first[0].0, "> 1. Yes");
        assert!(first[0].1.add_modifier.contains(Modifier::REVERSED));
        assert_eq!(lines[1].to_string(), "  2. No é→✓");
        assert_eq!(
            styled_lines("plain\n  \n"),
            vec![Line::from(vec![Span::raw("plain")])]
        );
    }

    #[test]
    fn escapes_other_than_sgr_are_dropped_not_shown() {
        // A title (OSC), a cursor move and a lone ESC: none is text.
        let lines = styled_lines("\u{1b}]0;title\u{7}one\u{1b}[2Ctwo\u{1b}three\n");
        assert_eq!(lines.len(), 1);
        let text = lines[0].to_string();
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(text.starts_with("one") && text.contains("two"), "{text:?}");
    }

    #[test]
    fn a_saved_pane_is_plain_lines_and_its_note_says_so() {
        let pane = Pane::saved("j1", "last words\n\n", "saved".into());
        assert_eq!(pane.lines, vec![Line::raw("last words")]);
        assert_eq!(pane.note.as_deref(), Some("saved"));
        assert!(Pane::note("j1", "why".into()).lines.is_empty());
    }
}
