//! Fair shares of a key controller's workers among the stores its keys use.
//!
//! A slow or throttling upstream keeps every reconcile of its keys waiting (latency,
//! `Retry-After`, the store's own rate limit). Without a share its keys would fill every
//! worker, and the keys of healthy stores would queue behind them. So with S stores active,
//! each store is promised `workers / S` reconciles of one kind at once (never less than
//! one); a key over its store's limit is put back for a moment before anything is read or
//! written, and nothing about it changes until its turn comes.
//!
//! The shares are lent, not left idle: a store may use what the others do not hold, less
//! one slot for each other store whose keys are still arriving (admitted within
//! [`ARRIVING`]), so a store draining its last keys does not keep the rest waiting. A store
//! counts as active while a reconcile of its keys is in flight or ended within
//! [`ACTIVE_WINDOW`]: a healthy store whose keys arrive one after another keeps its share in
//! the gaps between them, so the slow store cannot take the freed workers back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::store_registry::StoreKey;

/// How long a store stays active after its last reconcile ended.
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(2);
/// A store admitted a key this recently is still arriving: the others leave it a slot.
pub const ARRIVING: Duration = Duration::from_secs(1);
/// A key put back looks again after this, longer the more keys of its store were put back
/// in the last second (up to [`MAX_BACKOFF`] times), plus as much again at random, so the
/// keys put back together neither return together nor churn through a busy store's queue.
pub const DEFERRED_RETRY: Duration = Duration::from_millis(500);
const MAX_BACKOFF: u32 = 8;

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
    last_admitted: Option<Instant>,
    /// Keys put back since `deferring_since` (a window of one second).
    deferred: u32,
    deferring_since: Instant,
}

impl Usage {
    fn new(now: Instant) -> Self {
        Usage {
            in_flight: 0,
            last_active: now,
            last_admitted: None,
            deferred: 0,
            deferring_since: now,
        }
    }

    /// What this store keeps of the workers while another asks: what it holds, and a slot
    /// more while its keys are arriving, up to its fair share.
    fn reserved(&self, fair: usize, now: Instant) -> usize {
        let arriving = self
            .last_admitted
            .is_some_and(|at| now.duration_since(at) < ARRIVING);
        fair.min(self.in_flight + usize::from(arriving))
    }

    fn defer(&mut self, now: Instant, workers: usize) -> Duration {
        if now.duration_since(self.deferring_since) >= Duration::from_secs(1) {
            self.deferring_since = now;
            self.deferred = 0;
        }
        self.deferred += 1;
        let backoff = (1 + self.deferred / workers as u32).min(MAX_BACKOFF);
        let wait = DEFERRED_RETRY * backoff;
        let spread = getrandom::u64().unwrap_or(0) % wait.as_millis().max(1) as u64;
        wait + Duration::from_millis(spread)
    }
}

/// One admitted reconcile; its store's slot is given back when it is dropped.
#[derive(Debug)]
pub struct Permit<'a> {
    admission: &'a Admission,
    kind: &'static str,
    store: StoreKey,
}

/// A reconcile put back: it looks again after `retry`.
#[derive(Debug)]
pub struct Deferred {
    pub retry: Duration,
}

impl Admission {
    /// Shares of `workers`, the concurrency of each key controller.
    pub fn new(workers: u16) -> Self {
        Admission {
            workers: usize::from(workers.max(1)),
            kinds: Mutex::default(),
        }
    }

    /// A slot for one reconcile of a `kind` key of `store`, or [`Deferred`] while the store
    /// holds what it may.
    pub fn admit(&self, kind: &'static str, store: &StoreKey, now: Instant) -> Result<Permit<'_>, Deferred> {
        let mut kinds = self.kinds.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let stores = kinds.entry(kind).or_default();
        stores
            .retain(|_, usage| usage.in_flight > 0 || now.duration_since(usage.last_active) < ACTIVE_WINDOW);
        let others = stores.keys().filter(|key| *key != store).count();
        let fair = (self.workers / (others + 1)).max(1);
        let reserved: usize = stores
            .iter()
            .filter(|(key, _)| *key != store)
            .map(|(_, usage)| usage.reserved(fair, now))
            .sum();
        let limit = fair.max(self.workers.saturating_sub(reserved));
        let usage = stores.entry(store.clone()).or_insert_with(|| Usage::new(now));
        if usage.in_flight >= limit {
            return Err(Deferred {
                retry: usage.defer(now, self.workers),
            });
        }
        usage.in_flight += 1;
        usage.last_active = now;
        usage.last_admitted = Some(now);
        Ok(Permit {
            admission: self,
            kind,
            store: store.clone(),
        })
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
        assert!(held.iter().all(Result::is_ok));
        assert!(admission.admit("ApiToken", &store("a"), now).is_err());
    }

    #[test]
    fn a_second_store_gets_half_and_the_first_is_held_to_half() {
        let admission = Admission::new(4);
        let now = Instant::now();
        let mut slow: Vec<_> = (0..3)
            .map(|_| admission.admit("ApiToken", &store("slow"), now))
            .collect();
        let healthy = admission.admit("ApiToken", &store("healthy"), now);
        assert!(healthy.is_ok(), "a newcomer always gets a slot below its share");
        slow.pop();
        assert!(
            admission.admit("ApiToken", &store("slow"), now).is_err(),
            "two stores arriving: the slow one is held to 4 / 2 until it drops below"
        );
        slow.pop();
        assert!(admission.admit("ApiToken", &store("slow"), now).is_ok());
    }

    #[test]
    fn a_share_the_other_store_does_not_use_is_lent() {
        let admission = Admission::new(4);
        let start = Instant::now();
        let draining = admission.admit("ApiToken", &store("draining"), start);
        assert!(draining.is_ok());
        let later = start + ARRIVING;
        let busy: Vec<_> = (0..4)
            .map(|_| admission.admit("ApiToken", &store("busy"), later))
            .collect();
        assert_eq!(
            busy.iter().filter(|p| p.is_ok()).count(),
            3,
            "the draining store holds one and no more keys arrive for it: the rest is lent"
        );
        drop(busy);

        let arriving = admission.admit("ApiToken", &store("draining"), later);
        assert!(arriving.is_ok());
        let busy: Vec<_> = (0..4)
            .map(|_| admission.admit("ApiToken", &store("busy"), later))
            .collect();
        assert_eq!(
            busy.iter().filter(|p| p.is_ok()).count(),
            2,
            "a store whose keys are arriving keeps its share"
        );
    }

    #[test]
    fn a_store_keeps_its_share_between_reconciles_for_the_active_window() {
        let admission = Admission::new(4);
        let start = Instant::now();
        drop(admission.admit("ApiToken", &store("healthy"), start));
        let within = start + ARRIVING / 2;
        let slow: Vec<_> = (0..4)
            .map(|_| admission.admit("ApiToken", &store("slow"), within))
            .collect();
        assert_eq!(
            slow.iter().filter(|p| p.is_ok()).count(),
            3,
            "a slot stays free for the store whose keys are arriving"
        );
        drop(slow);

        let after = Instant::now() + ACTIVE_WINDOW;
        let slow: Vec<_> = (0..4)
            .map(|_| admission.admit("ApiToken", &store("slow"), after))
            .collect();
        assert!(
            slow.iter().all(Result::is_ok),
            "an idle store's share is given back"
        );
    }

    #[test]
    fn the_more_keys_a_store_puts_back_the_longer_they_wait() {
        let admission = Admission::new(2);
        let now = Instant::now();
        let _held: Vec<_> = (0..2)
            .map(|_| admission.admit("ApiToken", &store("a"), now))
            .collect();
        let waits: Vec<Duration> = (0..40)
            .map(|_| admission.admit("ApiToken", &store("a"), now).unwrap_err().retry)
            .collect();
        assert!(waits[0] < DEFERRED_RETRY * 2, "{:?}", waits[0]);
        assert!(waits[39] >= DEFERRED_RETRY * MAX_BACKOFF, "{:?}", waits[39]);
        assert!(waits.iter().all(|w| *w < DEFERRED_RETRY * MAX_BACKOFF * 2));
    }

    #[test]
    fn kinds_have_their_own_workers_and_no_store_is_shut_out() {
        let admission = Admission::new(2);
        let now = Instant::now();
        let tokens: Vec<_> = (0..2)
            .map(|_| admission.admit("ApiToken", &store("a"), now))
            .collect();
        assert!(tokens.iter().all(Result::is_ok));
        assert!(admission.admit("ApiClient", &store("a"), now).is_ok());
        let crowded: Vec<_> = ["b", "c", "d"]
            .iter()
            .map(|name| admission.admit("ApiToken", &store(name), now))
            .collect();
        assert!(
            crowded.iter().all(Result::is_ok),
            "more stores than workers: each still gets one"
        );
    }
}
