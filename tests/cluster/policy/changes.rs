//! A policy changed under delivered keys: tightening flags them and leaves them alone
//! upstream (their credential keeps working); loosening lets them converge again, on the
//! same credential. The shared operator is not restarted.

use serde_json::{Value, json};

use super::{assert_refusal, cluster_store, converged, refusal, usage, wait_usage};
use crate::tenancy::{self, Upstream, World};
use apikey_operator_test_support::fixtures::{self, merge, requests_between, upstream_requests};

fn roles(namespace: &str, allowed: Value) -> Value {
    json!({"rules": [{"name": "team", "namespaces": [namespace], "trendMicro": {"roleIDs": allowed}}]})
}

#[tokio::test]
async fn tightening_flags_a_delivered_key_without_touching_it_and_loosening_restores_it() {
    let world = World::new("pol-change").await;
    let team = world.namespace("pol-change-team").await;
    let store = format!("trend-{team}");
    cluster_store(
        &world,
        Upstream::Trend,
        &store,
        &[&team],
        roles(&team, json!([1, 3])),
    )
    .await;
    let spec = json!({"roleID": 1});
    world
        .declare(&team, Upstream::Trend, "scanner", &store, json!({}), spec)
        .await;
    let cred = converged(&world, &team, Upstream::Trend, "scanner").await;
    let delivered = tenancy::status_of(&world.ready(&team, Upstream::Trend, "scanner").await);
    let id = delivered.upstream_id.clone().unwrap();
    wait_usage(&world, &store, usage(Upstream::Trend, 1, 0)).await;

    let before = upstream_requests(&world.credstore).await;
    let stores = world.cluster_stores();
    merge(
        &stores,
        &store,
        json!({"spec": {"policy": roles(&team, json!([3]))}}),
    )
    .await;
    let message = refusal(&world, &team, Upstream::Trend, "scanner").await;
    assert_refusal(
        &message,
        &store,
        "team",
        "spec.roleID",
        "1 is not allowed (allowed: 3)",
    );
    wait_usage(&world, &store, usage(Upstream::Trend, 1, 1)).await;
    let flagged = tenancy::status_of(&world.api(&team, Upstream::Trend).get("scanner").await.unwrap());
    assert_eq!(
        flagged.upstream_id, delivered.upstream_id,
        "the status still records the key"
    );
    assert_eq!(flagged.credential_id, delivered.credential_id);
    assert_eq!(
        world.cred(&team, Upstream::Trend, "scanner").await.as_ref(),
        Some(&cred),
        "the Secret is left as it was"
    );
    assert!(
        cred.works(&world.credstore).await,
        "the flagged key's credential still authenticates"
    );
    let upstream = fixtures::trend_key(&world.credstore, &id).await;
    assert!(
        upstream.is_some_and(|k| k["active"] == true),
        "the flagged key still exists upstream, active"
    );
    let flagged_requests = upstream_requests(&world.credstore).await;
    let seen = requests_between(&before, &flagged_requests, "trendmicro");
    println!("trendmicro requests while the key was flagged: {seen:?}");
    let touched: Vec<&String> = seen
        .keys()
        .filter(|op| !op.starts_with("GET ") && op.as_str() != "POST /api/apikeys/search")
        .collect();
    assert!(
        touched.is_empty(),
        "nothing is changed upstream for a flagged key: {seen:?}"
    );

    merge(
        &stores,
        &store,
        json!({"spec": {"policy": roles(&team, json!([1, 3]))}}),
    )
    .await;
    let again = converged(&world, &team, Upstream::Trend, "scanner").await;
    assert_eq!(again, cred, "the same credential, not a new one");
    let restored = tenancy::status_of(&world.ready(&team, Upstream::Trend, "scanner").await);
    assert_eq!(restored.upstream_id, delivered.upstream_id);
    assert_eq!(restored.credential_id, delivered.credential_id);
    assert_eq!(restored.rotation_count, delivered.rotation_count, "no rotation");
    wait_usage(&world, &store, usage(Upstream::Trend, 1, 0)).await;
    let after = upstream_requests(&world.credstore).await;
    let seen = requests_between(&before, &after, "trendmicro");
    let touched: Vec<&String> = seen
        .keys()
        .filter(|op| !op.starts_with("GET ") && op.as_str() != "POST /api/apikeys/search")
        .collect();
    assert!(
        touched.is_empty(),
        "no create, modify, regenerate or delete from tightening to loosening: {seen:?}"
    );
    world.assert_no_leak(&[&team], &[cred]).await;
}
