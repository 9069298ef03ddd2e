//! The key resources of every kind, as the controllers' caches hold them: what a store's
//! usage counts and a policy's per-namespace quota are computed from, and the channel
//! that tells a store controller its usage changed.

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use super::conditions::{self, reason};
use super::key_run::KeyResource;
use super::store_registry::StoreKey;
use crate::api::{
    ApiClient, ApiToken, ClusterCredentialStore, CredentialStore, ServiceAccountKey, StoreUsage,
};

/// One key resource, as far as a store is concerned.
struct Entry {
    kind: &'static str,
    namespace: String,
    name: String,
    created: Option<Timestamp>,
    violating: bool,
}

/// The caches of the three key kinds.
#[derive(Clone)]
pub struct KeyInventory {
    tokens: Store<ApiToken>,
    service_account_keys: Store<ServiceAccountKey>,
    clients: Store<ApiClient>,
}

impl KeyInventory {
    pub fn new(
        tokens: Store<ApiToken>,
        service_account_keys: Store<ServiceAccountKey>,
        clients: Store<ApiClient>,
    ) -> Self {
        KeyInventory {
            tokens,
            service_account_keys,
            clients,
        }
    }

    fn using(&self, store: &StoreKey) -> Vec<Entry> {
        fn entries<K: KeyResource>(cache: &Store<K>, store: &StoreKey) -> Vec<Entry> {
            cache
                .state()
                .iter()
                .filter(|key| key.meta().deletion_timestamp.is_none())
                .filter_map(|key| {
                    let namespace = key.namespace().unwrap_or_default();
                    (StoreKey::referenced(&namespace, key.common().store_ref) == *store).then(|| Entry {
                        kind: K::KIND,
                        name: key.name_any(),
                        created: key.meta().creation_timestamp.as_ref().map(|t| t.0),
                        violating: key
                            .key_status()
                            .and_then(|s| conditions::find(&s.conditions, conditions::READY))
                            .is_some_and(|c| c.reason == reason::POLICY_VIOLATION),
                        namespace,
                    })
                })
                .collect()
        }
        let mut all = entries(&self.tokens, store);
        all.extend(entries(&self.service_account_keys, store));
        all.extend(entries(&self.clients, store));
        all
    }

    /// How many key resources use `store`, by kind, and how many its policy refuses.
    pub fn usage(&self, store: &StoreKey) -> StoreUsage {
        let entries = self.using(store);
        let of = |kind: &str| entries.iter().filter(|e| e.kind == kind).count() as u32;
        StoreUsage {
            api_tokens: of(<ApiToken as KeyResource>::KIND),
            service_account_keys: of(<ServiceAccountKey as KeyResource>::KIND),
            api_clients: of(<ApiClient as KeyResource>::KIND),
            total: entries.len() as u32,
            violating: entries.iter().filter(|e| e.violating).count() as u32,
        }
    }

    /// How many key resources of `namespace` using `store` come before the one of kind
    /// `kind` named `name`: the oldest first (then by kind and name), so a quota keeps the
    /// keys that were there first.
    pub fn position(&self, store: &StoreKey, namespace: &str, kind: &str, name: &str) -> usize {
        let mut entries: Vec<Entry> = self
            .using(store)
            .into_iter()
            .filter(|e| e.namespace == namespace)
            .collect();
        entries.sort_by(|a, b| (a.created, a.kind, &a.name).cmp(&(b.created, b.kind, &b.name)));
        entries
            .iter()
            .position(|e| e.kind == kind && e.name == name)
            .unwrap_or(entries.len())
    }
}

/// Asks the store controllers to count a store's usage again.
#[derive(Clone)]
pub struct UsageTriggers {
    namespaced: UnboundedSender<ObjectRef<CredentialStore>>,
    cluster: UnboundedSender<ObjectRef<ClusterCredentialStore>>,
}

/// What the store controllers listen on.
pub struct UsageReceivers {
    pub namespaced: UnboundedReceiver<ObjectRef<CredentialStore>>,
    pub cluster: UnboundedReceiver<ObjectRef<ClusterCredentialStore>>,
}

impl UsageTriggers {
    pub fn new() -> (Self, UsageReceivers) {
        let (namespaced, namespaced_rx) = unbounded();
        let (cluster, cluster_rx) = unbounded();
        let receivers = UsageReceivers {
            namespaced: namespaced_rx,
            cluster: cluster_rx,
        };
        (UsageTriggers { namespaced, cluster }, receivers)
    }

    /// The usage of `store` changed (a key appeared, went, or was refused or let through).
    pub fn changed(&self, store: &StoreKey) {
        let sent = match &store.namespace {
            Some(namespace) => self
                .namespaced
                .unbounded_send(ObjectRef::new(&store.name).within(namespace))
                .is_ok(),
            None => self.cluster.unbounded_send(ObjectRef::new(&store.name)).is_ok(),
        };
        if !sent {
            tracing::debug!(store = %store.display(), "store controller stopped; usage not recounted");
        }
    }
}
