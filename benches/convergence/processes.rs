//! The credential store and the operator as processes of the release binary.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use apikey_operator::api::CredentialStore;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

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
    pub prefactor_token: String,
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
        let prefactor_token = std::fs::read_to_string(dir.join("prefactor.token"))?
            .trim()
            .to_string();
        Ok(Credstore {
            url: format!("http://{address}"),
            prefactor_token,
            _child: child,
        })
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

/// Namespace `namespace` with an admin Secret and a Prefactor store allowed 1000 req/s.
pub async fn prefactor_store(client: &Client, namespace: &str, credstore: &Credstore) -> anyhow::Result<()> {
    let apply = PatchParams::apply("bench").force();
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}}))?;
    Api::<Namespace>::all(client.clone())
        .patch(namespace, &apply, &Patch::Apply(&ns))
        .await?;
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "prefactor-admin"},
        "stringData": {"token": credstore.prefactor_token},
    }))?;
    Api::<Secret>::namespaced(client.clone(), namespace)
        .patch("prefactor-admin", &apply, &Patch::Apply(&secret))
        .await?;
    let store = json!({
        "apiVersion": "apikeys.dev/v1alpha1", "kind": "CredentialStore", "metadata": {"name": "prefactor"},
        "spec": {
            "prefactor": {"url": credstore.url, "credentialsSecretRef": {"name": "prefactor-admin"}},
            "rateLimit": {"requestsPerSecond": 1000, "burst": 1000},
        },
    });
    let stores: Api<CredentialStore> = Api::namespaced(client.clone(), namespace);
    stores.patch("prefactor", &apply, &Patch::Apply(&store)).await?;
    for _ in 0..600 {
        let store = stores.get("prefactor").await?;
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
    bail!("the benchmark's store did not become Ready")
}
