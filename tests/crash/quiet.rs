//! A quiet minute: once everything is Ready, the operator makes no Kubernetes writes and
//! no upstream calls. Here, in the binary without a shared cluster-wide operator, so the
//! operator under test is the only one reconciling its namespace.

use std::collections::BTreeMap;
use std::time::Duration;

use apikey_operator::api::ApiToken;
use kube::api::Api;
use serde_json::{Value, json};

use apikey_operator_test_support::envtest;
use apikey_operator_test_support::fixtures::{self, is_ready, wait_for};
use apikey_operator_test_support::processes::{self, Credstore};

/// Counters of the operator (Kubernetes requests by method) and the credential store
/// (upstream requests by operation).
async fn counters(operator: &processes::Operator, credstore: &Credstore) -> (BTreeMap<String, f64>, Value) {
    let kube = processes::scrape(&operator.probes)
        .await
        .expect("the operator serves /metrics")
        .into_iter()
        .filter_map(|(series, value)| {
            let method = series
                .strip_prefix("apikey_operator_kubernetes_requests_total{method=\"")?
                .strip_suffix("\"}")?;
            Some((method.to_string(), value))
        })
        .collect();
    let upstream = reqwest::get(format!("{}/_credstore/requests", credstore.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (kube, upstream)
}

#[tokio::test]
async fn a_quiet_minute_costs_no_writes_and_no_upstream_calls() {
    envtest::control_plane();
    let client = envtest::client().await;
    let namespace = envtest::namespace(&client, "quiet").await;
    let dir = envtest::control_plane().dir.join(&namespace);
    std::fs::create_dir_all(&dir).unwrap();
    let credstore = processes::start_credstore(&dir.join("credstore"));
    let operator = processes::start_operator(&dir, "operator", Some(&namespace));
    fixtures::prefactor_store(&client, &namespace, "prefactor", &credstore).await;
    let tokens: Api<ApiToken> = Api::namespaced(client.clone(), &namespace);
    for name in ["quiet-a", "quiet-b"] {
        fixtures::apply(
            &client,
            &namespace,
            json!({
                "apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiToken", "metadata": {"name": name},
                "spec": {"storeRef": {"name": "prefactor"}, "scope": "account", "rotation": {"interval": "720h"}},
            }),
        )
        .await;
    }
    for name in ["quiet-a", "quiet-b"] {
        wait_for(&tokens, name, "Ready", is_ready).await;
    }
    // Let the events of convergence (status echoes, Secret watch events) settle.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let (kube_before, upstream_before) = counters(&operator, &credstore).await;
    assert!(
        kube_before.get("PATCH").copied().unwrap_or_default() > 0.0,
        "the counters count: {kube_before:?}"
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (kube_after, upstream_after) = counters(&operator, &credstore).await;

    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        assert_eq!(
            kube_before.get(method),
            kube_after.get(method),
            "{method} requests in a quiet minute"
        );
    }
    assert_eq!(
        upstream_before["prefactor"], upstream_after["prefactor"],
        "upstream requests in a quiet minute"
    );
    // No twins: the upstream holds exactly the two tokens the resources name (a create
    // repeated with its idempotency key returns the same token, so POSTs may exceed two).
    let listed: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/v1/api_token", credstore.url))
        .bearer_auth(&credstore.prefactor_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut upstream_ids: Vec<String> = listed["summaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    let mut resource_ids: Vec<String> = tokens
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|t| t.status.as_ref().unwrap().upstream_id.clone().unwrap())
        .collect();
    upstream_ids.sort();
    resource_ids.sort();
    assert_eq!(
        upstream_ids, resource_ids,
        "exactly the resources' tokens exist upstream"
    );
    println!("quiet minute: Kubernetes requests before {kube_before:?}, after {kube_after:?}");
}
