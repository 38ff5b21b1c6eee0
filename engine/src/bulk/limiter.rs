//! One request budget per server, shared by every request of an export.
//!
//! Bulk Data servers throttle: they answer 429 (or 503) with `Retry-After`, and expect the
//! client to slow down as a whole, not one connection at a time. A [`RateLimiter`] keeps, per
//! origin (`scheme://host:port`), the earliest instant the next request may start: requests
//! are spaced by the budget's interval, and a `Retry-After` from any response pauses every
//! request to that origin until it has passed. Files served from another origin (a
//! presigned object-store URL) have their own budget.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use url::Url;

/// The longest spacing or pause (whatever a server or an option asks for): a day.
const LONGEST: Duration = Duration::from_secs(24 * 3600);

/// A shared, per-origin request budget; see the module docs.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Option<Duration>,
    origins: Mutex<HashMap<String, Slot>>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The earliest start of the next request under the budget.
    next: Instant,
    /// No request starts before this (the latest `Retry-After`).
    paused_until: Instant,
}

impl RateLimiter {
    /// A limiter allowing `per_second` requests a second to each origin (`None`: no budget,
    /// only `Retry-After` pauses).
    #[must_use]
    pub fn new(per_second: Option<f64>) -> RateLimiter {
        let interval = per_second
            .filter(|r| *r > 0.0 && r.is_finite())
            .map(|r| Duration::try_from_secs_f64(1.0 / r).unwrap_or(LONGEST).min(LONGEST));
        RateLimiter { interval, origins: Mutex::new(HashMap::new()) }
    }

    /// Waits until a request to `url`'s origin may start, and books its slot.
    pub async fn acquire(&self, url: &Url) {
        let wait = {
            let mut origins = self.origins.lock().expect("never held across a panic");
            let now = Instant::now();
            let slot = origins.entry(origin(url)).or_insert(Slot { next: now, paused_until: now });
            let start = now.max(slot.next).max(slot.paused_until);
            if let Some(interval) = self.interval {
                slot.next = start + interval;
            }
            start - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Pauses every request to `url`'s origin for `pause` from now (a `Retry-After`); a
    /// shorter pause never shortens a longer one already in force.
    pub fn pause(&self, url: &Url, pause: Duration) {
        let mut origins = self.origins.lock().expect("never held across a panic");
        let now = Instant::now();
        let slot = origins.entry(origin(url)).or_insert(Slot { next: now, paused_until: now });
        slot.paused_until = slot.paused_until.max(now + pause.min(LONGEST));
    }
}

/// `scheme://host:port` of a URL.
pub(crate) fn origin(url: &Url) -> String {
    format!("{}://{}:{}", url.scheme(), url.host_str().unwrap_or(""), url.port_or_known_default().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_spaced_by_the_budget_and_a_pause_holds_every_request() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        runtime.block_on(async {
            let limiter = RateLimiter::new(Some(50.0));
            let url = Url::parse("https://fhir.example/fhir/$export").unwrap();
            let start = Instant::now();
            for _ in 0..5 {
                limiter.acquire(&url).await;
            }
            let spaced = start.elapsed();
            assert!(spaced >= Duration::from_millis(80) && spaced < Duration::from_millis(500), "{spaced:?}");

            limiter.pause(&url, Duration::from_millis(150));
            limiter.pause(&url, Duration::from_millis(10));
            let before = Instant::now();
            limiter.acquire(&url).await;
            assert!(before.elapsed() >= Duration::from_millis(140), "{:?}", before.elapsed());

            // Another origin has its own budget.
            let other = Url::parse("https://bucket.s3.example/file.ndjson").unwrap();
            let before = Instant::now();
            limiter.acquire(&other).await;
            assert!(before.elapsed() < Duration::from_millis(10));
        });
    }
}
