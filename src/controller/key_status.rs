//! Status, pause and finalizer plumbing shared by the three key kinds.

use std::sync::Arc;

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Context, Error, FIELD_MANAGER};
use crate::api::KeyStatus;

/// Finalizer that holds a key resource until its upstream credential is cleaned up.
pub const FINALIZER: &str = "apikeys.dev/cleanup";
/// Annotation that stops reconciliation while `"true"`.
pub const PAUSED_ANNOTATION: &str = "apikeys.dev/paused";

/// Whether the resource carries `apikeys.dev/paused: "true"`.
pub fn is_paused<K: Resource>(object: &K) -> bool {
    object
        .annotations()
        .get(PAUSED_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// Server-side applies the whole `status` of a key resource (fields the operator no
/// longer sets are removed, because it owns them all).
///
/// The write is conditional on `resource_version`, the version the status was computed
/// from, and updates it: a reconciliation working from a stale cached object gets a
/// conflict instead of minting a second credential or dropping one it must retire.
pub async fn patch<K>(
    api: &Api<K>,
    object: &K,
    status: &KeyStatus,
    resource_version: &mut Option<String>,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"resourceVersion": resource_version},
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let updated = api
        .patch_status(&object.name_any(), &params, &Patch::Apply(patch))
        .await
        .map_err(|e| match e {
            kube::Error::Api(status) if status.code == 409 => Error::StaleView,
            e => Error::Kube(e),
        })?;
    *resource_version = updated.meta().resource_version.clone();
    Ok(())
}

/// Adds the cleanup finalizer to a live resource that lacks it, and returns the resource as
/// written, so this reconciliation goes on instead of waiting for the watch to bring the
/// change back (kube-runtime's `finalizer` helper then finds it present), with whether this
/// call added it.
///
/// The patch is conditional on the resourceVersion, so a finalizer list changed meanwhile
/// by someone else is never overwritten: the conflict retries the reconciliation.
pub async fn ensure_finalizer<K>(api: &Api<K>, object: Arc<K>, ctx: &Context) -> Result<(Arc<K>, bool), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    if object.meta().deletion_timestamp.is_some() || object.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok((object, false));
    }
    let mut finalizers = object.finalizers().to_vec();
    finalizers.push(FINALIZER.to_string());
    let patch = serde_json::json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": object.resource_version()},
    });
    let updated = api
        .patch(&object.name_any(), &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(|e| match e {
            kube::Error::Api(status) if status.code == 409 => Error::StaleView,
            e => Error::Kube(e),
        })?;
    if let (Some(uid), Some(version)) = (updated.uid(), updated.resource_version()) {
        ctx.own_writes.wrote(&uid, &version);
    }
    Ok((Arc::new(updated), true))
}
