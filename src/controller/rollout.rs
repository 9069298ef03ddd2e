//! Restarting the workloads that consume a Secret, like `kubectl rollout restart`.
//!
//! The pod template gets an annotation holding the new credential's fingerprint, so
//! repeating the patch after a crash changes nothing and rolls nothing twice.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

use super::plain;
use crate::api::{RolloutTarget, WorkloadKind};

/// Pod-template annotation set to the fingerprint of the credential the pods must pick up.
pub const RESTARTED_FOR_ANNOTATION: &str = "apikeys.dev/restarted-for";

#[derive(Debug, thiserror::Error)]
#[error("{kind} {name} was not restarted: {}; {}", plain::kube_error(source), self.advice())]
pub struct RolloutError {
    pub kind: WorkloadKind,
    pub name: String,
    pub source: kube::Error,
}

impl RolloutError {
    /// What the user can do: the Secret already holds the new credential.
    fn advice(&self) -> String {
        match plain::kube_status(&self.source) {
            Some(404) => {
                "create it, or remove it from spec.rolloutRestart; pods reading the Secret pick up the new \
                          credential only when they restart"
                    .into()
            }
            Some(403) => format!(
                "grant the operator's ServiceAccount patch on {}s, or restart it by hand (kubectl rollout restart)",
                self.kind.to_string().to_lowercase()
            ),
            _ => "restart it by hand (kubectl rollout restart); the Secret already holds the new credential"
                .into(),
        }
    }
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
