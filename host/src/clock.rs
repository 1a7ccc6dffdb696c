//! Time, in the two forms the middleware stores.

/// Now, as RFC 3339 in UTC with milliseconds: `2026-11-27T07:31:47.123Z`.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Now, as unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
