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

/// How far one target's rollout has come, as `kubectl rollout status` judges it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// `Deployment billing-api: 2/3 updated, 1 available`.
    pub summary: String,
    pub done: bool,
    /// Whether its pod template carries the restart for the current credential: a refused
    /// patch, or a crash between the status write and the restart, leaves it without.
    pub restarted: bool,
}

/// The rollout for the credential at `fingerprint` of each target, read from the API: the
/// workload's controller writes its status, the operator only reads it. A target that does
/// not exist holds nothing (its restart already failed with a warning); one that cannot be
/// read holds until it can, or until `maxRetain`.
pub async fn progress(
    client: &Client,
    namespace: &str,
    targets: &[RolloutTarget],
    fingerprint: &str,
) -> Vec<Progress> {
    let mut progress = Vec::with_capacity(targets.len());
    for target in targets {
        let (client, name) = (client.clone(), target.name.as_str());
        let read = match target.kind {
            WorkloadKind::Deployment => observe(client, namespace, name, deployment_counts).await,
            WorkloadKind::StatefulSet => observe(client, namespace, name, stateful_set_counts).await,
            WorkloadKind::DaemonSet => observe(client, namespace, name, daemon_set_counts).await,
        };
        match read {
            Ok(None) => {}
            Ok(Some(counts)) if counts.restarted_for.as_deref() == Some(fingerprint) => {
                progress.push(counts.judge(target))
            }
            Ok(Some(_)) => progress.push(Progress {
                summary: format!(
                    "{} {} has not been restarted for the current credential yet",
                    target.kind, target.name
                ),
                done: false,
                restarted: false,
            }),
            Err(error) => progress.push(Progress {
                summary: format!(
                    "{} {} could not be read: {}",
                    target.kind,
                    target.name,
                    plain::kube_error(&error)
                ),
                done: false,
                restarted: true,
            }),
        }
    }
    progress
}

/// The workload `name` as [`Counts`], if it exists.
async fn observe<K>(
    client: Client,
    namespace: &str,
    name: &str,
    counts: fn(&K) -> Counts,
) -> Result<Option<Counts>, kube::Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Ok(Api::<K>::namespaced(client, namespace)
        .get_opt(name)
        .await?
        .as_ref()
        .map(counts))
}

fn restarted_for(template: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>) -> Option<String> {
    template?
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(RESTARTED_FOR_ANNOTATION)
        .cloned()
}

/// What a workload's status says about its rollout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Counts {
    /// The pod template's `apikeys.dev/restarted-for`: whose restart it carries.
    restarted_for: Option<String>,
    /// The controller has seen the latest pod template.
    observed: bool,
    desired: i32,
    updated: i32,
    /// Pods of the latest template that serve (available, or ready for a StatefulSet).
    serving: i32,
    /// Pods of an older template still running.
    old: i32,
}

impl Counts {
    fn judge(&self, target: &RolloutTarget) -> Progress {
        let done =
            self.observed && self.updated >= self.desired && self.serving >= self.desired && self.old <= 0;
        let summary = match self.observed {
            true => format!(
                "{} {}: {}/{} updated, {} available",
                target.kind, target.name, self.updated, self.desired, self.serving
            ),
            false => format!(
                "{} {}: its controller has not seen the restart yet",
                target.kind, target.name
            ),
        };
        Progress {
            summary,
            done,
            restarted: true,
        }
    }
}

fn observed(generation: Option<i64>, observed: Option<i64>) -> bool {
    matches!((generation, observed), (Some(g), Some(o)) if o >= g)
}

fn deployment_counts(deployment: &Deployment) -> Counts {
    let status = deployment.status.clone().unwrap_or_default();
    let desired = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or_default();
    Counts {
        restarted_for: restarted_for(deployment.spec.as_ref().map(|s| &s.template)),
        observed: observed(deployment.metadata.generation, status.observed_generation),
        desired,
        updated,
        serving: status.available_replicas.unwrap_or_default(),
        old: status.replicas.unwrap_or_default() - updated,
    }
}

fn stateful_set_counts(set: &StatefulSet) -> Counts {
    let status = set.status.clone().unwrap_or_default();
    let desired = set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or_default();
    let settled = status.update_revision.is_none() || status.update_revision == status.current_revision;
    Counts {
        restarted_for: restarted_for(set.spec.as_ref().map(|s| &s.template)),
        observed: observed(set.metadata.generation, status.observed_generation),
        desired,
        updated,
        serving: status.ready_replicas.unwrap_or_default(),
        old: i32::from(!settled),
    }
}

fn daemon_set_counts(set: &DaemonSet) -> Counts {
    let status = set.status.clone().unwrap_or_default();
    Counts {
        restarted_for: restarted_for(set.spec.as_ref().map(|s| &s.template)),
        observed: observed(set.metadata.generation, status.observed_generation),
        desired: status.desired_number_scheduled,
        updated: status.updated_number_scheduled.unwrap_or_default(),
        serving: status.number_available.unwrap_or_default(),
        // A node's old pod is replaced in place: updated and available say it all.
        old: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(generation: i64, status: serde_json::Value) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "billing-api", "generation": generation},
            "spec": {"replicas": 3, "selector": {}, "template": {}},
            "status": status,
        }))
        .unwrap()
    }

    fn target() -> RolloutTarget {
        RolloutTarget {
            kind: WorkloadKind::Deployment,
            name: "billing-api".into(),
        }
    }

    #[test]
    fn a_deployment_is_rolled_out_when_every_replica_is_new_and_available() {
        let rolling = deployment(
            2,
            serde_json::json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 2, "availableReplicas": 3}),
        );
        let progress = deployment_counts(&rolling).judge(&target());
        assert_eq!(
            progress.summary,
            "Deployment billing-api: 2/3 updated, 3 available"
        );
        assert!(!progress.done);
        let unseen = deployment(
            3,
            serde_json::json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
        );
        assert!(
            !deployment_counts(&unseen).judge(&target()).done,
            "the restart is not seen yet"
        );
        let done = deployment(
            3,
            serde_json::json!({"observedGeneration": 3, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
        );
        assert!(deployment_counts(&done).judge(&target()).done);
    }

    #[test]
    fn a_stateful_set_is_rolled_out_when_its_update_revision_is_current() {
        let set = |current: &str| -> StatefulSet {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "runner", "generation": 4},
                "spec": {"replicas": 2, "selector": {}, "serviceName": "runner", "template": {}},
                "status": {"observedGeneration": 4, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2,
                           "currentRevision": current, "updateRevision": "runner-2"},
            }))
            .unwrap()
        };
        let target = RolloutTarget {
            kind: WorkloadKind::StatefulSet,
            name: "runner".into(),
        };
        assert!(
            !stateful_set_counts(&set("runner-1")).judge(&target).done,
            "pods of the old revision remain"
        );
        assert!(stateful_set_counts(&set("runner-2")).judge(&target).done);
    }

    #[test]
    fn a_daemon_set_is_rolled_out_when_every_node_runs_an_updated_available_pod() {
        let set = |updated: i32| -> DaemonSet {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "agent", "generation": 2},
                "spec": {"selector": {}, "template": {}},
                "status": {"observedGeneration": 2, "desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                           "numberMisscheduled": 0, "numberReady": 3, "updatedNumberScheduled": updated,
                           "numberAvailable": 3},
            }))
            .unwrap()
        };
        let target = RolloutTarget {
            kind: WorkloadKind::DaemonSet,
            name: "agent".into(),
        };
        let rolling = daemon_set_counts(&set(2)).judge(&target);
        assert_eq!(rolling.summary, "DaemonSet agent: 2/3 updated, 3 available");
        assert!(!rolling.done);
        assert!(daemon_set_counts(&set(3)).judge(&target).done);
    }
}
