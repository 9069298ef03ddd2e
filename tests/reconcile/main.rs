//! The reconcile protocol in-process: the operator's `reconcile` is called directly, against
//! the real API server and an in-process credential store, and every request it sends to
//! Kubernetes is recorded with the number of credentials the store had minted by then. A
//! change that mints before the intent is saved, or writes the status before the Secret,
//! fails here in seconds (the crash table finds the same by killing processes, in minutes).

use std::sync::{Arc, Mutex};

use apikey_operator::api::{ApiToken, CredentialStore};
use apikey_operator::controller::Context;
use apikey_operator::controller::context::Shared;
use apikey_operator::controller::inventory::{KeyInventory, UsageTriggers};
use apikey_operator::controller::ownership::ClusterIdentity;
use apikey_operator::controller::reconcile_key::reconcile;
use apikey_operator::controller::status_proof::StatusKey;
use apikey_operator::controller::store_registry::{Connected, StoreKey, Stores};
use apikey_operator::metrics::Metrics;
use apikey_operator_test_support::credstore::Store;
use apikey_operator_test_support::envtest;
use http::{Method, Request};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::client::Body;
use kube::runtime::{reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

/// One write the reconciliation sent to Kubernetes.
#[derive(Clone, Debug)]
struct Write {
    what: Target,
    /// Credentials the upstream had minted when the write was sent.
    minted_before: u64,
}

#[derive(Clone, Debug, PartialEq)]
enum Target {
    /// A status write: whether it records an operation in flight, and the credential it names.
    Status {
        pending: bool,
        credential: Option<String>,
    },
    Secret,
    Event {
        reason: String,
    },
    Other(String),
}

#[derive(Clone, Default)]
struct Timeline(Arc<Mutex<Vec<Write>>>);

impl Timeline {
    fn take(&self) -> Vec<Write> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A client that forwards to `inner` and records each write with the store's mint count.
fn recording(inner: Client, store: &Store, timeline: Timeline) -> Client {
    let counts = format!("{}/_credstore/requests", store.base);
    let http = store.http.clone();
    let service = tower::service_fn(move |request: Request<Body>| {
        let (inner, timeline, counts, http) = (inner.clone(), timeline.clone(), counts.clone(), http.clone());
        async move {
            if request.method() == Method::GET {
                return inner.send(request).await;
            }
            let counted: Value = http.get(&counts).send().await.unwrap().json().await.unwrap();
            let minted_before = counted["prefactor"]["POST /api/v1/api_token"]
                .as_u64()
                .unwrap_or_default();
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await?;
            let sent: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let path = parts.uri.path().to_string();
            let what = if path.ends_with("/status") {
                Target::Status {
                    pending: !sent["status"]["pending"].is_null(),
                    credential: sent["status"]["credentialId"].as_str().map(str::to_owned),
                }
            } else if path.contains("/secrets") {
                Target::Secret
            } else if path.contains("/events") {
                Target::Event {
                    reason: sent["reason"].as_str().unwrap_or_default().to_owned(),
                }
            } else {
                Target::Other(format!("{} {path}", parts.method))
            };
            timeline.0.lock().unwrap().push(Write { what, minted_before });
            inner
                .send(Request::from_parts(parts, Body::from(bytes.to_vec())))
                .await
        }
    });
    Client::new(service, "default")
}

/// A namespace holding Prefactor store `store` (also given to the operator's cache, and
/// registered as probed) and the context `reconcile` runs with.
async fn world(credstore: &Store, timeline: &Timeline) -> (String, Arc<Context>) {
    let admin = envtest::client().await;
    let namespace = envtest::namespace(&admin, "protocol").await;
    let store: CredentialStore = serde_json::from_value(json!({
        "apiVersion": "apikeys.dev/v1alpha1",
        "kind": "CredentialStore",
        "metadata": {"name": "store", "namespace": namespace},
        "spec": {"prefactor": {
            "url": credstore.base,
            "credentialsSecretRef": {"name": "store-credentials"},
        }},
    }))
    .unwrap();
    let store = Api::<CredentialStore>::namespaced(admin.clone(), &namespace)
        .create(&PostParams::default(), &store)
        .await
        .unwrap();
    let (stores, mut writer) = reflector::store();
    for event in [
        watcher::Event::Init,
        watcher::Event::InitApply(store.clone()),
        watcher::Event::InitDone,
    ] {
        writer.apply_watcher_event(&event);
    }
    let stores = Stores::new(stores, None);
    stores.register(
        StoreKey::referenced(
            &namespace,
            &serde_json::from_value(json!({"name": "store"})).unwrap(),
        ),
        Connected {
            client: Arc::new(credstore.prefactor(&credstore.file("prefactor.token"))),
            uid: store.uid(),
            generation: store.meta().generation,
            secret_version: None,
        },
    );
    let (usage, _receivers) = UsageTriggers::new();
    let shared = Shared {
        cluster: ClusterIdentity::new("protocol-test"),
        status_key: StatusKey::new(vec![7; 32]),
        inventory: KeyInventory::new(empty(), empty(), empty()),
        usage,
        workers: 4,
    };
    let client = recording(admin, credstore, timeline.clone());
    let ctx = Context::new(client, stores, Arc::new(Metrics::default()), None, shared);
    (namespace, Arc::new(ctx))
}

/// A cache with nothing in it, listed.
fn empty<K: Resource<DynamicType = ()> + Clone + 'static>() -> reflector::Store<K> {
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    writer.apply_watcher_event(&watcher::Event::InitDone);
    store
}

/// ApiToken `token` of the namespace's store, created and not yet reconciled.
async fn declared_token(namespace: &str) -> Api<ApiToken> {
    let api: Api<ApiToken> = Api::namespaced(envtest::client().await, namespace);
    let token: ApiToken = serde_json::from_value(json!({
        "apiVersion": "apikeys.dev/v1alpha1",
        "kind": "ApiToken",
        "metadata": {"name": "token"},
        "spec": {"storeRef": {"name": "store"}, "scope": "account"},
    }))
    .unwrap();
    api.create(&PostParams::default(), &token).await.unwrap();
    api
}

async fn reconciled(api: &Api<ApiToken>, ctx: &Arc<Context>) -> ApiToken {
    let fresh = api.get("token").await.unwrap();
    reconcile(Arc::new(fresh), ctx.clone()).await.unwrap();
    api.get("token").await.unwrap()
}

fn position(timeline: &[Write], what: &str, test: impl Fn(&Target) -> bool) -> usize {
    timeline
        .iter()
        .position(|w| test(&w.what))
        .unwrap_or_else(|| panic!("no {what} in {timeline:#?}"))
}

#[tokio::test]
async fn a_create_saves_its_intent_before_minting_and_the_secret_before_the_status() {
    let credstore = Store::start().await;
    let timeline = Timeline::default();
    let (namespace, ctx) = world(&credstore, &timeline).await;
    let api = declared_token(&namespace).await;

    let token = reconciled(&api, &ctx).await;
    let writes = timeline.take();
    let delivered = token.status.as_ref().and_then(|s| s.credential_id.clone());
    assert!(delivered.is_some(), "one reconciliation delivers: {writes:#?}");

    let intent = position(&writes, "status write recording the create", |t| {
        matches!(
            t,
            Target::Status {
                pending: true,
                credential: None
            }
        )
    });
    let secret = position(&writes, "Secret write", |t| *t == Target::Secret);
    let status = position(&writes, "status write naming the credential", |t| {
        matches!(
            t,
            Target::Status {
                pending: false,
                credential: Some(_)
            }
        )
    });
    let event = position(
        &writes,
        "Created event",
        |t| matches!(t, Target::Event { reason } if reason == "Created"),
    );
    assert_eq!(
        writes[intent].minted_before, 0,
        "nothing is minted before the intent is saved"
    );
    assert_eq!(
        writes[secret].minted_before, 1,
        "the Secret holds the one minted credential"
    );
    assert!(
        intent < secret && secret < status && status < event,
        "order: {writes:#?}"
    );
    assert!(
        writes.iter().all(|w| w.minted_before <= 1),
        "one credential minted: {writes:#?}"
    );
}

#[tokio::test]
async fn a_rotation_saves_its_intent_first_and_names_the_new_credential_only_once_delivered() {
    let credstore = Store::start().await;
    let timeline = Timeline::default();
    let (namespace, ctx) = world(&credstore, &timeline).await;
    let api = declared_token(&namespace).await;
    let first = reconciled(&api, &ctx)
        .await
        .status
        .unwrap()
        .credential_id
        .unwrap();
    timeline.take();

    let patch = json!({"metadata": {"annotations": {"apikeys.dev/rotate": "now"}}});
    api.patch("token", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let token = reconciled(&api, &ctx).await;
    let writes = timeline.take();
    let second = token.status.unwrap().credential_id.unwrap();
    assert_ne!(first, second, "rotated: {writes:#?}");

    let intent = position(
        &writes,
        "status write recording the rotation",
        |t| matches!(t, Target::Status { pending: true, credential: Some(c) } if *c == first),
    );
    let secret = position(&writes, "Secret write", |t| *t == Target::Secret);
    let status = position(
        &writes,
        "status write naming the new credential",
        |t| matches!(t, Target::Status { pending: false, credential: Some(c) } if *c == second),
    );
    assert_eq!(
        writes[intent].minted_before, 1,
        "the new credential is minted after the intent is saved"
    );
    assert_eq!(
        writes[secret].minted_before, 2,
        "the Secret holds the new credential"
    );
    assert!(intent < secret && secret < status, "order: {writes:#?}");
    assert!(
        writes[..secret]
            .iter()
            .all(|w| !matches!(&w.what, Target::Status { credential: Some(c), .. } if *c == second)),
        "no status names the new credential before the Secret holds it: {writes:#?}"
    );
}

#[tokio::test]
async fn a_key_over_its_stores_share_of_workers_is_put_back_without_a_request() {
    let credstore = Store::start().await;
    let timeline = Timeline::default();
    let (namespace, ctx) = world(&credstore, &timeline).await;
    let api = declared_token(&namespace).await;
    let store = StoreKey::referenced(
        &namespace,
        &serde_json::from_value(json!({"name": "store"})).unwrap(),
    );
    let busy: Vec<_> = (0..4)
        .map(|_| ctx.admission.admit("ApiToken", &store, std::time::Instant::now()))
        .collect();
    assert!(
        busy.iter().all(Result::is_ok),
        "the world's 4 workers, all on this store"
    );

    let untouched = api.get("token").await.unwrap();
    let action = reconcile(Arc::new(untouched.clone()), ctx.clone()).await.unwrap();
    assert_ne!(
        action,
        kube::runtime::controller::Action::await_change(),
        "it looks again soon"
    );
    assert!(
        timeline.take().is_empty(),
        "nothing written while the store is busy"
    );
    let after = api.get("token").await.unwrap();
    assert_eq!(
        after.resource_version(),
        untouched.resource_version(),
        "the object is as it was"
    );
    let minted = credstore.request_counts().await["prefactor"]["POST /api/v1/api_token"].clone();
    assert!(minted.is_null(), "nothing minted upstream: {minted}");

    drop(busy);
    let token = reconciled(&api, &ctx).await;
    assert!(
        token.status.and_then(|s| s.credential_id).is_some(),
        "once a worker of its share is free, the key is created"
    );
}
