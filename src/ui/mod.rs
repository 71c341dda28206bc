//! What people look at: the one table renderer (`run`'s live table,
//! `status`, `top`), the `top` dashboard, a job's history as text lines,
//! and the one-line summary for tmux's status line.

pub mod history;
pub mod summary;
pub mod table;
pub mod top;

use crate::registry::Record;

/// "IN/OUT" tokens over the job's attempts, when its agent reported them,
/// and their cost where `[pricing]` prices them (`status`'s and `top`'s
/// TOKENS column).
pub fn tokens(record: &Record) -> String {
    crate::model::Work::of(&record.attempts)
        .usage
        .map(|u| match u.cost_usd {
            Some(cost) => format!("{}/{} ${cost:.4}", u.input_tokens, u.output_tokens),
            None => format!("{}/{}", u.input_tokens, u.output_tokens),
        })
        .unwrap_or_default()
}

/// The terminal's width in columns (80 when it cannot be known).
pub fn terminal_width() -> u16 {
    ratatui::crossterm::terminal::size()
        .map(|(w, _)| w)
        .ok()
        .filter(|w| *w > 0)
        .unwrap_or(80)
}
