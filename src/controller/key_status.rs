//! Status, pause and finalizer plumbing shared by the three key kinds.

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Error, FIELD_MANAGER};
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
