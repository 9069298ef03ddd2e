//! Fair shares of a key controller's workers among the stores its keys use.
//!
//! A slow or throttling upstream keeps every reconcile of its keys waiting (latency,
//! `Retry-After`, the store's own rate limit). Without a share its keys would fill every
//! worker, and the keys of healthy stores would queue behind them. So a store may hold at
//! most `workers / active stores` reconciles of one kind at once (never less than one); a
//! key over its store's share is put back for a moment before anything is read or written,
//! and nothing about it changes until its turn comes.
//!
//! A store counts as active while a reconcile of its keys is in flight or ended within
//! [`ACTIVE_WINDOW`]: a healthy store whose keys arrive one after another keeps its share in
//! the gaps between them, so the slow store cannot take the freed workers back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::store_registry::StoreKey;

/// How long a store stays active after its last reconcile ended.
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(2);
/// A key over its store's share looks again after this, plus up to as much again at random,
/// so the keys put back together do not all return together.
pub const DEFERRED_RETRY: Duration = Duration::from_millis(500);

/// The in-flight reconciles of every kind, by store.
#[derive(Debug)]
pub struct Admission {
    workers: usize,
    kinds: Mutex<HashMap<&'static str, HashMap<StoreKey, Usage>>>,
}

#[derive(Debug)]
struct Usage {
    in_flight: usize,
    last_active: Instant,
}

/// One admitted reconcile; its store's slot is given back when it is dropped.
#[derive(Debug)]
pub struct Permit<'a> {
    admission: &'a Admission,
    kind: &'static str,
    store: StoreKey,
}

impl Admission {
    /// Shares of `workers`, the concurrency of each key controller.
    pub fn new(workers: u16) -> Self {
        Admission {
            workers: usize::from(workers.max(1)),
            kinds: Mutex::default(),
        }
    }

    /// A slot for one reconcile of a `kind` key of `store`, or `None` while the store holds
    /// its share.
    pub fn admit(&self, kind: &'static str, store: &StoreKey, now: Instant) -> Option<Permit<'_>> {
        let mut kinds = self.kinds.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let stores = kinds.entry(kind).or_default();
        stores
            .retain(|_, usage| usage.in_flight > 0 || now.duration_since(usage.last_active) < ACTIVE_WINDOW);
        let others = stores.keys().filter(|key| *key != store).count();
        let share = (self.workers / (others + 1)).max(1);
        let usage = stores.entry(store.clone()).or_insert(Usage {
            in_flight: 0,
            last_active: now,
        });
        if usage.in_flight >= share {
            return None;
        }
        usage.in_flight += 1;
        usage.last_active = now;
        Some(Permit {
            admission: self,
            kind,
            store: store.clone(),
        })
    }

    /// When a key put back looks again.
    pub fn retry_after() -> Duration {
        let spread = getrandom::u64().unwrap_or(0) % DEFERRED_RETRY.as_millis() as u64;
        DEFERRED_RETRY + Duration::from_millis(spread)
    }

    fn release(&self, kind: &'static str, store: &StoreKey) {
        let mut kinds = self.kinds.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(usage) = kinds.get_mut(kind).and_then(|stores| stores.get_mut(store)) {
            usage.in_flight = usage.in_flight.saturating_sub(1);
            usage.last_active = Instant::now();
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.admission.release(self.kind, &self.store);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{StoreKind, StoreRef};

    fn store(name: &str) -> StoreKey {
        let store_ref = StoreRef {
            kind: StoreKind::CredentialStore,
            name: name.into(),
        };
        StoreKey::referenced("team", &store_ref)
    }

    #[test]
    fn a_lone_store_may_use_every_worker() {
        let admission = Admission::new(4);
        let now = Instant::now();
        let held: Vec<_> = (0..4)
            .map(|_| admission.admit("ApiToken", &store("a"), now))
            .collect();
        assert!(held.iter().all(Option::is_some));
        assert!(admission.admit("ApiToken", &store("a"), now).is_none());
    }

    #[test]
    fn a_second_store_gets_half_and_the_first_is_held_to_half() {
        let admission = Admission::new(4);
        let now = Instant::now();
        let mut slow: Vec<_> = (0..3)
            .map(|_| admission.admit("ApiToken", &store("slow"), now))
            .collect();
        let healthy = admission.admit("ApiToken", &store("healthy"), now);
        assert!(healthy.is_some(), "a newcomer always gets a slot below its share");
        slow.pop();
        assert!(
            admission.admit("ApiToken", &store("slow"), now).is_none(),
            "two stores active: the slow one is held to 4 / 2 until it drops below"
        );
        slow.pop();
        assert!(admission.admit("ApiToken", &store("slow"), now).is_some());
    }

    #[test]
    fn a_store_keeps_its_share_between_reconciles_for_the_active_window() {
        let admission = Admission::new(4);
        let start = Instant::now();
        drop(admission.admit("ApiToken", &store("healthy"), start));
        let within = start + ACTIVE_WINDOW / 2;
        let slow: Vec<_> = (0..3)
            .map(|_| admission.admit("ApiToken", &store("slow"), within))
            .collect();
        assert_eq!(slow.iter().filter(|p| p.is_some()).count(), 2);
        drop(slow);

        let after = Instant::now() + ACTIVE_WINDOW;
        let slow: Vec<_> = (0..4)
            .map(|_| admission.admit("ApiToken", &store("slow"), after))
            .collect();
        assert!(
            slow.iter().all(Option::is_some),
            "an idle store's share is given back"
        );
    }

    #[test]
    fn kinds_have_their_own_workers_and_no_store_is_shut_out() {
        let admission = Admission::new(2);
        let now = Instant::now();
        let tokens: Vec<_> = (0..2)
            .map(|_| admission.admit("ApiToken", &store("a"), now))
            .collect();
        assert!(tokens.iter().all(Option::is_some));
        assert!(admission.admit("ApiClient", &store("a"), now).is_some());
        let crowded: Vec<_> = ["b", "c", "d"]
            .iter()
            .map(|name| admission.admit("ApiToken", &store(name), now))
            .collect();
        assert!(
            crowded.iter().all(Option::is_some),
            "more stores than workers: each still gets one"
        );
    }
}
