//! What every reconciliation shares.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tracing::warn;

use super::admission::Admission;
use super::inventory::{KeyInventory, UsageTriggers};
use super::own_writes::OwnWrites;
use super::ownership::ClusterIdentity;
use super::status_proof::StatusKey;
use super::store_registry::Stores;
use crate::metrics::Metrics;
use crate::upstream::{ClientOptions, RateLimiters};

/// Shared by all controllers (held in an `Arc`).
pub struct Context {
    pub client: Client,
    pub stores: Stores,
    pub limiters: RateLimiters,
    pub client_options: ClientOptions,
    pub metrics: Arc<Metrics>,
    recorder: Recorder,
    pub own_writes: OwnWrites,
    /// Mixed into default upstream names, owner marks and idempotency keys.
    pub cluster: ClusterIdentity,
    /// Proves that a key resource's status was written by the operator.
    pub status_key: StatusKey,
    /// Every key resource, for store usage and policy quotas.
    pub inventory: KeyInventory,
    /// Tells the store controllers a store's usage changed.
    pub usage: UsageTriggers,
    /// Each store's share of a key controller's workers.
    pub admission: Admission,
}

/// What the key controllers and store controllers share besides the client.
pub struct Shared {
    pub cluster: ClusterIdentity,
    pub status_key: StatusKey,
    pub inventory: KeyInventory,
    pub usage: UsageTriggers,
    /// The concurrency of each key controller, shared fairly among the stores in use.
    pub workers: u16,
}

impl Context {
    pub fn new(
        client: Client,
        stores: Stores,
        metrics: Arc<Metrics>,
        instance: Option<String>,
        shared: Shared,
    ) -> Self {
        let reporter = Reporter {
            controller: "apikey-operator".into(),
            instance,
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            stores,
            limiters: RateLimiters::default(),
            client_options: ClientOptions {
                metrics: Some(metrics.upstream.clone()),
                ..ClientOptions::default()
            },
            metrics,
            own_writes: OwnWrites::default(),
            cluster: shared.cluster,
            status_key: shared.status_key,
            inventory: shared.inventory,
            usage: shared.usage,
            admission: Admission::new(shared.workers),
        }
    }

    /// Publishes an event on `object`. Events are best effort: a failure is logged, never
    /// fails the reconciliation. Callers publish only on transitions.
    pub async fn event(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, object).await {
            warn!(%error, reason, "could not publish event");
        }
    }
}
