//! What the operator shows: no secret material in its logs, events or status. (The quiet
//! minute is measured in tests/crash, where no other operator runs.)

use apikey_operator::api::ApiToken;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::json;

use apikey_operator_test_support::envtest;
use apikey_operator_test_support::fixtures::{self, is_ready, merge, wait_for};
use apikey_operator_test_support::processes;

#[tokio::test]
async fn no_token_appears_in_logs_events_or_status() {
    let credstore = processes::credstore();
    let operator = processes::operator();
    let client = envtest::client().await;
    let namespace = envtest::namespace(&client, "leak-scan").await;
    fixtures::prefactor_store(&client, &namespace, "prefactor", credstore).await;
    let tokens: Api<ApiToken> = Api::namespaced(client.clone(), &namespace);
    fixtures::apply(
        &client,
        &namespace,
        json!({
            "apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiToken", "metadata": {"name": "scanned"},
            "spec": {"storeRef": {"name": "prefactor"}, "scope": "account", "rotation": {"retainPrevious": "0s"}},
        }),
    )
    .await;
    wait_for(&tokens, "scanned", "Ready", is_ready).await;

    // Drive it through every path that logs, records events and writes status.
    let mut issued = vec![
        fixtures::secret_value(&client, &namespace, "scanned", "token")
            .await
            .unwrap(),
    ];
    let rounds = [
        (json!({"spec": {"state": "Suspended"}}), "suspended", None),
        (json!({"spec": {"state": "Active"}}), "active", None),
        (
            json!({"metadata": {"annotations": {"apikeys.dev/rotate": "scan-1"}}}),
            "active",
            Some(1),
        ),
        (
            json!({"metadata": {"annotations": {"apikeys.dev/rotate": "scan-2"}}}),
            "active",
            Some(2),
        ),
    ];
    for (patch, upstream, rotations) in rounds {
        merge(&tokens, "scanned", patch).await;
        wait_for(&tokens, "scanned", upstream, |t: &ApiToken| {
            let status = t.status.clone().unwrap_or_default();
            is_ready(t)
                && status.upstream_state.as_deref() == Some(upstream)
                && (rotations.is_none() || status.rotation_count == rotations)
        })
        .await;
        let token = fixtures::secret_value(&client, &namespace, "scanned", "token")
            .await
            .unwrap();
        if !issued.contains(&token) {
            issued.push(token);
        }
    }
    assert_eq!(issued.len(), 3, "one token created and two rotated in");
    // The admin credential must not leak either.
    issued.push(credstore.prefactor_token.clone());

    let health = reqwest::get(format!("{}/healthz", operator.probes))
        .await
        .unwrap();
    assert!(
        health.status().is_success(),
        "the operator stayed healthy through the run"
    );
    let log = std::fs::read_to_string(&operator.log).unwrap();
    assert!(
        log.len() > 1000,
        "the operator logged at debug level ({} bytes)",
        log.len()
    );
    let events = Api::<Event>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        events.items.len() >= 4,
        "events were recorded: {}",
        events.items.len()
    );
    let events = serde_json::to_string(&events.items).unwrap();
    let statuses = serde_json::to_string(&tokens.list(&ListParams::default()).await.unwrap().items).unwrap();
    fixtures::assert_no_leak(&issued, &log, &events, &statuses);
}
