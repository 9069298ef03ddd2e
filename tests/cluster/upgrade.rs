//! Upgrading from the release before owner marks and status proofs.
//!
//! - `statuses_from_the_release_before_proofs_are_trusted_and_proven`: that release's state
//!   written on a control plane no operator of this release has run on (its upstream objects
//!   under its default names without marks, its Secrets, its statuses without `ownerProof`),
//!   then this release's operator started: it proves those statuses once (before its
//!   controllers start), stamps the marks, rotates nothing, and the delivered credentials
//!   keep working.
//! - `keys_of_the_release_before_marks_are_stamped_and_keep_working`: keys whose upstream
//!   descriptions lose their marks (as that release wrote them) are stamped again, rotate and
//!   are deleted as the resources' own.
//!
//! The earlier release's state is written by the test rather than by running its binary: a
//! clone of the repository need not hold the history to build it from, and a second full
//! build would cost CI minutes. The state is exact where it matters: the fields that release
//! wrote, under its names, and nothing it did not write.

use std::path::PathBuf;

use apikey_operator::api::{ApiToken, KeyStatus, SecretTemplate, ServiceAccountKey};
use apikey_operator::controller::target_secret::{self, Material};
use apikey_operator::localcluster::LocalCluster;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use apikey_operator_test_support::envtest;
use apikey_operator_test_support::fixtures::{
    self, eventually, is_ready, merge, trend_current, trend_key, wait_for, zenml_admin_session, zenml_key,
    zenml_login,
};
use apikey_operator_test_support::processes::{self, Credstore, OperatorCommand};

const SERVICE_ACCOUNT: &str = "apikey-operator";

fn status_of(key: &ServiceAccountKey) -> KeyStatus {
    key.status.clone().unwrap_or_default()
}

/// Sets the upstream descriptions back to what the earlier release wrote: the user's text.
async fn strip_marks(credstore: &Credstore, bearer: &str, zenml_id: &str, trend_id: &str, text: &str) {
    let http = reqwest::Client::new();
    let zenml = http
        .put(fixtures::zenml_key_url(credstore, zenml_id))
        .bearer_auth(bearer)
        .json(&json!({"description": text}))
        .send()
        .await
        .unwrap();
    assert!(zenml.status().is_success(), "ZenML update: {}", zenml.status());
    let trend = http
        .post(format!("{}/api/apikeys/{trend_id}", credstore.url))
        .header(
            "api-secret-key",
            credstore.bootstrap_file("trendmicro.secret-key"),
        )
        .header("api-version", "v1")
        .json(&json!({"description": text}))
        .send()
        .await
        .unwrap();
    assert!(
        trend.status().is_success(),
        "Trend Micro modify: {}",
        trend.status()
    );
}

#[tokio::test]
async fn keys_of_the_release_before_marks_are_stamped_and_keep_working() {
    processes::operator();
    let client = envtest::client().await;
    let namespace = envtest::namespace(&client, "upgrade").await;
    let credstore = processes::private_credstore(&namespace);
    fixtures::zenml_store(&client, &namespace, "zenml", &credstore).await;
    fixtures::trend_store(&client, &namespace, "trend", &credstore).await;
    let keys: Api<ServiceAccountKey> = Api::namespaced(client.clone(), &namespace);
    let text = "billing exports";
    for (name, spec) in [
        (
            "exports",
            json!({"storeRef": {"name": "zenml"}, "serviceAccount": SERVICE_ACCOUNT, "description": text}),
        ),
        (
            "scanner",
            json!({"storeRef": {"name": "trend"}, "roleID": 1, "description": text}),
        ),
    ] {
        fixtures::apply(
            &client,
            &namespace,
            json!({"apiVersion": "apikeys.dev/v1alpha1", "kind": "ServiceAccountKey", "metadata": {"name": name}, "spec": spec}),
        )
        .await;
    }
    let exports = wait_for(&keys, "exports", "Ready", is_ready).await;
    let scanner = wait_for(&keys, "scanner", "Ready", is_ready).await;
    let zenml_id = status_of(&exports).upstream_id.unwrap();
    let trend_id = status_of(&scanner).upstream_id.unwrap();
    let zenml_secret = fixtures::secret_value(&client, &namespace, "exports", "apiKey")
        .await
        .unwrap();
    let trend_secret = fixtures::secret_value(&client, &namespace, "scanner", "apiKey")
        .await
        .unwrap();

    // The operator stopped, as for an upgrade (here: paused), and the objects as the
    // earlier release left them.
    for name in ["exports", "scanner"] {
        merge(
            &keys,
            name,
            json!({"metadata": {"annotations": {"apikeys.dev/paused": "true"}}}),
        )
        .await;
    }
    let bearer = zenml_admin_session(&credstore).await;
    strip_marks(&credstore, &bearer, &zenml_id, &trend_id, text).await;
    assert_eq!(
        zenml_key(&credstore, &zenml_id).await.unwrap()["metadata"]["description"],
        text
    );
    assert_eq!(
        trend_key(&credstore, &trend_id).await.unwrap()["description"],
        text
    );

    // The new release takes over: marks stamped, the user's text kept, nothing rotated.
    for name in ["exports", "scanner"] {
        merge(
            &keys,
            name,
            json!({"metadata": {"annotations": {"apikeys.dev/paused": null}}}),
        )
        .await;
    }
    let cluster = fixtures::cluster_identity(&client).await;
    let marked = |key: &ServiceAccountKey| {
        cluster
            .mark(&kube::ResourceExt::uid(key).unwrap())
            .describe(Some(text))
    };
    let (zenml_marked, trend_marked) = (marked(&exports), marked(&scanner));
    eventually("marks stamped on both keys", (true, true), || async {
        let zenml = zenml_key(&credstore, &zenml_id).await.unwrap();
        let trend = trend_key(&credstore, &trend_id).await.unwrap();
        (
            zenml["metadata"]["description"] == zenml_marked.as_str(),
            trend["description"] == trend_marked.as_str(),
        )
    })
    .await;
    for name in ["exports", "scanner"] {
        let key = wait_for(&keys, name, "Ready", is_ready).await;
        assert_eq!(
            status_of(&key).rotation_count,
            None,
            "{name} was rotated by the upgrade"
        );
    }
    assert_eq!(
        zenml_login(&credstore, &zenml_secret).await,
        200,
        "the delivered ZenML key"
    );
    assert_eq!(
        trend_current(&credstore, &trend_secret).await,
        200,
        "the delivered Trend key"
    );

    // Rotation and deletion treat them as the resources' own.
    for name in ["exports", "scanner"] {
        merge(
            &keys,
            name,
            json!({"metadata": {"annotations": {"apikeys.dev/rotate": "after-upgrade"}}}),
        )
        .await;
    }
    for name in ["exports", "scanner"] {
        wait_for(&keys, name, "rotated", |k| {
            is_ready(k) && status_of(k).rotation_count == Some(1)
        })
        .await;
    }
    let rotated = fixtures::secret_value(&client, &namespace, "exports", "apiKey")
        .await
        .unwrap();
    assert_ne!(rotated, zenml_secret);
    assert_eq!(zenml_login(&credstore, &rotated).await, 200);
    let rotated_trend = fixtures::secret_value(&client, &namespace, "scanner", "apiKey")
        .await
        .unwrap();
    assert_eq!(trend_current(&credstore, &rotated_trend).await, 200);

    for name in ["exports", "scanner"] {
        keys.delete(name, &DeleteParams::default()).await.unwrap();
    }
    eventually("both keys deleted upstream", (true, true), || async {
        (
            zenml_key(&credstore, &zenml_id).await.is_none(),
            trend_key(&credstore, &trend_id).await.is_none(),
        )
    })
    .await;
}

/// The state the release before marks and proofs leaves, written before any operator of
/// this release has run on the cluster (a control plane of the test's own): upstream keys
/// and a token under that release's default names, without marks; Secrets and statuses as
/// it wrote them, without `ownerProof`. The new operator proves the statuses that exist when
/// its key is first used, stamps marks, and nothing is rotated.
#[tokio::test]
async fn statuses_from_the_release_before_proofs_are_trusted_and_proven() {
    let (cluster, dir) = own_control_plane("upgrade-legacy").await;
    let client = cluster.client().await.unwrap();
    let namespace = "legacy";
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let credstore = processes::private_credstore("upgrade-legacy");
    fixtures::zenml_store(&client, namespace, "zenml", &credstore).await;
    fixtures::trend_store(&client, namespace, "trend", &credstore).await;
    fixtures::prefactor_store(&client, namespace, "prefactor", &credstore).await;

    let text = "billing exports";
    let legacy = [
        Legacy::zenml(&credstore, &format!("{namespace}-exports"), text).await,
        Legacy::trend(&credstore, &format!("{namespace}-scanner"), text).await,
        Legacy::prefactor(&credstore).await,
    ];
    for (resource, spec, issued) in [
        (
            "exports",
            json!({"storeRef": {"name": "zenml"}, "serviceAccount": SERVICE_ACCOUNT, "description": text}),
            &legacy[0],
        ),
        (
            "scanner",
            json!({"storeRef": {"name": "trend"}, "roleID": 1, "description": text}),
            &legacy[1],
        ),
        (
            "billing",
            json!({"storeRef": {"name": "prefactor"}, "scope": "account"}),
            &legacy[2],
        ),
    ] {
        issued.write(&client, namespace, resource, spec).await;
    }
    let operator = OperatorCommand::new(cluster.kubeconfig())
        .with_probes()
        .log(&dir.join("operator.log"));
    let probes = operator.probes();
    let mut operator = operator.spawn();
    processes::wait_ready(&probes);

    let keys: Api<ServiceAccountKey> = Api::namespaced(client.clone(), namespace);
    let tokens: Api<ApiToken> = Api::namespaced(client.clone(), namespace);
    let proven = |status: Option<&KeyStatus>| {
        status.is_some_and(|s| s.owner_proof.is_some() && s.rotation_count.is_none())
    };
    let exports = wait_for(&keys, "exports", "Ready and proven", |k| {
        is_ready(k) && proven(k.status.as_ref())
    })
    .await;
    let scanner = wait_for(&keys, "scanner", "Ready and proven", |k| {
        is_ready(k) && proven(k.status.as_ref())
    })
    .await;
    wait_for(&tokens, "billing", "Ready and proven", |t| {
        is_ready(t) && proven(t.status.as_ref())
    })
    .await;

    let identity = fixtures::cluster_identity(&client).await;
    let marked = |key: &ServiceAccountKey| {
        identity
            .mark(&kube::ResourceExt::uid(key).unwrap())
            .describe(Some(text))
    };
    let (zenml_marked, trend_marked) = (marked(&exports), marked(&scanner));
    eventually("marks stamped on both keys", (true, true), || async {
        let zenml = zenml_key(&credstore, &legacy[0].id).await.unwrap();
        let trend = trend_key(&credstore, &legacy[1].id).await.unwrap();
        (
            zenml["metadata"]["description"] == zenml_marked.as_str(),
            trend["description"] == trend_marked.as_str(),
        )
    })
    .await;
    assert_eq!(
        zenml_login(&credstore, &legacy[0].secret).await,
        200,
        "the delivered ZenML key"
    );
    assert_eq!(
        trend_current(&credstore, &legacy[1].secret).await,
        200,
        "the delivered Trend key"
    );
    assert_eq!(
        fixtures::ping(&credstore, &legacy[2].secret).await,
        200,
        "the delivered token"
    );

    // The token, the one kind without marks, is the resource's own from now on: its
    // deletion revokes and deletes it upstream.
    tokens.delete("billing", &DeleteParams::default()).await.unwrap();
    eventually("the legacy token deleted upstream", true, || async {
        fixtures::upstream_token(&credstore, &legacy[2].id)
            .await
            .is_none()
    })
    .await;
    let _ = operator.kill();
    let _ = operator.wait();
}

/// An upstream credential the release before marks issued, and how it delivered it.
struct Legacy {
    id: String,
    secret: String,
    secret_key: &'static str,
    kind: &'static str,
}

impl Legacy {
    async fn zenml(credstore: &Credstore, name: &str, description: &str) -> Self {
        let (id, secret) = fixtures::hand_made_zenml_key(credstore, name, description).await;
        Legacy {
            id,
            secret,
            secret_key: "apiKey",
            kind: "ServiceAccountKey",
        }
    }

    async fn trend(credstore: &Credstore, name: &str, description: &str) -> Self {
        let (id, secret) = fixtures::hand_made_trend_key(credstore, name, description).await;
        Legacy {
            id,
            secret,
            secret_key: "apiKey",
            kind: "ServiceAccountKey",
        }
    }

    async fn prefactor(credstore: &Credstore) -> Self {
        let created: Value = reqwest::Client::new()
            .post(format!("{}/api/v1/api_token", credstore.url))
            .bearer_auth(&credstore.prefactor_token)
            .json(&json!({"details": {"token_scope": "account"}, "idempotency_key": "legacy-create"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Legacy {
            id: created["details"]["id"].as_str().unwrap().into(),
            secret: created["token"].as_str().unwrap().into(),
            secret_key: "token",
            kind: "ApiToken",
        }
    }

    /// The resource `name` with `spec`, its finalizer, its Secret and its status, as the
    /// earlier release wrote them.
    async fn write(&self, client: &Client, namespace: &str, name: &str, spec: Value) {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &self.resource());
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "apikeys.dev/v1alpha1", "kind": self.kind,
            "metadata": {"name": name, "finalizers": ["apikeys.dev/cleanup"]}, "spec": spec,
        }))
        .unwrap();
        let created = api.create(&PostParams::default(), &object).await.unwrap();
        let owner = OwnerReference {
            api_version: "apikeys.dev/v1alpha1".into(),
            kind: self.kind.into(),
            name: name.into(),
            uid: created.metadata.uid.clone().unwrap(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let material = Material {
            credential_id: self.id.clone(),
            entries: vec![(self.secret_key, self.secret.clone())],
        };
        let secret = target_secret::desired(name, namespace, owner, &SecretTemplate::default(), &material);
        Api::<Secret>::namespaced(client.clone(), namespace)
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
        let status = json!({
            "apiVersion": "apikeys.dev/v1alpha1", "kind": self.kind, "metadata": {"name": name},
            "status": {
                "observedGeneration": created.metadata.generation,
                "upstreamId": self.id, "credentialId": self.id, "upstreamState": "active",
                "secretName": name, "secretFingerprint": material.fingerprint(),
                "lastRotationTime": "2026-11-01T00:00:00Z",
                "handledRotationRequests": {},
            },
        });
        api.patch_status(
            name,
            &PatchParams::apply("apikey-operator").force(),
            &Patch::Apply(status),
        )
        .await
        .unwrap();
    }

    fn resource(&self) -> ApiResource {
        match self.kind {
            "ApiToken" => ApiResource::erase::<ApiToken>(&()),
            _ => ApiResource::erase::<ServiceAccountKey>(&()),
        }
    }
}

/// A control plane of the test's own, so that no operator has run on it before.
async fn own_control_plane(name: &str) -> (LocalCluster, PathBuf) {
    let dir = envtest::control_plane()
        .dir
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cluster = LocalCluster::start(&envtest::control_plane().assets, &dir.join("control-plane"))
        .await
        .unwrap_or_else(|e| panic!("starting a control plane: {e}"));
    cluster.install_crds(&apikey_operator::api::crds()).await.unwrap();
    (cluster, dir)
}
