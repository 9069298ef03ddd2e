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
    /// The resourceVersion each object (by uid) got from this process's last write of it.
    own_writes: Mutex<HashMap<String, OwnWrite>>,
}

/// This process's last write of an object, and whether the watch has delivered it since.
struct OwnWrite {
    resource_version: String,
    seen: bool,
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
            client_options: ClientOptions {
                metrics: Some(metrics.upstream.clone()),
                ..ClientOptions::default()
            },
            metrics,
            own_writes: Mutex::default(),
        }
    }

    /// Remembers that this process wrote version `resource_version` of object `uid`.
    pub fn record_own_write(&self, uid: &str, resource_version: &str) {
        self.own_writes.lock().expect("own writes lock").insert(
            uid.to_string(),
            OwnWrite {
                resource_version: resource_version.to_string(),
                seen: false,
            },
        );
    }

    /// Whether version `resource_version` of object `uid` is this process's own last write
    /// coming back through the watch: nothing upstream changed since it was written.
    pub fn is_own_write(&self, uid: &str, resource_version: &str) -> bool {
        let mut own_writes = self.own_writes.lock().expect("own writes lock");
        match own_writes.get_mut(uid) {
            Some(write) if write.resource_version == resource_version => {
                write.seen = true;
                true
            }
            _ => false,
        }
    }

    /// Whether the cache may still be behind this process's last write of object `uid`
    /// (`resource_version` is the cached one): the write has not been seen coming back yet.
    /// Like client-go's controller expectations, without comparing resourceVersions.
    pub fn may_be_stale(&self, uid: &str, resource_version: &str) -> bool {
        let own_writes = self.own_writes.lock().expect("own writes lock");
        own_writes
            .get(uid)
            .is_some_and(|write| !write.seen && write.resource_version != resource_version)
    }

    /// The object `uid` was just read from the API server: nothing older can be pending.
    pub fn caught_up(&self, uid: &str) {
        if let Some(write) = self.own_writes.lock().expect("own writes lock").get_mut(uid) {
            write.seen = true;
        }
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
