//! `apikey-operator demo`: the operator's whole job on an embedded default.
//!
//! Starts a local control plane (etcd + kube-apiserver), the embedded credential store,
//! loads the store's bootstrap admin credentials into the Secrets the example stores name,
//! runs the operator, applies `examples/`, waits until everything is Ready and shows it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::Scope;
use kube::{Client, ResourceExt};
use serde::Deserialize;
use tracing::info;

use crate::credstore::{self, CredStore, FaultSettings};
use crate::localcluster::{LocalCluster, LocalClusterError};
use crate::metrics::Metrics;
use crate::operator;

/// Namespace the examples are applied to.
const EXAMPLES_NAMESPACE: &str = "default";
/// Namespace holding the admin Secret of the example ClusterCredentialStore.
const OPERATOR_NAMESPACE: &str = "apikey-operator";
const FIELD_MANAGER: &str = "apikey-operator-demo";

/// How the demo runs.
#[derive(Debug, clap::Args)]
pub struct DemoOptions {
    /// Directory with kube-apiserver, etcd and kubectl (`tests/envtest/setup.sh` prints it).
    #[arg(long, env = "KUBEBUILDER_ASSETS")]
    pub assets: PathBuf,
    /// Where the control plane, the credential store and the kubeconfig live.
    #[arg(long, default_value = "target/demo")]
    pub dir: PathBuf,
    /// The manifests to apply.
    #[arg(long, default_value = "examples")]
    pub examples: PathBuf,
    /// Address of the embedded credential store (the examples point at 127.0.0.1:18080).
    #[arg(long, default_value = "127.0.0.1:18080")]
    pub credstore_listen: SocketAddr,
    /// Address of the operator's /healthz, /readyz and /metrics.
    #[arg(long, default_value = "127.0.0.1:18081")]
    pub operator_listen: SocketAddr,
    /// How long to wait for every example to become Ready.
    #[arg(long, default_value = "180s", value_parser = humantime_secs)]
    pub timeout: Duration,
    /// Exit once everything is Ready (status 0) or the timeout passes (status 1),
    /// instead of running until Ctrl-C.
    #[arg(long)]
    pub exit_after_ready: bool,
}

fn humantime_secs(value: &str) -> Result<Duration, String> {
    value
        .parse::<jiff::SignedDuration>()
        .map_err(|e| e.to_string())?
        .try_into()
        .map_err(|_| "negative".to_string())
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("starting the local control plane: {0}")]
    Cluster(#[from] LocalClusterError),
    #[error("starting the credential store: {0}")]
    Credstore(#[from] credstore::Error),
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not a valid manifest: {message}")]
    Manifest { path: String, message: String },
    #[error("talking to the API server: {0}")]
    Kube(#[from] kube::Error),
    #[error("not Ready after {0:?}: {1}")]
    NotReady(Duration, String),
}

/// Runs the demo until Ctrl-C (or until Ready with `exit_after_ready`). Stopping drops the
/// control plane, whose processes are killed with it.
pub async fn run(options: DemoOptions) -> Result<(), DemoError> {
    tokio::select! {
        result = run_until_stopped(options) => result,
        _ = shutdown_signal() => {
            println!("stopped");
            Ok(())
        }
    }
}

async fn run_until_stopped(options: DemoOptions) -> Result<(), DemoError> {
    let _ = std::fs::remove_dir_all(&options.dir);
    let cluster = LocalCluster::start(&options.assets, &options.dir.join("cluster")).await?;
    cluster.install_crds(&crate::api::crds()).await?;
    info!(kubeconfig = %cluster.kubeconfig().display(), "control plane ready");

    let data = options.dir.join("credstore");
    let store = CredStore::open(credstore::Config {
        listen: options.credstore_listen,
        data: data.clone(),
        advertise_address: None,
        admin_api: false,
        clock_offset_seconds: 0,
        zenml_session_minutes: None,
        faults: FaultSettings::default(),
    })
    .await?;
    info!(address = %store.local_addr(), "credential store ready");
    tokio::spawn(store.serve(shutdown_signal()));

    let client = cluster.client().await?;
    load_admin_secrets(&client, &data).await?;

    let metrics = Arc::new(Metrics::default());
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(cluster.kubeconfig())
            .map_err(|e| LocalClusterError::Kubeconfig(e.to_string()))?,
        &Default::default(),
    )
    .await
    .map_err(|e| LocalClusterError::Kubeconfig(e.to_string()))?;
    let operator_client = operator::client_with_metrics(config, metrics.clone())?;
    let options_run = operator::Options {
        namespace: None,
        listen: options.operator_listen,
        instance: Some("demo".into()),
        concurrency: 16,
        leader_election: None,
        cluster_id: None,
        system_namespace: "default".into(),
    };
    let operator_task = tokio::spawn(operator::run(operator_client, metrics, options_run));

    let environment = bootstrap_environment(&data)?;
    let applied = apply_examples(&client, &options.examples, environment.as_deref()).await?;
    let outcome = wait_until_ready(&applied, options.timeout).await;
    show(&cluster);
    show_warnings(&client).await?;
    println!(
        "\nPoint kubectl at the demo cluster with:\n  export KUBECONFIG={}",
        absolute(cluster.kubeconfig()).display()
    );
    match (&outcome, options.exit_after_ready) {
        (Ok(()), true) => return Ok(()),
        (Err(_), true) => return outcome,
        _ => {}
    }
    if let Err(error) = &outcome {
        eprintln!("warning: {error}");
    }
    println!("The operator keeps running; press Ctrl-C to stop everything.");
    let _ = operator_task.await;
    Ok(())
}

fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Creates the example stores' admin Secrets from the credential store's bootstrap files.
async fn load_admin_secrets(client: &Client, data: &Path) -> Result<(), DemoError> {
    let read = |name: &str| -> Result<Option<String>, DemoError> {
        match std::fs::read_to_string(data.join(name)) {
            Ok(content) => Ok(Some(content.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(DemoError::Read {
                path: data.join(name).display().to_string(),
                source,
            }),
        }
    };
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": OPERATOR_NAMESPACE}}))
        .expect("static");
    Api::<Namespace>::all(client.clone())
        .patch(
            OPERATOR_NAMESPACE,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(&ns),
        )
        .await?;

    let mut secrets: Vec<(&str, &str, BTreeMap<String, String>)> = Vec::new();
    if let Some(token) = read(credstore::bootstrap::PREFACTOR_TOKEN_FILE)? {
        let data: BTreeMap<_, _> = [("token".to_string(), token)].into();
        secrets.push((EXAMPLES_NAMESPACE, "prefactor-admin", data.clone()));
        secrets.push((OPERATOR_NAMESPACE, "prefactor-admin", data));
    }
    // The admin user, as an open-source ZenML server needs; a data directory from before
    // the store had one still offers its service-account key.
    let zenml_user = (
        read(credstore::bootstrap::ZENML_ADMIN_USER_FILE)?,
        read(credstore::bootstrap::ZENML_ADMIN_PASSWORD_FILE)?,
    );
    if let (Some(username), Some(password)) = zenml_user {
        let data = [
            ("username".to_string(), username),
            ("password".to_string(), password),
        ];
        secrets.push((EXAMPLES_NAMESPACE, "zenml-admin", data.into()));
    } else if let Some(key) = read(credstore::bootstrap::ZENML_API_KEY_FILE)? {
        secrets.push((
            EXAMPLES_NAMESPACE,
            "zenml-admin",
            [("apiKey".to_string(), key)].into(),
        ));
    }
    if let Some(key) = read(credstore::bootstrap::TREND_SECRET_KEY_FILE)? {
        secrets.push((
            EXAMPLES_NAMESPACE,
            "trend-micro-admin",
            [("apiSecretKey".to_string(), key)].into(),
        ));
    }
    if let Some(edgerc) = read(credstore::bootstrap::AKAMAI_EDGERC_FILE)? {
        secrets.push((EXAMPLES_NAMESPACE, "akamai-admin", edgerc_fields(&edgerc)));
    }
    for (namespace, name, string_data) in secrets {
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "stringData": string_data,
        }))
        .expect("static shape");
        Api::<Secret>::namespaced(client.clone(), namespace)
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&secret),
            )
            .await?;
        info!(%namespace, %name, "store credential Secret loaded");
    }
    Ok(())
}

/// The `key = value` lines of an .edgerc's `[default]` section.
fn edgerc_fields(edgerc: &str) -> BTreeMap<String, String> {
    edgerc
        .lines()
        .skip_while(|line| line.trim() != "[default]")
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The Prefactor environment the embedded store bootstrapped (from `bootstrap.json`).
fn bootstrap_environment(data: &Path) -> Result<Option<String>, DemoError> {
    let path = data.join(credstore::bootstrap::IDS_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| DemoError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let ids: serde_json::Value = serde_json::from_str(&text).map_err(|e| DemoError::Manifest {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(ids["prefactor"]["environmentId"].as_str().map(str::to_string))
}

/// Server-side applies every document of every `.yaml` file in `dir`. An ApiToken's
/// `environmentId` is replaced by the embedded store's environment, the only one it has.
async fn apply_examples(
    client: &Client,
    dir: &Path,
    environment: Option<&str>,
) -> Result<Vec<(Api<DynamicObject>, String)>, DemoError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| DemoError::Read {
            path: dir.display().to_string(),
            source,
        })?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut applied = Vec::new();
    for file in files {
        let path = file.display().to_string();
        let text = std::fs::read_to_string(&file).map_err(|source| DemoError::Read {
            path: path.clone(),
            source,
        })?;
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(document).map_err(|e| DemoError::Manifest {
                path: path.clone(),
                message: e.to_string(),
            })?;
            if value.is_null() {
                continue;
            }
            let mut object: DynamicObject =
                serde_yaml::from_value(value).map_err(|e| DemoError::Manifest {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            if let (Some(id), Some(spec)) = (environment, object.data.get_mut("spec"))
                && spec.get("environmentId").is_some()
            {
                info!(name = %object.metadata.name.as_deref().unwrap_or_default(), environment = id, "using the embedded store's environment");
                spec["environmentId"] = serde_json::Value::String(id.to_string());
            }
            let types = object.types.clone().ok_or_else(|| DemoError::Manifest {
                path: path.clone(),
                message: "no apiVersion/kind".into(),
            })?;
            let gvk = GroupVersionKind::try_from(&types).map_err(|e| DemoError::Manifest {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let (resource, capabilities) = kube::discovery::pinned_kind(client, &gvk).await?;
            let api = match capabilities.scope {
                Scope::Namespaced => Api::namespaced_with(client.clone(), EXAMPLES_NAMESPACE, &resource),
                Scope::Cluster => Api::all_with(client.clone(), &resource),
            };
            let name = object.name_any();
            api.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await?;
            info!(kind = %types.kind, %name, "applied");
            // The workloads the keys restart are only there to be restarted: without a
            // kubelet they never run, and nothing waits for them.
            if gvk.group == crate::api::GROUP {
                applied.push((api, name));
            }
        }
    }
    Ok(applied)
}

/// Waits until every applied apikeys.dev object reports `Ready=True` for its current generation.
async fn wait_until_ready(
    applied: &[(Api<DynamicObject>, String)],
    timeout: Duration,
) -> Result<(), DemoError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut waiting = Vec::new();
        for (api, name) in applied {
            let object = api.get(name).await?;
            if !is_ready(&object) {
                let kind = object.types.as_ref().map(|t| t.kind.clone()).unwrap_or_default();
                waiting.push(format!("{kind}/{name}"));
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(DemoError::NotReady(timeout, waiting.join(", ")));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn is_ready(object: &DynamicObject) -> bool {
    let status = &object.data["status"];
    let ready = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    ready && status["observedGeneration"].as_i64() == object.metadata.generation
}

/// Prints what a user would look at with kubectl.
fn show(cluster: &LocalCluster) {
    for args in [
        vec!["get", "credentialstores,clustercredentialstores", "-A"],
        vec!["get", "apikeys", "-A"],
        vec![
            "get",
            "secrets",
            "-A",
            "-l",
            "app.kubernetes.io/managed-by=apikey-operator",
        ],
    ] {
        println!("\n$ kubectl {}", args.join(" "));
        match cluster.kubectl().args(&args).output() {
            Ok(output) => {
                print!("{}", String::from_utf8_lossy(&output.stdout));
                eprint!("{}", String::from_utf8_lossy(&output.stderr));
            }
            Err(error) => eprintln!("cannot run kubectl: {error}"),
        }
    }
}

/// Prints the Warning events of the examples' namespace: a healthy demo has none.
async fn show_warnings(client: &Client) -> Result<(), DemoError> {
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), EXAMPLES_NAMESPACE);
    let warnings: Vec<String> = events
        .list(&kube::api::ListParams::default())
        .await?
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .map(|e| {
            let regarding = e.regarding.unwrap_or_default();
            format!(
                "  {}/{} {}: {}",
                regarding.kind.unwrap_or_default(),
                regarding.name.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default()
            )
        })
        .collect();
    match warnings.is_empty() {
        true => println!(
            "
Warning events: none"
        ),
        false => println!(
            "
Warning events:
{}",
            warnings.join("\n")
        ),
    }
    Ok(())
}

async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
