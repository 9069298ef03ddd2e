//! One real control plane (etcd + kube-apiserver) per test binary, with the CRDs installed,
//! and server-side apply of the objects tests read from YAML.
//!
//! The binaries come from `KUBEBUILDER_ASSETS` or `tests/envtest/setup.sh`. When they cannot
//! be had or the control plane does not start, every test fails with the reason: the suite
//! never skips.

use std::path::{Path, PathBuf};
use std::sync::{OnceLock, mpsc};

use apikey_operator::localcluster::LocalCluster;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::discovery::Scope;
use serde::Deserialize;

use crate::paths;

/// What tests need to reach the shared control plane.
pub struct ControlPlane {
    pub kubeconfig: PathBuf,
    pub assets: PathBuf,
    /// Holds etcd's data, the certificates and the process logs.
    pub dir: PathBuf,
}

static CONTROL_PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

/// The shared control plane, started on first use.
pub fn control_plane() -> &'static ControlPlane {
    match CONTROL_PLANE.get_or_init(start) {
        Ok(control_plane) => control_plane,
        Err(reason) => panic!("the test control plane is unavailable: {reason}"),
    }
}

/// A client authenticated as cluster admin.
pub async fn client() -> Client {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&control_plane().kubeconfig).expect("kubeconfig is readable"),
        &Default::default(),
    )
    .await
    .expect("kubeconfig is valid");
    Client::try_from(config).expect("client builds")
}

/// Creates a fresh namespace named after `prefix` for one test.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let name = format!("{prefix}-{}", &uuid_like()[..8]);
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
    name
}

/// `kubectl` pointed at the control plane.
pub fn kubectl() -> std::process::Command {
    let control_plane = control_plane();
    let mut command = std::process::Command::new(control_plane.assets.join("kubectl"));
    command.env("KUBECONFIG", &control_plane.kubeconfig);
    command
}

fn uuid_like() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn start() -> Result<ControlPlane, String> {
    let assets = assets()?;
    let dir = run_dir();
    let thread_dir = dir.clone();
    let (ready_tx, ready_rx) = mpsc::channel();
    let thread_assets = assets.clone();
    // The control plane's processes die with the thread that started them (PDEATHSIG), so
    // they are started from a thread that lives as long as the test binary.
    std::thread::Builder::new()
        .name("control-plane".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let started = runtime.block_on(async {
                let cluster = LocalCluster::start(&thread_assets, &thread_dir).await?;
                cluster.install_crds(&apikey_operator::api::crds()).await?;
                Ok::<_, apikey_operator::localcluster::LocalClusterError>(cluster)
            });
            match started {
                Ok(cluster) => {
                    let _ = ready_tx.send(Ok(cluster.kubeconfig().to_path_buf()));
                    let _keep_running = cluster;
                    loop {
                        std::thread::park();
                    }
                }
                Err(error) => {
                    let _ = ready_tx.send(Err(error.to_string()));
                }
            }
        })
        .map_err(|e| format!("cannot start the control-plane thread: {e}"))?;
    let kubeconfig = ready_rx
        .recv()
        .map_err(|_| "the control-plane thread died".to_string())??;
    Ok(ControlPlane {
        kubeconfig,
        assets,
        dir,
    })
}

/// `KUBEBUILDER_ASSETS` if set, otherwise whatever `tests/envtest/setup.sh` builds or finds.
pub fn assets() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("KUBEBUILDER_ASSETS") {
        return Ok(PathBuf::from(dir));
    }
    let script = paths::repo().join("tests/envtest/setup.sh");
    let output = std::process::Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !output.status.success() {
        return Err(format!("{} failed ({})", script.display(), output.status));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .last()
        .map(PathBuf::from)
        .ok_or_else(|| format!("{} printed nothing", script.display()))
}

/// A directory for this run's etcd data, certificates and logs; earlier runs' directories
/// whose process is gone are removed first.
fn run_dir() -> PathBuf {
    let base = paths::target_tmpdir().join("envtest");
    if let Ok(entries) = std::fs::read_dir(&base) {
        for entry in entries.flatten() {
            let pid = entry
                .file_name()
                .to_string_lossy()
                .split('-')
                .next_back()
                .unwrap_or_default()
                .to_string();
            if !Path::new("/proc").join(&pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    base.join(format!("run-{}", std::process::id()))
}

/// Parses a multi-document YAML stream into objects (empty documents skipped).
pub fn parse_documents(yaml: &str) -> Vec<DynamicObject> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|document| serde_yaml::Value::deserialize(document).expect("valid YAML"))
        .filter(|value| !value.is_null())
        .map(|value| serde_yaml::from_value(value).expect("a Kubernetes object"))
        .collect()
}

/// The API for `object`'s kind, in `namespace` when the kind is namespaced.
pub async fn api_for(client: &Client, object: &DynamicObject, namespace: &str) -> Api<DynamicObject> {
    let types = object.types.as_ref().expect("apiVersion and kind are set");
    let gvk = GroupVersionKind::try_from(types).expect("a valid apiVersion");
    let (resource, capabilities) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .expect("the kind is served");
    match capabilities.scope {
        Scope::Namespaced => Api::namespaced_with(client.clone(), namespace, &resource),
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    }
}

/// Server-side applies `object` (into `namespace` when namespaced) as field manager `tests`.
pub async fn apply(
    client: &Client,
    object: &DynamicObject,
    namespace: &str,
) -> Result<DynamicObject, kube::Error> {
    let api = api_for(client, object, namespace).await;
    let name = object.metadata.name.clone().expect("metadata.name is set");
    api.patch(&name, &PatchParams::apply("tests").force(), &Patch::Apply(object))
        .await
}
