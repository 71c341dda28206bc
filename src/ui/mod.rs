//! What people look at: the one table renderer (`run`'s live table,
//! `status`, `top`), the `top` dashboard, a job's history as text lines,
//! and the one-line summary for tmux's status line.

pub mod history;
pub mod summary;
pub mod table;
pub mod top;

/// The terminal's width in columns (80 when it cannot be known).
pub fn terminal_width() -> u16 {
    ratatui::crossterm::terminal::size()
        .map(|(w, _)| w)
        .ok()
        .filter(|w| *w > 0)
        .unwrap_or(80)
}
