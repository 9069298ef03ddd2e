//! ApiToken end to end: a real API server, the operator process and the credential store
//! over HTTP. Every transition is checked upstream and by using the token from the Secret.

use std::time::Duration;

use apikey_operator::api::ApiToken;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::json;

use apikey_operator_test_support::fixtures::{
    self, TokenSetup, eventually, is_ready, merge, not_ready_because, ping, upstream_token, wait_for,
};

/// The token's state as the upstream reports it.
async fn upstream_status(s: &TokenSetup, token: &ApiToken) -> Option<String> {
    let id = token.status.as_ref().unwrap().upstream_id.clone().unwrap();
    upstream_token(s.credstore, &id)
        .await
        .map(|d| d["status"].as_str().unwrap().to_string())
}

fn status_of(token: &ApiToken) -> &apikey_operator::api::KeyStatus {
    token.status.as_ref().expect("status")
}

#[tokio::test]
async fn token_follows_the_declared_state_and_works_only_while_active() {
    let s = TokenSetup::new("token-state").await;
    let token = s.ready_token("lifecycle", json!({})).await;
    let status = status_of(&token);
    assert_eq!(status.upstream_state.as_deref(), Some("active"));
    assert_eq!(status.secret_name.as_deref(), Some("lifecycle"));
    assert!(
        status
            .secret_fingerprint
            .as_deref()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(
        status.pending.is_none(),
        "the durable intent is cleared once delivered"
    );
    let secret = s.secret_token("lifecycle").await;
    assert_eq!(
        ping(s.credstore, &secret).await,
        200,
        "an Active token authenticates"
    );

    for (state, upstream, works) in [
        ("Suspended", "suspended", false),
        ("Active", "active", true),
        ("Revoked", "revoked", false),
    ] {
        merge(&s.tokens, "lifecycle", json!({"spec": {"state": state}})).await;
        let token = wait_for(&s.tokens, "lifecycle", state, |t: &ApiToken| {
            is_ready(t) && t.status.as_ref().and_then(|s| s.upstream_state.as_deref()) == Some(upstream)
        })
        .await;
        assert_eq!(
            upstream_status(&s, &token).await.as_deref(),
            Some(upstream),
            "upstream agrees for {state}"
        );
        let code = ping(s.credstore, &secret).await;
        assert_eq!(code == 200, works, "{state}: ping answered {code}");
    }
    assert_eq!(
        s.secret_token("lifecycle").await,
        secret,
        "state changes keep the same token"
    );
}

#[tokio::test]
async fn upstream_drift_is_corrected_and_a_revocation_behind_our_back_is_reported() {
    let s = TokenSetup::new("token-drift").await;
    let token = s.ready_token("drift", json!({})).await;
    let id = status_of(&token).upstream_id.clone().unwrap();
    let secret = s.secret_token("drift").await;

    // Someone suspends it upstream; the next reconciliation (here: a label change) wins.
    fixtures::upstream_action(s.credstore, &id, "suspend").await;
    merge(
        &s.tokens,
        "drift",
        json!({"metadata": {"labels": {"touch": "1"}}}),
    )
    .await;
    eventually("drift corrected upstream", Some("active".to_string()), || {
        upstream_status(&s, &token)
    })
    .await;
    assert_eq!(ping(s.credstore, &secret).await, 200);

    // Someone revokes it upstream: a clear condition, and a rotation request recovers.
    fixtures::upstream_action(s.credstore, &id, "revoke").await;
    merge(
        &s.tokens,
        "drift",
        json!({"metadata": {"labels": {"touch": "2"}}}),
    )
    .await;
    let token = wait_for(&s.tokens, "drift", "RevokedUpstream", |t: &ApiToken| {
        not_ready_because(t, "RevokedUpstream")
    })
    .await;
    let message = token
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .message
        .clone();
    assert!(
        message.contains("apikeys.dev/rotate"),
        "the message says how to recover: {message}"
    );

    merge(
        &s.tokens,
        "drift",
        json!({"metadata": {"annotations": {"apikeys.dev/rotate": "recover"}}}),
    )
    .await;
    let token = wait_for(&s.tokens, "drift", "a fresh token", |t: &ApiToken| {
        is_ready(t) && t.status.as_ref().and_then(|s| s.upstream_id.clone()) != Some(id.clone())
    })
    .await;
    let fresh = s.secret_token("drift").await;
    assert_ne!(fresh, secret);
    assert_eq!(ping(s.credstore, &fresh).await, 200);
    assert_eq!(status_of(&token).rotation_count, Some(1));
}

#[tokio::test]
async fn rotation_by_annotation_overlaps_for_retain_previous_and_restarts_consumers() {
    let s = TokenSetup::new("token-rotate").await;
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "consumer"},
        "spec": {
            "selector": {"matchLabels": {"app": "consumer"}},
            "template": {"metadata": {"labels": {"app": "consumer"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
        },
    }))
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(s.client.clone(), &s.namespace);
    deployments
        .create(&Default::default(), &deployment)
        .await
        .unwrap();

    let token = s
        .ready_token(
            "rotating",
            json!({
                "rotation": {"retainPrevious": "8s"},
                "rolloutRestart": [{"kind": "Deployment", "name": "consumer"}],
                "secret": {"name": "rotating-secret"},
            }),
        )
        .await;
    let old_id = status_of(&token).upstream_id.clone().unwrap();
    let old = s.secret_token("rotating-secret").await;

    merge(
        &s.tokens,
        "rotating",
        json!({"metadata": {"annotations": {"apikeys.dev/rotate": "1"}}}),
    )
    .await;
    let token = wait_for(&s.tokens, "rotating", "rotated", |t: &ApiToken| {
        is_ready(t) && t.status.as_ref().and_then(|s| s.rotation_count) == Some(1)
    })
    .await;
    let new = s.secret_token("rotating-secret").await;
    assert_ne!(new, old, "the Secret holds the new token");
    assert_eq!(ping(s.credstore, &new).await, 200, "the new token works");
    assert_eq!(
        ping(s.credstore, &old).await,
        200,
        "the old token still works during retainPrevious"
    );
    assert_eq!(status_of(&token).retiring.len(), 1);
    assert_eq!(status_of(&token).retiring[0].id, old_id);

    let restarted = deployments.get("consumer").await.unwrap();
    let annotations = restarted
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap_or_default();
    assert_eq!(
        annotations.get("apikeys.dev/restarted-for").map(String::as_str),
        status_of(&token).secret_fingerprint.as_deref(),
        "the consumer's pod template names the new credential"
    );

    // Retirement waits for the consumer's rollout; no Deployment controller runs here.
    fixtures::rolled_out(&deployments, "consumer").await;
    wait_for(&s.tokens, "rotating", "previous token retired", |t: &ApiToken| {
        t.status.as_ref().is_some_and(|s| s.retiring.is_empty())
    })
    .await;
    assert_eq!(
        ping(s.credstore, &old).await,
        401,
        "the old token is refused after retainPrevious"
    );
    assert_eq!(
        upstream_token(s.credstore, &old_id).await,
        None,
        "the old token is deleted upstream"
    );
    assert_eq!(ping(s.credstore, &new).await, 200);
}

#[tokio::test]
async fn rotation_by_requested_at_and_by_interval() {
    let s = TokenSetup::new("token-schedule").await;
    let token = s
        .ready_token(
            "scheduled",
            json!({"rotation": {"requestedAt": "v1", "interval": "1m"}}),
        )
        .await;
    assert_eq!(
        status_of(&token).rotation_count,
        None,
        "the initial requestedAt is not a request"
    );
    assert!(status_of(&token).next_rotation_time.is_some());
    let first = s.secret_token("scheduled").await;

    merge(
        &s.tokens,
        "scheduled",
        json!({"spec": {"rotation": {"requestedAt": "v2"}}}),
    )
    .await;
    wait_for(
        &s.tokens,
        "scheduled",
        "rotated by requestedAt",
        |t: &ApiToken| is_ready(t) && t.status.as_ref().and_then(|s| s.rotation_count) == Some(1),
    )
    .await;
    let second = s.secret_token("scheduled").await;
    assert_ne!(second, first);
    eventually("first token refused with no retainPrevious", 401, || {
        ping(s.credstore, &first)
    })
    .await;

    // The interval counts from the last rotation: one more within about a minute.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(150);
    loop {
        let token = s.tokens.get("scheduled").await.unwrap();
        if status_of(&token).rotation_count == Some(2) && is_ready(&token) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no interval rotation: {:?}",
            token.status
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let third = s.secret_token("scheduled").await;
    assert_ne!(third, second);
    assert_eq!(ping(s.credstore, &third).await, 200);
}

#[tokio::test]
async fn deletion_follows_the_deletion_policy() {
    let s = TokenSetup::new("token-delete").await;
    let deleted = s
        .ready_token("deleted", json!({"deletionPolicy": "Delete"}))
        .await;
    let orphaned = s
        .ready_token("orphaned", json!({"deletionPolicy": "Orphan"}))
        .await;
    let deleted_id = status_of(&deleted).upstream_id.clone().unwrap();
    let orphaned_id = status_of(&orphaned).upstream_id.clone().unwrap();
    let orphaned_secret = s.secret_token("orphaned").await;

    for name in ["deleted", "orphaned"] {
        s.tokens.delete(name, &Default::default()).await.unwrap();
        eventually("the resource is gone", true, || async {
            s.tokens.get_opt(name).await.unwrap().is_none()
        })
        .await;
    }
    assert_eq!(
        upstream_token(s.credstore, &deleted_id).await,
        None,
        "Delete removes the token upstream"
    );
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), &s.namespace);
    assert!(
        secrets.get_opt("deleted").await.unwrap().is_none(),
        "Delete removes the Secret"
    );

    assert_eq!(
        upstream_status(&s, &orphaned).await.as_deref(),
        Some("active"),
        "Orphan leaves the token"
    );
    assert_eq!(ping(s.credstore, &orphaned_secret).await, 200);
    let kept = secrets.get("orphaned").await.expect("Orphan keeps the Secret");
    assert!(
        kept.metadata.owner_references.unwrap_or_default().is_empty(),
        "released from its owner"
    );
    assert!(upstream_token(s.credstore, &orphaned_id).await.is_some());
}
