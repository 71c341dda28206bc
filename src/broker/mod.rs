//! Brokers tmux-delegate runs or sets up: the embedded zero-setup broker
//! (rumqttd, behind the `embedded-broker` feature) and the production
//! Mosquitto bundle (`broker setup`).

#[cfg(feature = "embedded-broker")]
pub mod embedded;
pub mod passwd;
pub mod pki;
pub mod setup;
