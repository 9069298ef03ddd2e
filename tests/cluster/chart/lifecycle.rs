//! A whole ApiToken lifecycle driven by the operator with the chart's RBAC.

use apikey_operator::api::{ApiToken, CredentialStore};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use apikey_operator_test_support::fixtures::{
    self, condition, eventually, is_ready, merge, ping, upstream_token, wait_for,
};
use apikey_operator_test_support::processes::Credstore;

use super::operator::{OperatorProcess, sample, scrape, upstream};

/// create → Ready → suspend → activate → rotate (restarting a consumer) → delete, as the
/// chart's ServiceAccount; every step checked upstream and through the token itself, then
/// the operator's metrics checked against what happened.
pub(super) async fn api_token_lifecycle(
    admin: &Client,
    namespace: &str,
    credstore: &Credstore,
    operator: &OperatorProcess,
) {
    fixtures::prefactor_store(admin, namespace, "prefactor", credstore).await;
    let stores: Api<CredentialStore> = Api::namespaced(admin.clone(), namespace);
    wait_for(&stores, "prefactor", "store Ready", |s: &CredentialStore| {
        condition(s, "Ready").is_some_and(|(status, _)| status == "True")
    })
    .await;

    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), namespace);
    let consumer: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "consumer"},
        "spec": {
            "selector": {"matchLabels": {"app": "consumer"}},
            "template": {"metadata": {"labels": {"app": "consumer"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
        },
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &consumer)
        .await
        .unwrap();

    let expires = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24 * 30))
        .unwrap()
        .round(jiff::Unit::Second)
        .unwrap();
    let tokens: Api<ApiToken> = Api::namespaced(admin.clone(), namespace);
    fixtures::apply(
        admin,
        namespace,
        json!({
            "apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiToken", "metadata": {"name": "charted"},
            "spec": {
                "storeRef": {"name": "prefactor"}, "scope": "account",
                "expiresAt": expires.to_string(),
                "rotation": {"retainPrevious": "0s"},
                "rolloutRestart": [{"kind": "Deployment", "name": "consumer"}],
                "deletionPolicy": "Delete",
            },
        }),
    )
    .await;
    let token = wait_for(&tokens, "charted", "Ready", is_ready).await;
    let first_id = token.status.as_ref().unwrap().upstream_id.clone().unwrap();
    let first = fixtures::secret_value(admin, namespace, "charted", "token")
        .await
        .expect("the Secret holds the token");
    assert_eq!(ping(credstore, &first).await, 200, "the issued token works");

    for (state, upstream_state, works) in [("Suspended", "suspended", false), ("Active", "active", true)] {
        merge(&tokens, "charted", json!({"spec": {"state": state}})).await;
        wait_for(&tokens, "charted", state, |t: &ApiToken| {
            is_ready(t) && t.status.as_ref().and_then(|s| s.upstream_state.as_deref()) == Some(upstream_state)
        })
        .await;
        let code = ping(credstore, &first).await;
        assert_eq!(code == 200, works, "{state}: ping answered {code}");
    }

    merge(
        &tokens,
        "charted",
        json!({"metadata": {"annotations": {"apikeys.dev/rotate": "chart"}}}),
    )
    .await;
    wait_for(&tokens, "charted", "rotated", |t: &ApiToken| {
        t.status.as_ref().is_some_and(|s| s.rotation_count == Some(1))
    })
    .await;
    // The previous token is retired once the consumer has rolled out (no controller runs here).
    fixtures::rolled_out(&deployments, "consumer").await;
    let token = wait_for(&tokens, "charted", "rotated, previous retired", |t: &ApiToken| {
        is_ready(t)
            && t.status
                .as_ref()
                .is_some_and(|s| s.rotation_count == Some(1) && s.retiring.is_empty())
    })
    .await;
    let second = fixtures::secret_value(admin, namespace, "charted", "token")
        .await
        .unwrap();
    assert_ne!(second, first);
    assert_eq!(ping(credstore, &second).await, 200, "the rotated token works");
    assert_eq!(
        upstream_token(credstore, &first_id).await,
        None,
        "the previous token is deleted upstream"
    );
    let status = token.status.clone().unwrap();
    let restarted = deployments.get("consumer").await.unwrap();
    assert_eq!(
        restarted
            .spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap_or_default()
            .get("apikeys.dev/restarted-for"),
        status.secret_fingerprint.as_ref(),
        "the consumer was restarted for the new token (patch on deployments)"
    );

    // Events are best effort in the operator (a refused one is only logged): check them here.
    let events = Api::<Event>::namespaced(admin.clone(), namespace)
        .list(&ListParams::default())
        .await
        .unwrap();
    let ours = events
        .items
        .iter()
        .filter(|e| e.reporting_controller.as_deref() == Some("apikey-operator"))
        .count();
    assert!(
        ours >= 2,
        "the operator recorded events: {ours} of {}",
        events.items.len()
    );

    // Metrics while the token exists.
    let metrics = scrape(operator).await;
    assert!(
        sample(
            &metrics,
            "apikey_operator_reconciliations_total{kind=\"ApiToken\",result=\"success\"}"
        ) >= 4.0
    );
    assert!(
        sample(
            &metrics,
            "apikey_operator_reconcile_duration_seconds_count{kind=\"ApiToken\"}"
        ) >= 4.0
    );
    assert_eq!(
        sample(
            &metrics,
            "apikey_operator_rotations_total{kind=\"ApiToken\",trigger=\"annotation\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(&metrics, &upstream("create_token", "2xx")),
        2.0,
        "one create, one rotation"
    );
    assert_eq!(sample(&metrics, &upstream("suspend_token", "2xx")), 1.0);
    assert_eq!(sample(&metrics, &upstream("activate_token", "2xx")), 1.0);
    assert!(
        sample(&metrics, &upstream("ping", "2xx")) >= 1.0,
        "the store probe"
    );
    assert!(
        sample(
            &metrics,
            "apikey_operator_upstream_request_duration_seconds_count{api=\"prefactor\",operation=\"create_token\"}"
        ) >= 2.0
    );
    assert_eq!(
        sample(
            &metrics,
            "apikey_operator_resources{kind=\"ApiToken\",ready=\"True\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            "apikey_operator_resources{kind=\"CredentialStore\",ready=\"True\"}"
        ),
        1.0
    );
    let expiry = status.expires_at.expect("status.expiresAt").0.as_second();
    assert_eq!(expiry, expires.as_second(), "the declared expiry is upstream");
    assert_eq!(
        sample(
            &metrics,
            "apikey_operator_credential_expiry_earliest_timestamp_seconds{kind=\"ApiToken\"}"
        ),
        expiry as f64
    );
    assert!(
        !metrics
            .keys()
            .any(|k| k.contains("charted") || k.contains(namespace)),
        "no object names in labels"
    );

    // Deletion: upstream and Secret gone, and the gauges follow.
    tokens.delete("charted", &Default::default()).await.unwrap();
    eventually("the ApiToken is gone", true, || async {
        tokens.get_opt("charted").await.unwrap().is_none()
    })
    .await;
    assert_eq!(
        upstream_token(credstore, &status.upstream_id.clone().unwrap()).await,
        None
    );
    assert!(
        Api::<Secret>::namespaced(admin.clone(), namespace)
            .get_opt("charted")
            .await
            .unwrap()
            .is_none(),
        "the Secret is deleted"
    );
    let metrics = scrape(operator).await;
    assert_eq!(
        sample(
            &metrics,
            "apikey_operator_resources{kind=\"ApiToken\",ready=\"True\"}"
        ),
        0.0
    );
    assert!(
        sample(&metrics, &upstream("delete_token", "2xx")) >= 2.0,
        "the rotated-out and the deleted token"
    );
    assert!(
        !metrics.keys().any(|k| k
            .starts_with("apikey_operator_credential_expiry_earliest_timestamp_seconds{kind=\"ApiToken\"")),
        "no expiry once no token has one"
    );

    let log = std::fs::read_to_string(&operator.log).unwrap();
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "a request of the operator was forbidden by the chart's RBAC:\n{}",
        log.lines()
            .filter(|l| l.to_lowercase().contains("forbidden"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
