//! Time, in the two forms the middleware stores.

/// Now, as RFC 3339 in UTC with milliseconds: `2026-11-27T07:31:47.123Z`.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Now, as unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Seconds from `rfc3339` (as stored) to `now_ms`; never negative (a clock
/// set back), `None` if it does not parse.
pub fn age_secs(rfc3339: &str, now_ms: i64) -> Option<f64> {
    let at = chrono::DateTime::parse_from_rfc3339(rfc3339).ok()?;
    Some((now_ms.saturating_sub(at.timestamp_millis()) as f64 / 1000.0).max(0.0))
}

/// The time as the sync worker sees it: the system's in the middleware,
/// a virtual one that the simulator moves (`pipeline::simulation`).
pub trait Clock: Send + Sync {
    /// Now, as unix milliseconds.
    fn now_ms(&self) -> i64;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}
