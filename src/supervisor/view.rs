//! What `run` shows: in a terminal a live table (job, agent, attempt, state,
//! age, last event) redrawn in place, and a summary; otherwise (or with
//! `--json`) one JSON object per transition on stdout.

use crate::mqtt::topic::JobId;
use crate::registry::{FailureInfo, JobState, LastEvent};
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
                "ts": crate::mqtt::event::now_ts(),
                "job": job.as_str(),
                "name": name,
                "attempt": attempt,
                "from": from,
                "to": to,
                "reason": reason,
                "failure": failure,
            });
            println!("{line}");
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
        println!("\n{done} of {} jobs completed", self.rows.len());
        for (id, failure) in failed {
            println!("  {id}: {failure}");
        }
    }

    fn draw(&mut self) {
        let mut out = String::new();
        if self.drawn > 0 {
            // Back to the table's first line, and clear what was below.
            out.push_str(&format!("\x1b[{}A\x1b[J", self.drawn));
        }
        let header = ["JOB", "AGENT", "ATTEMPT", "STATE", "AGE", "LAST EVENT"];
        let rows: Vec<[String; 6]> = self
            .rows
            .values()
            .map(|r| {
                [
                    r.name.clone(),
                    r.agent.clone(),
                    format!("{}/{}", r.attempt, r.max_attempts),
                    r.state.as_str().to_owned(),
                    format!("{}s", r.since.elapsed().as_secs()),
                    r.last_event.chars().take(50).collect(),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut line = |cells: [&str; 6]| {
            for (i, cell) in cells.iter().enumerate() {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
            out.push('\n');
        };
        line(header);
        for r in &rows {
            line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]);
        }
        self.drawn = rows.len() + 1;
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
    }
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
