//! Supervision: a sans-IO core (`core`, `policy`) and the tokio driver that
//! feeds it MQTT events, tmux observations, signals and the clock, and
//! performs its effects.

pub mod admit;
pub mod clock;
pub mod core;
pub mod detach;
pub mod driver;
pub mod hangup;
pub mod ownership;
pub mod policy;
pub mod queue;
pub mod queue_plan;
pub mod send;
pub mod session;
pub mod slots;
pub mod stop;
pub mod submission;
pub mod view;
