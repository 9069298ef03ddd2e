//! Default upstream names across namespaces: `<x>-a-b/c` and `<x>-a/b-c` read the same as
//! `<namespace>-<name>`, and must still get two objects of their own.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use serde_json::json;

use super::{Tally, Upstream, World, status_of};
use apikey_operator::controller::key_run::DEFAULT_NAME_MAX;

/// Creates namespace `name` exactly (envtest::namespace adds a random suffix).
async fn exact_namespace(w: &World, name: &str) {
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(w.client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|e| panic!("namespace {name}: {e}"));
}

#[tokio::test]
async fn default_names_of_namespaces_and_names_that_join_alike_do_not_meet() {
    let w = World::new("tn-names").await;
    // The admin namespace's name is unique: both namespaces are built on it.
    let first = format!("{}-a-b", w.admin);
    let second = format!("{}-a", w.admin);
    exact_namespace(&w, &first).await;
    exact_namespace(&w, &second).await;
    let mut tally = Tally::default();
    let mut seen = Vec::new();
    for (upstream, tail) in [
        (Upstream::Zenml, "c"),
        (Upstream::Trend, "t"),
        (Upstream::Akamai, "k"),
    ] {
        let store = w.cluster_store(upstream, &[&first, &second], None).await;
        // `<first>-<tail>` == `<second>-b-<tail>`.
        let pair = [
            (first.as_str(), tail.to_string()),
            (second.as_str(), format!("b-{tail}")),
        ];
        assert_eq!(
            format!("{}-{}", pair[0].0, pair[0].1),
            format!("{}-{}", pair[1].0, pair[1].1)
        );
        let mut ids = Vec::new();
        let mut creds = Vec::new();
        for (ns, name) in &pair {
            w.declare(ns, upstream, name, &store, json!({}), json!({})).await;
        }
        for (ns, name) in &pair {
            let object = w.ready(ns, upstream, name).await;
            let id = status_of(&object).upstream_id.unwrap();
            let (upstream_name, description) = w.upstream(upstream, &id).await.unwrap();
            let joined = format!("{ns}-{name}-");
            assert!(upstream_name.starts_with(&joined), "{upstream_name}");
            assert_eq!(upstream_name, w.cluster.default_name(ns, name, DEFAULT_NAME_MAX));
            assert_eq!(description, w.mark(&object), "each marked as its own");
            let cred = w.cred(ns, upstream, name).await.unwrap();
            tally.still_works(&w, &cred, &format!("{ns}/{name}")).await;
            ids.push((id, upstream_name));
            creds.push(cred);
        }
        assert_ne!(ids[0].0, ids[1].0, "{upstream:?}: two objects upstream");
        assert_ne!(ids[0].1, ids[1].1, "{upstream:?}: under two names");
        assert_ne!(creds[0], creds[1]);
        // Both still work once both exist.
        for cred in &creds {
            tally.still_works(&w, cred, "both exist").await;
        }
        seen.extend(creds);
    }
    w.assert_no_leak(&[&first, &second], &seen).await;
    tally.report("tn-names");
}
