//! Monotonic instants (the core's clock) to Unix seconds (what a record
//! keeps) and back: a checkpoint must mean the same moment to the next
//! supervisor, whose `Instant`s have nothing in common with this one's.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `at` as Unix seconds.
pub fn to_unix(at: Instant) -> f64 {
    let now = Instant::now();
    let wall = unix_now();
    if at >= now {
        wall + (at - now).as_secs_f64()
    } else {
        wall - (now - at).as_secs_f64()
    }
}

/// Unix seconds `ts` as an instant of this process (the past is clamped to
/// the earliest instant `now` can express, which is still in the past).
pub fn from_unix(ts: f64, now: Instant) -> Instant {
    let offset = ts - unix_now();
    let magnitude = std::time::Duration::try_from_secs_f64(offset.abs()).unwrap_or_default();
    if offset >= 0.0 {
        now + magnitude
    } else {
        now.checked_sub(magnitude).unwrap_or(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn instants_survive_the_round_trip_through_unix_seconds() {
        let now = Instant::now();
        for at in [
            now + Duration::from_secs(90),
            now - Duration::from_millis(1500),
        ] {
            let back = from_unix(to_unix(at), now);
            let error = if back > at { back - at } else { at - back };
            assert!(error < Duration::from_millis(50), "{error:?}");
        }
    }
}
