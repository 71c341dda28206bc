//! The fleet (SPEC section 13): runners on several hosts take jobs from a
//! pool through an MQTT 5 shared subscription; the broker is the engine —
//! shared subscriptions are the work queue, retained messages the state,
//! Last Will the presence. No coordinator of our own.

pub mod failover;
pub mod joblog;
pub mod message;
pub mod remote;
pub mod runner;
pub mod submit;
pub mod topics;
pub mod unclaimed;
