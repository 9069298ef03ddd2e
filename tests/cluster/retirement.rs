//! Rotation that waits for its consumers: the previous credential is retired only once its
//! retain period is over, every `rolloutRestart` target has rolled out and (with
//! `retireWhenUnusedFor`) the upstream reports it unused; `maxRetain` bounds the wait and
//! break glass skips it.
//!
//! The test API server runs no kube-controller-manager and no kubelet, so the tests play
//! the Deployment controller: they write the Deployment's status the way it would while a
//! rollout progresses (observedGeneration, replicas, updatedReplicas, availableReplicas).
//! The operator only reads what the API says.

use std::time::{Duration, Instant};

use apikey_operator::api::ApiToken;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use apikey_operator_test_support::fixtures::{
    self, TokenSetup, condition_detail, events_of, eventually, is_ready, merge, ping, report_rollout,
    wait_for,
};

/// A Deployment of `replicas` whose last rollout finished, as its controller reports it.
async fn consumer(s: &TokenSetup, name: &str, replicas: i32) -> Api<Deployment> {
    let deployments: Api<Deployment> = Api::namespaced(s.client.clone(), &s.namespace);
    let deployment = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]},
            },
        },
    }))
    .unwrap();
    deployments
        .create(&Default::default(), &deployment)
        .await
        .unwrap();
    report_rollout(&deployments, name, replicas, replicas, replicas).await;
    deployments
}

async fn rotate(s: &TokenSetup, name: &str) -> ApiToken {
    merge(
        &s.tokens,
        name,
        json!({"metadata": {"annotations": {"apikeys.dev/rotate": "1"}}}),
    )
    .await;
    wait_for(&s.tokens, name, "rotated", |t: &ApiToken| {
        is_ready(t) && t.status.as_ref().and_then(|s| s.rotation_count) == Some(1)
    })
    .await
}

fn waiting_for(token: &ApiToken) -> Option<String> {
    token.status.as_ref()?.retiring.first()?.waiting_for.clone()
}

async fn retire_events(s: &TokenSetup, name: &str) -> Vec<Event> {
    let events = events_of(&s.client, &s.namespace, name).await;
    events
        .into_iter()
        .filter(|e| e.action.as_deref() == Some("Retire"))
        .collect()
}

fn condition(token: &ApiToken, type_: &str) -> Option<(String, String, String)> {
    condition_detail(token, type_)
}

#[tokio::test]
async fn the_previous_token_lives_until_the_consumer_has_rolled_out() {
    let s = TokenSetup::new("retire-rollout").await;
    let deployments = consumer(&s, "billing", 2).await;
    s.ready_token(
        "gated",
        json!({"rotation": {"retainPrevious": "2s"}, "rolloutRestart": [{"kind": "Deployment", "name": "billing"}]}),
    )
    .await;
    let old = s.secret_token("gated").await;
    let delivered = Instant::now();
    rotate(&s, "gated").await;

    // The restart changed the pod template; its controller has not caught up yet.
    let held = wait_for(&s.tokens, "gated", "held by the rollout", |t: &ApiToken| {
        waiting_for(t)
            .is_some_and(|w| w.contains("Deployment billing: its controller has not seen the restart yet"))
    })
    .await;
    let (status, reason, message) = condition(&held, "PreviousRetired").expect("PreviousRetired");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "RetirementHeld"),
        "{message}"
    );
    assert!(is_ready(&held), "a held retirement leaves the key Ready");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        ping(s.credstore, &old).await,
        200,
        "retainPrevious is over, the rollout is not"
    );

    // The restart lost (as after a crash between the status write and the patch, or a
    // refused patch): the finished old rollout does not count, the restart is asked again.
    let strip =
        json!({"spec": {"template": {"metadata": {"annotations": {"apikeys.dev/restarted-for": null}}}}});
    deployments
        .patch("billing", &PatchParams::default(), &Patch::Merge(&strip))
        .await
        .unwrap();
    report_rollout(&deployments, "billing", 2, 2, 2).await;
    let fingerprint = held.status.as_ref().unwrap().secret_fingerprint.clone();
    eventually("the restart asked for again", fingerprint, || async {
        deployments
            .get("billing")
            .await
            .unwrap()
            .spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.annotations)
            .and_then(|a| a.get("apikeys.dev/restarted-for").cloned())
    })
    .await;
    assert_eq!(
        ping(s.credstore, &old).await,
        200,
        "not retired on the old rollout"
    );

    // Half way: one new pod of two, a surge pod still old.
    report_rollout(&deployments, "billing", 3, 1, 2).await;
    wait_for(&s.tokens, "gated", "the rollout's progress", |t: &ApiToken| {
        waiting_for(t).is_some_and(|w| w.contains("Deployment billing: 1/2 updated, 2 available"))
    })
    .await;
    assert_eq!(ping(s.credstore, &old).await, 200, "the rollout is half way");

    report_rollout(&deployments, "billing", 2, 2, 2).await;
    let rolled_out = Instant::now();
    let retired = wait_for(&s.tokens, "gated", "retired", |t: &ApiToken| {
        t.status.as_ref().is_some_and(|s| s.retiring.is_empty())
    })
    .await;
    println!(
        "rollout gate: retired {:.1}s after delivery, {:.1}s after the rollout finished",
        delivered.elapsed().as_secs_f64(),
        rolled_out.elapsed().as_secs_f64()
    );
    assert_eq!(
        ping(s.credstore, &old).await,
        401,
        "retired once the rollout finished"
    );
    let (status, reason, _) = condition(&retired, "PreviousRetired").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Retired"));
}

#[tokio::test]
async fn the_previous_token_lives_while_it_is_used_and_retires_once_quiet() {
    let s = TokenSetup::new("retire-usage").await;
    s.ready_token(
        "watched",
        json!({"rotation": {"retainPrevious": "1s", "retireWhenUnusedFor": "6s"}}),
    )
    .await;
    let old = s.secret_token("watched").await;
    let delivered = Instant::now();
    rotate(&s, "watched").await;

    // A consumer that still holds the old token, authenticating every two seconds.
    let mut last_use = Instant::now();
    for _ in 0..6 {
        assert_eq!(
            ping(s.credstore, &old).await,
            200,
            "the old token is in use, so kept"
        );
        last_use = Instant::now();
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let held = s.tokens.get("watched").await.unwrap();
    let waiting = waiting_for(&held).expect("the status says what the retirement waits for");
    assert!(waiting.contains("last used at"), "{waiting}");

    wait_for(&s.tokens, "watched", "retired once quiet", |t: &ApiToken| {
        t.status.as_ref().is_some_and(|s| s.retiring.is_empty())
    })
    .await;
    let quiet_for = last_use.elapsed();
    println!(
        "usage gate: retired {:.1}s after delivery, {:.1}s after the last use (retireWhenUnusedFor 6s)",
        delivered.elapsed().as_secs_f64(),
        quiet_for.as_secs_f64()
    );
    assert!(
        quiet_for >= Duration::from_secs(6),
        "not before it was quiet for 6s: {quiet_for:?}"
    );
    assert_eq!(ping(s.credstore, &old).await, 401);
}

#[tokio::test]
async fn max_retain_forces_a_stuck_rollout_and_break_glass_waits_for_nothing() {
    let s = TokenSetup::new("retire-forced").await;
    consumer(&s, "stuck", 1).await;
    let target = json!([{"kind": "Deployment", "name": "stuck"}]);
    s.ready_token(
        "bounded",
        json!({"rotation": {"retainPrevious": "1s", "maxRetain": "6s"}, "rolloutRestart": target}),
    )
    .await;
    let old = s.secret_token("bounded").await;
    let delivered = Instant::now();
    rotate(&s, "bounded").await;
    let forced = wait_for(&s.tokens, "bounded", "retired after maxRetain", |t: &ApiToken| {
        t.status.as_ref().is_some_and(|s| s.retiring.is_empty())
    })
    .await;
    let took = delivered.elapsed();
    println!(
        "maxRetain: retired {:.1}s after delivery (maxRetain 6s)",
        took.as_secs_f64()
    );
    assert!(took >= Duration::from_secs(5), "held until maxRetain: {took:?}");
    assert_eq!(ping(s.credstore, &old).await, 401);
    let (status, reason, message) = condition(&forced, "PreviousRetired").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "RetirementForced"));
    assert!(
        message.contains("Deployment stuck"),
        "names what held it: {message}"
    );
    let warning = retire_events(&s, "bounded")
        .await
        .into_iter()
        .find(|e| e.reason.as_deref() == Some("RetirementForced"))
        .expect("a RetirementForced event");
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    assert!(warning.note.unwrap_or_default().contains("Deployment stuck"));

    // Break glass with the same stuck consumer and a long retain period: retired at once.
    s.ready_token(
        "leaked",
        json!({"rotation": {"retainPrevious": "1h"}, "rolloutRestart": target}),
    )
    .await;
    let leaked = s.secret_token("leaked").await;
    let reported = Instant::now();
    merge(
        &s.tokens,
        "leaked",
        json!({"metadata": {"annotations": {"apikeys.dev/rotate": "leak", "apikeys.dev/compromised": "leak"}}}),
    )
    .await;
    eventually("the compromised token refused", 401, || {
        ping(s.credstore, &leaked)
    })
    .await;
    println!(
        "break glass: the old token refused {:.1}s after the report",
        reported.elapsed().as_secs_f64()
    );
    let leaked_token = wait_for(&s.tokens, "leaked", "nothing retiring", |t: &ApiToken| {
        t.status
            .as_ref()
            .is_some_and(|s| s.retiring.is_empty() && s.rotation_count == Some(1))
    })
    .await;
    let events = retire_events(&s, "leaked").await;
    assert!(
        events.iter().any(|e| e
            .note
            .as_deref()
            .is_some_and(|n| n.contains("replaced as compromised"))),
        "{:?}",
        events.iter().map(|e| e.note.clone()).collect::<Vec<_>>()
    );
    assert!(leaked_token.status.is_some());
}

#[tokio::test]
async fn a_trend_micro_key_in_use_is_kept_until_quiet() {
    let s = TokenSetup::new("retire-trend").await;
    fixtures::trend_store(&s.client, &s.namespace, "trend", s.credstore).await;
    let keys: Api<apikey_operator::api::ServiceAccountKey> = Api::namespaced(s.client.clone(), &s.namespace);
    fixtures::apply(
        &s.client,
        &s.namespace,
        json!({"apiVersion": "apikeys.dev/v1alpha1", "kind": "ServiceAccountKey", "metadata": {"name": "siem"},
               "spec": {"storeRef": {"name": "trend"}, "roleID": 1,
                        "rotation": {"retainPrevious": "1s", "retireWhenUnusedFor": "5s"}}}),
    )
    .await;
    wait_for(&keys, "siem", "Ready", is_ready).await;
    let secret = || fixtures::secret_value(&s.client, &s.namespace, "siem", "apiKey");
    let old = secret().await.unwrap();
    merge(
        &keys,
        "siem",
        json!({"metadata": {"annotations": {"apikeys.dev/rotate": "1"}}}),
    )
    .await;
    wait_for(&keys, "siem", "rotated", |k| {
        is_ready(k) && k.status.as_ref().and_then(|s| s.rotation_count) == Some(1)
    })
    .await;
    let mut last_use = Instant::now();
    for _ in 0..4 {
        let status = fixtures::trend_current(s.credstore, &old).await;
        assert_eq!(status, 200, "the old key is in use, so kept");
        last_use = Instant::now();
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    wait_for(&keys, "siem", "retired once quiet", |k| {
        k.status.as_ref().is_some_and(|s| s.retiring.is_empty())
    })
    .await;
    let quiet_for = last_use.elapsed();
    println!(
        "usage gate (Trend Micro): retired {:.1}s after the last use (retireWhenUnusedFor 5s)",
        quiet_for.as_secs_f64()
    );
    assert!(
        quiet_for >= Duration::from_secs(5),
        "not before it was quiet for 5s: {quiet_for:?}"
    );
    assert_eq!(fixtures::trend_current(s.credstore, &old).await, 401);
}
