//! Failed-authentication limits per client address: a token bucket per address (an IPv6 client counts by
//! its /64, which one host usually owns whole). Every refused token takes one from its address's bucket;
//! an empty bucket refuses that address's requests with 429 until it refills, whatever token they carry.
//! A request with no token at all costs nothing (a page opened without its link is not guessing).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses tracked at most; when full, buckets that refilled are dropped first, then the oldest.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct FailureLimiter {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

/// The address a client is counted under (an IPv6 client by its /64).
pub(crate) use crate::net::client_key;

impl FailureLimiter {
    /// `burst` failures at once, refilling at `per_minute`; `burst == 0` turns the limit off.
    pub fn new(burst: u32, per_minute: u32) -> Self {
        Self { burst: burst.into(), per_second: f64::from(per_minute) / 60.0, buckets: Mutex::new(HashMap::new()) }
    }

    fn refilled(&self, b: Bucket, now: Instant) -> Bucket {
        let tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * self.per_second).min(self.burst);
        Bucket { tokens, at: now }
    }

    /// `Some(wait)` while `ip` has used up its failures: how long until it may try again.
    pub fn blocked(&self, ip: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let ip = client_key(ip?);
        if self.burst == 0.0 {
            return None;
        }
        let buckets = self.buckets.lock().expect("limiter lock");
        let b = self.refilled(*buckets.get(&ip)?, now);
        if b.tokens >= 1.0 {
            return None;
        }
        let wait = if self.per_second > 0.0 { (1.0 - b.tokens) / self.per_second } else { 3600.0 };
        Some(Duration::from_secs_f64(wait.ceil().max(1.0)))
    }

    /// Counts one refused token from `ip`.
    pub fn failed(&self, ip: Option<IpAddr>, now: Instant) {
        let Some(ip) = ip.map(client_key) else { return };
        if self.burst == 0.0 {
            return;
        }
        let mut buckets = self.buckets.lock().expect("limiter lock");
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&ip) {
            let burst = self.burst;
            buckets.retain(|_, b| self.refilled(*b, now).tokens < burst);
            if buckets.len() >= MAX_TRACKED
                && let Some(oldest) = buckets.iter().min_by_key(|(_, b)| b.at).map(|(k, _)| *k)
            {
                buckets.remove(&oldest);
            }
        }
        let b = buckets.get(&ip).map_or(Bucket { tokens: self.burst, at: now }, |b| self.refilled(*b, now));
        buckets.insert(ip, Bucket { tokens: (b.tokens - 1.0).max(0.0), at: now });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    #[test]
    fn an_address_is_blocked_after_its_burst_and_refills() {
        let l = FailureLimiter::new(3, 6); // one back every 10 s
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.blocked(ip("192.0.2.1"), t0), None);
            l.failed(ip("192.0.2.1"), t0);
        }
        assert_eq!(l.blocked(ip("192.0.2.1"), t0), Some(Duration::from_secs(10)));
        assert_eq!(l.blocked(ip("192.0.2.2"), t0), None, "another address is not affected");
        assert_eq!(l.blocked(ip("192.0.2.1"), t0 + Duration::from_secs(4)), Some(Duration::from_secs(6)));
        assert_eq!(l.blocked(ip("192.0.2.1"), t0 + Duration::from_secs(10)), None);
        assert_eq!(l.blocked(None, t0), None, "no address (tests over a bare router) is never blocked");
    }

    #[test]
    fn ipv6_counts_by_slash_64_and_mapped_v4_as_v4() {
        let l = FailureLimiter::new(1, 1);
        let t0 = Instant::now();
        l.failed(ip("2001:db8:1:2::1"), t0);
        assert!(l.blocked(ip("2001:db8:1:2::ffff"), t0).is_some());
        assert!(l.blocked(ip("2001:db8:1:3::1"), t0).is_none());
        l.failed(ip("::ffff:192.0.2.9"), t0);
        assert!(l.blocked(ip("192.0.2.9"), t0).is_some());
    }

    #[test]
    fn zero_burst_turns_it_off_and_the_table_is_bounded() {
        let off = FailureLimiter::new(0, 10);
        let t0 = Instant::now();
        off.failed(ip("192.0.2.1"), t0);
        assert_eq!(off.blocked(ip("192.0.2.1"), t0), None);
        let l = FailureLimiter::new(5, 10);
        for i in 0..(MAX_TRACKED as u32 + 50) {
            l.failed(Some(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i))), t0);
        }
        assert!(l.buckets.lock().expect("lock").len() <= MAX_TRACKED);
    }
}
