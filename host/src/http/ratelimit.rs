//! `server.rate_limit`: token buckets per client address.
//!
//! Each address may send `burst` requests at once, then
//! `requests_per_second` on average. Over that, it gets 429 with a
//! `Retry-After` saying when the next request would be allowed. IPv6
//! addresses count by their /64, the block one subscriber usually holds, so
//! that one client cannot dodge the limit by hopping addresses.
//!
//! Every address has two buckets: one that requests which proved who they
//! are spend (or every request, when `server.auth` is not set), and one
//! that failed authentication spends. Behind a proxy on this server every
//! client is 127.0.0.1: a prober's bad signatures then empty only the
//! second bucket, and Buktor's signed events still get through.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::http::StatusCode;

use crate::{config::RateLimitConfig, http::refusal::Refusal};

/// Above this many tracked addresses, the idle ones (full buckets) are
/// forgotten, so that a flood from many addresses cannot grow memory
/// without bound.
const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// Which bucket a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Spend {
    /// A request that authenticated, or any request without `server.auth`.
    Sender,
    /// A request that failed authentication.
    Failure,
}

/// The buckets, shared by every connection.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<(IpAddr, Spend), Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// A limiter for `config`.
    pub fn new(config: &RateLimitConfig) -> Self {
        Self {
            per_second: config.requests_per_second,
            burst: f64::from(config.burst),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token from `address`'s `spend` bucket at `now`, or says how
    /// long until one is there.
    pub fn take(&self, address: IpAddr, spend: Spend, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_TRACKED_ADDRESSES {
            buckets.retain(|_, bucket| self.refilled(*bucket, now) < self.burst);
        }
        let bucket = buckets.entry((client_of(address), spend)).or_insert(Bucket { tokens: self.burst, updated: now });
        bucket.tokens = self.refilled(*bucket, now);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.per_second))
        }
    }

    /// Spends a token for a request from `address`, or refuses it with 429
    /// and `Retry-After` (whole seconds, at least 1).
    pub fn admit(&self, address: IpAddr, spend: Spend) -> Result<(), Refusal> {
        self.take(address, spend, Instant::now()).map_err(|wait| {
            let retry_after_secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            tracing::debug!(%address, ?spend, "rate limited for {retry_after_secs}s");
            let what = match spend {
                Spend::Sender => "requests",
                Spend::Failure => "requests that failed authentication",
            };
            Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "more than {} {what} per second from {} (server.rate_limit); retry after {retry_after_secs} s",
                    self.per_second,
                    client_of(address)
                ),
            )
            .retry_after(retry_after_secs)
        })
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        (bucket.tokens + elapsed * self.per_second).min(self.burst)
    }
}

/// A refusal for a request that failed authentication, after it spent
/// its token: the 429 when the failures' bucket is empty, else `refusal`.
pub fn failed(limiter: Option<&RateLimiter>, address: IpAddr, refusal: Refusal) -> Refusal {
    match limiter.map(|limiter| limiter.admit(address, Spend::Failure)) {
        Some(Err(limited)) => limited,
        _ => refusal,
    }
}

/// The address a limit is counted against: IPv4 as it is (also when
/// written as IPv6), IPv6 by its /64.
pub fn client_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: f64, burst: u32) -> RateLimiter {
        RateLimiter::new(&RateLimitConfig { requests_per_second: per_second, burst })
    }

    #[test]
    fn a_burst_then_the_rate() {
        let limiter = limiter(2.0, 3);
        let start = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.take(ip, Spend::Sender, start).is_ok());
        }
        let wait = limiter.take(ip, Spend::Sender, start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(limiter.take(ip, Spend::Sender, start + Duration::from_millis(499)).is_err());
        assert!(limiter.take(ip, Spend::Sender, start + Duration::from_millis(1000)).is_ok());
        // Another address has its own bucket.
        assert!(limiter.take("192.0.2.2".parse().unwrap(), Spend::Sender, start).is_ok());
        // So do the same address's failures.
        assert!(limiter.take(ip, Spend::Failure, start).is_ok());
    }

    #[test]
    fn failed_authentication_never_spends_the_senders_bucket() {
        let limiter = limiter(1.0, 2);
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let now = Instant::now();
        for _ in 0..50 {
            let _ = limiter.take(proxy, Spend::Failure, now);
        }
        assert!(limiter.take(proxy, Spend::Failure, now).is_err());
        assert!(limiter.take(proxy, Spend::Sender, now).is_ok());
        assert!(limiter.take(proxy, Spend::Sender, now).is_ok());
        assert!(limiter.take(proxy, Spend::Sender, now).is_err());
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let limiter = limiter(1.0, 1);
        let now = Instant::now();
        assert!(limiter.take("2001:db8:1:2::1".parse().unwrap(), Spend::Sender, now).is_ok());
        assert!(limiter.take("2001:db8:1:2:ffff::9".parse().unwrap(), Spend::Sender, now).is_err());
        assert!(limiter.take("2001:db8:1:3::1".parse().unwrap(), Spend::Sender, now).is_ok());
        assert!(limiter.take("198.51.100.7".parse().unwrap(), Spend::Sender, now).is_ok());
        assert!(limiter.take("::ffff:198.51.100.7".parse().unwrap(), Spend::Sender, now).is_err());
    }

    #[test]
    fn idle_addresses_are_forgotten_when_many_are_tracked() {
        let limiter = limiter(1000.0, 1);
        let start = Instant::now();
        for i in 0..MAX_TRACKED_ADDRESSES as u32 {
            let _ = limiter.take(IpAddr::V4(i.into()), Spend::Sender, start);
        }
        // A millisecond later every bucket has refilled: all are idle.
        let _ = limiter.take("203.0.113.1".parse().unwrap(), Spend::Sender, start + Duration::from_millis(1));
        assert_eq!(limiter.buckets.lock().unwrap().len(), 1);
    }
}
