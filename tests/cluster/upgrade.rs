//! Upgrading from the release before owner marks: its upstream objects carry the user's
//! description and no mark, and their ids are in the resources' status. The operator stamps
//! the mark on them (it trusts what the status records), the delivered keys keep working
//! without a rotation, and rotation and deletion then treat them as the resource's own.
//!
//! The earlier release's state is made by hand rather than by running its binary: a clone of
//! the repository need not hold the history to build it from, and a second full build would
//! cost CI minutes. The state is exact where it matters: a key created and delivered as
//! before, whose upstream description is then set back to the user's plain text, which is
//! all the earlier release ever wrote there.

use apikey_operator::api::{KeyStatus, ServiceAccountKey};
use kube::api::{Api, DeleteParams};
use serde_json::{Value, json};

use crate::fixtures::{
    self, eventually, is_ready, merge, trend_current, trend_key, wait_for, zenml_admin_session, zenml_login,
};
use crate::processes::{self, Credstore};
use crate::support;

const SERVICE_ACCOUNT: &str = "apikey-operator";

fn status_of(key: &ServiceAccountKey) -> KeyStatus {
    key.status.clone().unwrap_or_default()
}

/// `/api/v1/service_accounts/<id>/api_keys/<key>` of the account keys are made on.
fn zenml_key_url(credstore: &Credstore, key: &str) -> String {
    let bootstrap: Value = serde_json::from_str(&credstore.bootstrap_file("bootstrap.json")).unwrap();
    let account = bootstrap["zenml"]["serviceAccountId"].as_str().unwrap();
    format!(
        "{}/api/v1/service_accounts/{account}/api_keys/{key}",
        credstore.url
    )
}

/// The ZenML key `id` as the admin sees it (`None` once deleted).
async fn zenml_key(credstore: &Credstore, bearer: &str, id: &str) -> Option<Value> {
    let response = reqwest::Client::new()
        .get(zenml_key_url(credstore, id))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    (response.status() != 404).then_some(())?;
    assert!(
        response.status().is_success(),
        "GET key {id}: {}",
        response.status()
    );
    Some(response.json().await.unwrap())
}

/// Sets the upstream descriptions back to what the earlier release wrote: the user's text.
async fn strip_marks(credstore: &Credstore, bearer: &str, zenml_id: &str, trend_id: &str, text: &str) {
    let http = reqwest::Client::new();
    let zenml = http
        .put(zenml_key_url(credstore, zenml_id))
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
    let client = support::client().await;
    let namespace = support::namespace(&client, "upgrade").await;
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
        zenml_key(&credstore, &bearer, &zenml_id).await.unwrap()["metadata"]["description"],
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
        let zenml = zenml_key(&credstore, &bearer, &zenml_id).await.unwrap();
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
            zenml_key(&credstore, &bearer, &zenml_id).await.is_none(),
            trend_key(&credstore, &trend_id).await.is_none(),
        )
    })
    .await;
}
