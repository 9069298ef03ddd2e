//! `apikey-operator run`: the controllers, the probes and metrics, and a clean shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, future};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use tracing::info;

use crate::api::{
    ApiClient, ApiToken, ClusterCredentialStore, CredentialStore, ServiceAccountKey, StoreKind,
};
use crate::controller::Context;
use crate::controller::context::Shared;
use crate::controller::inventory::{KeyInventory, UsageTriggers};
use crate::controller::key_run::KeyResource;
use crate::controller::ownership::ClusterIdentity;
use crate::controller::reconcile_key::{self, KeyKind};
use crate::controller::status_proof::{self, StatusKey};
use crate::controller::store_probe::{self, StoreObject};
use crate::controller::store_registry::Stores;
use crate::controller::target_secret::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use crate::health::{self, Readiness};
use crate::leader;
use crate::metrics::Metrics;

/// How the operator runs.
pub struct Options {
    /// Watch only this namespace (ClusterCredentialStores are always watched).
    pub namespace: Option<String>,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub listen: SocketAddr,
    /// Identifies this replica in events (the pod name in a cluster).
    pub instance: Option<String>,
    /// Reconciliations of one kind running at once (bounds concurrent upstream calls).
    pub concurrency: u16,
    /// Run the controllers only while holding this lease; `None` runs them at once.
    pub leader_election: Option<leader::Config>,
    /// The cluster identity upstream names and owner marks are derived from; `None` reads
    /// the `kube-system` namespace's UID.
    pub cluster_id: Option<String>,
    /// The operator's own namespace: where the key of status proofs is kept.
    pub system_namespace: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("serving probes and metrics")]
    Serve(#[from] std::io::Error),
    #[error("leader election")]
    LeaderElection(#[from] leader::Error),
    #[error(
        "cannot read namespace kube-system to derive the cluster identity; grant `get` on it or set --cluster-id (chart value clusterId)"
    )]
    ClusterIdentity(#[source] kube::Error),
    #[error("cannot use the key of status proofs, Secret {name} in namespace {namespace}")]
    StatusKey {
        name: &'static str,
        namespace: String,
        #[source]
        source: status_proof::KeyError,
    },
}

fn namespaced<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// A client from the environment's kubeconfig (or the in-cluster service account) whose
/// every request is counted in `metrics`, by method.
pub async fn connect(metrics: Arc<Metrics>) -> Result<Client, kube::Error> {
    let config = kube::Config::infer().await.map_err(kube::Error::InferConfig)?;
    client_with_metrics(config, metrics)
}

/// A client for `config` whose every request is counted in `metrics`, by method.
pub fn client_with_metrics(config: kube::Config, metrics: Arc<Metrics>) -> Result<Client, kube::Error> {
    let count = tower::util::MapRequestLayer::new(move |request: http::Request<kube::client::Body>| {
        metrics.kube_request(request.method(), request.uri().path());
        request
    });
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&count)
        .build())
}

/// Serves the probes and metrics and runs every controller until SIGTERM or Ctrl-C.
///
/// With leader election, the controllers run only while this replica holds the lease (see
/// [`leader::run_elected`]); a standby serves `/healthz`, `/metrics` and a ready `/readyz`.
pub async fn run(client: Client, metrics: Arc<Metrics>, options: Options) -> Result<(), Error> {
    let cluster = ClusterIdentity::resolve(&client, options.cluster_id)
        .await
        .map_err(Error::ClusterIdentity)?;
    let status_key = StatusKey::load_or_create(&client, &options.system_namespace)
        .await
        .map_err(|source| Error::StatusKey {
            name: status_proof::SECRET_NAME,
            namespace: options.system_namespace.clone(),
            source,
        })?;
    let readiness = Arc::new(Readiness::default());
    let server = health::serve(
        options.listen,
        readiness.clone(),
        metrics.clone(),
        shutdown_signal(),
    );
    let controllers = Controllers {
        client,
        metrics: metrics.clone(),
        namespace: options.namespace,
        instance: options.instance,
        concurrency: options.concurrency,
        readiness: readiness.clone(),
        cluster,
        status_key,
    };
    let work = async {
        match options.leader_election {
            None => {
                metrics.set_leader(true);
                controllers.run().await;
                Ok(())
            }
            Some(config) => {
                let client = controllers.client.clone();
                let run = controllers.run();
                leader::run_elected(client, config, &metrics, &readiness, run, shutdown_signal())
                    .await
                    .map_err(Error::from)
            }
        }
    };
    // A lost lease ends the process at once instead of waiting for the probe server.
    future::try_join(async { server.await.map_err(Error::from) }, work).await?;
    Ok(())
}

/// Everything the controllers need.
struct Controllers {
    client: Client,
    metrics: Arc<Metrics>,
    namespace: Option<String>,
    instance: Option<String>,
    concurrency: u16,
    readiness: Arc<Readiness>,
    cluster: ClusterIdentity,
    status_key: StatusKey,
}

impl Controllers {
    /// Runs every controller until SIGTERM or Ctrl-C (each lets its reconciliations finish).
    ///
    /// Scoped to a namespace, the operator serves only CredentialStores: a namespaced install
    /// has no cluster-wide permissions to read ClusterCredentialStores with.
    async fn run(&self) {
        let Controllers {
            client,
            metrics,
            instance,
            concurrency,
            readiness,
            ..
        } = self;
        let namespace = self.namespace.as_deref();
        // Before any controller writes a status: the statuses from before proofs are proven
        // once (see controller::status_proof); a failure leaves them to the next start.
        if let Err(error) = self.status_key.prove_existing(client, namespace).await {
            tracing::error!(%error, "could not prove the statuses written before status proofs; they are not acted on until a restart proves them");
        }
        let stores_controller = Controller::new(
            namespaced::<CredentialStore>(client, namespace),
            watcher::Config::default(),
        )
        .trigger_backoff(trigger_backoff());
        let namespaced_stores = stores_controller.store();
        // Store credential Secrets are watched by metadata only: a change re-probes the stores
        // that reference the Secret, and no Secret data is cached.
        let secrets_meta = || namespaced::<PartialObjectMeta<Secret>>(client, namespace);
        let by_secret = namespaced_stores.clone();
        let stores_controller =
            stores_controller.watches(secrets_meta(), watcher::Config::default(), move |secret| {
                stores_using_secret(
                    &by_secret,
                    &secret.namespace().unwrap_or_default(),
                    &secret.name_any(),
                )
            });

        let cluster_stores_controller = namespace.is_none().then(|| {
            let controller = Controller::new(
                Api::<ClusterCredentialStore>::all(client.clone()),
                watcher::Config::default(),
            )
            .trigger_backoff(trigger_backoff());
            let by_secret = controller.store();
            controller.watches(
                Api::all(client.clone()),
                watcher::Config::default(),
                move |secret: PartialObjectMeta<Secret>| {
                    stores_using_secret(
                        &by_secret,
                        &secret.namespace().unwrap_or_default(),
                        &secret.name_any(),
                    )
                },
            )
        });
        let cluster_stores = cluster_stores_controller.as_ref().map(Controller::store);

        let tokens_controller = key_controller::<ApiToken>(client, namespace, cluster_stores.is_some());
        let tokens = tokens_controller.store();
        let sakeys_controller =
            key_controller::<ServiceAccountKey>(client, namespace, cluster_stores.is_some());
        let sakeys = sakeys_controller.store();
        let clients_controller = key_controller::<ApiClient>(client, namespace, cluster_stores.is_some());
        let clients = clients_controller.store();

        // Ready counts and credential expiry per kind, read from the caches at scrape time.
        metrics.track("CredentialStore", namespaced_stores.clone());
        if let Some(cluster_stores) = &cluster_stores {
            metrics.track("ClusterCredentialStore", cluster_stores.clone());
        }
        metrics.track(<ApiToken as KeyResource>::KIND, tokens.clone());
        metrics.track(<ServiceAccountKey as KeyResource>::KIND, sakeys.clone());
        metrics.track(<ApiClient as KeyResource>::KIND, clients.clone());

        let stores = Stores::new(namespaced_stores.clone(), cluster_stores.clone());
        let (usage, usage_changed) = UsageTriggers::new();
        let shared = Shared {
            cluster: self.cluster.clone(),
            status_key: self.status_key.clone(),
            inventory: KeyInventory::new(tokens.clone(), sakeys.clone(), clients.clone()),
            usage,
            workers: *concurrency,
        };
        let ctx = Arc::new(Context::new(
            client.clone(),
            stores,
            metrics.clone(),
            instance.clone(),
            shared,
        ));

        let ready = {
            let readiness = readiness.clone();
            let (stores, cluster_stores, tokens, sakeys, clients) = (
                namespaced_stores.clone(),
                cluster_stores.clone(),
                tokens.clone(),
                sakeys.clone(),
                clients.clone(),
            );
            async move {
                let cluster_synced = async {
                    match &cluster_stores {
                        Some(store) => store.wait_until_ready().await,
                        None => Ok(()),
                    }
                };
                let synced = tokio::try_join!(
                    stores.wait_until_ready(),
                    cluster_synced,
                    tokens.wait_until_ready(),
                    sakeys.wait_until_ready(),
                    clients.wait_until_ready(),
                );
                if synced.is_ok() {
                    info!("caches synced; ready");
                    readiness.set_ready();
                }
            }
        };

        let stores_run = stores_controller
            .reconcile_on(usage_changed.namespaced)
            .shutdown_on_signal()
            .run(
                store_probe::reconcile::<CredentialStore>,
                store_error_policy::<CredentialStore>,
                ctx.clone(),
            )
            .for_each(|_| future::ready(()));
        let cluster_stores_run = async {
            if let Some(controller) = cluster_stores_controller {
                controller
                    .reconcile_on(usage_changed.cluster)
                    .shutdown_on_signal()
                    .run(
                        store_probe::reconcile::<ClusterCredentialStore>,
                        store_error_policy::<ClusterCredentialStore>,
                        ctx.clone(),
                    )
                    .for_each(|_| future::ready(()))
                    .await;
            }
        };
        let tokens_run = run_keys(tokens_controller, ctx.clone(), *concurrency);
        let sakeys_run = run_keys(sakeys_controller, ctx.clone(), *concurrency);
        let clients_run = run_keys(clients_controller, ctx.clone(), *concurrency);

        tokio::join!(
            stores_run,
            cluster_stores_run,
            tokens_run,
            sakeys_run,
            clients_run,
            ready
        );
        info!("controllers stopped");
    }
}

/// The backoff of a controller's watches after an error.
///
/// One backoff covers all the watches of a controller and pauses every one of them, so
/// kube-runtime's default (client-go's per-watch 0.8 s doubling to 30 s) leaves a controller
/// deaf for half a minute after an API server restart: the outage's connection errors grow
/// the delay, and the new server's watch cache then answers each watch once with `410 Gone`.
/// Capped at 5 s, every watch relists within seconds while still backing off from a server
/// that stays down.
fn trigger_backoff() -> watcher::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .into()
}

fn store_error_policy<S: StoreObject>(
    _: Arc<S>,
    error: &crate::controller::Error,
    _: Arc<Context>,
) -> kube::runtime::controller::Action {
    tracing::warn!(%error, "store reconciliation failed");
    kube::runtime::controller::Action::requeue(Duration::from_secs(15))
}

/// Stores whose credentials Secret is `namespace/name`.
fn stores_using_secret<S: StoreObject>(stores: &Store<S>, namespace: &str, name: &str) -> Vec<ObjectRef<S>> {
    stores
        .state()
        .iter()
        .filter(|s| {
            s.secret_namespace().as_deref() == Some(namespace)
                && s.secret_ref().is_some_and(|r| r.name == name)
        })
        .map(|s| ObjectRef::from_obj(&**s))
        .collect()
}

/// The controller of key kind `K`: its resources, the Secrets the operator labelled (no
/// cluster-wide Secret cache), and the stores the resources reference, so a store turning
/// Ready (or its credential changing) reconciles the keys that use it.
fn key_controller<K: KeyKind>(
    client: &Client,
    namespace: Option<&str>,
    cluster_stores: bool,
) -> Controller<K> {
    let own_secrets = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    // The cache holds every key resource, so it keeps them without their managedFields,
    // which the operator never reads and which are much of each object's size.
    // `Controller::for_stream` is kube-runtime's unstable stream control, the way it offers
    // to transform what a controller caches.
    let (keys, writer) = reflector::store::<K>();
    let own_keys = watcher(namespaced::<K>(client, namespace), watcher::Config::default())
        .modify(|key| key.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects();
    let controller = Controller::for_stream(own_keys, keys)
        .owns(namespaced::<Secret>(client, namespace), own_secrets)
        .trigger_backoff(trigger_backoff());
    let keys = controller.store();
    let controller = controller.watches_stream(
        store_transitions(namespaced::<CredentialStore>(client, namespace)),
        move |s| {
            keys_using_store(
                &keys,
                StoreKind::CredentialStore,
                s.namespace().as_deref(),
                &s.name_any(),
            )
        },
    );
    if !cluster_stores {
        return controller;
    }
    let keys = controller.store();
    controller.watches_stream(
        store_transitions(Api::<ClusterCredentialStore>::all(client.clone())),
        move |s| keys_using_store(&keys, StoreKind::ClusterCredentialStore, None, &s.name_any()),
    )
}

/// The events of stores that matter to their keys: a spec change the store controller has observed, a change
/// of `Ready`, a deletion. Not the usage counts and probe times the store controller
/// writes as keys come and go: each would wake every key of the store.
fn store_transitions<S: StoreObject>(
    api: Api<S>,
) -> impl futures::Stream<Item = Result<S, watcher::Error>> + Send {
    let mut seen: HashMap<String, u64> = HashMap::new();
    watcher(api, watcher::Config::default())
        .backoff(trigger_backoff())
        .filter_map(move |event| {
            let relevant = match event {
                Ok(watcher::Event::Apply(store) | watcher::Event::InitApply(store)) => {
                    let state = transition_state(&store);
                    (seen.insert(store.uid().unwrap_or_default(), state) != Some(state)).then_some(Ok(store))
                }
                Ok(watcher::Event::Delete(store)) => {
                    seen.remove(&store.uid().unwrap_or_default());
                    Some(Ok(store))
                }
                Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
                Err(error) => Some(Err(error)),
            };
            future::ready(relevant)
        })
}

/// A spec change counts once the store controller has observed it (`observedGeneration`),
/// not when the spec is written: the keys read the store's policy from that controller's
/// cache, which may not hold the new spec yet when this separate watch sees it, and a key
/// refused by a stale policy would look again only at the resync.
fn transition_state<S: StoreObject>(store: &S) -> u64 {
    use std::hash::{Hash, Hasher};
    let status = store.store_status();
    let ready = status
        .and_then(|s| {
            crate::controller::conditions::find(&s.conditions, crate::controller::conditions::READY)
        })
        .map(|c| (c.status.clone(), c.reason.clone()));
    let observed = status.and_then(|s| s.observed_generation);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (observed, ready).hash(&mut hasher);
    hasher.finish()
}

async fn run_keys<K: KeyKind>(controller: Controller<K>, ctx: Arc<Context>, concurrency: u16) {
    controller
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .shutdown_on_signal()
        .run(
            reconcile_key::reconcile::<K>,
            reconcile_key::error_policy::<K>,
            ctx,
        )
        .for_each(|_| future::ready(()))
        .await
}

/// The keys of kind `K` that reference the store `kind`/`namespace`/`name`.
fn keys_using_store<K: KeyKind>(
    keys: &Store<K>,
    kind: StoreKind,
    namespace: Option<&str>,
    name: &str,
) -> Vec<ObjectRef<K>> {
    keys.state()
        .iter()
        .filter(|k| {
            let store_ref = k.common().store_ref;
            store_ref.kind == kind
                && store_ref.name == name
                && (kind == StoreKind::ClusterCredentialStore || k.namespace().as_deref() == namespace)
        })
        .map(|k| ObjectRef::from_obj(&**k))
        .collect()
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = terminate.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}
