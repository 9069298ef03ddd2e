//! ServiceAccountKey against the real open-source ZenML server, not our emulation: with the
//! admin-user credential open-source servers need, with a service account's key where the
//! server enforces RBAC, and the store's verdict on a service-account key where it does not.
//! Every key the operator writes is tried against the server itself.

use std::time::Duration;

use apikey_operator::api::{CredentialStore, KeyStatus, ServiceAccountKey};
use kube::Client;
use kube::api::{Api, DeleteParams};
use serde_json::{Value, json};

use apikey_operator_test_support::envtest;
use apikey_operator_test_support::fixtures::{self, condition_detail, eventually, is_ready, merge, wait_for};
use apikey_operator_test_support::processes;
use apikey_operator_test_support::zenml_server::{self, ADMIN_PASSWORD, ADMIN_USER, ZenmlServer};

struct Setup {
    client: Client,
    namespace: String,
    keys: Api<ServiceAccountKey>,
    stores: Api<CredentialStore>,
}

async fn setup(prefix: &str) -> Setup {
    processes::operator();
    let client = envtest::client().await;
    let namespace = envtest::namespace(&client, prefix).await;
    Setup {
        keys: Api::namespaced(client.clone(), &namespace),
        stores: Api::namespaced(client.clone(), &namespace),
        client,
        namespace,
    }
}

impl Setup {
    async fn store(&self, server: &ZenmlServer, credential: Value) -> CredentialStore {
        fixtures::zenml_store_at(&self.client, &self.namespace, "zenml", &server.url, credential).await;
        wait_for(&self.stores, "zenml", "store probed", |s: &CredentialStore| {
            condition_detail(s, "Ready").is_some_and(|(_, reason, _)| reason != "WaitingForStore")
        })
        .await
    }

    async fn create_key(&self, name: &str, account: &str, extra: Value) -> ServiceAccountKey {
        let mut spec = json!({"storeRef": {"name": "zenml"}, "serviceAccount": account});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        fixtures::apply(
            &self.client,
            &self.namespace,
            json!({"apiVersion": "apikeys.dev/v1alpha1", "kind": "ServiceAccountKey", "metadata": {"name": name}, "spec": spec}),
        )
        .await;
        wait_for(&self.keys, name, "Ready", is_ready).await
    }

    async fn secret_key(&self, name: &str) -> String {
        fixtures::secret_value(&self.client, &self.namespace, name, "apiKey")
            .await
            .expect("the Secret holds an apiKey")
    }

    async fn wait_state(&self, name: &str, upstream: &str) {
        wait_for(&self.keys, name, upstream, |k: &ServiceAccountKey| {
            is_ready(k) && status_of(k).upstream_state.as_deref() == Some(upstream)
        })
        .await;
    }

    async fn delete_and_wait(&self, name: &str) {
        self.keys.delete(name, &DeleteParams::default()).await.unwrap();
        let keys = self.keys.clone();
        let name = name.to_string();
        eventually("the resource is deleted", true, || {
            let (keys, name) = (keys.clone(), name.clone());
            async move { keys.get_opt(&name).await.unwrap().is_none() }
        })
        .await;
    }
}

fn status_of(key: &ServiceAccountKey) -> KeyStatus {
    key.status.clone().expect("status")
}

fn admin_user() -> Value {
    json!({"username": ADMIN_USER, "password": ADMIN_PASSWORD})
}

/// Logs in with `key` until the server answers `want`, for at most `within`.
async fn key_login_becomes(server: &ZenmlServer, key: &str, want: u16, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let got = server.key_login(key).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a login with the key answered {got}, not {want}, for {within:?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn an_admin_user_store_drives_a_key_through_its_whole_life_on_the_real_server() {
    let s = setup("real-zenml").await;
    let server = zenml_server::open_source();
    let account_name = format!("{}-sa", s.namespace);
    let account = server.create_service_account(&account_name).await;

    let store = s.store(server, admin_user()).await;
    let (status, reason, message) = condition_detail(&store, "Ready").unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "ProbeSucceeded"),
        "{message}"
    );
    assert!(
        message.contains("as admin user admin"),
        "the store says who it acts as: {message}"
    );

    let key = s
        .create_key(
            "ci",
            &account_name,
            json!({"description": "ci key", "rotation": {"retainPrevious": "60s"}}),
        )
        .await;
    let id = status_of(&key).upstream_id.expect("an upstream id");
    let first = s.secret_key("ci").await;
    assert!(first.starts_with("ZENKEY_"));
    assert_eq!(
        server.key_login(&first).await,
        200,
        "the key from the Secret logs in"
    );
    let upstream = server.keys(&account).await;
    assert_eq!(upstream.len(), 1, "one key upstream");
    assert_eq!(upstream[0]["id"], id.as_str());
    let description = upstream[0]["metadata"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        description.starts_with("ci key") && description.contains("apikeys.dev/owner="),
        "the description carries the owner mark: {description:?}"
    );

    merge(&s.keys, "ci", json!({"spec": {"active": false}})).await;
    s.wait_state("ci", "inactive").await;
    assert_ne!(server.key_login(&first).await, 200, "an inactive key is refused");
    merge(&s.keys, "ci", json!({"spec": {"active": true}})).await;
    s.wait_state("ci", "active").await;
    assert_eq!(server.key_login(&first).await, 200);

    merge(
        &s.keys,
        "ci",
        json!({"metadata": {"annotations": {"apikeys.dev/rotate": "r1"}}}),
    )
    .await;
    let rotated = wait_for(&s.keys, "ci", "rotated", |k: &ServiceAccountKey| {
        is_ready(k) && status_of(k).rotation_count == Some(1)
    })
    .await;
    assert_eq!(
        status_of(&rotated).upstream_id.as_deref(),
        Some(id.as_str()),
        "rotated in place"
    );
    let second = s.secret_key("ci").await;
    assert_ne!(second, first);
    assert_eq!(server.key_login(&second).await, 200);
    assert_eq!(
        server.key_login(&first).await,
        200,
        "the previous key works during retainPrevious"
    );
    // One minute of retention upstream; the server checks it at each login.
    key_login_becomes(server, &first, 401, Duration::from_secs(120)).await;
    assert_eq!(server.key_login(&second).await, 200);

    s.delete_and_wait("ci").await;
    assert!(
        server.keys(&account).await.is_empty(),
        "the key is deleted upstream"
    );
}

#[tokio::test]
async fn a_service_account_key_on_a_server_without_rbac_is_refused_with_what_to_configure() {
    let s = setup("real-zenml-norbac").await;
    let server = zenml_server::open_source();
    let admin = server
        .create_service_account(&format!("{}-admin", s.namespace))
        .await;
    let key = server.create_key(&admin, "store").await;

    let store = s.store(server, json!({"apiKey": key})).await;
    let (status, reason, message) = condition_detail(&store, "Ready").unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "PermissionDenied"),
        "{message}"
    );
    for advice in ["without RBAC", "admin user", "`username`", "`password`"] {
        assert!(message.contains(advice), "{advice:?} missing from: {message}");
    }
    assert!(!message.contains(&key), "the message never shows the key");
}

#[tokio::test]
async fn with_rbac_a_service_account_key_manages_keys() {
    let s = setup("real-zenml-rbac").await;
    let server = zenml_server::with_rbac();
    let admin = server
        .create_service_account(&format!("{}-admin", s.namespace))
        .await;
    let store_key = server.create_key(&admin, "store").await;
    let managed_name = format!("{}-sa", s.namespace);
    let managed = server.create_service_account(&managed_name).await;

    let store = s.store(server, json!({"apiKey": store_key})).await;
    let (status, _, message) = condition_detail(&store, "Ready").unwrap();
    assert_eq!(status, "True", "{message}");
    assert!(message.contains("service account"), "{message}");

    s.create_key("deployer", &managed_name, json!({})).await;
    let issued = s.secret_key("deployer").await;
    assert_eq!(server.key_login(&issued).await, 200);
    assert_eq!(server.keys(&managed).await.len(), 1);
    s.delete_and_wait("deployer").await;
    assert!(server.keys(&managed).await.is_empty(), "deleted upstream");
}
