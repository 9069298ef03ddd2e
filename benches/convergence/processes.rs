//! The credential store and the operator as processes of the release binary.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use apikey_operator::api::CredentialStore;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::kinds::Kind;

/// Kills the child with its parent, however the benchmark ends.
fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

pub struct Credstore {
    pub url: String,
    /// Its data directory, holding the bootstrap credential files.
    data: PathBuf,
    _child: Child,
}

impl Credstore {
    pub fn start(binary: &Path, dir: &Path) -> anyhow::Result<Self> {
        let mut command = Command::new(binary);
        command
            .args(["credstore", "--listen", "127.0.0.1:0", "--admin-api", "--data"])
            .arg(dir);
        command.stdout(Stdio::piped()).stderr(Stdio::null());
        die_with_parent(&mut command);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let Some(address) = line.trim().strip_prefix("credstore listening on ") else {
            bail!("unexpected credstore output: {line:?}")
        };
        Ok(Credstore {
            url: format!("http://{address}"),
            data: dir.to_path_buf(),
            _child: child,
        })
    }

    /// A bootstrap credential file (`prefactor.token`, `zenml.api-key`, ...), trimmed.
    pub fn bootstrap_file(&self, name: &str) -> String {
        std::fs::read_to_string(self.data.join(name))
            .unwrap_or_else(|e| panic!("bootstrap file {name}: {e}"))
            .trim()
            .to_string()
    }

    /// The bootstrap `.edgerc` fields (`host`, `client_token`, `client_secret`, `access_token`).
    pub fn akamai_edgerc(&self) -> BTreeMap<String, String> {
        self.bootstrap_file("akamai.edgerc")
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    }
}

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
    let apply = PatchParams::apply("bench").force();
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}}))?;
    Api::<Namespace>::all(client.clone())
        .patch(namespace, &apply, &Patch::Apply(&ns))
        .await?;
    let stores: Api<CredentialStore> = Api::namespaced(client.clone(), namespace);
    for kind in kinds {
        let (spec, data) = kind.store_parts(credstore);
        let secret_name = kind.secret_name();
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret_name}, "stringData": data,
        }))?;
        Api::<Secret>::namespaced(client.clone(), namespace)
            .patch(&secret_name, &apply, &Patch::Apply(&secret))
            .await?;
        let store = json!({
            "apiVersion": "apikeys.dev/v1alpha1", "kind": "CredentialStore",
            "metadata": {"name": kind.store()}, "spec": spec,
        });
        stores.patch(kind.store(), &apply, &Patch::Apply(&store)).await?;
    }
    for kind in kinds {
        wait_store_ready(&stores, kind.store()).await?;
    }
    Ok(())
}

async fn wait_store_ready(stores: &Api<CredentialStore>, name: &str) -> anyhow::Result<()> {
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
