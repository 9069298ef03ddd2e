//! Building blocks of the controller tests: stores wired to the credential store, waiting
//! on conditions, and using tokens against the credential store over HTTP.

use std::collections::BTreeMap;
use std::time::Duration;

use apikey_operator::api::ApiToken;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::processes::{self, Credstore};

/// Generous bound for one convergence on a loaded two-core machine.
pub const CONVERGE: Duration = Duration::from_secs(60);

/// Creates Secret `prefactor-admin` and CredentialStore `name` pointing at `credstore`.
pub async fn prefactor_store(client: &Client, namespace: &str, name: &str, credstore: &Credstore) {
    let data = json!({"token": credstore.prefactor_token});
    store(
        client,
        namespace,
        name,
        "prefactor",
        json!({"url": credstore.url}),
        "prefactor-admin",
        data,
    )
    .await;
}

/// Creates or replaces an Opaque Secret from string values.
pub async fn put_secret(client: &Client, namespace: &str, name: &str, string_data: Value) {
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name},
        "stringData": string_data,
    }))
    .unwrap();
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let _ = api.delete(name, &Default::default()).await;
    api.create(&PostParams::default(), &secret).await.unwrap();
}

/// Server-side applies a manifest (as the test's own field manager) into `namespace`.
pub async fn apply(client: &Client, namespace: &str, manifest: Value) {
    let object: kube::api::DynamicObject = serde_json::from_value(manifest).unwrap();
    crate::support::apply(client, &object, namespace)
        .await
        .unwrap_or_else(|e| panic!("apply refused: {e}"));
}

/// Merge-patches the spec or metadata of a resource.
pub async fn merge<K>(api: &Api<K>, name: &str, patch: Value)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Waits until `check` holds for the named object; panics with the last state otherwise.
pub async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, check: impl Fn(&K) -> bool) -> K
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let condition = |object: Option<&K>| object.is_some_and(&check);
    match tokio::time::timeout(CONVERGE, await_condition(api.clone(), name, condition)).await {
        Ok(Ok(Some(object))) => object,
        _ => {
            let last = api.get_opt(name).await.ok().flatten();
            panic!("{name}: timed out waiting for {what}; last seen: {last:#?}")
        }
    }
}

/// The `status` of a condition type, and its reason, from an object's status JSON.
pub fn condition(object: &impl serde::Serialize, type_: &str) -> Option<(String, String)> {
    let value = serde_json::to_value(object).ok()?;
    value["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
}

/// Whether the object's Ready condition is True for its current generation.
pub fn is_ready<K: Resource + serde::Serialize>(object: &K) -> bool {
    let value = serde_json::to_value(object).unwrap();
    condition(object, "Ready").is_some_and(|(s, _)| s == "True")
        && value["status"]["observedGeneration"] == value["metadata"]["generation"]
}

/// Whether the Ready condition is False with `reason`.
pub fn not_ready_because<K: serde::Serialize>(object: &K, reason: &str) -> bool {
    condition(object, "Ready").is_some_and(|(s, r)| s == "False" && r == reason)
}

/// A key of a Secret, as a string.
pub async fn secret_value(client: &Client, namespace: &str, name: &str, key: &str) -> Option<String> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .unwrap()?;
    let bytes = secret.data?.get(key)?.0.clone();
    Some(String::from_utf8(bytes).unwrap())
}

/// HTTP status of `GET /api/v1/ping` with `token`: 200 while the token works.
pub async fn ping(credstore: &Credstore, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/api/v1/ping", credstore.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The token as the upstream describes it (`details`), or `None` when it is gone.
pub async fn upstream_token(credstore: &Credstore, id: &str) -> Option<Value> {
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/api_token/{id}", credstore.url))
        .bearer_auth(&credstore.prefactor_token)
        .send()
        .await
        .unwrap();
    if response.status() == 404 {
        return None;
    }
    assert!(
        response.status().is_success(),
        "GET token {id}: {}",
        response.status()
    );
    Some(response.json::<Value>().await.unwrap()["details"].clone())
}

/// Changes a token's state upstream behind the operator's back, as the store admin.
pub async fn upstream_action(credstore: &Credstore, id: &str, action: &str) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/api_token/{id}/{action}", credstore.url))
        .bearer_auth(&credstore.prefactor_token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{action} {id}: {}",
        response.status()
    );
}

/// Polls `probe` until it returns `want` (for effects with no Kubernetes object to watch).
pub async fn eventually<F, Fut, T>(what: &str, want: T, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
    T: PartialEq + std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let got = probe().await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still {got:?}, wanted {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Creates Secret `zenml-admin` and CredentialStore `name` pointing at `credstore`'s ZenML API.
pub async fn zenml_store(client: &Client, namespace: &str, name: &str, credstore: &Credstore) {
    let data = json!({"apiKey": credstore.bootstrap_file("zenml.api-key")});
    store(
        client,
        namespace,
        name,
        "zenml",
        json!({"url": credstore.url}),
        "zenml-admin",
        data,
    )
    .await;
}

/// Creates Secret `zenml-admin` holding `credential` (`apiKey`, or `username` and
/// `password`) and CredentialStore `name` pointing at the ZenML server at `url`.
pub async fn zenml_store_at(client: &Client, namespace: &str, name: &str, url: &str, credential: Value) {
    store(
        client,
        namespace,
        name,
        "zenml",
        json!({"url": url}),
        "zenml-admin",
        credential,
    )
    .await;
}

/// Creates Secret `trend-admin` and CredentialStore `name` pointing at `credstore`'s Trend
/// Micro API.
pub async fn trend_store(client: &Client, namespace: &str, name: &str, credstore: &Credstore) {
    let data = json!({"apiSecretKey": credstore.bootstrap_file("trendmicro.secret-key")});
    let provider = json!({"url": format!("{}/api", credstore.url)});
    store(
        client,
        namespace,
        name,
        "trendMicro",
        provider,
        "trend-admin",
        data,
    )
    .await;
}

/// HTTP status of a ZenML login (`POST /api/v1/login`) with API key `key`: 200 while it works.
pub async fn zenml_login(credstore: &Credstore, key: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/api/v1/login", credstore.url))
        .form(&[("grant_type", "zenml-api-key"), ("password", key)])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A ZenML bearer token for the credential store's bootstrap (admin) API key.
pub async fn zenml_admin_session(credstore: &Credstore) -> String {
    let login: Value = reqwest::Client::new()
        .post(format!("{}/api/v1/login", credstore.url))
        .form(&[
            ("grant_type", "zenml-api-key"),
            ("password", &credstore.bootstrap_file("zenml.api-key")),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["access_token"]
        .as_str()
        .expect("a ZenML session")
        .to_string()
}

/// HTTP status of `GET /api/apikeys/current` with Trend Micro API secret key `key`.
pub async fn trend_current(credstore: &Credstore, key: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/api/apikeys/current", credstore.url))
        .header("api-secret-key", key)
        .header("api-version", "v1")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A Trend Micro key as the admin sees it, or `None` when it is gone.
pub async fn trend_key(credstore: &Credstore, id: &str) -> Option<Value> {
    let response = reqwest::Client::new()
        .get(format!("{}/api/apikeys/{id}", credstore.url))
        .header(
            "api-secret-key",
            credstore.bootstrap_file("trendmicro.secret-key"),
        )
        .header("api-version", "v1")
        .send()
        .await
        .unwrap();
    if response.status() == 404 {
        return None;
    }
    assert!(
        response.status().is_success(),
        "GET key {id}: {}",
        response.status()
    );
    Some(response.json().await.unwrap())
}

/// Moves the credential store's clock forward (its own expiries and retain periods).
pub async fn advance_clock(credstore: &Credstore, seconds: i64) {
    let response = reqwest::Client::new()
        .post(format!("{}/_credstore/clock", credstore.url))
        .json(&json!({"advanceSeconds": seconds}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "clock: {}", response.status());
}

/// The credential store's request counters: API → operation → count.
pub async fn upstream_requests(credstore: &Credstore) -> Value {
    reqwest::get(format!("{}/_credstore/requests", credstore.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The requests per operation of `api` made between two [`upstream_requests`] snapshots.
pub fn requests_between(before: &Value, after: &Value, api: &str) -> BTreeMap<String, u64> {
    let count = |v: &Value, op: &str| v[api][op].as_u64().unwrap_or_default();
    after[api]
        .as_object()
        .map(|ops| {
            ops.keys()
                .map(|op| (op.clone(), count(after, op) - count(before, op)))
                .filter(|(_, n)| *n > 0)
                .collect()
        })
        .unwrap_or_default()
}

/// The credential store's bootstrap `.edgerc` fields (`host`, `client_token`,
/// `client_secret`, `access_token`).
pub fn akamai_admin(credstore: &Credstore) -> BTreeMap<String, String> {
    credstore
        .bootstrap_file("akamai.edgerc")
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Creates Secret `akamai-admin` and CredentialStore `name` pointing at `credstore`'s
/// Akamai IAM API.
pub async fn akamai_store(client: &Client, namespace: &str, name: &str, credstore: &Credstore) {
    let data = serde_json::to_value(akamai_admin(credstore)).unwrap();
    store(
        client,
        namespace,
        name,
        "akamai",
        json!({"url": credstore.url}),
        "akamai-admin",
        data,
    )
    .await;
}

/// Creates the admin Secret `secret` from string values `data`, and CredentialStore `name`
/// whose provider block `provider` (`prefactor`, `zenml`, ...) is `settings` plus a
/// reference to that Secret.
async fn store(
    client: &Client,
    namespace: &str,
    name: &str,
    provider: &str,
    mut settings: Value,
    secret: &str,
    data: Value,
) {
    put_secret(client, namespace, secret, data).await;
    settings["credentialsSecretRef"] = json!({"name": secret});
    let mut spec = serde_json::Map::new();
    spec.insert(provider.to_string(), settings);
    let store = json!({
        "apiVersion": "apikeys.dev/v1alpha1", "kind": "CredentialStore", "metadata": {"name": name}, "spec": spec,
    });
    apply(client, namespace, store).await;
}

/// An EdgeGrid-signed `GET` of `path` under `/identity-management/v3` with the `.edgerc`
/// values `edgerc` (keys `host`, `client_token`, `client_secret`, `access_token`): the
/// HTTP status and the JSON body.
pub async fn akamai_get(edgerc: &BTreeMap<String, String>, path: &str) -> (u16, Value) {
    akamai_send(edgerc, "GET", path).await
}

/// An EdgeGrid-signed bodiless request (`method` of `path` under `/identity-management/v3`).
pub async fn akamai_send(edgerc: &BTreeMap<String, String>, method: &str, path: &str) -> (u16, Value) {
    use apikey_operator::upstream::edgegrid::{ClientCredential, RequestParts, Signer, SigningPolicy};
    let signer = Signer::new(
        ClientCredential {
            client_token: edgerc["client_token"].clone(),
            client_secret: edgerc["client_secret"].clone(),
            access_token: edgerc["access_token"].clone(),
        },
        SigningPolicy::default(),
    );
    let host = &edgerc["host"];
    let path = format!("/identity-management/v3{path}");
    let authorization = signer.sign(&RequestParts {
        method,
        scheme: "http",
        host,
        path_and_query: &path,
        headers: &[],
        body: &[],
    });
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let response = reqwest::Client::new()
        .request(method, format!("http://{host}{path}"))
        .header("authorization", authorization)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// An EdgeGrid-signed bodiless `POST` of `path` under `/identity-management/v3` (see
/// [`akamai_get`]).
pub async fn akamai_post(edgerc: &BTreeMap<String, String>, path: &str) -> (u16, Value) {
    akamai_send(edgerc, "POST", path).await
}

/// A namespace with a Prefactor store wired to the shared credential store, served by the
/// shared operator: the starting point of the ApiToken and plugin tests.
pub struct TokenSetup {
    pub client: Client,
    pub namespace: String,
    pub tokens: Api<ApiToken>,
    pub credstore: &'static Credstore,
}

impl TokenSetup {
    pub async fn new(prefix: &str) -> Self {
        let credstore = processes::credstore();
        processes::operator();
        let client = crate::support::client().await;
        let namespace = crate::support::namespace(&client, prefix).await;
        prefactor_store(&client, &namespace, "prefactor", credstore).await;
        let tokens = Api::namespaced(client.clone(), &namespace);
        TokenSetup {
            client,
            namespace,
            tokens,
            credstore,
        }
    }

    /// Applies an account-scoped ApiToken (`extra` merged into its spec) and waits for Ready.
    pub async fn ready_token(&self, name: &str, extra: Value) -> ApiToken {
        let mut spec = json!({"storeRef": {"name": "prefactor"}, "scope": "account"});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        apply(
            &self.client,
            &self.namespace,
            json!({"apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiToken", "metadata": {"name": name}, "spec": spec}),
        )
        .await;
        wait_for(&self.tokens, name, "Ready", is_ready).await
    }

    /// The token a Secret holds.
    pub async fn secret_token(&self, secret: &str) -> String {
        secret_value(&self.client, &self.namespace, secret, "token")
            .await
            .expect("the Secret holds a token")
    }
}

/// `/api/v1/service_accounts/<id>/api_keys/<key>` on the service account (`apikey-operator`)
/// the operator's keys are made on.
pub fn zenml_key_url(credstore: &Credstore, key: &str) -> String {
    let bootstrap: Value = serde_json::from_str(&credstore.bootstrap_file("bootstrap.json")).unwrap();
    let account = bootstrap["zenml"]["serviceAccountId"].as_str().unwrap();
    format!(
        "{}/api/v1/service_accounts/{account}/api_keys/{key}",
        credstore.url
    )
}

/// A ZenML key of that service account as the admin sees it, or `None` when it is gone.
pub async fn zenml_key(credstore: &Credstore, id: &str) -> Option<Value> {
    let response = reqwest::Client::new()
        .get(zenml_key_url(credstore, id))
        .bearer_auth(zenml_admin_session(credstore).await)
        .send()
        .await
        .unwrap();
    if response.status() == 404 {
        return None;
    }
    assert!(
        response.status().is_success(),
        "GET key {id}: {}",
        response.status()
    );
    Some(response.json().await.unwrap())
}

/// A ZenML key made by hand on the operator's service account (`apikey-operator`) by the
/// store's admin, not by the operator: its id and secret.
pub async fn hand_made_zenml_key(credstore: &Credstore, name: &str, description: &str) -> (String, String) {
    let url = zenml_key_url(credstore, "");
    let key: Value = reqwest::Client::new()
        .post(url.trim_end_matches('/'))
        .bearer_auth(zenml_admin_session(credstore).await)
        .json(&json!({"name": name, "description": description}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = key["body"]["key"].as_str().expect("a ZenML key").to_string();
    (key["id"].as_str().unwrap().to_string(), secret)
}

/// A Trend Micro key (role 1) made by hand by the store's admin: its id and secret.
pub async fn hand_made_trend_key(credstore: &Credstore, name: &str, description: &str) -> (String, String) {
    let key: Value = reqwest::Client::new()
        .post(format!("{}/api/apikeys", credstore.url))
        .header(
            "api-secret-key",
            credstore.bootstrap_file("trendmicro.secret-key"),
        )
        .header("api-version", "v1")
        .json(&json!({"keyName": name, "roleID": 1, "description": description}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = key["secretKey"].as_str().expect("a Trend Micro key").to_string();
    (key["ID"].to_string(), secret)
}

/// The identity an operator of the test control plane derives default upstream names and
/// owner marks from (the kube-system namespace's UID, its default).
pub async fn cluster_identity(client: &Client) -> apikey_operator::controller::ownership::ClusterIdentity {
    let kube_system = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .get("kube-system")
        .await
        .expect("the control plane has kube-system");
    apikey_operator::controller::ownership::ClusterIdentity::new(kube_system.metadata.uid.unwrap())
}

/// The key the shared operator proves statuses with (it keeps it in namespace `default`):
/// for tests that write the state an interrupted operator leaves.
pub async fn status_key(client: &Client) -> apikey_operator::controller::status_proof::StatusKey {
    let secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), "default")
        .get(apikey_operator::controller::status_proof::SECRET_NAME)
        .await
        .expect("the operator made its status key");
    let key = secret.data.unwrap().remove("key").expect("the key").0;
    apikey_operator::controller::status_proof::StatusKey::new(key)
}

/// Asserts no 12-character window of any secret in `secrets` appears in the operator log,
/// the events or the statuses (any such window is enough to call a secret leaked).
pub fn assert_no_leak<S: AsRef<str>>(secrets: &[S], log: &str, events: &str, statuses: &str) {
    for secret in secrets {
        for window in secret
            .as_ref()
            .as_bytes()
            .windows(12)
            .map(|w| std::str::from_utf8(w).unwrap())
        {
            assert!(!log.contains(window), "the operator log contains secret material");
            assert!(!events.contains(window), "an event contains secret material");
            assert!(!statuses.contains(window), "a status contains secret material");
        }
    }
}

/// Plays the Deployment controller (the test API server runs none): writes the status it
/// would, having seen the current template: `total` pods run, `updated` of them from the
/// current template, `available` serve.
pub async fn report_rollout(
    deployments: &Api<k8s_openapi::api::apps::v1::Deployment>,
    name: &str,
    total: i32,
    updated: i32,
    available: i32,
) {
    let generation = deployments.get(name).await.unwrap().metadata.generation;
    let status = json!({"status": {
        "observedGeneration": generation, "replicas": total, "updatedReplicas": updated,
        "readyReplicas": available, "availableReplicas": available,
    }});
    deployments
        .patch_status(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&status),
        )
        .await
        .unwrap();
}

/// Reports the current pod template of Deployment `name` as rolled out, every replica
/// updated and available (see [`report_rollout`]).
pub async fn rolled_out(deployments: &Api<k8s_openapi::api::apps::v1::Deployment>, name: &str) {
    let deployment = deployments.get(name).await.unwrap();
    let replicas = deployment.spec.and_then(|s| s.replicas).unwrap_or(1);
    report_rollout(deployments, name, replicas, replicas, replicas).await;
}

/// The events (events.k8s.io) about object `name` in `namespace`.
pub async fn events_of(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Vec<k8s_openapi::api::events::v1::Event> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), namespace);
    events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect()
}

/// Status, reason and message of condition `type_`, from an object's status JSON.
pub fn condition_detail(object: &impl serde::Serialize, type_: &str) -> Option<(String, String, String)> {
    let value = serde_json::to_value(object).ok()?;
    let found = value["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?
        .clone();
    let text = |key: &str| found[key].as_str().unwrap_or_default().to_string();
    Some((text("status"), text("reason"), text("message")))
}
