//! Per-store token buckets, shared by every controller that talks to the same store.
//!
//! Built on `governor` (GCRA, lock-free, the limiter behind tower-governor): a hand-rolled
//! bucket would need its own proofs of fairness and timing under contention.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultDirectRateLimiter, Quota};

use crate::api::RateLimit;

/// Used when a store sets no `rateLimit`: gentle enough for any vendor's published limits.
pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 10;
/// The `burst` a store gets when its `rateLimit` leaves it unset (the CRD's documented default).
pub const DEFAULT_BURST: u32 = 10;

/// The bucket of one store.
#[derive(Debug)]
pub struct StoreRateLimiter {
    quota: (u32, u32),
    limiter: DefaultDirectRateLimiter,
}

impl StoreRateLimiter {
    pub fn new(requests_per_second: u32, burst: u32) -> Self {
        let per_second = NonZeroU32::new(requests_per_second.max(1)).expect("clamped to at least 1");
        let burst = NonZeroU32::new(burst.max(1)).expect("clamped to at least 1");
        Self {
            quota: (per_second.get(), burst.get()),
            limiter: DefaultDirectRateLimiter::direct(Quota::per_second(per_second).allow_burst(burst)),
        }
    }

    fn from_spec(spec: Option<&RateLimit>) -> Self {
        match spec {
            Some(limit) => Self::new(limit.requests_per_second, limit.burst.unwrap_or(DEFAULT_BURST)),
            None => Self::new(DEFAULT_REQUESTS_PER_SECOND, DEFAULT_BURST),
        }
    }

    /// Waits until the bucket allows one more request.
    pub async fn acquire(&self) {
        self.limiter.until_ready().await;
    }
}

/// Hands out one bucket per store, so clients rebuilt after a Secret change, and different
/// controllers using the same store, all draw from the same bucket.
#[derive(Clone, Debug, Default)]
pub struct RateLimiters {
    by_store: Arc<Mutex<HashMap<String, Arc<StoreRateLimiter>>>>,
}

impl RateLimiters {
    /// The bucket for `store` (any stable identity, e.g. `CredentialStore/ns/name`), replaced
    /// when the store's `rateLimit` changed.
    pub fn for_store(&self, store: &str, spec: Option<&RateLimit>) -> Arc<StoreRateLimiter> {
        let wanted = StoreRateLimiter::from_spec(spec);
        let mut by_store = self.by_store.lock().expect("rate limiter registry lock poisoned");
        match by_store.get(store) {
            Some(existing) if existing.quota == wanted.quota => existing.clone(),
            _ => {
                let limiter = Arc::new(wanted);
                by_store.insert(store.to_owned(), limiter.clone());
                limiter
            }
        }
    }

    /// Forgets a deleted store's bucket.
    pub fn remove(&self, store: &str) {
        self.by_store
            .lock()
            .expect("rate limiter registry lock poisoned")
            .remove(store);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn same_store_shares_a_bucket_until_its_quota_changes() {
        let limiters = RateLimiters::default();
        let first = limiters.for_store("CredentialStore/a/s", None);
        let again = limiters.for_store("CredentialStore/a/s", None);
        assert!(Arc::ptr_eq(&first, &again));
        let other = limiters.for_store("CredentialStore/b/s", None);
        assert!(!Arc::ptr_eq(&first, &other));
        let changed = limiters.for_store(
            "CredentialStore/a/s",
            Some(&RateLimit {
                requests_per_second: 5,
                burst: None,
            }),
        );
        assert!(!Arc::ptr_eq(&first, &changed));
        assert_eq!(changed.quota, (5, DEFAULT_BURST));
    }

    #[tokio::test]
    async fn burst_passes_at_once_then_the_sustained_rate_applies() {
        let limiter = StoreRateLimiter::new(20, 5);
        let started = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        assert!(
            started.elapsed() < Duration::from_millis(40),
            "the burst must not wait"
        );
        for _ in 0..4 {
            limiter.acquire().await;
        }
        // Four more at 20/s need about 200 ms.
        assert!(
            started.elapsed() >= Duration::from_millis(150),
            "{:?}",
            started.elapsed()
        );
    }
}
