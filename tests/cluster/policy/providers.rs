//! Each rule of each provider, and the common ones: requests inside converge and their
//! credential authenticates; each request outside is refused naming its field, and nothing
//! is created for it upstream.

use serde_json::{Value, json};

use super::{Case, cluster_store, converged, creates_between, in_days, refuse_all, with};
use crate::tenancy::{Upstream, World};
use apikey_operator_test_support::fixtures::{merge, upstream_requests};

/// A Prefactor id no credential store has (the format the CRD checks).
const OTHER_ID: &str = "013xrzp12g3nqk8ngskn1wtxgka5b0nf";

/// The ids the credential store bootstrapped for `api` (`bootstrap.json`).
fn bootstrap_ids(world: &World, api: &str) -> Value {
    let ids: Value = serde_json::from_str(&world.credstore.bootstrap_file("bootstrap.json")).unwrap();
    ids[api].clone()
}

/// Declares `name` and waits for it to converge, asserting exactly one credential was
/// created upstream for it.
async fn converges_alone(
    world: &World,
    namespace: &str,
    upstream: Upstream,
    store: &str,
    name: &str,
    spec: Value,
) {
    let before = upstream_requests(&world.credstore).await;
    world
        .declare(namespace, upstream, name, store, json!({}), spec)
        .await;
    converged(world, namespace, upstream, name).await;
    let after = upstream_requests(&world.credstore).await;
    let created = creates_between(&before, &after, upstream);
    let expected = match upstream {
        // The client, then its credential (clients are created without one).
        Upstream::Akamai => 1..=2,
        _ => 1..=1,
    };
    assert!(
        expected.contains(&created),
        "{name}: one credential created upstream, counted {created}"
    );
}

#[tokio::test]
async fn zenml_keys_are_held_to_service_accounts_names_rotation_and_lifetime() {
    let world = World::new("pol-zenml").await;
    let team = world.namespace("pol-zenml-team").await;
    let expiring = world.namespace("pol-zenml-exp").await;
    let store = format!("zenml-{team}");
    let policy = json!({"rules": [
        {
            "name": "zenml-team", "namespaces": [team],
            "namePrefix": "team-", "maxRotationInterval": "168h",
            "zenml": {"serviceAccounts": ["apikey-operator"]},
        },
        {"name": "zenml-expiring", "namespaces": [expiring], "maxLifetime": "720h"},
    ]});
    cluster_store(&world, Upstream::Zenml, &store, &[&team, &expiring], policy).await;

    let good = json!({"keyName": "team-ok", "rotation": {"interval": "24h"}});
    let case = |name, spec, field, detail: &str| Case {
        namespace: team.clone(),
        name,
        spec,
        rule: "zenml-team",
        field,
        detail: detail.to_string(),
    };
    let mut cases = vec![
        case(
            "other-account",
            with(
                &good,
                json!({"serviceAccount": "other-sa", "keyName": "team-other"}),
            ),
            "spec.serviceAccount",
            "\"other-sa\" is not allowed (allowed: apikey-operator)",
        ),
        case(
            "rogue-name",
            with(&good, json!({"keyName": "rogue-x"})),
            "spec.keyName",
            "upstream name \"rogue-x\" does not start with \"team-\"",
        ),
        case(
            "default-name",
            with(&good, json!({"keyName": null})),
            "spec.keyName",
            &format!("upstream name \"{team}-default-name-"),
        ),
        case(
            "never-rotated",
            with(&good, json!({"keyName": "team-never", "rotation": null})),
            "spec.rotation.interval",
            "is required: credentials must be rotated at least every 7 days",
        ),
        case(
            "rarely-rotated",
            with(
                &good,
                json!({"keyName": "team-rarely", "rotation": {"interval": "720h"}}),
            ),
            "spec.rotation.interval",
            "30 days is longer than 7 days, the longest the rule allows",
        ),
    ];
    cases.push(Case {
        namespace: expiring.clone(),
        name: "any-key",
        spec: json!({"keyName": "any", "rotation": {"interval": "24h"}}),
        rule: "zenml-expiring",
        field: "spec",
        detail: "ZenML keys never expire, and the rule allows credentials that live at most 30 days".into(),
    });
    refuse_all(&world, Upstream::Zenml, &store, &cases).await;

    converges_alone(&world, &team, Upstream::Zenml, &store, "ok", good).await;
    println!(
        "credential store request counters: {:#}",
        upstream_requests(&world.credstore).await
    );
}

#[tokio::test]
async fn trend_keys_are_held_to_roles_expiry_lifetime_and_name_prefix() {
    let world = World::new("pol-trend").await;
    let team = world.namespace("pol-trend-team").await;
    let expiring = world.namespace("pol-trend-exp").await;
    let store = format!("trend-{team}");
    let policy = json!({"rules": [
        {
            "name": "trend-team", "namespaces": [team],
            "maxLifetime": "720h", "namePrefix": format!("{team}-"),
            "trendMicro": {"roleIDs": [3]},
        },
        {"name": "trend-expiring", "namespaces": [expiring], "trendMicro": {"requireExpiry": true}},
    ]});
    cluster_store(&world, Upstream::Trend, &store, &[&team, &expiring], policy).await;

    // The default upstream name <namespace>-<name>-<hash> starts with the prefix.
    let good = json!({"roleID": 3, "expiresAt": in_days(10)});
    let case = |name, spec, field, detail: &str| Case {
        namespace: team.clone(),
        name,
        spec,
        rule: "trend-team",
        field,
        detail: detail.to_string(),
    };
    let too_late = in_days(60);
    let cases = vec![
        case(
            "wrong-role",
            with(&good, json!({"roleID": 1})),
            "spec.roleID",
            "1 is not allowed (allowed: 3)",
        ),
        case(
            "no-expiry",
            with(&good, json!({"expiresAt": null})),
            "spec.expiresAt",
            "is required: credentials may live at most 30 days",
        ),
        case(
            "too-long",
            with(&good, json!({"expiresAt": too_late})),
            "spec.expiresAt",
            &format!("{too_late} is more than 30 days from now, the longest the rule allows"),
        ),
        case(
            "named",
            with(&good, json!({"keyName": "scanner"})),
            "spec.keyName",
            &format!("upstream name \"scanner\" does not start with \"{team}-\""),
        ),
        Case {
            namespace: expiring.clone(),
            name: "no-expiry",
            spec: json!({"roleID": 1}),
            rule: "trend-expiring",
            field: "spec.expiresAt",
            detail: "is required: keys must expire".into(),
        },
    ];
    refuse_all(&world, Upstream::Trend, &store, &cases).await;

    converges_alone(&world, &team, Upstream::Trend, &store, "scanner", good).await;
    // No maxLifetime in this rule: any expiry will do.
    let far = json!({"roleID": 1, "expiresAt": in_days(400)});
    converges_alone(&world, &expiring, Upstream::Trend, &store, "far", far).await;

    // Following the refusal's advice (change spec.roleID) lets the key through.
    let wrong_role = world.api(&team, Upstream::Trend);
    merge(&wrong_role, "wrong-role", json!({"spec": {"roleID": 3}})).await;
    let cred = converged(&world, &team, Upstream::Trend, "wrong-role").await;
    world.assert_no_leak(&[&team, &expiring], &[cred]).await;
}

#[tokio::test]
async fn akamai_clients_are_held_to_users_apis_groups_switching_and_networks() {
    let world = World::new("pol-akamai").await;
    let team = world.namespace("pol-akamai-team").await;
    let store = format!("akamai-{team}");
    let policy = json!({"rules": [{
        "name": "cdn", "namespaces": [team], "namePrefix": "cdn-", "maxLifetime": "720h",
        "akamai": {
            "authorizedUsers": ["platform-bot"],
            "allowAllAccessibleApis": false,
            "apis": [{"apiId": 1, "maxAccessLevel": "READ-ONLY"}],
            "allowCloneGroups": false,
            "groups": [{"groupId": 10, "roleIds": [5]}],
            "allowAccountSwitch": false,
            "requireIpAcl": true,
            "ipAclWithin": ["10.0.0.0/8"],
        },
    }]});
    cluster_store(&world, Upstream::Akamai, &store, &[&team], policy).await;

    let good = json!({
        "clientName": "cdn-purger",
        "authorizedUsers": ["platform-bot"],
        "apiAccess": {"apis": [{"apiId": 1, "accessLevel": "READ-ONLY"}]},
        "groupAccess": {"groups": [{"groupId": 10, "roleId": 5}]},
        "ipAcl": {"enable": true, "cidr": ["10.1.0.0/16"]},
        "credential": {"expiresAt": in_days(10)},
    });
    let case = |name, patch, field, detail: &str| Case {
        namespace: team.clone(),
        name,
        spec: with(&good, patch),
        rule: "cdn",
        field,
        detail: detail.to_string(),
    };
    let cases = vec![
        case(
            "root-user",
            json!({"authorizedUsers": ["root"]}),
            "spec.authorizedUsers",
            "\"root\" is not allowed (allowed: platform-bot)",
        ),
        case(
            "all-apis",
            json!({"apiAccess": {"allAccessibleApis": true},
                   "purgeOptions": {"canPurgeByCacheTag": false, "canPurgeByCpcode": false,
                                    "cpcodeAccess": {"allCurrentAndNewCpcodes": false, "cpcodes": []}}}),
            "spec.apiAccess.allAccessibleApis",
            "is not allowed: grant the APIs one by one",
        ),
        case(
            "writer",
            json!({"apiAccess": {"apis": [{"apiId": 1, "accessLevel": "READ-WRITE"}]}}),
            "spec.apiAccess.apis",
            "API 1 is allowed READ-ONLY at most, not READ-WRITE",
        ),
        case(
            "other-api",
            json!({"apiAccess": {"apis": [{"apiId": 2, "accessLevel": "READ-ONLY"}]}}),
            "spec.apiAccess.apis",
            "API 2 is not allowed (allowed: 1)",
        ),
        case(
            "cloned-groups",
            json!({"groupAccess": {"cloneAuthorizedUserGroups": true}}),
            "spec.groupAccess.cloneAuthorizedUserGroups",
            "is not allowed: list the groups and roles",
        ),
        case(
            "other-role",
            json!({"groupAccess": {"groups": [{"groupId": 10, "roleId": 6}]}}),
            "spec.groupAccess.groups",
            "role 6 in group 10 is not allowed",
        ),
        case(
            "switcher",
            json!({"allowAccountSwitch": true}),
            "spec.allowAccountSwitch",
            "is not allowed",
        ),
        case(
            "no-acl",
            json!({"ipAcl": null}),
            "spec.ipAcl",
            "is required: enable an IP allow-list with at least one network",
        ),
        case(
            "disabled-acl",
            json!({"ipAcl": {"enable": false, "cidr": ["10.1.0.0/16"]}}),
            "spec.ipAcl",
            "is required: enable an IP allow-list with at least one network",
        ),
        case(
            "open-acl",
            json!({"ipAcl": {"enable": true, "cidr": ["10.1.0.0/16", "192.168.0.0/16"]}}),
            "spec.ipAcl.cidr",
            "192.168.0.0/16 is not within the allowed networks (10.0.0.0/8)",
        ),
        case(
            "default-name",
            json!({"clientName": null}),
            "spec.clientName",
            &format!("upstream name \"{team}-default-name-"),
        ),
        case(
            "forever",
            json!({"credential": {"description": "no expiry"}}),
            "spec.credential.expiresAt",
            "is required: credentials may live at most 30 days",
        ),
    ];
    refuse_all(&world, Upstream::Akamai, &store, &cases).await;

    converges_alone(&world, &team, Upstream::Akamai, &store, "purger", good).await;
    let cred = world
        .cred(&team, Upstream::Akamai, "purger")
        .await
        .expect("the client's Secret");
    world.assert_no_leak(&[&team], &[cred]).await;
}

#[tokio::test]
async fn prefactor_tokens_are_held_to_scopes_environments_accounts_and_lifetime() {
    let world = World::new("pol-prefactor").await;
    let team = world.namespace("pol-prefactor-team").await;
    let short = world.namespace("pol-prefactor-short").await;
    let ids = bootstrap_ids(&world, "prefactor");
    let account = ids["accountId"].as_str().unwrap().to_string();
    let environment = ids["environmentId"].as_str().unwrap().to_string();
    let store = format!("prefactor-{team}");
    let policy = json!({"rules": [
        {
            // Prefactor tokens have no name: the prefix does not apply to them.
            "name": "tokens", "namespaces": [team], "namePrefix": "never-",
            "prefactor": {"scopes": ["environment"], "environmentIds": [environment], "accountIds": [account]},
        },
        {"name": "short-lived", "namespaces": [short], "maxLifetime": "720h"},
    ]});
    cluster_store(&world, Upstream::Prefactor, &store, &[&team, &short], policy).await;

    let good = json!({"scope": "environment", "environmentId": environment, "accountId": account});
    let case = |name, patch, field, detail: String| Case {
        namespace: team.clone(),
        name,
        spec: with(&good, patch),
        rule: "tokens",
        field,
        detail,
    };
    let cases = vec![
        case(
            "account-wide",
            json!({"scope": "account", "environmentId": null}),
            "spec.scope",
            "account is not allowed (allowed: environment)".into(),
        ),
        case(
            "other-env",
            json!({"environmentId": OTHER_ID}),
            "spec.environmentId",
            format!("\"{OTHER_ID}\" is not allowed (allowed: {environment})"),
        ),
        case(
            "no-account",
            json!({"accountId": null}),
            "spec.accountId",
            format!("must name one of the allowed accounts ({account})"),
        ),
        case(
            "other-account",
            json!({"accountId": OTHER_ID}),
            "spec.accountId",
            format!("\"{OTHER_ID}\" is not allowed (allowed: {account})"),
        ),
        Case {
            namespace: short.clone(),
            name: "forever",
            spec: json!({"scope": "account"}),
            rule: "short-lived",
            field: "spec.expiresAt",
            detail: "is required: credentials may live at most 30 days".into(),
        },
    ];
    refuse_all(&world, Upstream::Prefactor, &store, &cases).await;

    converges_alone(&world, &team, Upstream::Prefactor, &store, "env-token", good).await;
    let expiring = json!({"scope": "account", "expiresAt": in_days(20)});
    converges_alone(&world, &short, Upstream::Prefactor, &store, "expiring", expiring).await;
}
