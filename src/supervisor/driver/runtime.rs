//! What the driver knows about one job besides the core's state: its name
//! and workdir, its event key, the current attempt's window, the agent
//! groups the wrapper recorded, and its screen rules.

use crate::agents::screens::ScreenSet;
use crate::mqtt::sign::EventKey;
use crate::proc::AgentGroup;
use crate::tmux::Launched;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

/// What the driver knows about one job besides the core's state.
pub struct JobRuntime {
    pub name: String,
    pub workdir: PathBuf,
    pub key: EventKey,
    /// The current attempt's window.
    pub(super) window: Option<(u32, Launched)>,
    /// When that window was asked for: a tmux snapshot taken earlier cannot
    /// show it, and must not count it as gone.
    pub(super) launched_at: Option<Instant>,
    /// The agent's process group per attempt, once the wrapper recorded it.
    pub(super) pgid: HashMap<u32, AgentGroup>,
    /// The agent's screen rules, for agents that have waiting rules.
    pub(super) screens: Option<std::sync::Arc<ScreenSet>>,
    /// When its pane was last read for them; whether a read is under way.
    pub(super) screen_read_at: Option<Instant>,
    pub(super) screen_reading: bool,
    /// A fleet job: its pane is saved before the driver closes its window
    /// (the runner publishes it in the job's log for other hosts).
    pub(super) saves_pane: bool,
    /// The job has a budget: its tokens are counted mid-turn too.
    pub(super) has_budget: bool,
}

impl JobRuntime {
    pub fn new(name: String, workdir: PathBuf, key: EventKey) -> JobRuntime {
        JobRuntime {
            name,
            workdir,
            key,
            window: None,
            launched_at: None,
            pgid: HashMap::new(),
            screens: None,
            screen_read_at: None,
            screen_reading: false,
            saves_pane: false,
            has_budget: false,
        }
    }

    /// A job whose attempts have a budget (`max_tokens`, `max_cost_usd`).
    pub fn with_budget(mut self, budget: &crate::model::Budget) -> JobRuntime {
        self.has_budget = budget.max_tokens.is_some() || budget.max_cost_usd.is_some();
        self
    }

    /// The agent's screen rules; without waiting rules its pane is never read.
    /// Saves the pane of each attempt before closing its window.
    pub fn saving_pane(mut self, saves: bool) -> JobRuntime {
        self.saves_pane = saves;
        self
    }

    pub fn with_screens(mut self, screens: ScreenSet) -> JobRuntime {
        self.screens = screens
            .watches_screens()
            .then(|| std::sync::Arc::new(screens));
        self
    }

    /// For an adopted attempt: the window (and agent group) the registry
    /// says it has.
    pub fn adopting(
        mut self,
        attempt: u32,
        window: Option<String>,
        pgid: Option<AgentGroup>,
    ) -> JobRuntime {
        if let Some(window_id) = window {
            self.window = Some((
                attempt,
                Launched {
                    window_id,
                    pane_id: String::new(),
                    pane_pid: 0,
                },
            ));
        }
        if let Some(pgid) = pgid {
            self.pgid.insert(attempt, pgid);
        }
        self
    }
}
