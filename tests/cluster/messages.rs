//! What a person reads: every event and condition message is a plain sentence that says
//! what failed and what to do (never kube's or reqwest's debug dump), a healthy example
//! rotates without a warning, and the last use the upstream reports shows in status.

use apikey_operator::api::{ApiToken, ServiceAccountKey};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DynamicObject};
use serde_json::{Value, json};

use apikey_operator_test_support::envtest;
use apikey_operator_test_support::fixtures::{
    self, TokenSetup, is_ready, merge, not_ready_because, wait_for,
};
use apikey_operator_test_support::processes;

/// Fails unless `message` reads as a sentence: no Rust `Debug` output, no struct dumps, no
/// line breaks, and it says what to do.
fn assert_plain(what: &str, message: &str, advice: &str) {
    for dump in [
        "Status {",
        "Some(",
        "None",
        "ApiError",
        "Error {",
        "kind:",
        "source:",
        "reqwest::",
        "hyper",
        "\n",
    ] {
        assert!(!message.contains(dump), "{what}: {dump:?} in {message:?}");
    }
    assert!(
        message.contains(advice),
        "{what} says what to do ({advice}): {message:?}"
    );
}

/// Status and message of condition `type_`.
fn condition(object: &impl serde::Serialize, type_: &str) -> Option<(String, String)> {
    fixtures::condition_detail(object, type_).map(|(status, _, message)| (status, message))
}

/// The ApiToken and the Deployment of `examples/apitoken.yaml`.
fn example_token_and_workload() -> Vec<DynamicObject> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/apitoken.yaml");
    envtest::parse_documents(&std::fs::read_to_string(path).unwrap())
        .into_iter()
        .filter(|o| o.metadata.name.as_deref() == Some("billing-api"))
        .collect()
}

#[tokio::test]
async fn the_example_token_and_its_workload_rotate_without_a_warning() {
    let s = TokenSetup::new("example-rotation").await;
    let objects = example_token_and_workload();
    assert_eq!(
        objects.len(),
        2,
        "the example names its consumer next to the token"
    );
    for object in &objects {
        envtest::apply(&s.client, object, &s.namespace).await.unwrap();
    }
    wait_for(&s.tokens, "billing-api", "Ready", is_ready).await;
    merge(
        &s.tokens,
        "billing-api",
        json!({"metadata": {"annotations": {"apikeys.dev/rotate": "first"}}}),
    )
    .await;
    let token = wait_for(&s.tokens, "billing-api", "rotated", |t: &ApiToken| {
        is_ready(t) && t.status.as_ref().and_then(|s| s.rotation_count) == Some(1)
    })
    .await;

    let deployment = Api::<Deployment>::namespaced(s.client.clone(), &s.namespace)
        .get("billing-api")
        .await
        .unwrap();
    let restarted_for = deployment
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .and_then(|a| a.get("apikeys.dev/restarted-for").cloned());
    assert_eq!(
        restarted_for,
        token.status.unwrap().secret_fingerprint,
        "the example's Deployment was restarted for the new token"
    );
    let events = fixtures::events_of(&s.client, &s.namespace, "billing-api").await;
    let warnings: Vec<_> = events
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .map(|e| (e.reason.clone(), e.note.clone()))
        .collect();
    assert!(
        warnings.is_empty(),
        "a healthy example warns of nothing: {warnings:?}"
    );
    let reasons: Vec<_> = events.iter().filter_map(|e| e.reason.as_deref()).collect();
    assert!(
        reasons.contains(&"Created") && reasons.contains(&"Rotated"),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn failures_read_as_one_plain_sentence_that_says_what_to_do() {
    let s = TokenSetup::new("plain-messages").await;

    // A rotation whose consumer does not exist: the Secret is written, the restart fails.
    s.ready_token(
        "ghost-consumer",
        json!({"rolloutRestart": [{"kind": "Deployment", "name": "ghost"}]}),
    )
    .await;
    merge(
        &s.tokens,
        "ghost-consumer",
        json!({"metadata": {"annotations": {"apikeys.dev/rotate": "1"}}}),
    )
    .await;
    let failure = fixtures::eventually("a RolloutRestartFailed event", true, || async {
        fixtures::events_of(&s.client, &s.namespace, "ghost-consumer")
            .await
            .iter()
            .any(|e| e.reason.as_deref() == Some("RolloutRestartFailed"))
    });
    failure.await;
    let events = fixtures::events_of(&s.client, &s.namespace, "ghost-consumer").await;
    let note = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("RolloutRestartFailed"))
        .and_then(|e| e.note.clone())
        .unwrap();
    assert_plain(
        "RolloutRestartFailed",
        &note,
        "remove it from spec.rolloutRestart",
    );
    assert!(
        note.starts_with("Deployment ghost was not restarted: deployments.apps \"ghost\" not found"),
        "{note}"
    );

    // A store that does not exist, and one whose upstream does not answer.
    fixtures::apply(
        &s.client,
        &s.namespace,
        json!({"apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiToken", "metadata": {"name": "no-store"},
               "spec": {"storeRef": {"name": "absent"}, "scope": "account"}}),
    )
    .await;
    let token = wait_for(&s.tokens, "no-store", "StoreNotFound", |t| {
        not_ready_because(t, "StoreNotFound")
    })
    .await;
    let (status, message) = condition(&token, "Stalled").expect("a Stalled condition");
    assert_eq!(status, "True");
    assert_plain("StoreNotFound", &message, "create it or fix spec.storeRef");

    fixtures::put_secret(
        &s.client,
        &s.namespace,
        "dead-admin",
        json!({"token": s.credstore.prefactor_token}),
    )
    .await;
    fixtures::apply(
        &s.client,
        &s.namespace,
        json!({"apiVersion": "apikeys.dev/v1alpha1", "kind": "CredentialStore", "metadata": {"name": "dead"},
               "spec": {"prefactor": {"url": "http://127.0.0.1:9", "credentialsSecretRef": {"name": "dead-admin"}}}}),
    )
    .await;
    let stores: Api<apikey_operator::api::CredentialStore> = Api::namespaced(s.client.clone(), &s.namespace);
    let store = wait_for(&stores, "dead", "UpstreamUnreachable", |s| {
        not_ready_because(s, "UpstreamUnreachable")
    })
    .await;
    let (_, message) = condition(&store, "Ready").unwrap();
    assert_plain("UpstreamUnreachable", &message, "retrying");
    let (status, _) = condition(&store, "Reconciling").expect("a Reconciling condition");
    assert_eq!(status, "True", "an unreachable upstream is retried, not stalled");
    let probes = fixtures::events_of(&s.client, &s.namespace, "dead").await;
    for event in probes.iter().filter(|e| e.type_.as_deref() == Some("Warning")) {
        assert_plain(
            "store event",
            event.note.as_deref().unwrap_or_default(),
            "retrying",
        );
    }
}

/// `status.lastUsedTime` of each kind whose upstream reports use, after the test used the
/// credential and a spec change made the operator look at the upstream object again.
#[tokio::test]
async fn the_last_use_upstream_reports_shows_in_status() {
    processes::operator();
    let client = envtest::client().await;
    let namespace = envtest::namespace(&client, "last-used").await;
    let credstore = processes::private_credstore(&namespace);
    fixtures::prefactor_store(&client, &namespace, "prefactor", &credstore).await;
    fixtures::zenml_store(&client, &namespace, "zenml", &credstore).await;
    fixtures::trend_store(&client, &namespace, "trend", &credstore).await;
    let tokens: Api<ApiToken> = Api::namespaced(client.clone(), &namespace);
    let keys: Api<ServiceAccountKey> = Api::namespaced(client.clone(), &namespace);
    let apply = |kind: &str, name: &str, spec: Value| {
        fixtures::apply(
            &client,
            &namespace,
            json!({"apiVersion": "apikeys.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}),
        )
    };
    apply(
        "ApiToken",
        "used-token",
        json!({"storeRef": {"name": "prefactor"}, "scope": "account"}),
    )
    .await;
    apply(
        "ServiceAccountKey",
        "used-zenml",
        json!({"storeRef": {"name": "zenml"}, "serviceAccount": "apikey-operator"}),
    )
    .await;
    apply(
        "ServiceAccountKey",
        "used-trend",
        json!({"storeRef": {"name": "trend"}, "roleID": 1}),
    )
    .await;
    let token = wait_for(&tokens, "used-token", "Ready", is_ready).await;
    let zenml = wait_for(&keys, "used-zenml", "Ready", is_ready).await;
    let trend = wait_for(&keys, "used-trend", "Ready", is_ready).await;
    for status in [&token.status, &zenml.status, &trend.status] {
        assert_eq!(status.as_ref().unwrap().last_used_time, None, "not used yet");
    }

    let before = k8s_openapi::jiff::Timestamp::now();
    let secret = |name: &'static str, key: &'static str| {
        let client = client.clone();
        let namespace = namespace.clone();
        async move {
            fixtures::secret_value(&client, &namespace, name, key)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        fixtures::ping(&credstore, &secret("used-token", "token").await).await,
        200
    );
    assert_eq!(
        fixtures::zenml_login(&credstore, &secret("used-zenml", "apiKey").await).await,
        200
    );
    assert_eq!(
        fixtures::trend_current(&credstore, &secret("used-trend", "apiKey").await).await,
        200
    );
    let after = k8s_openapi::jiff::Timestamp::now();

    let look_again = json!({"spec": {"secret": {"labels": {"looked-at": "after-use"}}}});
    merge(&tokens, "used-token", look_again.clone()).await;
    merge(&keys, "used-zenml", look_again.clone()).await;
    merge(&keys, "used-trend", look_again).await;
    let used = |status: Option<&apikey_operator::api::KeyStatus>| {
        status.and_then(|s| s.last_used_time.as_ref()).map(|t| t.0)
    };
    let token = wait_for(&tokens, "used-token", "lastUsedTime", |t| {
        used(t.status.as_ref()).is_some()
    })
    .await;
    let zenml = wait_for(&keys, "used-zenml", "lastUsedTime", |k| {
        used(k.status.as_ref()).is_some()
    })
    .await;
    let trend = wait_for(&keys, "used-trend", "lastUsedTime", |k| {
        used(k.status.as_ref()).is_some()
    })
    .await;
    let slack = k8s_openapi::jiff::SignedDuration::from_secs(2);
    for (name, at) in [
        ("ApiToken", used(token.status.as_ref())),
        ("ZenML key", used(zenml.status.as_ref())),
        ("Trend Micro key", used(trend.status.as_ref())),
    ] {
        let at = at.unwrap();
        assert!(
            at >= before - slack && at <= after + slack,
            "{name}: lastUsedTime {at} is when the test used it ({before} .. {after})"
        );
    }
}
