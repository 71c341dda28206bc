//! Waiting on events instead of sleeping: poll a condition with a limit,
//! read the clock the way the registry records it, and compute how many
//! runs overlapped from their recorded start and end times (no sampler).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Polls `check` every 10 ms until it returns Some or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Now in Unix seconds, as the registry writes `ts`.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// Waits until the clock has passed `at` (Unix seconds, a recorded time);
/// panics if that is more than `limit` away.
pub fn wait_until_unix(at: f64, limit: Duration) {
    let reached = wait_for(limit, || (unix_now() > at).then_some(()));
    assert!(reached.is_some(), "{at} is more than {limit:?} away");
}

/// The most runs at the same time, from `(start, end)` pairs; a run with
/// no end is still going. An end at the same instant as a start counts
/// first, so back-to-back runs do not overlap.
pub fn peak_overlap(runs: impl IntoIterator<Item = (u128, Option<u128>)>) -> usize {
    let mut edges: Vec<(u128, i32)> = Vec::new();
    for (start, end) in runs {
        edges.push((start, 1));
        edges.push((end.unwrap_or(u128::MAX), -1));
    }
    edges.sort();
    let (mut now, mut peak) = (0_i32, 0_i32);
    for (_, delta) in edges {
        now += delta;
        peak = peak.max(now);
    }
    usize::try_from(peak).unwrap_or(0)
}
