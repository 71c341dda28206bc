//! What `run` shows: in a terminal a live table (job, agent, attempt, state,
//! age, last event) redrawn in place, and a summary; otherwise (or with
//! `--json`) one JSON object per transition on stdout.

use crate::model::{FailureInfo, JobId, JobState, LastEvent};
use crate::ui::table::Grid;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

struct Row {
    name: String,
    agent: String,
    attempt: u32,
    max_attempts: u32,
    state: JobState,
    since: Instant,
    last_event: String,
    failure: Option<String>,
}

pub struct View {
    live: bool,
    rows: BTreeMap<JobId, Row>,
    drawn: usize,
}

impl View {
    /// `live`: draw the table (a terminal and no `--json`).
    pub fn new(live: bool) -> View {
        View {
            live,
            rows: BTreeMap::new(),
            drawn: 0,
        }
    }

    pub fn add(&mut self, job: &JobId, name: &str, agent: &str, max_attempts: u32) {
        self.rows.insert(
            job.clone(),
            Row {
                name: name.to_owned(),
                agent: agent.to_owned(),
                attempt: 0,
                max_attempts,
                state: JobState::Pending,
                since: Instant::now(),
                last_event: String::new(),
                failure: None,
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    pub fn transition(
        &mut self,
        job: &JobId,
        name: &str,
        attempt: u32,
        from: JobState,
        to: JobState,
        reason: Option<&str>,
        failure: Option<&FailureInfo>,
    ) {
        if let Some(row) = self.rows.get_mut(job) {
            row.attempt = attempt;
            row.state = to;
            row.since = Instant::now();
            if let Some(f) = failure {
                row.failure = Some(format!("{}: {}", f.kind, f.reason));
            }
        }
        if self.live {
            self.draw();
        } else {
            let line = serde_json::json!({
                "ts": crate::model::event::now_ts(),
                "job": job.as_str(),
                "name": name,
                "attempt": attempt,
                "from": from,
                "to": to,
                "reason": reason,
                "failure": failure,
            });
            say(&line.to_string());
        }
    }

    pub fn event(&mut self, job: &JobId, event: &LastEvent) {
        if let Some(row) = self.rows.get_mut(job) {
            row.last_event = match &event.message {
                Some(m) => format!("{} {}", event.event, m.lines().next().unwrap_or_default()),
                None => event.event.to_string(),
            };
        }
        if self.live {
            self.draw();
        }
    }

    /// No more live table (its terminal is gone): one JSON object per
    /// transition from now on.
    pub fn stop_drawing(&mut self) {
        self.live = false;
    }

    pub fn refresh(&mut self) {
        if self.live {
            self.draw();
        }
    }

    pub fn finish(&mut self) {
        if !self.live {
            return;
        }
        self.draw();
        let failed: Vec<_> = self
            .rows
            .iter()
            .filter_map(|(id, r)| {
                r.failure
                    .as_ref()
                    .filter(|_| r.state != JobState::Completed)
                    .map(|f| (id, f))
            })
            .collect();
        let done = self
            .rows
            .values()
            .filter(|r| r.state == JobState::Completed)
            .count();
        say(&format!("\n{done} of {} jobs completed", self.rows.len()));
        for (id, failure) in failed {
            say(&format!("  {id}: {failure}"));
        }
    }

    fn draw(&mut self) {
        let frame = self.frame(crate::ui::terminal_width());
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(frame.as_bytes());
        let _ = stdout.flush();
    }

    /// The bytes that redraw the table in place at `width` columns.
    fn frame(&mut self, width: u16) -> String {
        let mut out = String::new();
        if self.drawn > 0 {
            // Back to the table's first line, and clear what was below. Every
            // line is cut to the terminal's width, so none wrapped and the
            // count of lines drawn is the count of lines to go back.
            out.push_str(&format!("\x1b[{}A\x1b[J", self.drawn));
        }
        let lines = self.grid().lines(width);
        for line in &lines {
            out.push_str(line);
            out.push('\n');
        }
        self.drawn = lines.len();
        out
    }

    /// The live table's rows.
    fn grid(&self) -> Grid {
        let mut grid = Grid::new(&["JOB", "AGENT", "ATTEMPT", "STATE", "AGE", "LAST EVENT"]);
        for r in self.rows.values() {
            grid.push(vec![
                r.name.clone(),
                r.agent.clone(),
                format!("{}/{}", r.attempt, r.max_attempts),
                r.state.as_str().to_owned(),
                format!("{}s", r.since.elapsed().as_secs()),
                r.last_event.clone(),
            ]);
        }
        grid
    }
}

/// One line on stdout. A reader that went away (`run | head -1`, a closed
/// terminal) must not end supervision: the jobs still run and the registry
/// still records them, so a write error is ignored here.
fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// What `run` says before its jobs start (on stderr, so `--json` output and
/// the live table stay as they are): each job's id, and the two commands
/// that follow the jobs from another terminal.
pub fn announce(jobs: &[(String, String)], attach: &str, program: &str) {
    let mut text = String::new();
    for (id, name) in jobs {
        text.push_str(&format!("job {id} ({name})\n"));
    }
    let watch = match jobs {
        [(id, _)] => format!("{program} watch --job {id}"),
        _ => format!("{program} watch --all"),
    };
    text.push_str(&format!(
        "follow it from another terminal:\n  {attach}    # the agent's window (detach: Ctrl-b d)\n  {watch}    # its events\n\n"
    ));
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
    let _ = stderr.flush();
}

/// How to name this program in a command for another terminal: its name
/// when PATH finds this very binary, else its absolute path.
pub fn program_name(exe: &std::path::Path) -> String {
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            let candidate = dir.join("tmux-delegate");
            candidate.is_file() && same_file(&candidate, exe)
        })
    });
    if on_path {
        "tmux-delegate".to_owned()
    } else {
        crate::tmux::shell_word(&exe.display().to_string())
    }
}

fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use unicode_width::UnicodeWidthStr;

    #[test]
    fn the_live_table_is_redrawn_in_place_and_never_wider_than_80_columns() {
        let mut view = View::new(false);
        let long = "refactor-the-parser-module-and-its-tests-so-that-every-case-is-covered";
        for n in 0..3 {
            let id = JobId::parse(&format!("job-{n}")).expect("id");
            view.add(&id, &format!("{long}-{n}"), "claude", 3);
            view.event(
                &id,
                &LastEvent {
                    event: crate::model::EventKind::Progress,
                    attempt: 1,
                    ts: 0.0,
                    message: Some(
                        "step 3 of 9: compiling every crate of the workspace with all features on"
                            .into(),
                    ),
                },
            );
        }
        let first = view.frame(80);
        assert!(!first.starts_with('\x1b'), "the first frame moves nothing");
        let lines: Vec<&str> = first.lines().collect();
        assert_eq!(lines.len(), 4, "a header and one line per job: {first}");
        for line in &lines {
            assert!(line.width() <= 80, "{} columns: {line}", line.width());
        }
        assert!(lines[1].contains('…'), "{}", lines[1]);
        let second = view.frame(80);
        assert!(second.starts_with("\x1b[4A\x1b[J"), "{second:?}");
        assert_eq!(second.matches("JOB").count(), 1);
    }
}
