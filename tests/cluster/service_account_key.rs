//! ServiceAccountKey end to end against ZenML and Trend Micro stores of a credential store
//! of the test's own: the key from the Secret is used against the upstream after every
//! transition, and the previous key is checked to stop exactly when it should.

use std::time::Duration;

use apikey_operator::api::{KeyStatus, ServiceAccountKey};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use apikey_operator_test_support::envtest;
use apikey_operator_test_support::fixtures::{
    self, advance_clock, eventually, is_ready, merge, not_ready_because, requests_between, trend_current,
    trend_key, upstream_requests, wait_for, zenml_login,
};
use apikey_operator_test_support::processes::{self, Credstore};

/// The service account the credential store bootstraps for the operator's keys.
const SERVICE_ACCOUNT: &str = "apikey-operator";

struct Setup {
    client: Client,
    namespace: String,
    keys: Api<ServiceAccountKey>,
    credstore: Credstore,
}

async fn setup(prefix: &str) -> Setup {
    processes::operator();
    let client = envtest::client().await;
    let namespace = envtest::namespace(&client, prefix).await;
    let credstore = processes::private_credstore(&namespace);
    fixtures::zenml_store(&client, &namespace, "zenml", &credstore).await;
    fixtures::trend_store(&client, &namespace, "trend", &credstore).await;
    let stores: Api<apikey_operator::api::CredentialStore> = Api::namespaced(client.clone(), &namespace);
    for store in ["zenml", "trend"] {
        wait_for(&stores, store, "store Ready", is_ready).await;
    }
    let keys = Api::namespaced(client.clone(), &namespace);
    Setup {
        client,
        namespace,
        keys,
        credstore,
    }
}

impl Setup {
    async fn apply_key(&self, name: &str, spec: Value) {
        fixtures::apply(
            &self.client,
            &self.namespace,
            json!({"apiVersion": "apikeys.dev/v1alpha1", "kind": "ServiceAccountKey", "metadata": {"name": name}, "spec": spec}),
        )
        .await;
    }

    async fn create_key(&self, name: &str, spec: Value) -> ServiceAccountKey {
        self.apply_key(name, spec).await;
        wait_for(&self.keys, name, "Ready", is_ready).await
    }

    async fn secret_key(&self, secret: &str) -> String {
        fixtures::secret_value(&self.client, &self.namespace, secret, "apiKey")
            .await
            .expect("the Secret holds an apiKey")
    }

    async fn wait_state(&self, name: &str, upstream: &str) -> ServiceAccountKey {
        wait_for(&self.keys, name, upstream, |k: &ServiceAccountKey| {
            is_ready(k) && status_of(k).upstream_state.as_deref() == Some(upstream)
        })
        .await
    }

    async fn rotate(&self, name: &str, value: &str, count: i64) -> ServiceAccountKey {
        merge(
            &self.keys,
            name,
            json!({"metadata": {"annotations": {"apikeys.dev/rotate": value}}}),
        )
        .await;
        wait_for(&self.keys, name, "rotated", |k: &ServiceAccountKey| {
            is_ready(k) && status_of(k).rotation_count == Some(count)
        })
        .await
    }
}

fn status_of(key: &ServiceAccountKey) -> KeyStatus {
    key.status.clone().expect("status")
}

#[tokio::test]
async fn zenml_key_logs_in_follows_active_and_the_old_key_stops_after_the_retain_period() {
    let s = setup("sakey-zenml").await;
    let before = upstream_requests(&s.credstore).await;
    let key = s
        .create_key(
            "ci",
            json!({
                "storeRef": {"name": "zenml"}, "serviceAccount": SERVICE_ACCOUNT, "description": "ci key",
                "rotation": {"retainPrevious": "90s"},
            }),
        )
        .await;
    let created = upstream_requests(&s.credstore).await;
    println!(
        "zenml requests per create: {:?}",
        requests_between(&before, &created, "zenml")
    );
    assert_eq!(status_of(&key).upstream_state.as_deref(), Some("active"));
    let first = s.secret_key("ci").await;
    assert!(first.starts_with("ZENKEY_"), "the Secret holds a ZenML key");
    assert_eq!(zenml_login(&s.credstore, &first).await, 200);

    merge(&s.keys, "ci", json!({"spec": {"active": false}})).await;
    s.wait_state("ci", "inactive").await;
    assert_ne!(
        zenml_login(&s.credstore, &first).await,
        200,
        "an inactive key is refused"
    );
    merge(&s.keys, "ci", json!({"spec": {"active": true}})).await;
    s.wait_state("ci", "active").await;
    assert_eq!(zenml_login(&s.credstore, &first).await, 200);

    let before = upstream_requests(&s.credstore).await;
    let rotated = s.rotate("ci", "r1", 1).await;
    let after = upstream_requests(&s.credstore).await;
    println!(
        "zenml requests per rotation: {:?}",
        requests_between(&before, &after, "zenml")
    );
    assert_eq!(
        status_of(&rotated).upstream_id,
        status_of(&key).upstream_id,
        "ZenML rotates in place"
    );
    let second = s.secret_key("ci").await;
    assert_ne!(second, first);
    assert_eq!(zenml_login(&s.credstore, &second).await, 200);
    assert_eq!(
        zenml_login(&s.credstore, &first).await,
        200,
        "the previous key works during retainPrevious (90s, rounded up to 2 minutes)"
    );
    advance_clock(&s.credstore, 100).await;
    assert_eq!(
        zenml_login(&s.credstore, &first).await,
        200,
        "rounded up: still valid after 100s"
    );
    advance_clock(&s.credstore, 21).await;
    assert_ne!(
        zenml_login(&s.credstore, &first).await,
        200,
        "the previous key stops at the end of the retain period"
    );
    assert_eq!(zenml_login(&s.credstore, &second).await, 200);
}

#[tokio::test]
async fn trend_key_authenticates_and_the_old_key_stops_exactly_when_it_should() {
    let s = setup("sakey-trend").await;
    let before = upstream_requests(&s.credstore).await;
    let key = s
        .create_key(
            "scanner",
            json!({
                "storeRef": {"name": "trend"}, "roleID": 1, "locale": "ja-JP", "timeZone": "Europe/Berlin",
                "description": "scanner key", "expiresAt": "2030-01-01T00:00:00Z",
                "rotation": {"retainPrevious": "20s"},
            }),
        )
        .await;
    let created = upstream_requests(&s.credstore).await;
    println!(
        "trend micro requests per create: {:?}",
        requests_between(&before, &created, "trendmicro")
    );
    let status = status_of(&key);
    let id = status.upstream_id.clone().unwrap();
    let upstream = trend_key(&s.credstore, &id).await.expect("created upstream");
    assert_eq!(upstream["roleID"], 1);
    assert_eq!(upstream["locale"], "ja-JP");
    assert_eq!(upstream["timeZone"], "Europe/Berlin");
    // The user's description, then the owner mark; the default name is unambiguous.
    let cluster = fixtures::cluster_identity(&s.client).await;
    let mark = cluster.mark(&kube::ResourceExt::uid(&key).unwrap());
    assert_eq!(upstream["description"], mark.describe(Some("scanner key")));
    assert_eq!(upstream["expiryDate"], 1_893_456_000_000_i64);
    assert_eq!(
        upstream["keyName"],
        cluster.default_name(&s.namespace, "scanner", 240)
    );
    let first = s.secret_key("scanner").await;
    assert_eq!(trend_current(&s.credstore, &first).await, 200);

    merge(&s.keys, "scanner", json!({"spec": {"active": false}})).await;
    s.wait_state("scanner", "inactive").await;
    assert_ne!(trend_current(&s.credstore, &first).await, 200, "locked out");
    merge(
        &s.keys,
        "scanner",
        json!({"spec": {"active": true, "description": "scanner key v2"}}),
    )
    .await;
    s.wait_state("scanner", "active").await;
    assert_eq!(trend_current(&s.credstore, &first).await, 200);
    assert_eq!(
        trend_key(&s.credstore, &id).await.unwrap()["description"],
        mark.describe(Some("scanner key v2"))
    );

    // With an overlap: a second key, the first deleted when the overlap ends.
    let before = upstream_requests(&s.credstore).await;
    let rotated = s.rotate("scanner", "r1", 1).await;
    let after = upstream_requests(&s.credstore).await;
    println!(
        "trend micro requests per rotation with overlap: {:?}",
        requests_between(&before, &after, "trendmicro")
    );
    let status = status_of(&rotated);
    let second_id = status.upstream_id.clone().unwrap();
    assert_ne!(second_id, id, "an overlap takes a second key");
    assert_eq!(
        trend_key(&s.credstore, &second_id).await.unwrap()["keyName"],
        format!("{}-r1", cluster.default_name(&s.namespace, "scanner", 240))
    );
    let retire_at = status
        .retiring
        .first()
        .expect("the first key retires")
        .retire_at
        .0;
    let second = s.secret_key("scanner").await;
    assert_eq!(trend_current(&s.credstore, &second).await, 200);
    let until_retire = retire_at.duration_since(k8s_openapi::jiff::Timestamp::now());
    tokio::time::sleep(until_retire.unsigned_abs().saturating_sub(Duration::from_secs(3))).await;
    assert_eq!(
        trend_current(&s.credstore, &first).await,
        200,
        "the previous key works until its retain period ends"
    );
    eventually("the previous key is deleted", None, || {
        trend_key(&s.credstore, &id)
    })
    .await;
    let late = k8s_openapi::jiff::Timestamp::now().duration_since(retire_at);
    assert!(
        late < k8s_openapi::jiff::SignedDuration::from_secs(10),
        "retired {late} after retireAt"
    );
    assert_ne!(trend_current(&s.credstore, &first).await, 200);

    // Without an overlap: the secret is regenerated, the previous one stops at once.
    merge(
        &s.keys,
        "scanner",
        json!({"spec": {"rotation": {"retainPrevious": "0s"}}}),
    )
    .await;
    let before = upstream_requests(&s.credstore).await;
    let regenerated = s.rotate("scanner", "r2", 2).await;
    let after = upstream_requests(&s.credstore).await;
    println!(
        "trend micro requests per rotation by regenerate: {:?}",
        requests_between(&before, &after, "trendmicro")
    );
    assert_eq!(status_of(&regenerated).upstream_id, Some(second_id));
    let third = s.secret_key("scanner").await;
    assert_ne!(
        trend_current(&s.credstore, &second).await,
        200,
        "regenerate ends the old secret"
    );
    assert_eq!(trend_current(&s.credstore, &third).await, 200);
}

#[tokio::test]
async fn service_account_key_deletion_honours_the_policy() {
    let s = setup("sakey-delete").await;
    let zenml = json!({"storeRef": {"name": "zenml"}, "serviceAccount": SERVICE_ACCOUNT});
    let trend = json!({"storeRef": {"name": "trend"}, "roleID": 1});
    for (name, mut spec, policy) in [
        ("zenml-delete", zenml.clone(), "Delete"),
        ("zenml-orphan", zenml, "Orphan"),
        ("trend-delete", trend.clone(), "Delete"),
        ("trend-orphan", trend, "Orphan"),
    ] {
        spec["deletionPolicy"] = json!(policy);
        s.create_key(name, spec).await;
        let secret = s.secret_key(name).await;
        s.keys.delete(name, &Default::default()).await.unwrap();
        eventually("the resource is gone", true, || async {
            s.keys.get_opt(name).await.unwrap().is_none()
        })
        .await;
        let works = if name.starts_with("zenml") {
            zenml_login(&s.credstore, &secret).await == 200
        } else {
            trend_current(&s.credstore, &secret).await == 200
        };
        let secrets: Api<Secret> = Api::namespaced(s.client.clone(), &s.namespace);
        if policy == "Delete" {
            assert!(!works, "{name}: the key is deleted upstream");
            eventually("the Secret is deleted", true, || async {
                secrets.get_opt(name).await.unwrap().is_none()
            })
            .await;
        } else {
            assert!(works, "{name}: the key is left upstream");
            let kept = secrets.get(name).await.expect("the Secret is kept");
            assert!(
                kept.metadata.owner_references.unwrap_or_default().is_empty(),
                "{name}: the Secret is released"
            );
        }
    }
}

#[tokio::test]
async fn a_key_the_store_cannot_serve_is_not_ready_with_the_reason() {
    let s = setup("sakey-invalid").await;
    fixtures::prefactor_store(&s.client, &s.namespace, "prefactor", processes::credstore()).await;
    for (name, spec, reason) in [
        (
            "wrong-store",
            json!({"storeRef": {"name": "prefactor"}, "serviceAccount": SERVICE_ACCOUNT}),
            "WrongProvider",
        ),
        (
            "no-account",
            json!({"storeRef": {"name": "zenml"}}),
            "ServiceAccountRequired",
        ),
        (
            "no-role",
            json!({"storeRef": {"name": "trend"}, "description": "x"}),
            "RoleIDRequired",
        ),
    ] {
        s.apply_key(name, spec).await;
        let key = wait_for(&s.keys, name, reason, |k: &ServiceAccountKey| {
            not_ready_because(k, reason)
        })
        .await;
        assert!(
            status_of(&key).upstream_id.is_none(),
            "{name}: nothing was created upstream"
        );
    }
    // Fixing the spec recovers.
    s.apply_key(
        "no-role",
        json!({"storeRef": {"name": "trend"}, "description": "x", "roleID": 1}),
    )
    .await;
    wait_for(&s.keys, "no-role", "Ready", is_ready).await;
}

#[tokio::test]
async fn no_service_account_key_appears_in_logs_events_or_status() {
    let s = setup("sakey-leak").await;
    let operator = processes::operator();
    let mut issued = vec![
        s.credstore.bootstrap_file("zenml.api-key"),
        s.credstore.bootstrap_file("trendmicro.secret-key"),
    ];
    s.create_key(
        "zk",
        json!({"storeRef": {"name": "zenml"}, "serviceAccount": SERVICE_ACCOUNT, "rotation": {"retainPrevious": "1m"}}),
    )
    .await;
    s.create_key(
        "tk",
        json!({"storeRef": {"name": "trend"}, "roleID": 1, "rotation": {"retainPrevious": "1s"}}),
    )
    .await;
    for name in ["zk", "tk"] {
        issued.push(s.secret_key(name).await);
        s.rotate(name, "leak-1", 1).await;
        issued.push(s.secret_key(name).await);
    }

    let log = std::fs::read_to_string(&operator.log).unwrap();
    let events = Api::<Event>::namespaced(s.client.clone(), &s.namespace)
        .list(&ListParams::default())
        .await
        .unwrap();
    let events = serde_json::to_string(&events.items).unwrap();
    let statuses = serde_json::to_string(&s.keys.list(&ListParams::default()).await.unwrap().items).unwrap();
    fixtures::assert_no_leak(&issued, &log, &events, &statuses);
}

/// What a crash between the upstream create and the status write leaves behind: a key
/// with the deterministic name and the resource's owner mark whose secret the operator
/// never stored. Recovery must adopt it and replace that secret, not mint a twin.
#[tokio::test]
async fn a_key_created_before_a_crash_is_found_by_name_and_mark_and_its_lost_secret_replaced() {
    let s = setup("sakey-recover").await;
    // The resources exist (paused) first: the mark and the name derive from their UIDs.
    let paused = json!({"apikeys.dev/paused": "true"});
    for (name, spec) in [
        (
            "zk",
            json!({"storeRef": {"name": "zenml"}, "serviceAccount": SERVICE_ACCOUNT}),
        ),
        ("tk", json!({"storeRef": {"name": "trend"}, "roleID": 1})),
    ] {
        fixtures::apply(
            &s.client,
            &s.namespace,
            json!({"apiVersion": "apikeys.dev/v1alpha1", "kind": "ServiceAccountKey",
                   "metadata": {"name": name, "annotations": paused}, "spec": spec}),
        )
        .await;
    }
    let cluster = fixtures::cluster_identity(&s.client).await;
    let left_behind = |key: &ServiceAccountKey| {
        let name = cluster.default_name(&s.namespace, &kube::ResourceExt::name_any(key), 240);
        let description = cluster.mark(&kube::ResourceExt::uid(key).unwrap()).describe(None);
        (name, description)
    };

    // ZenML and Trend Micro: a key named and marked like the resource, created by "the
    // operator before the crash".
    let (zenml_name, zenml_description) = left_behind(&s.keys.get("zk").await.unwrap());
    let (zenml_id, lost_zenml) =
        fixtures::hand_made_zenml_key(&s.credstore, &zenml_name, &zenml_description).await;
    assert_eq!(zenml_login(&s.credstore, &lost_zenml).await, 200);
    let (trend_name, trend_description) = left_behind(&s.keys.get("tk").await.unwrap());
    let (trend_id, lost_trend) =
        fixtures::hand_made_trend_key(&s.credstore, &trend_name, &trend_description).await;
    assert_eq!(trend_current(&s.credstore, &lost_trend).await, 200);

    for name in ["zk", "tk"] {
        merge(
            &s.keys,
            name,
            json!({"metadata": {"annotations": {"apikeys.dev/paused": null}}}),
        )
        .await;
    }
    let zk = wait_for(&s.keys, "zk", "Ready", is_ready).await;
    let tk = wait_for(&s.keys, "tk", "Ready", is_ready).await;
    assert_eq!(
        status_of(&zk).upstream_id,
        Some(zenml_id),
        "the ZenML key is adopted"
    );
    assert_eq!(
        status_of(&tk).upstream_id,
        Some(trend_id),
        "the Trend Micro key is adopted"
    );
    assert_ne!(
        zenml_login(&s.credstore, &lost_zenml).await,
        200,
        "the unknown secret no longer works"
    );
    assert_ne!(trend_current(&s.credstore, &lost_trend).await, 200);
    assert_eq!(zenml_login(&s.credstore, &s.secret_key("zk").await).await, 200);
    assert_eq!(trend_current(&s.credstore, &s.secret_key("tk").await).await, 200);
}
