//! Restarting the workloads that consume a Secret, like `kubectl rollout restart`.
//!
//! The pod template gets an annotation holding the new credential's fingerprint, so
//! repeating the patch after a crash changes nothing and rolls nothing twice.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

use crate::api::{RolloutTarget, WorkloadKind};

/// Pod-template annotation set to the fingerprint of the credential the pods must pick up.
pub const RESTARTED_FOR_ANNOTATION: &str = "apikeys.dev/restarted-for";

#[derive(Debug, thiserror::Error)]
#[error("restarting {kind:?} {name}: {source}")]
pub struct RolloutError {
    pub kind: WorkloadKind,
    pub name: String,
    pub source: kube::Error,
}

/// Patches each target's pod template so its pods restart with the Secret at `fingerprint`.
/// Returns the targets that could not be restarted (missing workloads, refused patches);
/// the Secret is already written, so one failed restart must not block the others.
pub async fn restart(
    client: &Client,
    namespace: &str,
    targets: &[RolloutTarget],
    fingerprint: &str,
) -> Vec<RolloutError> {
    let patch = serde_json::json!({
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_FOR_ANNOTATION: fingerprint}}}}
    });
    let mut failures = Vec::new();
    for target in targets {
        let params = PatchParams::default();
        let patch = Patch::Merge(&patch);
        let result = match target.kind {
            WorkloadKind::Deployment => Api::<Deployment>::namespaced(client.clone(), namespace)
                .patch(&target.name, &params, &patch)
                .await
                .map(drop),
            WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), namespace)
                .patch(&target.name, &params, &patch)
                .await
                .map(drop),
            WorkloadKind::DaemonSet => Api::<DaemonSet>::namespaced(client.clone(), namespace)
                .patch(&target.name, &params, &patch)
                .await
                .map(drop),
        };
        if let Err(source) = result {
            failures.push(RolloutError {
                kind: target.kind,
                name: target.name.clone(),
                source,
            });
        }
    }
    failures
}
