//! The kinds under test, one small struct each: its store, its manifest, what the
//! credential store holds for it, and whether the key in its Secret authenticates.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use apikey_operator::api::{ApiClient, ApiToken, ServiceAccountKey};
use jiff::Timestamp;
use k8s_openapi::NamespaceResourceScope;
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use apikey_operator_test_support::fixtures;
use apikey_operator_test_support::processes::Credstore;
use apikey_operator_test_support::zenml_server::{self, ADMIN_PASSWORD, ADMIN_USER};

/// What the credential store holds for a kind, apart from its own admin principal.
#[derive(Debug, Default)]
pub struct Upstream {
    /// Every upstream object (token, key, client), whatever its state.
    pub objects: Vec<String>,
    /// The credentials that would authenticate now: active and not expired.
    pub usable: Vec<String>,
}

pub trait Kind: Sync {
    type Resource: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug
        + Send
        + Sync
        + 'static;

    /// Creates the store named `store` (and its admin Secret) pointing at `credstore`.
    async fn store(&self, client: &Client, namespace: &str, credstore: &Credstore);
    /// The spec of the resource under test in `namespace`; its `storeRef` names the store
    /// above.
    fn spec(&self, namespace: &str) -> Value;
    async fn upstream(&self, credstore: &Credstore) -> Upstream;
    /// Whether the credential in a Secret's `data` authenticates against `credstore`.
    async fn authenticates(&self, credstore: &Credstore, data: &BTreeMap<String, String>) -> bool;
}

fn bootstrap_id(credstore: &Credstore, api: &str, field: &str) -> Value {
    let ids: Value = serde_json::from_str(&credstore.bootstrap_file("bootstrap.json")).unwrap();
    ids[api][field].clone()
}

fn is_future(at: &Value) -> bool {
    match at.as_str() {
        Some(at) => at.parse::<Timestamp>().unwrap() > Timestamp::now(),
        None => true,
    }
}

async fn get_json(request: reqwest::RequestBuilder) -> Value {
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

/// What a ZenML key listing (emulated or real) holds: every key, and the active ones.
fn zenml_upstream(keys: &[Value]) -> Upstream {
    let id = |k: &Value| k["id"].as_str().unwrap().to_string();
    Upstream {
        objects: keys.iter().map(id).collect(),
        usable: keys
            .iter()
            .filter(|k| k["body"]["active"] == true)
            .map(id)
            .collect(),
    }
}

/// ApiToken on Prefactor: tokens are listed by the store admin; retired ones are deleted.
pub struct Prefactor;

impl Kind for Prefactor {
    type Resource = ApiToken;

    async fn store(&self, client: &Client, namespace: &str, credstore: &Credstore) {
        fixtures::prefactor_store(client, namespace, "store", credstore).await;
    }

    fn spec(&self, _namespace: &str) -> Value {
        json!({"storeRef": {"name": "store"}, "scope": "account", "rotation": {"retainPrevious": "0s"}})
    }

    async fn upstream(&self, credstore: &Credstore) -> Upstream {
        let listed = get_json(
            reqwest::Client::new()
                .get(format!("{}/api/v1/api_token", credstore.url))
                .bearer_auth(&credstore.prefactor_token),
        )
        .await;
        let tokens = listed["summaries"].as_array().unwrap();
        let id = |t: &Value| t["id"].as_str().unwrap().to_string();
        Upstream {
            objects: tokens.iter().map(id).collect(),
            usable: tokens
                .iter()
                .filter(|t| t["status"] == "active" && is_future(&t["expires_at"]))
                .map(id)
                .collect(),
        }
    }

    async fn authenticates(&self, credstore: &Credstore, data: &BTreeMap<String, String>) -> bool {
        fixtures::ping(credstore, &data["token"]).await == 200
    }
}

/// ServiceAccountKey on ZenML: the keys of the managed service account (the admin key
/// belongs to another account).
pub struct Zenml;

impl Kind for Zenml {
    type Resource = ServiceAccountKey;

    async fn store(&self, client: &Client, namespace: &str, credstore: &Credstore) {
        fixtures::zenml_store(client, namespace, "store", credstore).await;
    }

    fn spec(&self, _namespace: &str) -> Value {
        json!({"storeRef": {"name": "store"}, "serviceAccount": "apikey-operator", "rotation": {"retainPrevious": "0s"}})
    }

    async fn upstream(&self, credstore: &Credstore) -> Upstream {
        let http = reqwest::Client::new();
        let bearer = fixtures::zenml_admin_session(credstore).await;
        let account = bootstrap_id(credstore, "zenml", "serviceAccountId");
        let page = get_json(
            http.get(format!(
                "{}/api/v1/service_accounts/{}/api_keys?size=1000",
                credstore.url,
                account.as_str().unwrap()
            ))
            .bearer_auth(bearer),
        )
        .await;
        zenml_upstream(page["items"].as_array().unwrap())
    }

    async fn authenticates(&self, credstore: &Credstore, data: &BTreeMap<String, String>) -> bool {
        fixtures::zenml_login(credstore, &data["apiKey"]).await == 200
    }
}

/// ServiceAccountKey on the real open-source ZenML server with the admin-user credential.
/// The scenarios share one server, so each one's keys belong to a service account of its
/// own, named after its namespace (and found again by its credential store's URL).
#[derive(Default)]
pub struct RealZenml {
    accounts: Mutex<HashMap<String, String>>,
}

impl RealZenml {
    fn account_name(namespace: &str) -> String {
        format!("{namespace}-sa")
    }

    fn account(&self, credstore: &Credstore) -> String {
        self.accounts.lock().unwrap()[&credstore.url].clone()
    }
}

impl Kind for RealZenml {
    type Resource = ServiceAccountKey;

    async fn store(&self, client: &Client, namespace: &str, credstore: &Credstore) {
        let server = zenml_server::open_source();
        let account = server
            .create_service_account(&Self::account_name(namespace))
            .await;
        self.accounts
            .lock()
            .unwrap()
            .insert(credstore.url.clone(), account);
        let credential = json!({"username": ADMIN_USER, "password": ADMIN_PASSWORD});
        fixtures::zenml_store_at(client, namespace, "store", &server.url, credential).await;
    }

    fn spec(&self, namespace: &str) -> Value {
        json!({"storeRef": {"name": "store"}, "serviceAccount": Self::account_name(namespace), "rotation": {"retainPrevious": "0s"}})
    }

    async fn upstream(&self, credstore: &Credstore) -> Upstream {
        let keys = zenml_server::open_source().keys(&self.account(credstore)).await;
        zenml_upstream(&keys)
    }

    async fn authenticates(&self, _credstore: &Credstore, data: &BTreeMap<String, String>) -> bool {
        zenml_server::open_source().key_login(&data["apiKey"]).await == 200
    }
}

/// ServiceAccountKey on Trend Micro, rotated with `retain_previous` ("0s": regenerate;
/// longer: a second key, the first deleted when the overlap ends).
pub struct Trend {
    pub retain_previous: &'static str,
}

impl Kind for Trend {
    type Resource = ServiceAccountKey;

    async fn store(&self, client: &Client, namespace: &str, credstore: &Credstore) {
        fixtures::trend_store(client, namespace, "store", credstore).await;
    }

    fn spec(&self, _namespace: &str) -> Value {
        json!({"storeRef": {"name": "store"}, "roleID": 1, "rotation": {"retainPrevious": self.retain_previous}})
    }

    async fn upstream(&self, credstore: &Credstore) -> Upstream {
        let listed = get_json(
            reqwest::Client::new()
                .get(format!("{}/api/apikeys", credstore.url))
                .header(
                    "api-secret-key",
                    credstore.bootstrap_file("trendmicro.secret-key"),
                )
                .header("api-version", "v1"),
        )
        .await;
        let admin = bootstrap_id(credstore, "trendmicro", "apiKeyId");
        let keys: Vec<&Value> = listed["apiKeys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["ID"] != admin)
            .collect();
        let unexpired = |k: &&&Value| {
            k["expiryDate"]
                .as_i64()
                .is_none_or(|ms| ms > Timestamp::now().as_millisecond())
        };
        let id = |k: &&Value| k["ID"].to_string();
        Upstream {
            objects: keys.iter().map(id).collect(),
            usable: keys
                .iter()
                .filter(|k| k["active"] == true)
                .filter(unexpired)
                .map(id)
                .collect(),
        }
    }

    async fn authenticates(&self, credstore: &Credstore, data: &BTreeMap<String, String>) -> bool {
        fixtures::trend_current(credstore, &data["apiKey"]).await == 200
    }
}

/// ApiClient on Akamai: the API clients of the account (the admin's own excluded) and
/// their credentials.
pub struct Akamai;

impl Kind for Akamai {
    type Resource = ApiClient;

    async fn store(&self, client: &Client, namespace: &str, credstore: &Credstore) {
        fixtures::akamai_store(client, namespace, "store", credstore).await;
    }

    fn spec(&self, _namespace: &str) -> Value {
        json!({
            "storeRef": {"name": "store"},
            "authorizedUsers": ["platform-bot"],
            "apiAccess": {"allAccessibleApis": true}, "purgeOptions": {"canPurgeByCacheTag": true, "canPurgeByCpcode": true, "cpcodeAccess": {"allCurrentAndNewCpcodes": true}},
            "groupAccess": {"cloneAuthorizedUserGroups": true},
            "rotation": {"retainPrevious": "0s"},
        })
    }

    async fn upstream(&self, credstore: &Credstore) -> Upstream {
        let admin = fixtures::akamai_admin(credstore);
        let own = bootstrap_id(credstore, "akamai", "clientId");
        let (status, clients) = fixtures::akamai_get(&admin, "/api-clients").await;
        assert_eq!(status, 200, "{clients}");
        let mut upstream = Upstream::default();
        for client in clients
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["clientId"] != own)
        {
            let id = client["clientId"].as_str().unwrap();
            upstream.objects.push(id.to_string());
            let (status, credentials) =
                fixtures::akamai_get(&admin, &format!("/api-clients/{id}/credentials")).await;
            assert_eq!(status, 200, "{credentials}");
            upstream.usable.extend(
                credentials
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|c| c["status"] == "ACTIVE" && is_future(&c["expiresOn"]))
                    .map(|c| c["credentialId"].to_string()),
            );
        }
        upstream
    }

    /// Signs with the `[default]` section of the Secret's `.edgerc`, as a consumer would.
    async fn authenticates(&self, _: &Credstore, data: &BTreeMap<String, String>) -> bool {
        let edgerc: BTreeMap<String, String> = data[".edgerc"]
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        fixtures::akamai_get(&edgerc, "/api-clients/self").await.0 == 200
    }
}
