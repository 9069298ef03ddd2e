//! Status records copied from another resource, or written by hand: what the operator reads
//! from a stored status proves nothing, so a forged record must neither replay the other
//! resource's create nor let the operator act on the other resource's object.
//!
//! The forged status is written with server-side apply under the operator's own field
//! manager, as the operator writes its status: the operator's next write then replaces it
//! whole, as it would a record of its own.

use apikey_operator::api::{KeyStatus, StoreRef};
use kube::api::DynamicObject;
use serde_json::{Value, json};

use super::{PAUSED, Tally, Upstream, World, assert_blocked, message, nonce, status_of};
use apikey_operator_test_support::fixtures::{self, condition, wait_for};

const STARTED: &str = "2026-01-01T00:00:00Z";

/// A pending record as the operator writes one.
fn pending(operation: &str, key: &str, trigger: &str, request: Value) -> Value {
    json!({
        "operation": operation, "idempotencyKey": key.chars().take(64).collect::<String>(),
        "startedAt": STARTED, "trigger": trigger, "request": request.to_string(),
    })
}

/// `status` with the proof the operator would write for resource `name`: the state an
/// interrupted operator leaves (the test may read the operator's key; a tenant may not).
async fn proven(w: &World, namespace: &str, up: Upstream, name: &str, status: Value) -> Value {
    let object = w.api(namespace, up).get(name).await.unwrap();
    let store: StoreRef = serde_json::from_value(object.data["spec"]["storeRef"].clone()).unwrap();
    let mut typed: KeyStatus = serde_json::from_value(status).unwrap();
    let key = fixtures::status_key(&w.client).await;
    typed.owner_proof = key.sign(&object.metadata.uid.unwrap(), &store, &typed);
    serde_json::to_value(typed).unwrap()
}

/// The victim's create is run from a pending record whose nonce the attacker knows (it is
/// in the victim's status while the create is in flight); the attacker writes the same
/// record into its own ApiToken's status. It carries no proof for the attacker: refused.
/// Behind the proof, the idempotency key is derived from the UID: even a record proven for
/// the attacker (as if the proof were bypassed) mints a token of its own instead of
/// replaying the victim's create, which would answer with the victim's token and secret.
#[tokio::test]
async fn a_pending_create_copied_from_another_api_token_mints_a_token_of_its_own() {
    let w = World::new("tn-forge-token").await;
    let victim_ns = w.namespace("tn-victim").await;
    let attacker_ns = w.namespace("tn-attacker").await;
    let up = Upstream::Prefactor;
    let store = w.cluster_store(up, &[&victim_ns, &attacker_ns], None).await;
    let mut tally = Tally::default();
    let record = pending("Create", &nonce(), "create", json!({"scope": "account"}));
    let paused = json!({PAUSED: "true"});

    w.declare(&victim_ns, up, "app", &store, paused.clone(), json!({}))
        .await;
    let in_flight = proven(&w, &victim_ns, up, "app", json!({"pending": record})).await;
    w.forge_status(&victim_ns, up, "app", in_flight).await;
    w.unpause(&victim_ns, up, "app").await;
    let victim = w.ready(&victim_ns, up, "app").await;
    let token_id = status_of(&victim).upstream_id.unwrap();
    let victim_cred = w.cred(&victim_ns, up, "app").await.unwrap();
    tally.still_works(&w, &victim_cred, "issued").await;

    w.declare(&attacker_ns, up, "app", &store, paused, json!({}))
        .await;
    w.forge_status(&attacker_ns, up, "app", json!({"pending": record}))
        .await;
    w.unpause(&attacker_ns, up, "app").await;
    let refused = w.blocked(&attacker_ns, up, "app", "StatusNotProven").await;
    assert_blocked(&refused, "StatusNotProven");
    assert_eq!(w.cred(&attacker_ns, up, "app").await, None, "no Secret");
    tally.still_works(&w, &victim_cred, "copied record refused").await;

    // Second layer: the same record, proven for the attacker.
    w.pause(&attacker_ns, up, "app").await;
    let copied = proven(&w, &attacker_ns, up, "app", json!({"pending": record})).await;
    w.forge_status(&attacker_ns, up, "app", copied).await;
    w.unpause(&attacker_ns, up, "app").await;
    let attacker = w.ready(&attacker_ns, up, "app").await;
    let attacker_id = status_of(&attacker).upstream_id.unwrap();
    assert_ne!(attacker_id, token_id, "the attacker gets a token of its own");
    let attacker_cred = w.cred(&attacker_ns, up, "app").await.unwrap();
    assert_ne!(
        attacker_cred, victim_cred,
        "the attacker's Secret never holds the victim's token"
    );
    assert!(attacker_cred.works(&w.credstore).await);
    tally.still_works(&w, &victim_cred, "record replayed").await;
    assert_eq!(
        w.upstream(up, &token_id).await.map(|t| t.1).as_deref(),
        Some("active")
    );

    w.delete(&attacker_ns, up, "app").await;
    tally.still_works(&w, &victim_cred, "attacker deleted").await;
    assert_eq!(
        w.upstream(up, &attacker_id).await,
        None,
        "the attacker's own token is deleted"
    );
    w.assert_no_leak(&[&victim_ns, &attacker_ns], &[victim_cred, attacker_cred])
        .await;
    tally.report("tn-forge-token");
}

/// The attacker copies the victim's whole status and adds a pending rotation of the
/// victim's object (ZenML rotate, Trend Micro regenerate, Akamai new credential with every
/// existing one "lost"): its ids carry the victim's proof, not the attacker's, so
/// `StatusNotProven`, and the victim's credential keeps working,
/// also after the attacker is deleted.
async fn copied_status_touches_nothing(prefix: &str, up: Upstream) {
    let w = World::new(prefix).await;
    let victim_ns = w.namespace("tn-victim").await;
    let attacker_ns = w.namespace("tn-attacker").await;
    let store = w.cluster_store(up, &[&victim_ns, &attacker_ns], None).await;
    let mut tally = Tally::default();

    w.declare(&victim_ns, up, "app", &store, json!({}), json!({}))
        .await;
    let victim = w.ready(&victim_ns, up, "app").await;
    let victim_status = status_of(&victim);
    let id = victim_status.upstream_id.clone().unwrap();
    let victim_cred = w.cred(&victim_ns, up, "app").await.unwrap();
    tally.still_works(&w, &victim_cred, "issued").await;
    let described = w.upstream(up, &id).await.unwrap();

    let mut status = victim.data["status"].clone();
    status["pending"] = match up {
        Upstream::Zenml => pending(
            "Rotate",
            &described.0,
            "annotation",
            json!({"rotate": {"id": id, "retain_minutes": 0}}),
        ),
        Upstream::Trend => pending(
            "Rotate",
            &described.0,
            "annotation",
            json!({"regenerate": {"id": id.parse::<i64>().unwrap()}}),
        ),
        Upstream::Akamai => {
            let credential: i64 = victim_status.credential_id.unwrap().parse().unwrap();
            pending(
                "Rotate",
                &id,
                "annotation",
                json!({"known": [], "replaces": credential}),
            )
        }
        Upstream::Prefactor => unreachable!("see the ApiToken tests"),
    };
    w.declare(
        &attacker_ns,
        up,
        "thief",
        &store,
        json!({PAUSED: "true"}),
        json!({}),
    )
    .await;
    w.forge_status(&attacker_ns, up, "thief", status).await;
    w.unpause(&attacker_ns, up, "thief").await;
    let attacker = w.blocked(&attacker_ns, up, "thief", "StatusNotProven").await;
    assert_blocked(&attacker, "StatusNotProven");
    let why = message(&attacker, "Ready");
    assert!(why.contains(&id), "the message names the object: {why}");
    assert_eq!(w.cred(&attacker_ns, up, "thief").await, None, "no Secret");
    tally
        .still_works(&w, &victim_cred, "forged rotation refused")
        .await;
    assert_eq!(w.upstream(up, &id).await.as_ref(), Some(&described));
    assert_eq!(w.cred(&victim_ns, up, "app").await.as_ref(), Some(&victim_cred));

    w.delete(&attacker_ns, up, "thief").await;
    tally.still_works(&w, &victim_cred, "attacker deleted").await;
    assert_eq!(w.upstream(up, &id).await.as_ref(), Some(&described));
    let victim = w.api(&victim_ns, up).get("app").await.unwrap();
    assert!(fixtures::is_ready(&victim), "the victim is still Ready");
    assert_eq!(status_of(&victim).upstream_id, Some(id));
    w.assert_no_leak(&[&victim_ns, &attacker_ns], &[victim_cred])
        .await;
    tally.report(prefix);
}

#[tokio::test]
async fn a_zenml_rotation_copied_from_another_status_is_refused() {
    copied_status_touches_nothing("tn-copy-zenml", Upstream::Zenml).await;
}

#[tokio::test]
async fn a_trend_regeneration_copied_from_another_status_is_refused() {
    copied_status_touches_nothing("tn-copy-trend", Upstream::Trend).await;
}

#[tokio::test]
async fn an_akamai_credential_issue_copied_from_another_status_is_refused() {
    copied_status_touches_nothing("tn-copy-akamai", Upstream::Akamai).await;
}

/// Waits until the operator has written a Ready condition of its own into a status that had
/// none, and returns it.
async fn first_verdict(w: &World, ns: &str, up: Upstream, name: &str) -> DynamicObject {
    let looked = |o: &DynamicObject| condition(o, "Ready").is_some();
    let object = wait_for(&w.api(ns, up), name, "a Ready condition", looked).await;
    println!(
        "{ns}/{name}: Ready {:?}: {}",
        condition(&object, "Ready"),
        message(&object, "Ready")
    );
    object
}

/// The upgrade path trusts an unmarked object whose id is in `status.upstreamId` (created
/// before marks existed). A status written by the attacker names a ZenML key made by hand
/// (unmarked) and asks to rotate it: the hand-made key must keep its secret, and survive
/// the attacker's deletion.
#[tokio::test]
async fn a_status_naming_a_key_made_by_hand_does_not_take_it_over() {
    let w = World::new("tn-forge-hand").await;
    let ns = w.namespace("tn-attacker").await;
    let up = Upstream::Zenml;
    let store = w.cluster_store(up, &[&ns], None).await;
    let mut tally = Tally::default();
    let name = format!("by-hand-{ns}");
    let (id, hand) = w.hand_made(up, &name, "made by hand").await;
    tally.still_works(&w, &hand, "made by hand").await;

    w.declare(&ns, up, "thief", &store, json!({PAUSED: "true"}), json!({}))
        .await;
    let request = json!({"rotate": {"id": id, "retain_minutes": 0}});
    let status = json!({"upstreamId": id, "pending": pending("Rotate", &name, "annotation", request)});
    w.forge_status(&ns, up, "thief", status).await;
    w.unpause(&ns, up, "thief").await;
    first_verdict(&w, &ns, up, "thief").await;
    tally.still_works(&w, &hand, "forged status read").await;
    assert_eq!(
        w.upstream(up, &id).await,
        Some((name.clone(), "made by hand".into())),
        "the hand-made key is not stamped with the attacker's mark"
    );
    w.delete(&ns, up, "thief").await;
    tally.still_works(&w, &hand, "attacker deleted").await;
    assert!(w.upstream(up, &id).await.is_some(), "the key is not deleted");
    w.assert_no_leak(&[&ns], &[hand]).await;
    tally.report("tn-forge-hand");
}

/// Prefactor tokens carry no mark, so `status.upstreamId` is all that ties a token to its
/// ApiToken. The attacker copies the victim's whole status into its own ApiToken: the
/// victim's token must keep working, and survive the attacker's deletion.
#[tokio::test]
async fn a_status_naming_another_api_token_s_token_does_not_take_it_over() {
    let w = World::new("tn-forge-id").await;
    let victim_ns = w.namespace("tn-victim").await;
    let attacker_ns = w.namespace("tn-attacker").await;
    let up = Upstream::Prefactor;
    let store = w.cluster_store(up, &[&victim_ns, &attacker_ns], None).await;
    let mut tally = Tally::default();
    w.declare(&victim_ns, up, "app", &store, json!({}), json!({}))
        .await;
    let victim = w.ready(&victim_ns, up, "app").await;
    let token_id = status_of(&victim).upstream_id.unwrap();
    let victim_cred = w.cred(&victim_ns, up, "app").await.unwrap();
    tally.still_works(&w, &victim_cred, "issued").await;

    let mut status = victim.data["status"].clone();
    status.as_object_mut().unwrap().remove("conditions");
    w.declare(
        &attacker_ns,
        up,
        "thief",
        &store,
        json!({PAUSED: "true"}),
        json!({}),
    )
    .await;
    w.forge_status(&attacker_ns, up, "thief", status).await;
    w.unpause(&attacker_ns, up, "thief").await;
    let verdict = first_verdict(&w, &attacker_ns, up, "thief").await;
    let mut seen = vec![victim_cred.clone()];
    if let Some(cred) = w.cred(&attacker_ns, up, "thief").await {
        assert_ne!(cred, victim_cred);
        seen.push(cred);
    }
    tally.still_works(&w, &victim_cred, "forged status read").await;
    assert_eq!(
        status_of(&verdict).retiring.iter().find(|r| r.id == token_id),
        None,
        "the victim's token is not scheduled for retirement by the attacker"
    );
    w.delete(&attacker_ns, up, "thief").await;
    tally.still_works(&w, &victim_cred, "attacker deleted").await;
    w.assert_no_leak(&[&victim_ns, &attacker_ns], &seen).await;
    tally.report("tn-forge-id");
}
