//! Retry policy arithmetic (pure): exponential backoff with a cap, and the
//! "full jitter" draw supplied by the caller so tests stay deterministic.

use crate::model::RetryPolicy;
use std::time::Duration;

/// The backoff ceiling before the `n`-th retry (n = 1 after the first
/// failure): `backoff * multiplier^(n-1)`, capped at `backoff_max`.
pub fn backoff_ceiling(policy: &RetryPolicy, n: u32) -> Duration {
    let exponent = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
    let secs = policy.backoff.as_secs_f64() * policy.multiplier.powi(exponent);
    let capped = secs.min(policy.backoff_max.as_secs_f64());
    Duration::try_from_secs_f64(capped).unwrap_or(policy.backoff_max)
}

/// Full jitter: a uniform draw in `[0, ceiling]`, from a `unit` in `[0, 1]`.
pub fn full_jitter(ceiling: Duration, unit: f64) -> Duration {
    ceiling.mul_f64(unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FailureKind;

    fn policy(backoff: u64, multiplier: f64, max: u64) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            backoff: Duration::from_secs(backoff),
            multiplier,
            backoff_max: Duration::from_secs(max),
            on: vec![FailureKind::Error],
            conversation: Default::default(),
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = policy(5, 2.0, 30);
        let got: Vec<u64> = (1..=5).map(|n| backoff_ceiling(&p, n).as_secs()).collect();
        assert_eq!(got, vec![5, 10, 20, 30, 30]);
        assert_eq!(backoff_ceiling(&policy(0, 2.0, 30), 3), Duration::ZERO);
        assert_eq!(backoff_ceiling(&p, 10_000), Duration::from_secs(30));
    }

    #[test]
    fn jitter_stays_within_the_ceiling() {
        let ceiling = Duration::from_secs(10);
        assert_eq!(full_jitter(ceiling, 0.0), Duration::ZERO);
        assert_eq!(full_jitter(ceiling, 1.0), ceiling);
        assert_eq!(full_jitter(ceiling, 7.0), ceiling);
        assert_eq!(full_jitter(ceiling, 0.5), Duration::from_secs(5));
    }
}
