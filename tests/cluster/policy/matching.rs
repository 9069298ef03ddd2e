//! Which rule applies: by namespace name, by namespace label, `*`, the first that matches;
//! a ClusterCredentialStore with a policy refuses namespaces no rule matches, while a
//! CredentialStore whose rules do not match its namespace is unrestricted.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use serde_json::json;

use super::{Case, cluster_store, converged, namespaced_store, refusal, refuse_all, refused_fresh};
use crate::tenancy::{Upstream, World};
use apikey_operator_test_support::fixtures::merge;

const TIER: &str = "policy.apikeys.test/tier";

#[tokio::test]
async fn the_first_rule_matching_the_namespace_by_name_or_label_decides() {
    let world = World::new("pol-match").await;
    let by_name = world.namespace("pol-match-name").await;
    let labelled = world.namespace("pol-match-label").await;
    let both = world.namespace("pol-match-both").await;
    let unruled = world.namespace("pol-match-none").await;
    let local = world.namespace("pol-match-local").await;
    let namespaces = Api::<Namespace>::all(world.client.clone());
    for namespace in [&labelled, &both] {
        merge(
            &namespaces,
            namespace,
            json!({"metadata": {"labels": {TIER: "prod"}}}),
        )
        .await;
    }
    let store = format!("trend-{by_name}");
    let policy = json!({"rules": [
        {"name": "prod", "namespaceSelector": {"matchLabels": {TIER: "prod"}}, "trendMicro": {"roleIDs": [3]}},
        {"name": "by-name", "namespaces": [by_name, both], "trendMicro": {"roleIDs": [4]}},
    ]});
    let allowed = [
        by_name.as_str(),
        labelled.as_str(),
        both.as_str(),
        unruled.as_str(),
    ];
    cluster_store(&world, Upstream::Trend, &store, &allowed, policy).await;

    let case = |namespace: &String, name, role: i64, rule, allowed: i64| Case {
        namespace: namespace.clone(),
        name,
        spec: json!({"roleID": role}),
        rule,
        field: "spec.roleID",
        detail: format!("{role} is not allowed (allowed: {allowed})"),
    };
    let cases = [
        case(&by_name, "role-3", 3, "by-name", 4),
        case(&labelled, "role-4", 4, "prod", 3),
        // Matched by both rules: the first (by label) decides, though the second would allow it.
        case(&both, "role-4", 4, "prod", 3),
    ];
    refuse_all(&world, Upstream::Trend, &store, &cases).await;
    for (namespace, name, role) in [
        (&by_name, "role-4", 4),
        (&labelled, "role-3", 3),
        (&both, "role-3", 3),
    ] {
        let spec = json!({"roleID": role});
        world
            .declare(namespace, Upstream::Trend, name, &store, json!({}), spec)
            .await;
        converged(&world, namespace, Upstream::Trend, name).await;
    }

    // The store serves this namespace, but no rule of its policy matches it.
    let spec = json!({"roleID": 3});
    world
        .declare(&unruled, Upstream::Trend, "any", &store, json!({}), spec)
        .await;
    let message = refused_fresh(&world, &unruled, Upstream::Trend, "any").await;
    assert_eq!(
        message,
        format!(
            "ClusterCredentialStore {store} has a policy and none of its rules applies to namespace {unruled}; ask the \
             store's owner to add one"
        )
    );

    // A CredentialStore whose rules name other namespaces restricts nothing here...
    let elsewhere = json!({"rules": [{"name": "elsewhere", "namespaces": ["elsewhere"], "trendMicro": {"roleIDs": [3]}}]});
    namespaced_store(&world, &local, Upstream::Trend, "lenient", elsewhere).await;
    // ...while one with a rule for every namespace (`*`) does.
    let everyone =
        json!({"rules": [{"name": "everyone", "namespaces": ["*"], "trendMicro": {"roleIDs": [3]}}]});
    namespaced_store(&world, &local, Upstream::Trend, "strict", everyone).await;
    for store in ["lenient", "strict"] {
        let spec = json!({"roleID": 1, "storeRef": {"name": store}});
        world
            .declare(&local, Upstream::Trend, store, store, json!({}), spec)
            .await;
    }
    converged(&world, &local, Upstream::Trend, "lenient").await;
    let message = refusal(&world, &local, Upstream::Trend, "strict").await;
    assert_eq!(
        message,
        format!(
            "CredentialStore {local}/strict policy rule \"everyone\": spec.roleID 1 is not allowed (allowed: 3); change \
             spec.roleID or ask the store's owner to allow it"
        )
    );
}
