//! The integration tests' one harness: each file here does one part of it
//! (`world` the temp home, config and binary; `mosquitto`, `pki`, `tmux`
//! the real services; `agents` fake agents; `process` guards; `waiting`
//! events and recorded times instead of sleeps). Every process a test
//! starts is stopped by a `Drop` guard, also when the test fails.

#![allow(dead_code, unused_imports)]

pub mod agents;
pub mod fleet;
pub mod mosquitto;
pub mod pki;
pub mod process;
pub mod tmux;
pub mod waiting;
pub mod world;

pub use agents::{program, script, Run, RunLog};
pub use mosquitto::{
    free_port, mosquitto_bin, password_file, start_mosquitto_conf, Mosquitto, ACL,
};
pub use pki::Pki;
pub use process::{alive, Guard, Lines};
pub use tmux::TmuxServer;
pub use waiting::{peak_overlap, unix_now, wait_for, wait_until_unix};
pub use world::{finish, run, td, text, Broker, Home, TmuxDefaults, World, WorldBuilder, BIN};
