//! Store policy (`spec.policy`, DESIGN §6, last rule) end to end: ClusterCredentialStores
//! with a policy, serving exactly the test's namespaces, on a credential store of the
//! test's own. A request inside a rule converges and its credential authenticates; one
//! outside is refused with `PolicyViolation` naming the rule and the field, and the
//! credential store's counters show nothing was created for it.

mod changes;
mod matching;
mod providers;
mod quota;

use apikey_operator::api::StoreUsage;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::tenancy::{self, Cred, Upstream, World};
use apikey_operator_test_support::fixtures::{self, is_ready, requests_between, wait_for};

pub const POLICY_VIOLATION: &str = "PolicyViolation";

/// The upstream API's name in the credential store's request counters.
pub fn api_name(upstream: Upstream) -> &'static str {
    match upstream {
        Upstream::Zenml => "zenml",
        Upstream::Trend => "trendmicro",
        Upstream::Akamai => "akamai",
        Upstream::Prefactor => "prefactor",
    }
}

/// The operations that create a credential upstream, as the credential store counts them.
pub fn create_operations(upstream: Upstream) -> &'static [&'static str] {
    match upstream {
        Upstream::Zenml => &["POST /api/v1/service_accounts/{account}/api_keys"],
        Upstream::Trend => &["POST /api/apikeys"],
        Upstream::Akamai => &[
            "POST /identity-management/v3/api-clients",
            "POST /identity-management/v3/api-clients/{client}/credentials",
        ],
        Upstream::Prefactor => &["POST /api/v1/api_token"],
    }
}

/// How many credentials were created upstream between two counter snapshots.
pub fn creates_between(before: &Value, after: &Value, upstream: Upstream) -> u64 {
    let made = requests_between(before, after, api_name(upstream));
    create_operations(upstream)
        .iter()
        .map(|op| made.get(*op).copied().unwrap_or_default())
        .sum()
}

/// A ClusterCredentialStore `name` for `upstream` serving exactly `allowed`, with
/// `spec.policy` = `policy`; waits until it is Ready (so the operator has seen the policy).
pub async fn cluster_store(world: &World, upstream: Upstream, name: &str, allowed: &[&str], policy: Value) {
    let mut spec = world
        .provider_block(upstream, &format!("{name}-admin"), &world.admin, true)
        .await;
    spec["allowedNamespaces"] = json!(allowed);
    spec["policy"] = policy;
    let store = json!({
        "apiVersion": "apikeys.dev/v1alpha1", "kind": "ClusterCredentialStore",
        "metadata": {"name": name}, "spec": spec,
    });
    fixtures::apply(&world.client, &world.admin, store).await;
    wait_for(&world.cluster_stores(), name, "store Ready", is_ready).await;
}

/// A CredentialStore `name` in `namespace` for `upstream` with `spec.policy` = `policy`;
/// waits until it is Ready.
pub async fn namespaced_store(world: &World, namespace: &str, upstream: Upstream, name: &str, policy: Value) {
    let mut spec = world
        .provider_block(upstream, &format!("{name}-admin"), namespace, false)
        .await;
    spec["policy"] = policy;
    let store = json!({
        "apiVersion": "apikeys.dev/v1alpha1", "kind": "CredentialStore",
        "metadata": {"name": name}, "spec": spec,
    });
    fixtures::apply(&world.client, namespace, store).await;
    let stores =
        kube::Api::<apikey_operator::api::CredentialStore>::namespaced(world.client.clone(), namespace);
    wait_for(&stores, name, "store Ready", is_ready).await;
}

/// `days` from now, to the second, as RFC 3339.
pub fn in_days(days: i64) -> String {
    Timestamp::from_second(Timestamp::now().as_second() + days * 86_400)
        .unwrap()
        .to_string()
}

/// Waits until key `name` converged, and returns its credential after checking the
/// upstream accepts it.
pub async fn converged(world: &World, namespace: &str, upstream: Upstream, name: &str) -> Cred {
    let object = world.ready(namespace, upstream, name).await;
    let status = tenancy::status_of(&object);
    assert!(status.upstream_id.is_some(), "{name}: Ready with an upstream id");
    let cred = world
        .cred(namespace, upstream, name)
        .await
        .unwrap_or_else(|| panic!("{name}: Ready, so its Secret exists"));
    assert!(
        cred.works(&world.credstore).await,
        "{name}: the delivered credential authenticates"
    );
    cred
}

/// Waits until key `name` is refused by the policy and returns the refusal; asserts both
/// `Ready` and `UpstreamSynced` say `PolicyViolation` with the same message.
pub async fn refusal(world: &World, namespace: &str, upstream: Upstream, name: &str) -> String {
    let object = world.blocked(namespace, upstream, name, POLICY_VIOLATION).await;
    tenancy::assert_blocked(&object, POLICY_VIOLATION);
    let message = tenancy::message(&object, "Ready");
    assert_eq!(
        message,
        tenancy::message(&object, "UpstreamSynced"),
        "{name}: Ready repeats the UpstreamSynced refusal"
    );
    println!("refusal {namespace}/{name}: {message}");
    message
}

/// [`refusal`] for a key never let through: nothing upstream, no Secret.
pub async fn refused_fresh(world: &World, namespace: &str, upstream: Upstream, name: &str) -> String {
    let message = refusal(world, namespace, upstream, name).await;
    let object = world.api(namespace, upstream).get(name).await.unwrap();
    let status = tenancy::status_of(&object);
    assert!(
        status.upstream_id.is_none() && status.credential_id.is_none() && status.pending.is_none(),
        "{name}: a refused key has nothing upstream: {status:?}"
    );
    assert!(
        world.cred(namespace, upstream, name).await.is_none(),
        "{name}: a refused key has no Secret"
    );
    message
}

/// Asserts a refusal by `store`'s rule `rule` names `field` and says `detail`, in the
/// operator's words.
#[track_caller]
pub fn assert_refusal(message: &str, store: &str, rule: &str, field: &str, detail: &str) {
    let head = format!("ClusterCredentialStore {store} policy rule {rule:?}: {field} ");
    assert!(
        message.starts_with(&head),
        "refusal names the store, rule and field ({head}): {message}"
    );
    assert!(message.contains(detail), "refusal says {detail:?}: {message}");
    let tail = format!("; change {field} or ask the store's owner to allow it");
    assert!(
        message.ends_with(&tail),
        "refusal says what to do ({tail}): {message}"
    );
}

/// Waits until ClusterCredentialStore `name` counts `want`.
pub async fn wait_usage(world: &World, name: &str, want: StoreUsage) {
    let check = |s: &apikey_operator::api::ClusterCredentialStore| {
        s.status.as_ref().and_then(|s| s.usage.as_ref()) == Some(&want)
    };
    wait_for(&world.cluster_stores(), name, &format!("usage {want:?}"), check).await;
}

/// A usage count of one kind.
pub fn usage(upstream: Upstream, keys: u32, violating: u32) -> StoreUsage {
    let mut usage = StoreUsage {
        api_tokens: 0,
        service_account_keys: 0,
        api_clients: 0,
        total: keys,
        violating,
    };
    match upstream {
        Upstream::Zenml | Upstream::Trend => usage.service_account_keys = keys,
        Upstream::Akamai => usage.api_clients = keys,
        Upstream::Prefactor => usage.api_tokens = keys,
    }
    usage
}

/// A request a rule refuses: key `name` in `namespace` with `spec` (merged into the kind's
/// smallest spec, see [`World::declare`]), refused by rule `rule` over `field`, saying
/// `detail`.
pub struct Case {
    pub namespace: String,
    pub name: &'static str,
    pub spec: Value,
    pub rule: &'static str,
    pub field: &'static str,
    pub detail: String,
}

/// Declares every case on ClusterCredentialStore `store`, waits for each refusal and checks
/// its message, and asserts the credential store saw no create request for any of them.
pub async fn refuse_all(world: &World, upstream: Upstream, store: &str, cases: &[Case]) {
    let before = fixtures::upstream_requests(&world.credstore).await;
    for case in cases {
        world
            .declare(
                &case.namespace,
                upstream,
                case.name,
                store,
                json!({}),
                case.spec.clone(),
            )
            .await;
    }
    for case in cases {
        let message = refused_fresh(world, &case.namespace, upstream, case.name).await;
        assert_refusal(&message, store, case.rule, case.field, &case.detail);
    }
    let after = fixtures::upstream_requests(&world.credstore).await;
    let seen = requests_between(&before, &after, api_name(upstream));
    println!(
        "{} requests while {} keys were refused: {seen:?}",
        api_name(upstream),
        cases.len()
    );
    assert_eq!(
        creates_between(&before, &after, upstream),
        0,
        "nothing is created upstream for a refused key: {seen:?}"
    );
}

/// `spec` with `patch`'s top-level fields set (a `null` removes the field).
pub fn with(spec: &Value, patch: Value) -> Value {
    let mut spec = spec.clone();
    let fields = spec.as_object_mut().unwrap();
    for (key, value) in patch.as_object().unwrap() {
        match value {
            Value::Null => fields.remove(key),
            value => fields.insert(key.clone(), value.clone()),
        };
    }
    spec
}
