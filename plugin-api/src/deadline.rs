//! The bound on every call into a plugin.

use std::time::{Duration, Instant};

use abi_stable::StableAbi;

/// How long a call may take, counted from the moment it starts.
///
/// The host passes one to every call (open, write, ping, describe, close):
/// for a write, what is left of its statement timeout. A plugin:
/// - sets its driver's statement or query timeout to at most
///   [`Deadline::budget`] (or the time [`Deadline::remaining`] says is left);
/// - when the budget runs out, stops waiting and returns a retryable
///   [`crate::ErrorKind::TIMEOUT`] ([`crate::PluginError::deadline_exceeded`]),
///   having rolled back: the host writes the batch again later;
/// - never returns *success* for work it did not commit.
///
/// A call that comes back later than its budget is treated by the host as
/// a [`crate::ErrorKind::TIMEOUT`] if it failed; a success is kept (it is
/// committed), and the host logs that the plugin overran. A call that has
/// not come back once the budget has passed twice over (at least five
/// seconds after it) is one the host cannot stop: it logs so and exits, for
/// the service manager to start it again with a fresh plugin. The events
/// are safe in its journal; the batch is written again.
#[repr(C)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Debug)]
pub struct Deadline {
    budget_ms: u64,
}

impl Deadline {
    /// A budget of `budget`, rounded up to whole milliseconds.
    pub fn after(budget: Duration) -> Self {
        Self { budget_ms: u64::try_from(budget.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX) }
    }

    /// The whole budget of the call.
    pub fn budget(self) -> Duration {
        Duration::from_millis(self.budget_ms)
    }

    /// What is left of the budget of a call that started at `started`;
    /// zero once it is spent.
    pub fn remaining(self, started: Instant) -> Duration {
        self.budget().saturating_sub(started.elapsed())
    }

    /// The budget as a whole number of seconds, at least 1: for drivers
    /// whose timeouts count seconds.
    pub fn whole_seconds(self) -> u64 {
        self.budget_ms.div_ceil(1000).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_round_up() {
        assert_eq!(Deadline::after(Duration::from_micros(1)).budget(), Duration::from_millis(1));
        assert_eq!(Deadline::after(Duration::from_secs(60)).whole_seconds(), 60);
        assert_eq!(Deadline::after(Duration::from_millis(1500)).whole_seconds(), 2);
        assert_eq!(Deadline::after(Duration::ZERO).whole_seconds(), 1);
        assert_eq!(Deadline::after(Duration::MAX).budget(), Duration::from_millis(u64::MAX));
    }
}
