//! The MQTT layer: topics and ids, the event codec, signatures, connecting,
//! and the two things the commands do with a broker: publish one event and
//! receive events.

pub mod client;
pub mod connect;
pub mod event;
pub mod handoff;
pub mod sign;
pub mod topic;
