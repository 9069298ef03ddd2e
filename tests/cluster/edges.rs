//! Bad input at the edges: store credential Secrets with missing keys, garbage or the wrong
//! type; target Secrets edited or deleted by hand; a target Secret name that belongs to
//! someone else.

use std::collections::BTreeMap;

use apikey_operator::api::{ApiClient, ApiToken, CredentialStore, KeyStatus};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use apikey_operator_test_support::envtest;
use apikey_operator_test_support::fixtures::{
    self, TokenSetup, akamai_admin, akamai_get, is_ready, merge, ping, wait_for,
};
use apikey_operator_test_support::processes::{self, Credstore};

fn ready_message<K: serde::Serialize>(object: &K) -> String {
    let value = serde_json::to_value(object).unwrap();
    value["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .map(|c| c["message"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

fn status_of<K: serde::Serialize>(object: &K) -> KeyStatus {
    serde_json::from_value(serde_json::to_value(object).unwrap()["status"].clone()).unwrap()
}

/// Replaces Secret `name` with one of `type_` holding `string_data`.
async fn replace_secret(client: &Client, namespace: &str, name: &str, type_: &str, string_data: Value) {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": name}, "type": type_, "stringData": string_data,
    }))
    .unwrap();
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let _ = api.delete(name, &Default::default()).await;
    api.create(&PostParams::default(), &secret).await.unwrap();
}

/// One provider's store and the Secret contents that break it.
struct BadStore {
    provider: &'static str,
    spec: Value,
    good: Value,
    /// The good data with one value replaced.
    with: fn(&Value, &str) -> Value,
    /// A key every message must name.
    key: &'static str,
}

fn replaced(good: &Value, key: &str, value: &str) -> Value {
    let mut data = good.clone();
    data[key] = json!(value);
    data
}

fn bad_stores(credstore: &Credstore) -> Vec<BadStore> {
    let url = credstore.url.clone();
    let akamai: BTreeMap<String, String> = akamai_admin(credstore);
    vec![
        BadStore {
            provider: "prefactor",
            spec: json!({"prefactor": {"url": url, "credentialsSecretRef": {"name": "prefactor-admin"}}}),
            good: json!({"token": credstore.prefactor_token}),
            with: |good, value| replaced(good, "token", value),
            key: "token",
        },
        BadStore {
            provider: "zenml",
            spec: json!({"zenml": {"url": url, "credentialsSecretRef": {"name": "zenml-admin"}}}),
            good: json!({"apiKey": credstore.bootstrap_file("zenml.api-key")}),
            with: |good, value| replaced(good, "apiKey", value),
            key: "apiKey",
        },
        BadStore {
            provider: "trendMicro",
            spec: json!({"trendMicro": {"url": format!("{url}/api"), "credentialsSecretRef": {"name": "trendmicro-admin"}}}),
            good: json!({"apiSecretKey": credstore.bootstrap_file("trendmicro.secret-key")}),
            with: |good, value| replaced(good, "apiSecretKey", value),
            key: "apiSecretKey",
        },
        BadStore {
            provider: "akamai",
            spec: json!({"akamai": {"url": url, "credentialsSecretRef": {"name": "akamai-admin"}}}),
            good: serde_json::to_value(akamai).unwrap(),
            with: |good, value| replaced(good, "client_secret", value),
            key: "client_secret",
        },
    ]
}

#[tokio::test]
async fn store_credential_secrets_with_bad_content_say_which_key_to_fix_and_recover() {
    let credstore = processes::credstore();
    processes::operator();
    let client = envtest::client().await;
    let namespace = envtest::namespace(&client, "bad-store-secrets").await;
    let stores: Api<CredentialStore> = Api::namespaced(client.clone(), &namespace);

    for store in bad_stores(credstore) {
        let name = store.provider.to_lowercase();
        let secret = format!("{name}-admin");
        let put = |type_: &'static str, data: Value| {
            let (client, namespace, secret) = (client.clone(), namespace.clone(), secret.clone());
            async move { replace_secret(&client, &namespace, &secret, type_, data).await }
        };
        put("Opaque", json!({"unrelated": "x"})).await;
        fixtures::apply(
            &client,
            &namespace,
            json!({"apiVersion": "apikeys.dev/v1alpha1", "kind": "CredentialStore", "metadata": {"name": name}, "spec": store.spec}),
        )
        .await;
        // (Secret type, data, expected reason, what the message must say besides the key)
        let cases = [
            (
                "Opaque",
                json!({"unrelated": "x"}),
                "CredentialsInvalid",
                "has no key",
            ),
            (
                "Opaque",
                (store.with)(&store.good, "half-a-key\nand-the-rest"),
                "CredentialsInvalid",
                "line break",
            ),
            (
                "Opaque",
                (store.with)(&store.good, "not-a-credential-of-this-store"),
                "CredentialsRefused",
                "refused",
            ),
            // A basic-auth Secret holds exactly what a ZenML admin user is: it is read, and
            // the wrong password refused; to the others it is the wrong type of Secret.
            if store.provider == "zenml" {
                (
                    "kubernetes.io/basic-auth",
                    json!({"username": "admin", "password": "hunter2"}),
                    "CredentialsRefused",
                    "`username` and `password`",
                )
            } else {
                (
                    "kubernetes.io/basic-auth",
                    json!({"username": "admin", "password": "hunter2"}),
                    "CredentialsInvalid",
                    "of type kubernetes.io/basic-auth",
                )
            },
        ];
        for (type_, data, reason, says) in cases {
            put(type_, data).await;
            let what = format!("{name}: {reason} saying {says:?}");
            let broken = wait_for(&stores, &name, &what, |s: &CredentialStore| {
                fixtures::not_ready_because(s, reason) && ready_message(s).contains(says)
            })
            .await;
            let message = ready_message(&broken);
            assert!(
                message.contains(&format!("`{}`", store.key)) && message.contains(&secret),
                "{name}: the message names the Secret and the key: {message}"
            );
        }
        put("Opaque", store.good.clone()).await;
        wait_for(&stores, &name, "Ready once fixed", is_ready).await;
    }
}

/// The SecretLost events about `object`, as one JSON text.
async fn secret_lost_events(client: &Client, namespace: &str, object: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some("SecretLost")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(object)
        })
        .collect()
}

/// The three ways a user loses a target Secret's material.
async fn lose_material(secrets: &Api<Secret>, name: &str, key: &str, how: &str) {
    match how {
        "edited" => {
            let patch = json!({"stringData": {key: "edited-by-hand"}});
            secrets
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
        "key removed" => {
            let patch = json!({"data": {key: null}});
            secrets
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
        _ => {
            secrets.delete(name, &Default::default()).await.unwrap();
        }
    }
}

const LOSSES: [&str; 3] = ["edited", "key removed", "deleted"];

#[tokio::test]
async fn a_token_secret_edited_or_deleted_by_hand_is_reissued_and_the_old_token_retired() {
    let s = TokenSetup::new("token-secret-by-hand").await;
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), &s.namespace);
    let mut token = s
        .ready_token("by-hand", json!({"rotation": {"retainPrevious": "0s"}}))
        .await;
    for (rotations, how) in (1..).zip(LOSSES) {
        let old = status_of(&token).upstream_id.unwrap();
        lose_material(&secrets, "by-hand", "token", how).await;
        token = wait_for(&s.tokens, "by-hand", "reissued", |t: &ApiToken| {
            let status = status_of(t);
            is_ready(t) && status.rotation_count == Some(rotations) && status.retiring.is_empty()
        })
        .await;
        let new = status_of(&token).upstream_id.unwrap();
        assert_ne!(new, old, "{how}: a new token");
        assert_eq!(
            ping(s.credstore, &s.secret_token("by-hand").await).await,
            200,
            "{how}"
        );
        assert_eq!(
            fixtures::upstream_token(s.credstore, &old).await,
            None,
            "{how}: the old token is retired upstream"
        );
        let events = secret_lost_events(&s.client, &s.namespace, "by-hand").await;
        assert!(
            events
                .iter()
                .any(|e| e.note.as_deref().is_some_and(|n| n.contains("Secret by-hand"))),
            "{how}: a SecretLost event names the Secret: {events:?}"
        );
    }
}

#[tokio::test]
async fn a_client_secret_edited_or_deleted_by_hand_is_reissued_and_the_old_credential_retired() {
    processes::operator();
    let client = envtest::client().await;
    let namespace = envtest::namespace(&client, "client-secret-by-hand").await;
    let credstore = processes::private_credstore(&namespace);
    fixtures::akamai_store(&client, &namespace, "akamai", &credstore).await;
    fixtures::apply(
        &client,
        &namespace,
        json!({
            "apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiClient", "metadata": {"name": "by-hand"},
            "spec": {
                "storeRef": {"name": "akamai"}, "authorizedUsers": ["platform-bot"],
                "apiAccess": {"allAccessibleApis": true}, "purgeOptions": {"canPurgeByCacheTag": true, "canPurgeByCpcode": true, "cpcodeAccess": {"allCurrentAndNewCpcodes": true}}, "groupAccess": {"cloneAuthorizedUserGroups": true},
                "rotation": {"retainPrevious": "0s"},
            },
        }),
    )
    .await;
    let clients: Api<ApiClient> = Api::namespaced(client.clone(), &namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let mut object = wait_for(&clients, "by-hand", "Ready", is_ready).await;
    let client_id = status_of(&object).upstream_id.unwrap();
    for (rotations, how) in (1..).zip(LOSSES) {
        let old = status_of(&object).credential_id.unwrap();
        lose_material(&secrets, "by-hand", "client_secret", how).await;
        object = wait_for(&clients, "by-hand", "reissued", |c: &ApiClient| {
            let status = status_of(c);
            is_ready(c) && status.rotation_count == Some(rotations) && status.retiring.is_empty()
        })
        .await;
        assert_ne!(
            status_of(&object).credential_id.unwrap(),
            old,
            "{how}: a new credential"
        );
        let edgerc: BTreeMap<String, String> = secrets
            .get("by-hand")
            .await
            .unwrap()
            .data
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
            .collect();
        assert_eq!(akamai_get(&edgerc, "/api-clients/self").await.0, 200, "{how}");
        let (_, credentials) = akamai_get(
            &akamai_admin(&credstore),
            &format!("/api-clients/{client_id}/credentials"),
        )
        .await;
        let old_status = credentials
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["credentialId"].as_i64() == old.parse().ok())
            .map(|c| c["status"].clone());
        assert!(
            old_status.is_none() || old_status == Some(json!("DELETED")),
            "{how}: the old credential is retired upstream: {old_status:?}"
        );
        assert!(
            !secret_lost_events(&client, &namespace, "by-hand")
                .await
                .is_empty(),
            "{how}: a SecretLost event"
        );
    }
}

#[tokio::test]
async fn a_target_secret_owned_by_someone_else_is_never_taken_over() {
    processes::operator();
    let client = envtest::client().await;
    let namespace = envtest::namespace(&client, "secret-taken").await;
    let credstore = processes::private_credstore(&namespace);
    fixtures::prefactor_store(&client, &namespace, "prefactor", &credstore).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let tokens: Api<ApiToken> = Api::namespaced(client.clone(), &namespace);
    // Someone else's Secret, and one that even wears the operator's label.
    fixtures::put_secret(&client, &namespace, "taken", json!({"token": "theirs"})).await;
    let lookalike: Secret = serde_json::from_value(json!({
        "metadata": {"name": "lookalike", "labels": {"app.kubernetes.io/managed-by": "apikey-operator"}},
        "stringData": {"token": "also-theirs"},
    }))
    .unwrap();
    secrets.create(&PostParams::default(), &lookalike).await.unwrap();

    for (name, secret) in [("squatter", "taken"), ("impostor", "lookalike")] {
        fixtures::apply(
            &client,
            &namespace,
            json!({
                "apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiToken", "metadata": {"name": name},
                "spec": {"storeRef": {"name": "prefactor"}, "scope": "account", "secret": {"name": secret}},
            }),
        )
        .await;
        let refused = wait_for(&tokens, name, "SecretOwnedByOther", |t: &ApiToken| {
            fixtures::not_ready_because(t, "SecretOwnedByOther")
        })
        .await;
        let message = ready_message(&refused);
        assert!(message.contains(&format!("Secret {secret} ")), "{message}");
        assert_eq!(status_of(&refused).upstream_id, None, "{name}: nothing minted");
    }
    let listed: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/api_token", credstore.url))
        .bearer_auth(&credstore.prefactor_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["summaries"], json!([]), "no token minted for nothing");

    // Pointing the resource elsewhere resolves it; their Secrets stay as they were.
    merge(&tokens, "squatter", json!({"spec": {"secret": {"name": "mine"}}})).await;
    wait_for(&tokens, "squatter", "Ready", is_ready).await;
    for (secret, value) in [("taken", "theirs"), ("lookalike", "also-theirs")] {
        let untouched = secrets.get(secret).await.unwrap();
        assert_eq!(
            untouched.data.unwrap()["token"].0,
            value.as_bytes(),
            "{secret} unchanged"
        );
        assert_eq!(untouched.metadata.owner_references, None, "{secret} not adopted");
    }
}
