//! Which store a key resource may use, and the connected client of every Ready store.
//!
//! The store controller is the only reader of store credential Secrets: after a successful
//! probe it registers the store's client here, and the key controllers take it from here.
//! A store that is not registered is not Ready, and keys referencing it say so.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};

use super::conditions::{self, reason};
use crate::api::{ClusterCredentialStore, CredentialStore, Provider, StoreKind, StorePolicy, StoreRef};
use crate::upstream::{self, UpstreamClient};

/// Identifies a store: its kind, namespace (for CredentialStores) and name.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct StoreKey {
    pub kind: StoreKind,
    pub namespace: Option<String>,
    pub name: String,
}

impl StoreKey {
    /// The store a key resource in `namespace` references.
    pub fn referenced(namespace: &str, store_ref: &StoreRef) -> Self {
        StoreKey {
            kind: store_ref.kind,
            namespace: (store_ref.kind == StoreKind::CredentialStore).then(|| namespace.to_string()),
            name: store_ref.name.clone(),
        }
    }

    /// Used in messages, logs and as the rate-limit identity.
    pub fn kind(&self) -> StoreKind {
        match self.namespace {
            Some(_) => StoreKind::CredentialStore,
            None => StoreKind::ClusterCredentialStore,
        }
    }

    pub fn display(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("CredentialStore {namespace}/{}", self.name),
            None => format!("ClusterCredentialStore {}", self.name),
        }
    }
}

/// A store's policy and what checking a key against it needs.
pub struct PolicyView {
    pub policy: StorePolicy,
    /// The store, for messages (`ClusterCredentialStore shared`).
    pub store: String,
    pub cluster_store: bool,
    /// A Prefactor store's `accountId`: the account of tokens that name none.
    pub prefactor_account: Option<String>,
}

/// A connected store, with the state it was connected from.
pub struct Connected {
    pub client: Arc<UpstreamClient>,
    /// `metadata.uid` of the store (a re-created store is another store).
    pub uid: Option<String>,
    /// `metadata.generation` of the store when connected.
    pub generation: Option<i64>,
    /// `metadata.resourceVersion` of the credentials Secret when connected.
    pub secret_version: Option<String>,
}

/// Why a key resource cannot use the store it references. Each is a distinct reason.
#[derive(Debug, thiserror::Error)]
pub enum StoreProblem {
    #[error("{store} does not exist; create it or fix spec.storeRef")]
    NotFound { store: String },
    #[error(
        "{store} cannot be used: this operator is scoped to one namespace and serves only CredentialStores"
    )]
    ClusterStoresDisabled { store: String },
    #[error(
        "{store} does not allow namespace {namespace}; add it to the store's spec.allowedNamespaces or label it to match spec.namespaceSelector"
    )]
    NamespaceNotAllowed { store: String, namespace: String },
    #[error("{store} is a {actual} store, but {kind} needs a store with a {wanted} block")]
    WrongProvider {
        store: String,
        kind: &'static str,
        actual: &'static str,
        wanted: String,
    },
    #[error("{store} is not connected yet: this operator process just started and is connecting to it")]
    NotConnectedYet { store: String },
    #[error("{store} has not been probed yet; its first probe is under way")]
    NotProbedYet { store: String },
    #[error("{store} is not ready: {message}")]
    NotReady { store: String, message: String },
    #[error(
        "{store} could not be looked up: {}; retrying",
        super::plain::kube_error(source)
    )]
    Kube { store: String, source: kube::Error },
}

impl StoreProblem {
    /// The condition reason for this problem.
    pub fn reason(&self) -> &'static str {
        match self {
            StoreProblem::NotFound { .. } | StoreProblem::ClusterStoresDisabled { .. } => {
                reason::STORE_NOT_FOUND
            }
            StoreProblem::NamespaceNotAllowed { .. } => reason::NAMESPACE_NOT_ALLOWED,
            StoreProblem::WrongProvider { .. } => reason::WRONG_PROVIDER,
            StoreProblem::NotConnectedYet { .. } | StoreProblem::NotProbedYet { .. } => {
                reason::WAITING_FOR_STORE
            }
            StoreProblem::NotReady { .. } | StoreProblem::Kube { .. } => reason::STORE_NOT_READY,
        }
    }

    /// When a key blocked by this problem should look again on its own (most problems
    /// are announced by a store event instead).
    pub fn retry(&self) -> Option<std::time::Duration> {
        match self {
            StoreProblem::NotConnectedYet { .. } | StoreProblem::Kube { .. } => {
                Some(std::time::Duration::from_secs(2))
            }
            // The probe's status write wakes the key; this is only a backstop.
            StoreProblem::NotProbedYet { .. } => Some(std::time::Duration::from_secs(10)),
            _ => None,
        }
    }
}

/// The name of the provider block a store sets.
pub fn provider_name(provider: &Provider) -> &'static str {
    upstream::provider_api(provider).map_or("unset", upstream::Api::as_str)
}

/// Store objects (from the controllers' caches) and connected clients.
pub struct Stores {
    namespaced: Store<CredentialStore>,
    /// `None` when the operator is scoped to a namespace and serves no cluster stores.
    cluster: Option<Store<ClusterCredentialStore>>,
    connected: RwLock<HashMap<StoreKey, Connected>>,
}

impl Stores {
    pub fn new(namespaced: Store<CredentialStore>, cluster: Option<Store<ClusterCredentialStore>>) -> Self {
        Stores {
            namespaced,
            cluster,
            connected: RwLock::default(),
        }
    }

    /// Registers the client of a store that just passed its probe.
    pub fn register(&self, key: StoreKey, connected: Connected) {
        self.connected
            .write()
            .expect("store registry lock")
            .insert(key, connected);
    }

    /// Forgets a store's client (the store is gone or failed its probe).
    pub fn disconnect(&self, key: &StoreKey) {
        self.connected.write().expect("store registry lock").remove(key);
    }

    /// Whether the registered client of `key` was built from this store object, generation
    /// and Secret version.
    pub fn is_current(
        &self,
        key: &StoreKey,
        uid: Option<&str>,
        generation: Option<i64>,
        secret_version: Option<&str>,
    ) -> bool {
        self.connected
            .read()
            .expect("store registry lock")
            .get(key)
            .is_some_and(|c| {
                c.uid.as_deref() == uid
                    && c.generation == generation
                    && c.secret_version.as_deref() == secret_version
            })
    }

    /// The client of a registered store.
    fn registered(&self, key: &StoreKey) -> Option<Arc<UpstreamClient>> {
        self.connected
            .read()
            .expect("store registry lock")
            .get(key)
            .map(|c| c.client.clone())
    }

    /// Whether the cache of stores of `kind` has finished its first list (waiting a little
    /// for it, as it starts with the key controllers).
    async fn synced(&self, kind: StoreKind) -> bool {
        let wait = Duration::from_secs(5);
        match (kind, &self.cluster) {
            (StoreKind::CredentialStore, _) => {
                matches!(
                    tokio::time::timeout(wait, self.namespaced.wait_until_ready()).await,
                    Ok(Ok(()))
                )
            }
            (StoreKind::ClusterCredentialStore, Some(cluster)) => {
                matches!(
                    tokio::time::timeout(wait, cluster.wait_until_ready()).await,
                    Ok(Ok(()))
                )
            }
            (StoreKind::ClusterCredentialStore, None) => true,
        }
    }

    /// The policy of the store `store_ref` names, as cached, with what checking it needs.
    pub fn policy_of(&self, namespace: &str, store_ref: &StoreRef) -> Option<PolicyView> {
        let (policy, provider) = match store_ref.kind {
            StoreKind::CredentialStore => {
                let store = self
                    .namespaced
                    .get(&ObjectRef::new(&store_ref.name).within(namespace))?;
                (store.spec.policy.clone()?, store.spec.provider.clone())
            }
            StoreKind::ClusterCredentialStore => {
                let store = self.cluster.as_ref()?.get(&ObjectRef::new(&store_ref.name))?;
                (store.spec.policy.clone()?, store.spec.provider.clone())
            }
        };
        Some(PolicyView {
            policy,
            store: StoreKey::referenced(namespace, store_ref).display(),
            cluster_store: store_ref.kind == StoreKind::ClusterCredentialStore,
            prefactor_account: provider.prefactor.and_then(|p| p.account_id),
        })
    }

    /// Whether the store `store_ref` names, as cached, lets key resources in `namespace`
    /// adopt existing upstream objects (`spec.adoption`; off when unset).
    pub fn allows_adoption(&self, namespace: &str, store_ref: &StoreRef) -> bool {
        match store_ref.kind {
            StoreKind::CredentialStore => self
                .namespaced
                .get(&ObjectRef::new(&store_ref.name).within(namespace))
                .is_some_and(|s| s.spec.adoption.as_ref().is_some_and(|a| a.allowed)),
            StoreKind::ClusterCredentialStore => self
                .cluster
                .as_ref()
                .and_then(|c| c.get(&ObjectRef::new(&store_ref.name)))
                .is_some_and(|s| s.spec.adoption.as_ref().is_some_and(|a| a.allows(namespace))),
        }
    }

    /// Resolves the store a key resource of kind `kind` in `namespace` references, checking
    /// that it exists, serves the namespace, has the `wanted` provider and is Ready.
    pub async fn resolve(
        &self,
        client: &Client,
        kind: &'static str,
        namespace: &str,
        store_ref: &StoreRef,
        wanted: &[upstream::Api],
    ) -> Result<Arc<UpstreamClient>, StoreProblem> {
        let key = StoreKey::referenced(namespace, store_ref);
        let store = key.display();
        // A store missing from a cache that has not finished its first list may well exist
        // (a replica that just became leader starts its caches together).
        if !self.synced(store_ref.kind).await {
            return Err(StoreProblem::NotConnectedYet { store });
        }
        let (provider, status) = match store_ref.kind {
            StoreKind::CredentialStore => {
                let object = self
                    .namespaced
                    .get(&ObjectRef::new(&store_ref.name).within(namespace))
                    .ok_or_else(|| StoreProblem::NotFound { store: store.clone() })?;
                (object.spec.provider.clone(), object.status.clone())
            }
            StoreKind::ClusterCredentialStore => {
                let cluster = self
                    .cluster
                    .as_ref()
                    .ok_or_else(|| StoreProblem::ClusterStoresDisabled { store: store.clone() })?;
                let object = cluster
                    .get(&ObjectRef::new(&store_ref.name))
                    .ok_or_else(|| StoreProblem::NotFound { store: store.clone() })?;
                if !allows_namespace(client, &object, namespace)
                    .await
                    .map_err(|source| StoreProblem::Kube {
                        store: store.clone(),
                        source,
                    })?
                {
                    return Err(StoreProblem::NamespaceNotAllowed {
                        store,
                        namespace: namespace.to_string(),
                    });
                }
                (object.spec.provider.clone(), object.status.clone())
            }
        };
        let actual = upstream::provider_api(&provider);
        if !actual.is_some_and(|api| wanted.contains(&api)) {
            return Err(StoreProblem::WrongProvider {
                store,
                kind,
                actual: actual.map_or("unset", upstream::Api::as_str),
                wanted: wanted
                    .iter()
                    .map(|api| api.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
            });
        }
        self.registered(&key).ok_or_else(|| {
            let ready = status
                .as_ref()
                .and_then(|s| conditions::find(&s.conditions, conditions::READY));
            match ready {
                // Ready in its status, but not yet probed by this process (it just started):
                // no status change will announce the probe, so the key must look again soon.
                Some(c) if c.status == "True" => StoreProblem::NotConnectedYet { store },
                Some(c) => StoreProblem::NotReady {
                    store,
                    message: c.message.clone(),
                },
                None => StoreProblem::NotProbedYet { store },
            }
        })
    }
}

/// Whether a ClusterCredentialStore serves `namespace`: listed by name (or `*`), or
/// selected by label.
async fn allows_namespace(
    client: &Client,
    store: &ClusterCredentialStore,
    namespace: &str,
) -> Result<bool, kube::Error> {
    if store
        .spec
        .allowed_namespaces
        .iter()
        .any(|n| n == "*" || n == namespace)
    {
        return Ok(true);
    }
    let Some(selector) = &store.spec.namespace_selector else {
        return Ok(false);
    };
    let Some(ns) = Api::<Namespace>::all(client.clone()).get_opt(namespace).await? else {
        return Ok(false);
    };
    Ok(selector_matches(selector, ns.labels()))
}

/// Label-selector matching (`matchLabels` and `matchExpressions`).
pub(crate) fn selector_matches(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    let labels_match = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_match = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
            "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
            "Exists" => labels.contains_key(&e.key),
            "DoesNotExist" => !labels.contains_key(&e.key),
            _ => false,
        }
    });
    labels_match && expressions_match
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

    use super::*;

    #[test]
    fn label_selectors_match_like_kubernetes() {
        let labels = [("team".to_string(), "a".to_string())].into();
        let by_label = LabelSelector {
            match_labels: Some([("team".into(), "a".into())].into()),
            ..Default::default()
        };
        assert!(selector_matches(&by_label, &labels));
        let not_in = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "team".into(),
                operator: "NotIn".into(),
                values: Some(vec!["a".into()]),
            }]),
            ..Default::default()
        };
        assert!(!selector_matches(&not_in, &labels));
        assert!(selector_matches(&not_in, &Default::default()));
    }

    #[test]
    fn store_keys_scope_namespaced_stores_to_the_key_namespace() {
        let namespaced = StoreKey::referenced(
            "ns",
            &StoreRef {
                name: "s".into(),
                kind: StoreKind::CredentialStore,
            },
        );
        assert_eq!(namespaced.display(), "CredentialStore ns/s");
        let cluster = StoreKey::referenced(
            "ns",
            &StoreRef {
                name: "s".into(),
                kind: StoreKind::ClusterCredentialStore,
            },
        );
        assert_eq!(cluster.namespace, None);
    }
}
