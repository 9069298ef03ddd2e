//! What every reconciliation shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tracing::warn;

use super::stores::Stores;
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
    /// The resourceVersion each object (by uid) got from this process's last status write.
    own_writes: Mutex<HashMap<String, String>>,
}

impl Context {
    pub fn new(client: Client, stores: Stores, metrics: Arc<Metrics>, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: "apikey-operator".into(),
            instance,
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            stores,
            limiters: RateLimiters::default(),
            client_options: ClientOptions::default(),
            metrics,
            own_writes: Mutex::default(),
        }
    }

    /// Remembers that this process wrote version `resource_version` of object `uid`.
    pub fn record_own_write(&self, uid: &str, resource_version: &str) {
        self.own_writes
            .lock()
            .expect("own writes lock")
            .insert(uid.to_string(), resource_version.to_string());
    }

    /// Whether version `resource_version` of object `uid` is this process's own last write
    /// coming back through the watch: nothing upstream changed since it was written.
    pub fn is_own_write(&self, uid: &str, resource_version: &str) -> bool {
        self.own_writes
            .lock()
            .expect("own writes lock")
            .get(uid)
            .is_some_and(|v| v == resource_version)
    }

    /// Forgets a deleted object.
    pub fn forget(&self, uid: &str) {
        self.own_writes.lock().expect("own writes lock").remove(uid);
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
