//! The MQTT layer: topics and ids, the event codec, signatures, connecting,
//! and the two things the commands do with a broker: publish one event and
//! receive events; the Last Will and the outbox for a client that must
//! never wait on the broker. The only code (with `broker/`) that names rumqttc.

pub mod client;
pub mod connect;
pub mod event;
pub mod handoff;
pub mod outbox;
pub mod sign;
pub mod topic;

/// The MQTT client library's log target: `main` turns its warnings about
/// refused publishes down, since the commands report those themselves.
pub const CLIENT_LOG_TARGET: &str = "rumqttc";
