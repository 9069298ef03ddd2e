//! ApiClient end to end against the Akamai IAM API of a credential store of the test's own:
//! requests EdgeGrid-signed with the Secret's values are accepted while the client is
//! unlocked and the credential active, and refused when locked or once retired.

use std::collections::BTreeMap;

use apikey_operator::api::{ApiClient, KeyStatus};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use apikey_operator_test_support::envtest;
use apikey_operator_test_support::fixtures::{
    self, akamai_admin, akamai_get, akamai_post, eventually, is_ready, merge, requests_between,
    upstream_requests, wait_for,
};
use apikey_operator_test_support::processes::{self, Credstore};

struct Setup {
    client: Client,
    namespace: String,
    clients: Api<ApiClient>,
    credstore: Credstore,
}

async fn setup(prefix: &str) -> Setup {
    processes::operator();
    let client = envtest::client().await;
    let namespace = envtest::namespace(&client, prefix).await;
    let credstore = processes::private_credstore(&namespace);
    fixtures::akamai_store(&client, &namespace, "akamai", &credstore).await;
    let stores: Api<apikey_operator::api::CredentialStore> = Api::namespaced(client.clone(), &namespace);
    wait_for(&stores, "akamai", "store Ready", is_ready).await;
    Setup {
        clients: Api::namespaced(client.clone(), &namespace),
        client,
        namespace,
        credstore,
    }
}

fn spec(extra: Value) -> Value {
    let mut spec = json!({
        "storeRef": {"name": "akamai"},
        "authorizedUsers": ["platform-bot"],
        "apiAccess": {"allAccessibleApis": true}, "purgeOptions": {"canPurgeByCacheTag": true, "canPurgeByCpcode": true, "cpcodeAccess": {"allCurrentAndNewCpcodes": true}},
        "groupAccess": {"cloneAuthorizedUserGroups": true},
        "clientDescription": "purges the CDN",
    });
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    spec
}

impl Setup {
    async fn create(&self, name: &str, spec: Value) -> ApiClient {
        fixtures::apply(
            &self.client,
            &self.namespace,
            json!({"apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiClient", "metadata": {"name": name}, "spec": spec}),
        )
        .await;
        wait_for(&self.clients, name, "Ready", is_ready).await
    }

    /// The Secret's `.edgerc` values (the four plain keys).
    async fn edgerc(&self, secret: &str) -> BTreeMap<String, String> {
        let secret = Api::<Secret>::namespaced(self.client.clone(), &self.namespace)
            .get(secret)
            .await
            .unwrap();
        secret
            .data
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
            .collect()
    }

    /// The client as the store admin sees it, credentials included.
    async fn upstream(&self, id: &str) -> (u16, Value) {
        akamai_get(
            &akamai_admin(&self.credstore),
            &format!("/api-clients/{id}?credentials=true"),
        )
        .await
    }

    async fn wait(&self, name: &str, what: &str, check: impl Fn(&KeyStatus) -> bool) -> ApiClient {
        wait_for(&self.clients, name, what, |c: &ApiClient| {
            is_ready(c) && c.status.as_ref().is_some_and(&check)
        })
        .await
    }
}

/// Whether a request signed with these values is accepted.
async fn signs(edgerc: &BTreeMap<String, String>) -> bool {
    akamai_get(edgerc, "/api-clients/self").await.0 == 200
}

fn status_of(object: &ApiClient) -> KeyStatus {
    object.status.clone().expect("status")
}

#[tokio::test]
async fn api_client_signs_while_unlocked_and_active_and_rotation_retires_the_old_credential() {
    let s = setup("apiclient").await;
    let before = upstream_requests(&s.credstore).await;
    let created = s
        .create(
            "cdn",
            spec(json!({
                "credential": {"description": "managed by apikey-operator", "expiresAt": "2027-06-01T00:00:00Z"},
                "rotation": {"retainPrevious": "15s"},
            })),
        )
        .await;
    let status = status_of(&created);
    let id = status.upstream_id.clone().unwrap();
    let first_credential: i64 = status.credential_id.clone().unwrap().parse().unwrap();
    // The description and expiry are set once the secret is stored.
    let credential_described = |v: &Value| {
        v["credentials"].as_array().is_some_and(|cs| {
            cs.iter().any(|c| {
                c["credentialId"] == first_credential
                    && c["description"] == "managed by apikey-operator"
                    && c["expiresOn"]
                        .as_str()
                        .unwrap_or_default()
                        .starts_with("2027-06-01T00:00:00")
            })
        })
    };
    eventually("the credential is described", true, || async {
        credential_described(&s.upstream(&id).await.1)
    })
    .await;
    let created_requests = upstream_requests(&s.credstore).await;
    println!(
        "akamai requests per create: {:?}",
        requests_between(&before, &created_requests, "akamai")
    );

    let first = s.edgerc("cdn").await;
    for key in ["host", "client_token", "client_secret", "access_token", ".edgerc"] {
        assert!(first.contains_key(key), "the Secret holds {key}");
    }
    assert!(first[".edgerc"].starts_with("[default]\n"));
    assert!(first[".edgerc"].contains(&format!("client_secret = {}\n", first["client_secret"])));
    assert!(
        signs(&first).await,
        "the Secret's credential signs accepted requests"
    );

    merge(&s.clients, "cdn", json!({"spec": {"locked": true}})).await;
    s.wait("cdn", "locked", |st| {
        st.upstream_state.as_deref() == Some("locked")
    })
    .await;
    assert!(!signs(&first).await, "a locked client is refused");

    // A settings change to a locked client: unlock → update → lock.
    merge(
        &s.clients,
        "cdn",
        json!({"spec": {"clientDescription": "purges the CDN, v2"}}),
    )
    .await;
    let generation = s.clients.get("cdn").await.unwrap().metadata.generation;
    s.wait("cdn", "settings applied", |st| {
        st.observed_generation == generation
    })
    .await;
    let (_, upstream) = s.upstream(&id).await;
    let description = upstream["clientDescription"].as_str().unwrap();
    assert!(
        description.starts_with("purges the CDN, v2 [apikeys.dev/owner="),
        "the user's description, then the owner mark: {description}"
    );
    assert_eq!(upstream["isLocked"], true, "the client ends locked");
    assert!(!signs(&first).await);

    merge(&s.clients, "cdn", json!({"spec": {"locked": false}})).await;
    s.wait("cdn", "unlocked", |st| {
        st.upstream_state.as_deref() == Some("unlocked")
    })
    .await;
    assert!(signs(&first).await, "unlocked again");

    let before = upstream_requests(&s.credstore).await;
    merge(
        &s.clients,
        "cdn",
        json!({"metadata": {"annotations": {"apikeys.dev/rotate": "r1"}}}),
    )
    .await;
    let rotated = s.wait("cdn", "rotated", |st| st.rotation_count == Some(1)).await;
    let after = upstream_requests(&s.credstore).await;
    println!(
        "akamai requests per rotation: {:?}",
        requests_between(&before, &after, "akamai")
    );
    let second = s.edgerc("cdn").await;
    assert_ne!(second["client_token"], first["client_token"]);
    assert_eq!(status_of(&rotated).upstream_id.as_deref(), Some(id.as_str()));
    assert!(signs(&second).await, "the new credential works");
    let second_credential: i64 = status_of(&rotated).credential_id.unwrap().parse().unwrap();
    eventually("the new credential is described", true, || async {
        s.upstream(&id).await.1["credentials"]
            .as_array()
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["credentialId"] == second_credential && c["description"] == "managed by apikey-operator"
                })
            })
    })
    .await;
    assert!(
        signs(&first).await,
        "the previous one works during retainPrevious"
    );
    eventually("the previous credential is retired", false, || signs(&first)).await;
    let (_, upstream) = s.upstream(&id).await;
    let previous = upstream["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["credentialId"] == first_credential)
        .map(|c| c["status"].clone());
    assert!(
        previous.is_none() || previous == Some(json!("DELETED")),
        "the previous credential is deleted: {previous:?}"
    );
    assert!(signs(&second).await);

    // No secret material in the operator's log, events or status.
    let log = std::fs::read_to_string(&processes::operator().log).unwrap();
    let events = Api::<Event>::namespaced(s.client.clone(), &s.namespace)
        .list(&ListParams::default())
        .await
        .unwrap();
    let events = serde_json::to_string(&events.items).unwrap();
    let statuses =
        serde_json::to_string(&s.clients.list(&ListParams::default()).await.unwrap().items).unwrap();
    let admin = akamai_admin(&s.credstore);
    fixtures::assert_no_leak(
        &[
            &first["client_secret"],
            &second["client_secret"],
            &admin["client_secret"],
        ],
        &log,
        &events,
        &statuses,
    );
}

#[tokio::test]
async fn api_client_deletion_honours_the_policy() {
    let s = setup("apiclient-delete").await;
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), &s.namespace);
    for policy in ["Delete", "Orphan"] {
        let name = format!("cdn-{}", policy.to_lowercase());
        let created = s.create(&name, spec(json!({"deletionPolicy": policy}))).await;
        let id = status_of(&created).upstream_id.unwrap();
        let edgerc = s.edgerc(&name).await;
        s.clients.delete(&name, &Default::default()).await.unwrap();
        eventually("the resource is gone", true, || async {
            s.clients.get_opt(&name).await.unwrap().is_none()
        })
        .await;
        let (code, _) = s.upstream(&id).await;
        if policy == "Delete" {
            assert_eq!(code, 404, "the client is deleted upstream");
            assert!(!signs(&edgerc).await);
            eventually("the Secret is deleted", true, || async {
                secrets.get_opt(&name).await.unwrap().is_none()
            })
            .await;
        } else {
            assert_eq!(code, 200, "the client is left upstream");
            assert!(signs(&edgerc).await, "its credential still works");
            let kept = secrets.get(&name).await.expect("the Secret is kept");
            assert!(kept.metadata.owner_references.unwrap_or_default().is_empty());
        }
    }
}

/// What a crash between creating a credential and storing its secret leaves behind: a
/// credential nobody knows the secret of, and the intent still in `status.pending`.
/// Recovery deactivates and deletes it and issues another one.
#[tokio::test]
async fn a_credential_whose_secret_was_lost_in_a_crash_is_removed_and_replaced() {
    let s = setup("apiclient-recover").await;
    let created = s.create("cdn", spec(json!({}))).await;
    let status = status_of(&created);
    let id = status.upstream_id.clone().unwrap();
    let current: i64 = status.credential_id.clone().unwrap().parse().unwrap();

    // The state a crash right after `create_credential` leaves: the intent recorded with
    // the credentials known before, and one more credential upstream.
    let (code, lost) = akamai_post(
        &akamai_admin(&s.credstore),
        &format!("/api-clients/{id}/credentials"),
    )
    .await;
    assert_eq!(code, 201, "{lost}");
    let lost_id = lost["credentialId"].as_i64().unwrap();
    let pending = json!({
        "operation": "Rotate",
        "idempotencyKey": id,
        "startedAt": "2026-01-01T00:00:00Z",
        "trigger": "annotation",
        "request": serde_json::to_string(&json!({"known": [current], "replaces": current})).unwrap(),
    });
    // Written as the operator writes its status (server-side apply, its field manager),
    // proven with its key: the state is the operator's own, only interrupted.
    let mut forged = status.clone();
    forged.pending = Some(serde_json::from_value(pending).unwrap());
    let key = fixtures::status_key(&s.client).await;
    forged.owner_proof = key.sign(
        &kube::ResourceExt::uid(&created).unwrap(),
        &created.spec.store_ref,
        &forged,
    );
    let written = serde_json::to_value(&forged).unwrap();
    let apply = json!({
        "apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiClient",
        "metadata": {"name": "cdn"}, "status": written,
    });
    s.clients
        .patch_status(
            "cdn",
            &kube::api::PatchParams::apply("apikey-operator").force(),
            &kube::api::Patch::Apply(apply),
        )
        .await
        .unwrap();

    let recovered = s
        .wait("cdn", "recovered", |st| {
            st.pending.is_none() && st.rotation_count == Some(1)
        })
        .await;
    let status = status_of(&recovered);
    let new_id = status.credential_id.clone().unwrap();
    assert_ne!(new_id, lost_id.to_string(), "the lost credential is not reused");
    assert_ne!(new_id, current.to_string());
    let (_, upstream) = s.upstream(&id).await;
    let lost_status = upstream["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["credentialId"] == lost_id)
        .map(|c| c["status"].clone());
    assert!(
        lost_status.is_none() || lost_status == Some(json!("DELETED")),
        "the credential with the lost secret is removed: {lost_status:?}"
    );
    assert!(signs(&s.edgerc("cdn").await).await, "the new credential works");
}
