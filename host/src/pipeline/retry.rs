//! The retry policy: exponential backoff with jitter, shared by every
//! retry in the middleware (one event's next try, the worker's pause while
//! the HIS is unreachable, reopening a writer).
//!
//! Whether to retry at all is not decided here: the plugin classifies each
//! error as retryable or permanent.

use std::{
    hash::{BuildHasher, RandomState},
    time::Duration,
};

use crate::config::SyncConfig;

/// Delays that grow by `factor` from `initial` up to `max`, each spread by
/// ±20% so that many waiters do not wake at the same moment.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The delay before the first retry.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
    /// Each delay is the previous one times this (2 doubles).
    pub factor: f64,
    /// Where the ±20% comes from: `None` draws it at random (the
    /// middleware); `Some(seed)` derives it from the seed and the attempt,
    /// so that the simulator replays the same delays from the same seed.
    pub jitter_seed: Option<u64>,
}

impl Backoff {
    /// The policy from `sync.retry_initial_delay_ms`, `sync.retry_factor`
    /// and `sync.retry_max_delay_secs`.
    pub fn from_config(sync: &SyncConfig) -> Self {
        Self {
            initial: Duration::from_millis(sync.retry_initial_delay_ms),
            max: Duration::from_secs(sync.retry_max_delay_secs),
            factor: sync.retry_factor,
            jitter_seed: None,
        }
    }

    /// The delay before retry number `attempt` (1 for the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let growth = self.factor.powi(attempt.saturating_sub(1).min(200) as i32);
        let base = Duration::from_secs_f64((self.initial.as_secs_f64() * growth).min(self.max.as_secs_f64()));
        // A random factor in [0.8, 1.2), from the std hasher's random keys.
        let random = match self.jitter_seed {
            None => RandomState::new().hash_one(attempt),
            Some(seed) => seed.wrapping_add(u64::from(attempt)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7,
        } % 1000;
        let factor = 0.8 + random as f64 * 0.0004;
        base.mul_f64(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_within_bounds() {
        let backoff =
            Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(300), factor: 2.0, jitter_seed: None };
        for attempt in 1..60 {
            let expected = (1u64 << (attempt - 1).min(20)).min(300) as f64;
            let delay = backoff.delay(attempt).as_secs_f64();
            assert!(
                delay >= expected * 0.8 - 1e-9 && delay <= (expected * 1.2).min(300.0),
                "attempt {attempt}: {delay}"
            );
        }
    }
}
