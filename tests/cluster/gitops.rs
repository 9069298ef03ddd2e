//! GitOps: what Git holds is what the cluster holds. Every manifest in `examples/` is
//! applied, the operator converges on it, and the live spec must equal the applied spec
//! exactly — no defaults filled in, nothing rewritten — and no field manager but the one
//! that applied it may own a field of the spec. Argo CD and Flux then see no drift.

use std::path::Path;
use std::time::Duration;

use kube::api::{DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use apikey_operator_test_support::envtest;
use apikey_operator_test_support::fixtures::{self, CONVERGE};
use apikey_operator_test_support::processes;

/// The field manager of the test's applies, standing in for Argo CD or Flux.
const GITOPS_MANAGER: &str = "gitops";

#[tokio::test]
async fn examples_converge_without_drift_in_spec() {
    let credstore = processes::credstore();
    processes::operator();
    let client = envtest::client().await;
    let namespace = envtest::namespace(&client, "gitops").await;
    fixtures::put_secret(
        &client,
        &namespace,
        "prefactor-admin",
        json!({"token": credstore.prefactor_token}),
    )
    .await;

    let mut applied = Vec::new();
    for object in example_objects() {
        let object = point_at_test_cluster(object, &namespace, &credstore.url);
        let api = envtest::api_for(&client, &object, &namespace).await;
        let name = object.metadata.name.clone().unwrap();
        api.patch(
            &name,
            &PatchParams::apply(GITOPS_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .unwrap_or_else(|e| panic!("{} {name} was refused: {e}", kind_of(&object)));
        applied.push((object, api));
    }

    for (object, api) in &applied {
        let kind = kind_of(object);
        let name = object.metadata.name.clone().unwrap();
        let live = converged(api, &name).await;
        assert_eq!(
            live.data["spec"], object.data["spec"],
            "{kind}/{name}: the live spec differs from the applied one"
        );
        for entry in live.metadata.managed_fields.iter().flatten() {
            let owns_spec = entry
                .fields_v1
                .as_ref()
                .is_some_and(|f| f.0.get("f:spec").is_some());
            assert!(
                !owns_spec || entry.manager.as_deref() == Some(GITOPS_MANAGER),
                "{kind}/{name}: {:?} owns fields of the spec: {entry:?}",
                entry.manager
            );
        }
    }
}

/// Every apikeys.dev object of every `examples/*.yaml` (the workloads next to them are
/// Kubernetes' own kinds, which the API server defaults).
fn example_objects() -> Vec<DynamicObject> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| envtest::parse_documents(&std::fs::read_to_string(f).unwrap()))
        .filter(|o| {
            o.types
                .as_ref()
                .is_some_and(|t| t.api_version.starts_with("apikeys.dev/"))
        })
        .collect()
}

/// The examples as a user would adapt them: stores point at the test's credential store,
/// and the cluster-scoped store gets a name of its own (other tests apply the example too)
/// and reads its Secret from the test namespace.
fn point_at_test_cluster(mut object: DynamicObject, namespace: &str, url: &str) -> DynamicObject {
    let kind = kind_of(&object);
    if kind.ends_with("CredentialStore") {
        for (provider, block) in object.data["spec"].as_object_mut().unwrap().iter_mut() {
            if ["akamai", "prefactor", "trendMicro", "zenml"].contains(&provider.as_str()) {
                let suffix = if provider == "trendMicro" { "/api" } else { "" };
                block["url"] = Value::from(format!("{url}{suffix}"));
                if kind == "ClusterCredentialStore" {
                    block["credentialsSecretRef"]["namespace"] = Value::from(namespace);
                }
            }
        }
    }
    if kind == "ClusterCredentialStore" {
        object.metadata.name = Some(format!("{namespace}-{}", object.metadata.name.unwrap()));
    }
    object
}

/// Waits until the operator reported on the current generation of the object.
async fn converged(api: &kube::Api<DynamicObject>, name: &str) -> DynamicObject {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let live = api.get(name).await.unwrap();
        let has_ready = live.data["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready"));
        if has_ready && live.data["status"]["observedGeneration"] == json!(live.metadata.generation) {
            return live;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} did not converge: {:#}",
            live.data["status"]
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn kind_of(object: &DynamicObject) -> String {
    object.types.as_ref().unwrap().kind.clone()
}

#[tokio::test]
async fn the_gitops_example_directory_is_accepted_as_kustomize_renders_it() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/gitops-example");
    let rendered = envtest::kubectl()
        .arg("kustomize")
        .arg(&dir)
        .output()
        .expect("kubectl runs");
    assert!(
        rendered.status.success(),
        "kubectl kustomize failed: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let client = envtest::client().await;
    let objects = envtest::parse_documents(&String::from_utf8(rendered.stdout).unwrap());
    let kinds: Vec<String> = objects.iter().map(kind_of).collect();
    assert_eq!(kinds, ["Namespace", "ApiToken", "ApiToken", "CredentialStore"]);
    // The namespace first, as Argo CD and Flux order it.
    for object in objects
        .iter()
        .filter(|o| kind_of(o) == "Namespace")
        .chain(objects.iter().filter(|o| kind_of(o) != "Namespace"))
    {
        let namespace = object.metadata.namespace.clone().unwrap_or_default();
        let live = envtest::apply(&client, object, &namespace)
            .await
            .unwrap_or_else(|e| panic!("{} {:?} was refused: {e}", kind_of(object), object.metadata.name));
        if kind_of(object) != "Namespace" {
            assert_eq!(
                live.data["spec"], object.data["spec"],
                "{:?}: the API server kept the spec as written",
                object.metadata.name
            );
        }
    }
}
