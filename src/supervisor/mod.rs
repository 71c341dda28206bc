//! Supervision: a sans-IO core (`core`, `policy`) and the tokio driver that
//! feeds it MQTT events, tmux observations, signals and the clock, and
//! performs its effects.

pub mod admit;
pub mod clock;
pub mod core;
pub mod driver;
pub mod policy;
pub mod queue;
pub mod slots;
pub mod stop;
pub mod view;
