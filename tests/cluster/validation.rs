//! Bad input is refused by the API server itself (OpenAPI schema + CEL), with a message
//! naming the field. Valid changes next to each rule are accepted, so a rule that refuses
//! everything fails these tests too.

use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use apikey_operator_test_support::envtest;

const V: &str = "apikeys.dev/v1alpha1";

fn token(spec: Value) -> Value {
    json!({"apiVersion": V, "kind": "ApiToken", "metadata": {"name": "t"}, "spec": spec})
}
fn key(spec: Value) -> Value {
    json!({"apiVersion": V, "kind": "ServiceAccountKey", "metadata": {"name": "k"}, "spec": spec})
}
fn client_spec(extra: Value) -> Value {
    let mut spec = json!({
        "storeRef": {"name": "akamai"},
        "authorizedUsers": ["bot"],
        "apiAccess": {"allAccessibleApis": true}, "purgeOptions": {"canPurgeByCacheTag": true, "canPurgeByCpcode": true, "cpcodeAccess": {"allCurrentAndNewCpcodes": true}},
        "groupAccess": {"cloneAuthorizedUserGroups": true},
    });
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"apiVersion": V, "kind": "ApiClient", "metadata": {"name": "c"}, "spec": spec})
}
fn store(spec: Value) -> Value {
    json!({"apiVersion": V, "kind": "CredentialStore", "metadata": {"name": "s"}, "spec": spec})
}
fn cluster_store(spec: Value) -> Value {
    json!({"apiVersion": V, "kind": "ClusterCredentialStore", "metadata": {"name": "invalid-ccs"}, "spec": spec})
}
fn prefactor(url: &str) -> Value {
    json!({"url": url, "credentialsSecretRef": {"name": "admin"}})
}
fn account_token(extra: Value) -> Value {
    let mut spec = json!({"storeRef": {"name": "prefactor"}, "scope": "account"});
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    token(spec)
}

/// (what is wrong, manifest, text the API server's message must contain)
fn invalid_manifests() -> Vec<(&'static str, Value, &'static str)> {
    let env_id = "013xrzp12g3nqk8ngskn1wtxgka5b0nf";
    vec![
        (
            "store without provider",
            store(json!({})),
            "exactly one provider block",
        ),
        (
            "store with two providers",
            store(
                json!({"prefactor": prefactor("https://p.example"), "zenml": prefactor("https://z.example")}),
            ),
            "exactly one provider block",
        ),
        (
            "namespaced store naming another namespace",
            store(
                json!({"prefactor": {"url": "https://p.example", "credentialsSecretRef": {"name": "a", "namespace": "other"}}}),
            ),
            "credentialsSecretRef.namespace must be unset in a CredentialStore",
        ),
        (
            "store URL without scheme",
            store(json!({"prefactor": prefactor("p.example")})),
            "spec.prefactor.url",
        ),
        (
            "rate limit of zero",
            store(
                json!({"prefactor": prefactor("https://p.example"), "rateLimit": {"requestsPerSecond": 0}}),
            ),
            "spec.rateLimit.requestsPerSecond",
        ),
        (
            "cluster store secret without namespace",
            cluster_store(json!({"prefactor": prefactor("https://p.example"), "allowedNamespaces": ["a"]})),
            "credentialsSecretRef.namespace is required in a ClusterCredentialStore",
        ),
        (
            "cluster store serving nobody",
            cluster_store(
                json!({"zenml": {"url": "https://z.example", "credentialsSecretRef": {"name": "a", "namespace": "ops"}}}),
            ),
            "allowedNamespaces or namespaceSelector",
        ),
        (
            "cluster store allowing a malformed namespace",
            cluster_store(
                json!({"zenml": {"url": "https://z.example", "credentialsSecretRef": {"name": "a", "namespace": "ops"}}, "allowedNamespaces": ["Team_A"]}),
            ),
            "spec.allowedNamespaces[0]",
        ),
        (
            "token without storeRef",
            token(json!({"scope": "account"})),
            "spec.storeRef: Required value",
        ),
        (
            "environment scope without environmentId",
            token(json!({"storeRef": {"name": "p"}, "scope": "environment"})),
            "spec.environmentId is required when spec.scope is 'environment'",
        ),
        (
            "account scope with environmentId",
            account_token(json!({"environmentId": env_id})),
            "must be unset when it is 'account'",
        ),
        (
            "unknown scope",
            token(json!({"storeRef": {"name": "p"}, "scope": "organisation"})),
            "spec.scope: Unsupported value",
        ),
        (
            "unknown state",
            account_token(json!({"state": "Paused"})),
            "spec.state: Unsupported value",
        ),
        (
            "malformed environmentId",
            token(json!({"storeRef": {"name": "p"}, "scope": "environment", "environmentId": "ENV-1"})),
            "spec.environmentId",
        ),
        (
            "expiresAt not a timestamp",
            account_token(json!({"expiresAt": "next tuesday"})),
            "spec.expiresAt",
        ),
        (
            "interval not a duration",
            account_token(json!({"rotation": {"interval": "30 days"}})),
            "spec.rotation.interval",
        ),
        (
            "interval below one minute",
            account_token(json!({"rotation": {"interval": "30s"}})),
            "rotation.interval must be at least 1m",
        ),
        (
            "retainPrevious above a year",
            account_token(json!({"rotation": {"retainPrevious": "9000h"}})),
            "rotation.retainPrevious must be at most 8760h",
        ),
        (
            "retireWhenUnusedFor above 30 days",
            account_token(json!({"rotation": {"retireWhenUnusedFor": "721h"}})),
            "rotation.retireWhenUnusedFor must be at most 720h",
        ),
        (
            "maxRetain below retainPrevious",
            account_token(json!({"rotation": {"retainPrevious": "2h", "maxRetain": "90m"}})),
            "rotation.maxRetain must be at least rotation.retainPrevious",
        ),
        (
            "retireWhenUnusedFor on an Akamai client",
            client_spec(json!({"rotation": {"retireWhenUnusedFor": "10m"}})),
            "Akamai reports no use of a client credential",
        ),
        (
            "requestedAt too long",
            account_token(json!({"rotation": {"requestedAt": "x".repeat(65)}})),
            "spec.rotation.requestedAt",
        ),
        (
            "unknown store kind",
            token(json!({"storeRef": {"name": "p", "kind": "Vault"}, "scope": "account"})),
            "spec.storeRef.kind: Unsupported value",
        ),
        (
            "renaming a key the kind does not write",
            account_token(json!({"secret": {"keys": {"password": "PW"}}})),
            "spec.secret.keys can only rename 'token'",
        ),
        (
            "Secret name not a DNS name",
            account_token(json!({"secret": {"name": "Billing_Token"}})),
            "spec.secret.name",
        ),
        (
            "unknown deletion policy",
            account_token(json!({"deletionPolicy": "Keep"})),
            "spec.deletionPolicy: Unsupported value",
        ),
        (
            "rollout of a Pod",
            account_token(json!({"rolloutRestart": [{"kind": "Pod", "name": "p"}]})),
            "spec.rolloutRestart[0].kind: Unsupported value",
        ),
        (
            "ZenML and Trend fields together",
            key(json!({"storeRef": {"name": "s"}, "serviceAccount": "sa", "roleID": 1})),
            "spec.serviceAccount (ZenML) and spec.roleID (Trend Micro) cannot both be set",
        ),
        (
            "ZenML key name above 255 characters",
            key(json!({"storeRef": {"name": "s"}, "serviceAccount": "sa", "keyName": "k".repeat(256)})),
            "spec.keyName: Too long",
        ),
        (
            "a policy rule that names no namespaces",
            store(json!({"prefactor": prefactor("https://p.example"), "policy": {"rules": [{"name": "r"}]}})),
            "a rule must name namespaces or set a namespaceSelector",
        ),
        (
            "a policy lifetime that is not a duration",
            store(json!({"prefactor": prefactor("https://p.example"),
                         "policy": {"rules": [{"name": "r", "namespaces": ["*"], "maxLifetime": "30 days"}]}})),
            "spec.policy.rules[0].maxLifetime",
        ),
        (
            "a policy network that is not a CIDR",
            store(json!({"prefactor": prefactor("https://p.example"),
                         "policy": {"rules": [{"name": "r", "namespaces": ["*"], "akamai": {"ipAclWithin": ["10.0.0.0"]}}]}})),
            "ipAclWithin entries must be CIDR blocks such as 10.0.0.0/8",
        ),
        (
            "a description that forges an owner mark",
            key(
                json!({"storeRef": {"name": "s"}, "serviceAccount": "sa", "description": "x [apikeys.dev/owner=0123]"}),
            ),
            "spec.description: Invalid value: \"string\": must not contain 'apikeys.dev/owner='",
        ),
        (
            "a client description that forges an owner mark",
            client_spec(json!({"clientDescription": "apikeys.dev/owner=ffff"})),
            "spec.clientDescription: Invalid value: \"string\": must not contain 'apikeys.dev/owner='",
        ),
        (
            "unknown Trend locale",
            key(json!({"storeRef": {"name": "s"}, "roleID": 1, "locale": "fr-FR"})),
            "spec.locale: Unsupported value",
        ),
        (
            "Trend role id zero",
            key(json!({"storeRef": {"name": "s"}, "roleID": 0})),
            "spec.roleID",
        ),
        (
            "active not a boolean",
            key(json!({"storeRef": {"name": "s"}, "roleID": 1, "active": "yes"})),
            "spec.active",
        ),
        (
            "no authorized user",
            client_spec(json!({"authorizedUsers": []})),
            "spec.authorizedUsers",
        ),
        (
            "two authorized users",
            client_spec(json!({"authorizedUsers": ["a", "b"]})),
            "spec.authorizedUsers",
        ),
        (
            "all APIs and a list",
            client_spec(
                json!({"apiAccess": {"allAccessibleApis": true, "apis": [{"apiId": 1, "accessLevel": "READ-ONLY"}]}}),
            ),
            "spec.apiAccess must set either allAccessibleApis: true or a non-empty apis list",
        ),
        (
            "unknown access level",
            client_spec(json!({"apiAccess": {"apis": [{"apiId": 1, "accessLevel": "ADMIN"}]}})),
            "spec.apiAccess.apis[0].accessLevel: Unsupported value",
        ),
        (
            "neither groups nor clone",
            client_spec(json!({"groupAccess": {}})),
            "spec.groupAccess must set either",
        ),
        (
            "CIDR that is not one",
            client_spec(json!({"ipAcl": {"enable": true, "cidr": ["10.0.0.0/33"]}})),
            "spec.ipAcl.cidr entries must be CIDR blocks",
        ),
        (
            "service-account client type",
            client_spec(json!({"clientType": "SERVICE_ACCOUNT"})),
            "spec.clientType: Unsupported value",
        ),
        (
            "two keys renamed to one name",
            client_spec(json!({"secret": {"keys": {"client_token": "EG", "client_secret": "EG"}}})),
            "two keys cannot be renamed to the same target name",
        ),
        (
            "malformed notification email",
            client_spec(json!({"notificationEmails": ["not-an-email"]})),
            "spec.notificationEmails[0]",
        ),
    ]
}

#[tokio::test]
async fn invalid_manifests_are_refused_with_a_message_naming_the_field() {
    let client = envtest::client().await;
    let namespace = envtest::namespace(&client, "invalid").await;
    let cases = invalid_manifests();
    assert!(cases.len() >= 20);
    let mut failures = Vec::new();
    for (what, manifest, expected) in cases {
        let object = serde_json::from_value(manifest).unwrap();
        match envtest::apply(&client, &object, &namespace).await {
            Ok(_) => failures.push(format!("{what}: accepted")),
            Err(kube::Error::Api(status)) if status.message.contains(expected) => {}
            Err(error) => failures.push(format!("{what}: message lacks {expected:?}: {error}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} manifests not refused as expected:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// (what is wrong, a valid manifest, a merge patch that must be refused, the message)
fn invalid_changes() -> Vec<(&'static str, Value, Value, &'static str)> {
    let env_id = "013xrzp12g3nqk8ngskn1wtxgka5b0nf";
    vec![
        (
            "un-revoking a token",
            account_token(json!({"state": "Revoked"})),
            json!({"spec": {"state": "Active"}}),
            "Revoked is terminal",
        ),
        (
            "un-revoking a token by removing its state (unset means Active)",
            account_token(json!({"state": "Revoked"})),
            json!({"spec": {"state": null}}),
            "Revoked is terminal",
        ),
        (
            "changing a token's scope",
            account_token(json!({})),
            json!({"spec": {"scope": "environment", "environmentId": env_id}}),
            "spec.scope is immutable",
        ),
        (
            "moving a key to another store",
            account_token(json!({})),
            json!({"spec": {"storeRef": {"name": "other-prefactor"}}}),
            "storeRef.name is immutable",
        ),
        (
            "changing the store kind",
            account_token(json!({})),
            json!({"spec": {"storeRef": {"kind": "ClusterCredentialStore"}}}),
            "storeRef.kind is immutable",
        ),
        (
            "dropping a token's account",
            account_token(json!({"accountId": env_id})),
            json!({"spec": {"accountId": null}}),
            "spec.accountId cannot be added or removed",
        ),
        (
            "moving a key to another service account",
            key(json!({"storeRef": {"name": "s"}, "serviceAccount": "a"})),
            json!({"spec": {"serviceAccount": "b"}}),
            "spec.serviceAccount is immutable",
        ),
        (
            "renaming a key upstream",
            key(json!({"storeRef": {"name": "s"}, "serviceAccount": "a", "keyName": "one"})),
            json!({"spec": {"keyName": "two"}}),
            "spec.keyName is immutable",
        ),
        (
            "changing the client type",
            client_spec(json!({})),
            json!({"spec": {"clientType": "USER_CLIENT"}}),
            "spec.clientType is immutable",
        ),
    ]
}

#[tokio::test]
async fn invalid_changes_are_refused_and_valid_ones_accepted() {
    let client = envtest::client().await;
    let namespace = envtest::namespace(&client, "changes").await;
    let mut failures = Vec::new();
    for (index, (what, manifest, patch, expected)) in invalid_changes().into_iter().enumerate() {
        let mut object: kube::api::DynamicObject = serde_json::from_value(manifest).unwrap();
        object.metadata.name = Some(format!("change-{index}"));
        envtest::apply(&client, &object, &namespace)
            .await
            .unwrap_or_else(|e| panic!("{what}: the valid manifest was refused: {e}"));
        let api = envtest::api_for(&client, &object, &namespace).await;
        match api
            .patch(
                object.metadata.name.as_deref().unwrap(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => failures.push(format!("{what}: accepted")),
            Err(kube::Error::Api(status)) if status.message.contains(expected) => {}
            Err(error) => failures.push(format!("{what}: message lacks {expected:?}: {error}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} changes not refused as expected:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // The lifecycle the rules must allow: Active → Suspended → Active → Revoked, and the
    // mutable fields next to immutable ones.
    let object: kube::api::DynamicObject = serde_json::from_value(account_token(json!({}))).unwrap();
    envtest::apply(&client, &object, &namespace).await.unwrap();
    let api = envtest::api_for(&client, &object, &namespace).await;
    for patch in [
        json!({"spec": {"state": "Suspended"}}),
        json!({"spec": {"state": "Active", "rotation": {"interval": "24h", "requestedAt": "1"}}}),
        json!({"spec": {"secret": {"name": "renamed"}}}),
        json!({"spec": {"state": "Revoked"}}),
    ] {
        api.patch("t", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("{patch} was refused: {e}"));
    }
}
