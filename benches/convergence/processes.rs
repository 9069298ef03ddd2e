//! The operator as a process of the release binary (the credential store is the test-support
//! crate's, started from the same binary), and the stores it serves.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use apikey_operator::api::CredentialStore;
use apikey_operator::localcluster::die_with_parent;
use apikey_operator_test_support::processes::Credstore;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::kinds::Kind;

pub struct Operator {
    pub probes: String,
    child: std::cell::RefCell<Child>,
}

impl Operator {
    pub fn start(binary: &Path, kubeconfig: &Path, log: &Path) -> anyhow::Result<Self> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        let mut command = Command::new(binary);
        command
            .args(["run", "--listen", &format!("127.0.0.1:{port}")])
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?);
        die_with_parent(&mut command);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Operator {
            probes: format!("http://127.0.0.1:{port}"),
            child: child.into(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.borrow().id()
    }

    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        for _ in 0..600 {
            if reqwest::get(format!("{}/readyz", self.probes))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the operator did not become ready")
    }

    /// Stops the operator (SIGTERM, then waits).
    pub fn stop(&self) {
        let mut child = self.child.borrow_mut();
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait();
    }
}

/// Namespace `namespace` with one store per kind in `kinds` (and its admin Secret), each
/// allowed 1000 req/s, once they are Ready.
pub async fn stores(
    client: &Client,
    namespace: &str,
    credstore: &Credstore,
    kinds: &[Kind],
) -> anyhow::Result<()> {
    for kind in kinds {
        let (spec, data) = kind.store_parts(credstore);
        apply_store(client, namespace, kind.store(), spec, data).await?;
    }
    let stores: Api<CredentialStore> = Api::namespaced(client.clone(), namespace);
    for kind in kinds {
        wait_store_ready(&stores, kind.store()).await?;
    }
    Ok(())
}

/// Applies namespace `namespace`, the Secret its store `name` names in `spec` (holding
/// `data`) and the store.
pub async fn apply_store(
    client: &Client,
    namespace: &str,
    name: &str,
    spec: Value,
    data: BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let apply = PatchParams::apply("bench").force();
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}}))?;
    Api::<Namespace>::all(client.clone())
        .patch(namespace, &apply, &Patch::Apply(&ns))
        .await?;
    let provider = spec
        .as_object()
        .and_then(|s| s.values().find(|v| v.get("credentialsSecretRef").is_some()));
    let secret_name = provider
        .and_then(|p| p["credentialsSecretRef"]["name"].as_str())
        .context("the store spec names its credentials Secret")?
        .to_string();
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret_name}, "stringData": data,
    }))?;
    Api::<Secret>::namespaced(client.clone(), namespace)
        .patch(&secret_name, &apply, &Patch::Apply(&secret))
        .await?;
    let store = json!({
        "apiVersion": "apikeys.dev/v1alpha1", "kind": "CredentialStore",
        "metadata": {"name": name}, "spec": spec,
    });
    Api::<CredentialStore>::namespaced(client.clone(), namespace)
        .patch(name, &apply, &Patch::Apply(&store))
        .await?;
    Ok(())
}

pub async fn wait_store_ready(stores: &Api<CredentialStore>, name: &str) -> anyhow::Result<()> {
    for _ in 0..600 {
        let store = stores.get(name).await?;
        if store
            .status
            .iter()
            .flat_map(|s| &s.conditions)
            .any(|c| c.type_ == "Ready" && c.status == "True")
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the benchmark's store {name} did not become Ready")
}
