//! Explicit adoption (`apikeys.dev/adopt`): only where the store's owner allows it, never
//! of another resource's object, never of a Prefactor token; an adopted object's old
//! secret stops working and the object carries the adopter's mark.

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::json;

use super::{ADOPT, Tally, Upstream, World, assert_blocked, message, status_of};
use apikey_operator_test_support::fixtures::{eventually, merge};

#[tokio::test]
async fn adopting_a_key_made_by_hand_needs_the_store_s_consent_and_replaces_its_secret() {
    let w = World::new("tn-adopt").await;
    let ns = w.namespace("tn-adopter").await;
    let mut seen = Vec::new();
    for up in [Upstream::Zenml, Upstream::Trend] {
        let store = w.cluster_store(up, &[&ns], None).await;
        let hand_name = format!("legacy-{}-{ns}", up.short());
        let (id, hand) = w.hand_made(up, &hand_name, "made by hand").await;
        assert!(hand.works(&w.credstore).await);
        let resource = format!("legacy-{}", up.short());
        w.declare(&ns, up, &resource, &store, json!({ADOPT: id}), json!({}))
            .await;

        let refused = w.blocked(&ns, up, &resource, "AdoptionRefused").await;
        assert_blocked(&refused, "AdoptionRefused");
        let why = message(&refused, "Ready");
        assert!(
            why.contains(&id) && why.contains("does not allow adoption"),
            "{why}"
        );
        assert_eq!(w.cred(&ns, up, &resource).await, None, "no Secret");
        assert!(hand.works(&w.credstore).await, "refused: the key is untouched");
        let before = (hand_name.clone(), "made by hand".to_string());
        assert_eq!(w.upstream(up, &id).await.as_ref(), Some(&before));

        let consent = json!({"spec": {"adoption": {"namespaces": [ns]}}});
        merge(&w.cluster_stores(), &store, consent).await;
        let adopted = w.ready(&ns, up, &resource).await;
        assert_eq!(status_of(&adopted).upstream_id.as_deref(), Some(id.as_str()));
        let events = Api::<Event>::namespaced(w.client.clone(), &ns);
        // Recorded just after the status that says Ready.
        eventually(&format!("an Adopted event for {resource}"), true, || async {
            let listed = events.list(&ListParams::default()).await.unwrap();
            listed.items.iter().any(|e| {
                e.reason.as_deref() == Some("Adopted")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(resource.as_str())
            })
        })
        .await;
        let new = w.cred(&ns, up, &resource).await.expect("the Secret");
        assert_ne!(new, hand);
        assert!(new.works(&w.credstore).await, "the new secret works");
        assert!(!hand.works(&w.credstore).await, "the old secret no longer works");
        let (name, description) = w.upstream(up, &id).await.unwrap();
        assert_eq!(name, hand_name, "the same object, renamed nothing");
        assert_eq!(
            description,
            format!("made by hand {}", w.mark(&adopted)),
            "it now carries the adopter's mark, its text kept"
        );
        seen.extend([hand, new]);
    }
    w.assert_no_leak(&[&ns], &seen).await;
}

/// The attacker's store allows adoption, and the attacker names the victim's object.
#[tokio::test]
async fn adopting_another_resource_s_object_is_refused() {
    let w = World::new("tn-adopt-victim").await;
    let victim_ns = w.namespace("tn-victim").await;
    let attacker_ns = w.namespace("tn-attacker").await;
    let mut tally = Tally::default();
    let mut seen = Vec::new();
    for up in [Upstream::Zenml, Upstream::Trend, Upstream::Akamai] {
        let served = [victim_ns.as_str(), attacker_ns.as_str()];
        let store = w.cluster_store(up, &served, Some(&served)).await;
        // ZenML and Trend Micro keys are both ServiceAccountKeys: one name per upstream.
        let app = format!("app-{}", up.short());
        w.declare(&victim_ns, up, &app, &store, json!({}), json!({}))
            .await;
        let victim = w.ready(&victim_ns, up, &app).await;
        let id = status_of(&victim).upstream_id.unwrap();
        let victim_cred = w.cred(&victim_ns, up, &app).await.unwrap();
        tally.still_works(&w, &victim_cred, "issued").await;
        let described = w.upstream(up, &id).await.unwrap();

        // A ZenML key is adopted by its id or its name.
        let mut wanted = vec![id.clone()];
        if up == Upstream::Zenml {
            wanted.push(described.0.clone());
        }
        for (n, target) in wanted.iter().enumerate() {
            let thief = format!("thief-{}-{n}", up.short());
            w.declare(
                &attacker_ns,
                up,
                &thief,
                &store,
                json!({ADOPT: target}),
                json!({}),
            )
            .await;
            let refused = w.blocked(&attacker_ns, up, &thief, "AdoptionRefused").await;
            assert_blocked(&refused, "AdoptionRefused");
            let why = message(&refused, "Ready");
            assert!(why.contains("belongs to another resource"), "{why}");
            assert_eq!(status_of(&refused).upstream_id, None);
            assert_eq!(w.cred(&attacker_ns, up, &thief).await, None, "no Secret");
            tally.still_works(&w, &victim_cred, "adoption refused").await;
            assert_eq!(w.upstream(up, &id).await.as_ref(), Some(&described));

            w.delete(&attacker_ns, up, &thief).await;
            tally.still_works(&w, &victim_cred, "attacker deleted").await;
            assert_eq!(w.upstream(up, &id).await.as_ref(), Some(&described));
        }
        seen.push(victim_cred);
    }
    w.assert_no_leak(&[&victim_ns, &attacker_ns], &seen).await;
    tally.report("tn-adopt-victim");
}

/// A Prefactor token carries no mark: the operator cannot tell whose it is, so adoption is
/// refused even where the store allows it.
#[tokio::test]
async fn api_token_adoption_is_refused_even_where_the_store_allows_it() {
    let w = World::new("tn-adopt-token").await;
    let victim_ns = w.namespace("tn-victim").await;
    let attacker_ns = w.namespace("tn-attacker").await;
    let up = Upstream::Prefactor;
    let served = [victim_ns.as_str(), attacker_ns.as_str()];
    let store = w.cluster_store(up, &served, Some(&served)).await;
    let mut tally = Tally::default();
    w.declare(&victim_ns, up, "app", &store, json!({}), json!({}))
        .await;
    let victim = w.ready(&victim_ns, up, "app").await;
    let token_id = status_of(&victim).upstream_id.unwrap();
    let victim_cred = w.cred(&victim_ns, up, "app").await.unwrap();
    tally.still_works(&w, &victim_cred, "issued").await;

    w.declare(
        &attacker_ns,
        up,
        "thief",
        &store,
        json!({ADOPT: token_id}),
        json!({}),
    )
    .await;
    let refused = w.blocked(&attacker_ns, up, "thief", "AdoptionRefused").await;
    assert_blocked(&refused, "AdoptionRefused");
    assert!(message(&refused, "Ready").contains("carry no owner mark"));
    assert_eq!(status_of(&refused).upstream_id, None);
    assert_eq!(w.cred(&attacker_ns, up, "thief").await, None, "no Secret");
    tally.still_works(&w, &victim_cred, "adoption refused").await;

    w.delete(&attacker_ns, up, "thief").await;
    tally.still_works(&w, &victim_cred, "attacker deleted").await;
    eventually(
        "the victim's token is still active",
        Some("active".to_string()),
        || async { w.upstream(up, &token_id).await.map(|t| t.1) },
    )
    .await;
    w.assert_no_leak(&[&victim_ns, &attacker_ns], &[victim_cred])
        .await;
    tally.report("tn-adopt-token");
}
