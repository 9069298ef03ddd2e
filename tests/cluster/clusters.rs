//! Two clusters sharing one upstream: a second control plane with an operator of its own,
//! the same manifests applied to both against one credential store (staging and production
//! from one Git repository, one ZenML server, one Akamai account). Default names and owner
//! marks derive from each cluster's identity (its kube-system UID), so each cluster gets its
//! own upstream objects, a name pinned in both is `NameTaken` for the second, and deleting
//! one cluster's resources leaves the other's keys working.

use std::collections::BTreeMap;
use std::path::Path;

use apikey_operator::api::{ApiClient, KeyStatus, ServiceAccountKey};
use apikey_operator::localcluster::LocalCluster;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, Resource};
use serde_json::{Value, json};

use apikey_operator_test_support::envtest;
use apikey_operator_test_support::fixtures::{
    self, akamai_get, eventually, is_ready, not_ready_because, trend_current, wait_for, zenml_login,
};
use apikey_operator_test_support::processes::{self, Credstore, OperatorCommand};

/// The manifests both clusters get: a ZenML key and a Trend Micro key with default names,
/// an ApiClient with a default name, and a ZenML key whose name is pinned in Git.
fn manifests(pinned: &str) -> Vec<Value> {
    let key = |name: &str, spec: Value| json!({"apiVersion": "apikeys.dev/v1alpha1", "kind": "ServiceAccountKey", "metadata": {"name": name}, "spec": spec});
    vec![
        key(
            "reports",
            json!({"storeRef": {"name": "zenml"}, "serviceAccount": "apikey-operator", "description": "nightly reports"}),
        ),
        key("scanner", json!({"storeRef": {"name": "trend"}, "roleID": 1})),
        key(
            "pinned",
            json!({"storeRef": {"name": "zenml"}, "serviceAccount": "apikey-operator", "keyName": pinned}),
        ),
        json!({"apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiClient", "metadata": {"name": "purger"}, "spec": {
            "storeRef": {"name": "akamai"}, "authorizedUsers": ["platform-bot"],
            "apiAccess": {"allAccessibleApis": true}, "purgeOptions": {"canPurgeByCacheTag": true, "canPurgeByCpcode": true, "cpcodeAccess": {"allCurrentAndNewCpcodes": true}}, "groupAccess": {"cloneAuthorizedUserGroups": true},
        }}),
    ]
}

/// The stores and manifests in `namespace` of the cluster `client` talks to.
async fn apply_all(client: &Client, namespace: &str, credstore: &Credstore, pinned: &str) {
    fixtures::zenml_store(client, namespace, "zenml", credstore).await;
    fixtures::trend_store(client, namespace, "trend", credstore).await;
    fixtures::akamai_store(client, namespace, "akamai", credstore).await;
    for manifest in manifests(pinned) {
        fixtures::apply(client, namespace, manifest).await;
    }
}

/// What one cluster's resources hold: upstream ids and the credentials in their Secrets.
struct Issued {
    zenml_id: String,
    zenml_key: String,
    trend_id: String,
    trend_key: String,
    client_id: String,
    edgerc: BTreeMap<String, String>,
}

async fn secret_data(client: &Client, namespace: &str, name: &str) -> BTreeMap<String, String> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("Secret {name}: {e}"));
    secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
        .collect()
}

fn upstream_id<K: Resource + serde::Serialize>(object: &K) -> String {
    let status: KeyStatus =
        serde_json::from_value(serde_json::to_value(object).unwrap()["status"].clone()).unwrap();
    status.upstream_id.expect("a Ready key records its upstream id")
}

/// Waits for the three default-named resources to be Ready and reads what they hold.
async fn issued(client: &Client, namespace: &str) -> Issued {
    let keys: Api<ServiceAccountKey> = Api::namespaced(client.clone(), namespace);
    let clients: Api<ApiClient> = Api::namespaced(client.clone(), namespace);
    let reports = wait_for(&keys, "reports", "Ready", is_ready).await;
    let scanner = wait_for(&keys, "scanner", "Ready", is_ready).await;
    let purger = wait_for(&clients, "purger", "Ready", is_ready).await;
    Issued {
        zenml_id: upstream_id(&reports),
        zenml_key: secret_data(client, namespace, "reports").await["apiKey"].clone(),
        trend_id: upstream_id(&scanner),
        trend_key: secret_data(client, namespace, "scanner").await["apiKey"].clone(),
        client_id: upstream_id(&purger),
        edgerc: secret_data(client, namespace, "purger").await,
    }
}

/// Every credential `issued` holds authenticates against the credential store.
async fn assert_working(credstore: &Credstore, issued: &Issued, whose: &str) {
    assert_eq!(
        zenml_login(credstore, &issued.zenml_key).await,
        200,
        "{whose} ZenML key"
    );
    assert_eq!(
        trend_current(credstore, &issued.trend_key).await,
        200,
        "{whose} Trend key"
    );
    let (status, _) = akamai_get(&issued.edgerc, "/api-clients/self").await;
    assert_eq!(status, 200, "{whose} Akamai credential");
}

/// A second control plane with the CRDs and an operator serving all its namespaces.
async fn second_cluster(dir: &Path) -> (LocalCluster, std::process::Child) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let cluster = LocalCluster::start(&envtest::control_plane().assets, &dir.join("control-plane"))
        .await
        .unwrap_or_else(|e| panic!("starting the second control plane: {e}"));
    cluster.install_crds(&apikey_operator::api::crds()).await.unwrap();
    let command = OperatorCommand::new(cluster.kubeconfig())
        .with_probes()
        .log(&dir.join("operator.log"));
    let probes = command.probes();
    let operator = command.spawn();
    processes::wait_ready(&probes);
    (cluster, operator)
}

#[tokio::test]
async fn two_clusters_sharing_one_upstream_never_touch_each_other_s_keys() {
    processes::operator();
    let first = envtest::client().await;
    let namespace = envtest::namespace(&first, "clusters").await;
    let credstore = processes::private_credstore(&namespace);
    let dir = envtest::control_plane().dir.join(format!("second-{namespace}"));
    let (cluster, mut operator) = second_cluster(&dir).await;
    let second = cluster.client().await.unwrap();
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
    Api::<Namespace>::all(second.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let pinned = format!("pinned-{namespace}");

    // The first cluster applies first, so the pinned name is its key.
    apply_all(&first, &namespace, &credstore, &pinned).await;
    let first_keys: Api<ServiceAccountKey> = Api::namespaced(first.clone(), &namespace);
    wait_for(&first_keys, "pinned", "Ready", is_ready).await;
    let in_first = issued(&first, &namespace).await;
    let pinned_key = secret_data(&first, &namespace, "pinned").await["apiKey"].clone();
    apply_all(&second, &namespace, &credstore, &pinned).await;
    let in_second = issued(&second, &namespace).await;

    assert_ne!(
        in_first.zenml_id, in_second.zenml_id,
        "one ZenML key for two clusters"
    );
    assert_ne!(
        in_first.trend_id, in_second.trend_id,
        "one Trend Micro key for two clusters"
    );
    assert_ne!(
        in_first.client_id, in_second.client_id,
        "one Akamai client for two clusters"
    );
    assert_working(&credstore, &in_first, "the first cluster's").await;
    assert_working(&credstore, &in_second, "the second cluster's").await;

    let second_keys: Api<ServiceAccountKey> = Api::namespaced(second.clone(), &namespace);
    let taken = wait_for(&second_keys, "pinned", "NameTaken", |k| {
        not_ready_because(k, "NameTaken")
    })
    .await;
    let message = serde_json::to_value(&taken).unwrap()["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| c["message"].as_str().unwrap().to_string())
        .unwrap();
    assert!(
        message.contains(&pinned) && message.contains("spec.keyName"),
        "{message}"
    );
    assert!(
        Api::<Secret>::namespaced(second.clone(), &namespace)
            .get_opt("pinned")
            .await
            .unwrap()
            .is_none(),
        "the second cluster got a Secret for the first cluster's key"
    );

    // The second cluster's resources deleted (policy Delete): the first cluster's keys,
    // the pinned one included, keep working.
    for name in ["reports", "scanner", "pinned"] {
        second_keys.delete(name, &DeleteParams::default()).await.unwrap();
    }
    let second_clients: Api<ApiClient> = Api::namespaced(second.clone(), &namespace);
    second_clients
        .delete("purger", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the second cluster's keys deleted", (true, true), || async {
        let keys = second_keys
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty();
        let clients = second_clients
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty();
        (keys, clients)
    })
    .await;
    assert_eq!(
        zenml_login(&credstore, &in_second.zenml_key).await,
        401,
        "the second cluster's own key is deleted"
    );
    assert_working(&credstore, &in_first, "the first cluster's").await;
    assert_eq!(zenml_login(&credstore, &pinned_key).await, 200, "the pinned key");
    let first_clients: Api<ApiClient> = Api::namespaced(first.clone(), &namespace);
    assert!(is_ready(&first_keys.get("pinned").await.unwrap()));
    assert!(is_ready(&first_clients.get("purger").await.unwrap()));

    let _ = operator.kill();
    let _ = operator.wait();
}
