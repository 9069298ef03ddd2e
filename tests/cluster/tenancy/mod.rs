//! Tenancy (DESIGN §6) attacked from a second namespace: name collisions, upstream objects
//! made by hand, default names that meet, status records copied from another resource,
//! and adoption. Every test has a credential store of its own and ClusterCredentialStores
//! that serve exactly its namespaces; after each attack the victim's credential, read from
//! its Secret beforehand, is used against the upstream again.

mod adoption;
mod default_names;
mod forged_status;
mod name_taken;
mod upstream;

pub use upstream::Cred;

use std::collections::BTreeMap;

use apikey_operator::api::{ApiClient, ApiToken, ClusterCredentialStore, KeyStatus, ServiceAccountKey};
use apikey_operator::controller::ownership::ClusterIdentity;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use apikey_operator_test_support::envtest;
use apikey_operator_test_support::fixtures::{
    self, condition, eventually, is_ready, merge, not_ready_because, wait_for,
};
use apikey_operator_test_support::processes::{self, Credstore};

/// The service account the credential store bootstraps for the operator's keys.
const SERVICE_ACCOUNT: &str = "apikey-operator";
const ADOPT: &str = "apikeys.dev/adopt";
const PAUSED: &str = "apikeys.dev/paused";
/// The status a forged record is written with: the operator's own field manager, so the
/// operator's next status write replaces it as it would its own.
const OPERATOR_MANAGER: &str = "apikey-operator";

/// An upstream API and the key resource kind that issues credentials in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upstream {
    Zenml,
    Trend,
    Akamai,
    Prefactor,
}

impl Upstream {
    fn short(self) -> &'static str {
        match self {
            Upstream::Zenml => "zenml",
            Upstream::Trend => "trend",
            Upstream::Akamai => "akamai",
            Upstream::Prefactor => "prefactor",
        }
    }

    fn resource(self) -> ApiResource {
        match self {
            Upstream::Zenml | Upstream::Trend => ApiResource::erase::<ServiceAccountKey>(&()),
            Upstream::Akamai => ApiResource::erase::<ApiClient>(&()),
            Upstream::Prefactor => ApiResource::erase::<ApiToken>(&()),
        }
    }

    /// The spec field naming the upstream object, where the kind has one.
    pub fn name_field(self) -> &'static str {
        match self {
            Upstream::Zenml | Upstream::Trend => "keyName",
            Upstream::Akamai => "clientName",
            Upstream::Prefactor => unreachable!("Prefactor tokens have no name"),
        }
    }

    /// The smallest spec the kind accepts on this upstream.
    fn base_spec(self) -> Value {
        match self {
            Upstream::Zenml => json!({"serviceAccount": SERVICE_ACCOUNT}),
            Upstream::Trend => json!({"roleID": 1}),
            Upstream::Akamai => json!({
                "authorizedUsers": ["platform-bot"],
                "apiAccess": {"allAccessibleApis": true}, "purgeOptions": {"canPurgeByCacheTag": true, "canPurgeByCpcode": true, "cpcodeAccess": {"allCurrentAndNewCpcodes": true}},
                "groupAccess": {"cloneAuthorizedUserGroups": true},
            }),
            Upstream::Prefactor => json!({"scope": "account"}),
        }
    }
}

/// One test's world: its own credential store, a namespace for the stores' admin Secrets,
/// and the identity the shared operator derives owner marks and default names from.
pub struct World {
    pub client: Client,
    pub credstore: Credstore,
    /// Holds the admin Secrets of the test's ClusterCredentialStores.
    pub admin: String,
    pub cluster: ClusterIdentity,
}

impl World {
    pub async fn new(prefix: &str) -> Self {
        processes::operator();
        let client = envtest::client().await;
        let admin = envtest::namespace(&client, prefix).await;
        let credstore = processes::private_credstore(&admin);
        // The shared operator runs without --cluster-id: the kube-system UID.
        let configured = std::env::var("APIKEY_OPERATOR_CLUSTER_ID").ok();
        let cluster = ClusterIdentity::resolve(&client, configured).await.unwrap();
        World {
            client,
            credstore,
            admin,
            cluster,
        }
    }

    pub async fn namespace(&self, prefix: &str) -> String {
        envtest::namespace(&self.client, prefix).await
    }

    /// A ClusterCredentialStore for `upstream` serving exactly `allowed` (named after the
    /// first of them, which is unique), letting `adoption` adopt when given; waits Ready.
    pub async fn cluster_store(
        &self,
        upstream: Upstream,
        allowed: &[&str],
        adoption: Option<&[&str]>,
    ) -> String {
        let name = format!("{}-{}", upstream.short(), allowed[0]);
        let mut spec = self
            .provider_block(upstream, &format!("{name}-admin"), &self.admin, true)
            .await;
        spec["allowedNamespaces"] = json!(allowed);
        if let Some(namespaces) = adoption {
            spec["adoption"] = json!({"namespaces": namespaces});
        }
        let store = json!({
            "apiVersion": "apikeys.dev/v1alpha1", "kind": "ClusterCredentialStore",
            "metadata": {"name": name}, "spec": spec,
        });
        fixtures::apply(&self.client, &self.admin, store).await;
        wait_for(&self.cluster_stores(), &name, "store Ready", is_ready).await;
        name
    }

    /// The provider block of a store on the test's credential store, with its admin Secret
    /// made in `secret_namespace` (a ClusterCredentialStore's reference names it, `cluster`;
    /// a CredentialStore's Secret is in its own namespace).
    pub async fn provider_block(
        &self,
        upstream: Upstream,
        secret: &str,
        secret_namespace: &str,
        cluster: bool,
    ) -> Value {
        let cs = &self.credstore;
        let (provider, url, data) = match upstream {
            Upstream::Zenml => (
                "zenml",
                cs.url.clone(),
                json!({"apiKey": cs.bootstrap_file("zenml.api-key")}),
            ),
            Upstream::Trend => (
                "trendMicro",
                format!("{}/api", cs.url),
                json!({"apiSecretKey": cs.bootstrap_file("trendmicro.secret-key")}),
            ),
            Upstream::Akamai => (
                "akamai",
                cs.url.clone(),
                serde_json::to_value(fixtures::akamai_admin(cs)).unwrap(),
            ),
            Upstream::Prefactor => ("prefactor", cs.url.clone(), json!({"token": cs.prefactor_token})),
        };
        fixtures::put_secret(&self.client, secret_namespace, secret, data).await;
        let reference = match cluster {
            true => json!({"name": secret, "namespace": secret_namespace}),
            false => json!({"name": secret}),
        };
        json!({provider: {"url": url, "credentialsSecretRef": reference}})
    }

    pub fn cluster_stores(&self) -> Api<ClusterCredentialStore> {
        Api::all(self.client.clone())
    }

    /// The key resources of `upstream`'s kind in `namespace`.
    pub fn api(&self, namespace: &str, upstream: Upstream) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &upstream.resource())
    }

    /// Applies a key resource of `upstream`'s kind using ClusterCredentialStore `store`:
    /// the kind's smallest spec plus `extra`, with `annotations`.
    pub async fn declare(
        &self,
        namespace: &str,
        upstream: Upstream,
        name: &str,
        store: &str,
        annotations: Value,
        extra: Value,
    ) {
        let mut spec = upstream.base_spec();
        spec["storeRef"] = json!({"kind": "ClusterCredentialStore", "name": store});
        let spec_map = spec.as_object_mut().unwrap();
        spec_map.extend(extra.as_object().unwrap().clone());
        let resource = upstream.resource();
        let manifest = json!({
            "apiVersion": resource.api_version, "kind": resource.kind,
            "metadata": {"name": name, "annotations": annotations}, "spec": spec,
        });
        fixtures::apply(&self.client, namespace, manifest).await;
    }

    pub async fn ready(&self, namespace: &str, upstream: Upstream, name: &str) -> DynamicObject {
        wait_for(&self.api(namespace, upstream), name, "Ready", is_ready).await
    }

    /// Waits for `Ready=False` with `reason`.
    pub async fn blocked(
        &self,
        namespace: &str,
        upstream: Upstream,
        name: &str,
        reason: &str,
    ) -> DynamicObject {
        let check = |o: &DynamicObject| not_ready_because(o, reason);
        wait_for(&self.api(namespace, upstream), name, reason, check).await
    }

    /// Deletes the resource and waits until its finalizer has run and it is gone.
    pub async fn delete(&self, namespace: &str, upstream: Upstream, name: &str) {
        let api = self.api(namespace, upstream);
        api.delete(name, &Default::default()).await.unwrap();
        eventually("the resource is gone", true, || async {
            api.get_opt(name).await.unwrap().is_none()
        })
        .await;
    }

    /// Removes `apikeys.dev/paused`.
    pub async fn pause(&self, namespace: &str, upstream: Upstream, name: &str) {
        let patch = json!({"metadata": {"annotations": {PAUSED: "true"}}});
        merge(&self.api(namespace, upstream), name, patch).await;
    }

    pub async fn unpause(&self, namespace: &str, upstream: Upstream, name: &str) {
        let patch = json!({"metadata": {"annotations": {PAUSED: null}}});
        merge(&self.api(namespace, upstream), name, patch).await;
    }

    /// Writes `status` into a resource's status subresource, as the operator writes its own.
    pub async fn forge_status(&self, namespace: &str, upstream: Upstream, name: &str, status: Value) {
        let resource = upstream.resource();
        let patch = json!({
            "apiVersion": resource.api_version, "kind": resource.kind,
            "metadata": {"name": name}, "status": status,
        });
        let params = PatchParams::apply(OPERATOR_MANAGER).force();
        self.api(namespace, upstream)
            .patch_status(name, &params, &Patch::Apply(patch))
            .await
            .unwrap_or_else(|e| panic!("forging the status of {namespace}/{name}: {e}"));
    }

    /// The credential in Secret `secret`, or `None` when there is no such Secret.
    pub async fn cred(&self, namespace: &str, upstream: Upstream, secret: &str) -> Option<Cred> {
        let secret = Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get_opt(secret)
            .await
            .unwrap()?;
        let data: BTreeMap<String, String> = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
            .collect();
        let value = |key: &str| {
            data.get(key)
                .cloned()
                .unwrap_or_else(|| panic!("the Secret lacks {key}"))
        };
        Some(match upstream {
            Upstream::Zenml => Cred::Zenml(value("apiKey")),
            Upstream::Trend => Cred::Trend(value("apiKey")),
            Upstream::Akamai => Cred::Akamai(data),
            Upstream::Prefactor => Cred::Prefactor(value("token")),
        })
    }

    /// The owner mark of a resource, as the operator writes it into descriptions.
    pub fn mark(&self, object: &DynamicObject) -> String {
        format!(
            "[apikeys.dev/owner={}]",
            self.cluster.mark(&object.uid().unwrap())
        )
    }

    /// Asserts no 12-character window of `secrets` (nor of the credential store's admin
    /// credentials) is in the shared operator's log, the events of `namespaces`, or the
    /// statuses of their key resources and of the cluster's stores.
    pub async fn assert_no_leak(&self, namespaces: &[&str], secrets: &[Cred]) {
        let cs = &self.credstore;
        let mut all: Vec<String> = secrets.iter().map(Cred::secret).collect();
        all.extend([
            cs.bootstrap_file("zenml.api-key"),
            cs.bootstrap_file("trendmicro.secret-key"),
            fixtures::akamai_admin(cs)["client_secret"].clone(),
            cs.prefactor_token.clone(),
        ]);
        let log = std::fs::read_to_string(&processes::operator().log).unwrap();
        let mut events = Vec::new();
        let mut statuses = Vec::new();
        for namespace in namespaces {
            let listed = Api::<Event>::namespaced(self.client.clone(), namespace)
                .list(&ListParams::default())
                .await
                .unwrap();
            events.extend(listed.items.into_iter().map(|e| serde_json::to_value(e).unwrap()));
            for upstream in [Upstream::Zenml, Upstream::Akamai, Upstream::Prefactor] {
                let listed = self
                    .api(namespace, upstream)
                    .list(&ListParams::default())
                    .await
                    .unwrap();
                statuses.extend(listed.items.into_iter().map(|o| o.data["status"].clone()));
            }
        }
        let stores = self.cluster_stores().list(&ListParams::default()).await.unwrap();
        statuses.extend(
            stores
                .items
                .into_iter()
                .map(|s| serde_json::to_value(s.status).unwrap()),
        );
        println!(
            "leak scan: {} secrets against {} events and {} statuses",
            all.len(),
            events.len(),
            statuses.len()
        );
        fixtures::assert_no_leak(
            &all,
            &log,
            &serde_json::to_string(&events).unwrap(),
            &serde_json::to_string(&statuses).unwrap(),
        );
    }
}

/// A key resource's status.
pub fn status_of(object: &DynamicObject) -> KeyStatus {
    serde_json::from_value(object.data["status"].clone()).expect("a key status")
}

/// The message of condition `type_`.
pub fn message(object: &DynamicObject, type_: &str) -> String {
    object.data["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Asserts `Ready` and `UpstreamSynced` are False with `reason`.
pub fn assert_blocked(object: &DynamicObject, reason: &str) {
    let expected = Some(("False".to_string(), reason.to_string()));
    assert_eq!(condition(object, "Ready"), expected, "Ready");
    assert_eq!(condition(object, "UpstreamSynced"), expected, "UpstreamSynced");
}

/// A fresh nonce, as the operator records in `status.pending.idempotencyKey`.
pub fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Counts the victim credentials checked before and after the attacks (printed per test).
#[derive(Default)]
pub struct Tally {
    checked: usize,
}

impl Tally {
    /// Asserts `cred` still authenticates, counting the check.
    pub async fn still_works(&mut self, world: &World, cred: &Cred, what: &str) {
        assert!(
            cred.works(&world.credstore).await,
            "{what}: the victim's credential no longer works"
        );
        self.checked += 1;
    }

    pub fn report(&self, test: &str) {
        println!("{test}: {} victim credential checks, all accepted", self.checked);
    }
}
