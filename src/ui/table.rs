//! The one table renderer: `run`'s live table, `status` and `top` all lay
//! out their rows here. Columns get the width their widest cell needs; when
//! that is more than the terminal has, the widest columns give way first and
//! every cell is cut (with `…`) instead of wrapping, so a table is always
//! exactly one terminal line per row.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Row, Table, Widget};
use std::io::IsTerminal;
use unicode_width::UnicodeWidthStr;

/// Spaces between two columns.
const GAP: u16 = 2;
/// A column is never cut below this many cells (or its header's width).
const MIN_COLUMN: u16 = 6;

/// A header and rows of plain text cells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grid {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Per-row styles (`top`'s colours); text renderings ignore them.
    pub styles: Vec<Style>,
}

impl Grid {
    pub fn new(header: &[&str]) -> Grid {
        Grid {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
            styles: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.push_styled(row, Style::default());
    }

    pub fn push_styled(&mut self, row: Vec<String>, style: Style) {
        self.rows.push(row);
        self.styles.push(style);
    }

    /// Column widths that fit `available` cells (gaps included) when they can.
    pub fn widths(&self, available: u16) -> Vec<u16> {
        let mut widths: Vec<u16> = self
            .header
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let widest = self
                    .rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(|c| first_line(c).width())
                    .chain([h.width()])
                    .max()
                    .unwrap_or(0);
                u16::try_from(widest).unwrap_or(u16::MAX)
            })
            .collect();
        let gaps = GAP.saturating_mul(u16::try_from(widths.len().saturating_sub(1)).unwrap_or(0));
        let floor: Vec<u16> = self
            .header
            .iter()
            .zip(&widths)
            .map(|(h, w)| (*w).min(MIN_COLUMN.max(u16::try_from(h.width()).unwrap_or(0))))
            .collect();
        // Take one cell at a time from the widest column that may still give.
        while widths.iter().sum::<u16>().saturating_add(gaps) > available {
            let Some((i, _)) = widths
                .iter()
                .enumerate()
                .filter(|(i, w)| **w > floor[*i])
                .max_by_key(|(i, w)| (**w, usize::MAX - i))
            else {
                break;
            };
            widths[i] -= 1;
        }
        widths
    }

    /// The ratatui table of this grid (for `top` and for [`Grid::lines`]).
    pub fn table(&self, widths: &[u16]) -> Table<'static> {
        let cut_row = |cells: &[String]| -> Row<'static> {
            Row::new(
                cells
                    .iter()
                    .zip(widths)
                    .map(|(c, w)| cut(first_line(c), *w))
                    .collect::<Vec<_>>(),
            )
        };
        let header = cut_row(&self.header).style(Style::default().add_modifier(Modifier::BOLD));
        let rows = self
            .rows
            .iter()
            .zip(&self.styles)
            .map(|(r, style)| cut_row(r).style(*style));
        Table::new(
            rows.collect::<Vec<_>>(),
            widths.iter().map(|w| Constraint::Length(*w)),
        )
        .header(header)
        .column_spacing(GAP)
    }

    /// The table as text lines no wider than `width`, trailing spaces trimmed.
    pub fn lines(&self, width: u16) -> Vec<String> {
        let widths = self.widths(width);
        let total: u16 = widths.iter().sum::<u16>()
            + GAP * u16::try_from(widths.len().saturating_sub(1)).unwrap_or(0);
        let area = Rect::new(
            0,
            0,
            total.min(width).max(1),
            u16::try_from(self.rows.len() + 1).unwrap_or(u16::MAX),
        );
        let mut buffer = Buffer::empty(area);
        self.table(&widths).render(area, &mut buffer);
        buffer_lines(&buffer)
    }

    /// Prints the table to stdout: in a terminal it fits the terminal's
    /// width; piped, nothing is cut.
    pub fn print(&self) {
        let width = if std::io::stdout().is_terminal() {
            super::terminal_width()
        } else {
            u16::MAX
        };
        for line in self.lines(width) {
            println!("{line}");
        }
    }
}

/// The text of each line of a rendered buffer, trailing spaces trimmed.
pub fn buffer_lines(buffer: &Buffer) -> Vec<String> {
    let area = buffer.area;
    (area.top()..area.bottom())
        .map(|y| {
            let mut line = String::new();
            let mut skip = 0;
            for x in area.left()..area.right() {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                let symbol = buffer[(x, y)].symbol();
                skip = symbol.width().saturating_sub(1);
                line.push_str(symbol);
            }
            line.trim_end().to_owned()
        })
        .collect()
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// `text` cut to `width` cells, with `…` when something was cut.
pub fn cut(text: &str, width: u16) -> Line<'static> {
    Line::raw(cut_str(text, usize::from(width)))
}

pub fn cut_str(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    if width > 0 {
        out.push('…');
    }
    out
}

/// The end of `text` in `width` cells, with `…` first when something was
/// cut: a line being typed shows its newest part.
pub fn tail_str(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_owned();
    }
    let mut kept = Vec::new();
    let mut used = 0;
    for c in text.chars().rev() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        kept.push(c);
        used += w;
    }
    let tail: String = kept.into_iter().rev().collect();
    if width > 0 {
        format!("…{tail}")
    } else {
        tail
    }
}

/// `text` in lines of at most `width` cells, broken between words (a word
/// longer than a line where the line ends), its own line breaks kept;
/// control characters become spaces. For text shown whole (`top`'s
/// preview header), where a table cuts.
pub fn wrap_str(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect();
    let mut lines = Vec::new();
    for paragraph in clean.lines() {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            let joined = if line.is_empty() {
                word.to_owned()
            } else {
                format!("{line} {word}")
            };
            if joined.width() <= width {
                line = joined;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            line = break_word(word, width, &mut lines);
        }
        lines.push(line);
    }
    lines
}

/// Pushes the full lines of a `word` too long for one; returns its rest.
fn break_word(word: &str, width: usize, lines: &mut Vec<String>) -> String {
    let mut rest = String::new();
    for c in word.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if rest.width() + w > width {
            lines.push(std::mem::take(&mut rest));
        }
        rest.push(c);
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_breaks_between_words_keeps_line_breaks_and_breaks_long_words() {
        assert_eq!(
            wrap_str(
                "Which file should I edit next, the parser or the lexer?",
                20
            ),
            [
                "Which file should I",
                "edit next, the",
                "parser or the lexer?"
            ]
        );
        assert_eq!(wrap_str("one\n\ntwo\tthree", 80), ["one", "", "two three"]);
        assert_eq!(
            wrap_str("see /a/very/long/path/to/a/file ok", 10),
            ["see", "/a/very/lo", "ng/path/to", "/a/file ok"]
        );
        assert_eq!(
            wrap_str("é→✓ wide 字字字", 4),
            ["é→✓", "wide", "字字", "字"]
        );
        for line in wrap_str(&"word ".repeat(40), 13) {
            assert!(line.width() <= 13, "{line:?}");
        }
    }

    fn grid() -> Grid {
        let mut grid = Grid::new(&["JOB", "AGENT", "STATE", "LAST EVENT"]);
        grid.push(vec![
            "a-very-long-job-name-that-goes-on-and-on-and-on".into(),
            "claude".into(),
            "running".into(),
            "progress step 3 of 9: compiling the whole workspace with every feature".into(),
        ]);
        grid.push(vec![
            "short".into(),
            "shell".into(),
            "completed".into(),
            "completed".into(),
        ]);
        grid
    }

    #[test]
    fn a_table_that_fits_is_shown_whole() {
        let mut small = Grid::new(&["A", "B"]);
        small.push(vec!["x".into(), "yy".into()]);
        assert_eq!(small.lines(80), vec!["A  B", "x  yy"]);
    }

    #[test]
    fn no_line_is_wider_than_the_terminal_and_rows_never_wrap() {
        for width in [40u16, 60, 80, 120] {
            let lines = grid().lines(width);
            assert_eq!(lines.len(), 3, "one line per row at {width}: {lines:?}");
            for line in &lines {
                assert!(line.width() <= usize::from(width), "{width}: {line:?}");
            }
        }
        let at80 = grid().lines(80);
        assert!(at80[1].contains('…'), "{at80:?}");
        assert!(at80[1].contains("claude"), "{at80:?}");
        assert!(at80[2].starts_with("short"), "{at80:?}");
    }

    #[test]
    fn multi_line_cells_show_their_first_line_and_wide_chars_count_double() {
        let mut g = Grid::new(&["X", "Y"]);
        g.push(vec![
            "一二三四五六七八九十".into(),
            "line one\nline two".into(),
        ]);
        let lines = g.lines(20);
        assert_eq!(lines.len(), 2);
        assert!(
            lines[1].ends_with("line o…") || lines[1].contains("line"),
            "{lines:?}"
        );
        assert!(!lines[1].contains("two"));
        for line in &lines {
            assert!(line.width() <= 20, "{line:?}");
        }
    }

    #[test]
    fn cut_marks_what_it_cut() {
        assert_eq!(cut_str("abcdef", 6), "abcdef");
        assert_eq!(cut_str("abcdefg", 6), "abcde…");
        assert_eq!(cut_str("abc", 0), "");
        assert_eq!(tail_str("abcdef", 6), "abcdef");
        assert_eq!(tail_str("abcdefg", 6), "…cdefg");
        // Wide characters count two cells.
        assert_eq!(tail_str("ab→界界", 5), "…界界");
        assert_eq!(tail_str("abc", 0), "");
    }
}
