//! Store problems give `Ready=False` with a distinct reason and a message saying what to
//! fix, on the store and on the keys using it; fixing the store recovers the keys without
//! touching them.

use apikey_operator::api::{ApiToken, ClusterCredentialStore, CredentialStore};
use kube::api::Api;
use serde_json::json;

use apikey_operator_test_support::envtest;
use apikey_operator_test_support::fixtures::{self, is_ready, merge, not_ready_because, wait_for};
use apikey_operator_test_support::processes;

fn ready_message<K: serde::Serialize>(object: &K) -> String {
    let value = serde_json::to_value(object).unwrap();
    value["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .map(|c| c["message"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

fn token_manifest(name: &str, store: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiToken", "metadata": {"name": name},
        "spec": {"storeRef": store, "scope": "account"},
    })
}

#[tokio::test]
async fn store_credential_problems_have_distinct_reasons_and_recover() {
    let credstore = processes::credstore();
    processes::operator();
    let client = envtest::client().await;
    let namespace = envtest::namespace(&client, "store-problems").await;
    let stores: Api<CredentialStore> = Api::namespaced(client.clone(), &namespace);
    let tokens: Api<ApiToken> = Api::namespaced(client.clone(), &namespace);

    // The Secret is missing: the store says which Secret to create; the token waits.
    fixtures::apply(
        &client,
        &namespace,
        json!({
            "apiVersion": "apikeys.dev/v1alpha1", "kind": "CredentialStore", "metadata": {"name": "prefactor"},
            "spec": {"prefactor": {"url": credstore.url, "credentialsSecretRef": {"name": "admin"}}},
        }),
    )
    .await;
    let store = wait_for(
        &stores,
        "prefactor",
        "CredentialsSecretMissing",
        |s: &CredentialStore| not_ready_because(s, "CredentialsSecretMissing"),
    )
    .await;
    assert!(ready_message(&store).contains(&format!("Secret {namespace}/admin does not exist")));
    fixtures::apply(
        &client,
        &namespace,
        token_manifest("waiting", json!({"name": "prefactor"})),
    )
    .await;
    let token = wait_for(&tokens, "waiting", "StoreNotReady", |t: &ApiToken| {
        not_ready_because(t, "StoreNotReady")
    })
    .await;
    assert!(
        ready_message(&token).contains("CredentialStore"),
        "{}",
        ready_message(&token)
    );

    // A Secret without the expected key.
    fixtures::put_secret(&client, &namespace, "admin", json!({"password": "x"})).await;
    let store = wait_for(
        &stores,
        "prefactor",
        "CredentialsInvalid",
        |s: &CredentialStore| not_ready_because(s, "CredentialsInvalid"),
    )
    .await;
    assert!(
        ready_message(&store).contains("token"),
        "names the missing key: {}",
        ready_message(&store)
    );

    // A credential the upstream refuses.
    fixtures::put_secret(
        &client,
        &namespace,
        "admin",
        json!({"token": "pfat_not-a-real-token"}),
    )
    .await;
    wait_for(
        &stores,
        "prefactor",
        "CredentialsRefused",
        |s: &CredentialStore| not_ready_because(s, "CredentialsRefused"),
    )
    .await;

    // Fixing the Secret is picked up without restarting anything, and the token follows
    // without being touched (its generation stays 1).
    fixtures::put_secret(
        &client,
        &namespace,
        "admin",
        json!({"token": credstore.prefactor_token}),
    )
    .await;
    wait_for(&stores, "prefactor", "Ready", is_ready).await;
    let token = wait_for(&tokens, "waiting", "Ready", is_ready).await;
    assert_eq!(token.metadata.generation, Some(1));

    // An unreachable upstream.
    merge(
        &stores,
        "prefactor",
        json!({"spec": {"prefactor": {"url": "http://127.0.0.1:9"}}}),
    )
    .await;
    wait_for(
        &stores,
        "prefactor",
        "UpstreamUnreachable",
        |s: &CredentialStore| not_ready_because(s, "UpstreamUnreachable"),
    )
    .await;

    // References to a missing store, or a store of the wrong kind.
    fixtures::apply(
        &client,
        &namespace,
        token_manifest("dangling", json!({"name": "nope"})),
    )
    .await;
    let token = wait_for(&tokens, "dangling", "StoreNotFound", |t: &ApiToken| {
        not_ready_because(t, "StoreNotFound")
    })
    .await;
    assert!(ready_message(&token).contains("spec.storeRef"));
    fixtures::apply(
        &client,
        &namespace,
        json!({
            "apiVersion": "apikeys.dev/v1alpha1", "kind": "CredentialStore", "metadata": {"name": "zenml"},
            "spec": {"zenml": {"url": credstore.url, "credentialsSecretRef": {"name": "zenml-admin"}}},
        }),
    )
    .await;
    fixtures::apply(
        &client,
        &namespace,
        token_manifest("wrong-kind", json!({"name": "zenml"})),
    )
    .await;
    let token = wait_for(&tokens, "wrong-kind", "WrongProvider", |t: &ApiToken| {
        not_ready_because(t, "WrongProvider")
    })
    .await;
    assert!(
        ready_message(&token).contains("prefactor"),
        "{}",
        ready_message(&token)
    );
}

#[tokio::test]
async fn cluster_store_serves_only_the_namespaces_it_allows() {
    let credstore = processes::credstore();
    processes::operator();
    let client = envtest::client().await;
    let admin_namespace = envtest::namespace(&client, "ccs-admin").await;
    let namespace = envtest::namespace(&client, "ccs-user").await;
    fixtures::put_secret(
        &client,
        &admin_namespace,
        "prefactor-admin",
        json!({"token": credstore.prefactor_token}),
    )
    .await;
    let store_name = format!("shared-{namespace}");
    let cluster_stores: Api<ClusterCredentialStore> = Api::all(client.clone());
    fixtures::apply(
        &client,
        &namespace,
        json!({
            "apiVersion": "apikeys.dev/v1alpha1", "kind": "ClusterCredentialStore", "metadata": {"name": store_name},
            "spec": {
                "prefactor": {"url": credstore.url, "credentialsSecretRef": {"name": "prefactor-admin", "namespace": admin_namespace}},
                "allowedNamespaces": [admin_namespace],
            },
        }),
    )
    .await;
    wait_for(&cluster_stores, &store_name, "Ready", is_ready).await;

    let tokens: Api<ApiToken> = Api::namespaced(client.clone(), &namespace);
    let store_ref = json!({"kind": "ClusterCredentialStore", "name": store_name});
    fixtures::apply(&client, &namespace, token_manifest("shared", store_ref)).await;
    let token = wait_for(&tokens, "shared", "NamespaceNotAllowed", |t: &ApiToken| {
        not_ready_because(t, "NamespaceNotAllowed")
    })
    .await;
    assert!(
        ready_message(&token).contains(&namespace),
        "{}",
        ready_message(&token)
    );

    merge(
        &cluster_stores,
        &store_name,
        json!({"spec": {"allowedNamespaces": [admin_namespace, namespace]}}),
    )
    .await;
    wait_for(&tokens, "shared", "Ready", is_ready).await;
}
