//! Time, in the two forms the middleware stores.

/// Now, as RFC 3339 in UTC with milliseconds: `2026-11-27T07:31:47.123Z`.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Now, as unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
