//! A name that another resource's object, or an object made by hand, already has upstream:
//! the newcomer gets `NameTaken`, and nothing upstream is touched, not even when the
//! newcomer is deleted.

use kube::api::DynamicObject;
use serde_json::{Value, json};

use super::{Tally, Upstream, World, assert_blocked, message, status_of};
use apikey_operator_test_support::envtest;
use apikey_operator_test_support::fixtures::{self, is_ready, merge, not_ready_because, wait_for};

/// Victim and attacker in two namespaces served by one store; the attacker declares the
/// victim's explicit upstream name (`extra` is merged into both specs). With `rotate`, the
/// victim rotates while the attacker exists.
async fn same_name_from_another_namespace(prefix: &str, upstream: Upstream, extra: Value, rotate: bool) {
    let w = World::new(prefix).await;
    let victim_ns = w.namespace("tn-victim").await;
    let attacker_ns = w.namespace("tn-attacker").await;
    let store = w.cluster_store(upstream, &[&victim_ns, &attacker_ns], None).await;
    let taken = format!("shared-{victim_ns}");
    let field = upstream.name_field();
    let (description_field, description) = match upstream {
        Upstream::Akamai => ("clientDescription", "the victim's client"),
        _ => ("description", "the victim's key"),
    };
    let mut spec = json!({field: taken, description_field: description});
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let mut tally = Tally::default();

    w.declare(&victim_ns, upstream, "app", &store, json!({}), spec.clone())
        .await;
    let victim = w.ready(&victim_ns, upstream, "app").await;
    let mut victim_id = status_of(&victim).upstream_id.unwrap();
    let mut victim_cred = w
        .cred(&victim_ns, upstream, "app")
        .await
        .expect("the victim's Secret");
    tally.still_works(&w, &victim_cred, "issued").await;
    let mut described = w
        .upstream(upstream, &victim_id)
        .await
        .expect("the victim's object");
    let marked = format!("{description} {}", w.mark(&victim));
    assert_eq!(described, (taken.clone(), marked.clone()), "named and marked");
    let mut seen = vec![victim_cred.clone()];

    w.declare(&attacker_ns, upstream, "app", &store, json!({}), spec)
        .await;
    let attacker = w.blocked(&attacker_ns, upstream, "app", "NameTaken").await;
    assert_blocked(&attacker, "NameTaken");
    let why = message(&attacker, "Ready");
    assert!(why.contains(&taken), "the message names the object: {why}");
    assert!(why.contains(&format!("spec.{field}")), "{why}");
    assert!(why.contains("another owner mark"), "{why}");
    assert_eq!(status_of(&attacker).upstream_id, None);
    assert_eq!(
        w.cred(&attacker_ns, upstream, "app").await,
        None,
        "the attacker gets no Secret"
    );
    tally.still_works(&w, &victim_cred, "attacker refused").await;
    assert_eq!(
        w.upstream(upstream, &victim_id).await.as_ref(),
        Some(&described),
        "the victim's object is unchanged"
    );

    if rotate {
        let victims = w.api(&victim_ns, upstream);
        let annotate = json!({"metadata": {"annotations": {"apikeys.dev/rotate": "r1"}}});
        merge(&victims, "app", annotate).await;
        let rotated = wait_for(&victims, "app", "rotated", |o: &DynamicObject| {
            is_ready(o) && status_of(o).rotation_count == Some(1)
        })
        .await;
        let fresh = w.cred(&victim_ns, upstream, "app").await.unwrap();
        assert_ne!(fresh, victim_cred, "the Secret holds the new credential");
        tally
            .still_works(&w, &fresh, "rotated while the attacker exists")
            .await;
        victim_id = status_of(&rotated).upstream_id.unwrap();
        described = w.upstream(upstream, &victim_id).await.unwrap();
        assert_eq!(described.1, marked, "the new key is the victim's too");
        victim_cred = fresh;
        seen.push(victim_cred.clone());
        // Once the victim's first key is retired its name is free, and the attacker may
        // get a key of its own by it: never the victim's.
        let attacker = w.api(&attacker_ns, upstream).get("app").await.unwrap();
        assert_ne!(status_of(&attacker).upstream_id, Some(victim_id.clone()));
        let attacker_cred = w.cred(&attacker_ns, upstream, "app").await;
        assert_ne!(attacker_cred.as_ref(), Some(&victim_cred));
    }

    w.delete(&attacker_ns, upstream, "app").await;
    tally.still_works(&w, &victim_cred, "attacker deleted").await;
    let victim = w.api(&victim_ns, upstream).get("app").await.unwrap();
    assert!(
        is_ready(&victim),
        "the victim is still Ready: {:#?}",
        victim.data["status"]
    );
    assert_eq!(
        w.upstream(upstream, &victim_id).await.as_ref(),
        Some(&described),
        "the victim's object survives the attacker's deletion"
    );
    w.assert_no_leak(&[&victim_ns, &attacker_ns], &seen).await;
    tally.report(prefix);
}

#[tokio::test]
async fn zenml_key_name_of_another_namespace_is_name_taken() {
    same_name_from_another_namespace("tn-taken-zenml", Upstream::Zenml, json!({}), false).await;
}

#[tokio::test]
async fn trend_key_name_of_another_namespace_is_name_taken() {
    same_name_from_another_namespace("tn-taken-trend", Upstream::Trend, json!({}), false).await;
}

#[tokio::test]
async fn trend_key_name_of_another_namespace_is_name_taken_with_overlap() {
    let overlap = json!({"rotation": {"retainPrevious": "5s"}});
    same_name_from_another_namespace("tn-taken-overlap", Upstream::Trend, overlap, true).await;
}

#[tokio::test]
async fn akamai_client_name_of_another_namespace_is_name_taken() {
    same_name_from_another_namespace("tn-taken-akamai", Upstream::Akamai, json!({}), false).await;
}

/// With an overlap, a Trend Micro rotation creates `<keyName>-r<n>`: a name an attacker can
/// predict and take first. Whatever the victim's rotation then does, it must not hand the
/// victim the attacker's key nor touch it, and the victim's current key keeps working.
#[tokio::test]
async fn trend_overlap_name_taken_first_by_an_attacker_is_not_used() {
    let w = World::new("tn-squat").await;
    let victim_ns = w.namespace("tn-victim").await;
    let attacker_ns = w.namespace("tn-attacker").await;
    let store = w
        .cluster_store(Upstream::Trend, &[&victim_ns, &attacker_ns], None)
        .await;
    let taken = format!("squatted-{victim_ns}");
    let mut tally = Tally::default();
    let spec = json!({"keyName": taken, "rotation": {"retainPrevious": "5s"}});
    w.declare(&victim_ns, Upstream::Trend, "app", &store, json!({}), spec)
        .await;
    let victim = w.ready(&victim_ns, Upstream::Trend, "app").await;
    let victim_cred = w.cred(&victim_ns, Upstream::Trend, "app").await.unwrap();
    tally.still_works(&w, &victim_cred, "issued").await;

    // The name the victim's first rotation will create.
    let next = format!("{taken}-r1");
    w.declare(
        &attacker_ns,
        Upstream::Trend,
        "squat",
        &store,
        json!({}),
        json!({"keyName": next}),
    )
    .await;
    let squat = w.ready(&attacker_ns, Upstream::Trend, "squat").await;
    let squat_id = status_of(&squat).upstream_id.unwrap();
    let squat_cred = w.cred(&attacker_ns, Upstream::Trend, "squat").await.unwrap();
    assert!(squat_cred.works(&w.credstore).await);

    let victims = w.api(&victim_ns, Upstream::Trend);
    let annotate = json!({"metadata": {"annotations": {"apikeys.dev/rotate": "r1"}}});
    merge(&victims, "app", annotate).await;
    let handled = wait_for(&victims, "app", "the rotation handled", |o: &DynamicObject| {
        (is_ready(o) && status_of(o).rotation_count == Some(1)) || not_ready_because(o, "NameTaken")
    })
    .await;
    println!(
        "victim's rotation with its next name squatted: Ready {:?}: {}",
        fixtures::condition(&handled, "Ready"),
        message(&handled, "Ready")
    );
    let now = w.cred(&victim_ns, Upstream::Trend, "app").await.unwrap();
    assert_ne!(now, squat_cred, "the victim never gets the attacker's key");
    assert_ne!(status_of(&handled).upstream_id, Some(squat_id.clone()));
    tally
        .still_works(&w, &now, "rotation with the next name squatted")
        .await;
    if not_ready_because(&handled, "NameTaken") {
        assert_eq!(now, victim_cred, "nothing was rotated: the Secret is unchanged");
    }
    assert!(
        squat_cred.works(&w.credstore).await,
        "the attacker's own key is not touched either"
    );
    let squat_upstream = w.upstream(Upstream::Trend, &squat_id).await.unwrap();
    assert_eq!(squat_upstream, (next, w.mark(&squat)));
    assert_ne!(w.mark(&squat), w.mark(&victim));

    w.delete(&attacker_ns, Upstream::Trend, "squat").await;
    tally.still_works(&w, &now, "attacker deleted").await;
    w.assert_no_leak(&[&victim_ns, &attacker_ns], &[victim_cred, now, squat_cred])
        .await;
    tally.report("tn-squat");
}

/// A key (or Akamai client) made by hand upstream with the name a new resource asks for.
#[tokio::test]
async fn a_key_made_by_hand_upstream_is_not_taken_over_by_name() {
    let w = World::new("tn-byhand").await;
    let ns = w.namespace("tn-byhand-user").await;
    let mut tally = Tally::default();
    let mut seen = Vec::new();
    for upstream in [Upstream::Zenml, Upstream::Trend, Upstream::Akamai] {
        let store = w.cluster_store(upstream, &[&ns], None).await;
        let name = format!("by-hand-{}-{ns}", upstream.short());
        let (id, hand) = w.hand_made(upstream, &name, "made by hand").await;
        tally.still_works(&w, &hand, "made by hand").await;
        let before = (name.clone(), "made by hand".to_string());
        assert_eq!(w.upstream(upstream, &id).await.as_ref(), Some(&before));

        let resource = format!("app-{}", upstream.short());
        let field = upstream.name_field();
        w.declare(&ns, upstream, &resource, &store, json!({}), json!({field: name}))
            .await;
        let blocked = w.blocked(&ns, upstream, &resource, "NameTaken").await;
        assert_blocked(&blocked, "NameTaken");
        let why = message(&blocked, "Ready");
        assert!(
            why.contains(&name) && why.contains(&format!("spec.{field}")) && why.contains("no owner mark"),
            "{why}"
        );
        assert_eq!(w.cred(&ns, upstream, &resource).await, None, "no Secret");
        tally.still_works(&w, &hand, "resource refused").await;
        assert_eq!(
            w.upstream(upstream, &id).await.as_ref(),
            Some(&before),
            "description unchanged"
        );

        w.delete(&ns, upstream, &resource).await;
        tally.still_works(&w, &hand, "resource deleted").await;
        assert_eq!(w.upstream(upstream, &id).await.as_ref(), Some(&before));
        seen.push(hand);
    }
    w.assert_no_leak(&[&ns], &seen).await;
    tally.report("tn-byhand");
}

/// A first create looks for its name in a list of the store's account up to 10 s old (see
/// `upstream::name_index`): a client made by hand under that name just after another
/// resource's create listed the clients is either seen (`NameTaken`) or missed (the
/// operator creates its own client next to it). Either way the hand-made client is left
/// as it was, and the resource never gets its credential.
#[tokio::test]
async fn a_name_taken_by_hand_after_a_recent_list_is_never_taken_over() {
    let w = World::new("tn-recent").await;
    let ns = w.namespace("tn-recent-user").await;
    let mut tally = Tally::default();
    for upstream in [Upstream::Trend, Upstream::Akamai] {
        let store = w.cluster_store(upstream, &[&ns], None).await;
        // The first resource's create lists the account.
        let first = format!("first-{}", upstream.short());
        w.declare(&ns, upstream, &first, &store, json!({}), json!({}))
            .await;
        w.ready(&ns, upstream, &first).await;
        let first_cred = w.cred(&ns, upstream, &first).await.unwrap();

        let name = format!("taken-{}-{ns}", upstream.short());
        let (id, hand) = w.hand_made(upstream, &name, "made by hand").await;
        let before = (name.clone(), "made by hand".to_string());
        let resource = format!("app-{}", upstream.short());
        let field = upstream.name_field();
        w.declare(&ns, upstream, &resource, &store, json!({}), json!({field: name}))
            .await;
        let api = w.api(&ns, upstream);
        let handled = wait_for(&api, &resource, "Ready or NameTaken", |o: &DynamicObject| {
            is_ready(o) || not_ready_because(o, "NameTaken")
        })
        .await;
        println!(
            "{upstream:?} name taken by hand after a recent list: Ready {:?}",
            fixtures::condition(&handled, "Ready")
        );
        let own = w.cred(&ns, upstream, &resource).await;
        assert_ne!(own.as_ref(), Some(&hand), "never the hand-made credential");
        if is_ready(&handled) {
            let own_id = status_of(&handled).upstream_id.unwrap();
            assert_ne!(own_id, id, "a client of its own, not the hand-made one");
            let described = w.upstream(upstream, &own_id).await.unwrap();
            assert_eq!(
                described,
                (name.clone(), w.mark(&handled)),
                "named and marked as its own"
            );
        } else {
            assert_eq!(own, None, "refused: no Secret");
        }
        tally.still_works(&w, &hand, "resource handled").await;
        assert_eq!(
            w.upstream(upstream, &id).await.as_ref(),
            Some(&before),
            "unchanged"
        );

        w.delete(&ns, upstream, &resource).await;
        tally.still_works(&w, &hand, "resource deleted").await;
        assert_eq!(
            w.upstream(upstream, &id).await.as_ref(),
            Some(&before),
            "survives the deletion"
        );
        w.delete(&ns, upstream, &first).await;
        let mut seen = vec![hand, first_cred];
        seen.extend(own);
        w.assert_no_leak(&[&ns], &seen).await;
    }
    tally.report("tn-recent");
}

/// Only the operator writes marks: a spec description carrying one (say, copied from a
/// victim's upstream object) is refused by the API server.
#[tokio::test]
async fn a_spec_cannot_carry_an_owner_mark() {
    let client = envtest::client().await;
    let ns = envtest::namespace(&client, "tn-markspec").await;
    let forged = "mine [apikeys.dev/owner=0123456789abcdef0123456789abcdef]";
    for (kind, spec) in [
        (
            "ServiceAccountKey",
            json!({"storeRef": {"name": "s"}, "serviceAccount": "sa", "description": forged}),
        ),
        (
            "ApiClient",
            json!({
                "storeRef": {"name": "s"}, "authorizedUsers": ["u"], "apiAccess": {"allAccessibleApis": true}, "purgeOptions": {"canPurgeByCacheTag": true, "canPurgeByCpcode": true, "cpcodeAccess": {"allCurrentAndNewCpcodes": true}},
                "groupAccess": {"cloneAuthorizedUserGroups": true}, "clientDescription": forged,
            }),
        ),
    ] {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "apikeys.dev/v1alpha1", "kind": kind, "metadata": {"name": "forged"}, "spec": spec,
        }))
        .unwrap();
        let refused = envtest::apply(&client, &object, &ns)
            .await
            .expect_err("a description with a mark is refused");
        assert!(
            refused.to_string().contains("apikeys.dev/owner="),
            "{kind}: {refused}"
        );
    }
}
