//! A local Kubernetes control plane: etcd and kube-apiserver started as child processes,
//! the way controller-runtime's envtest does it. Used by the integration tests and the demo.
//!
//! The binaries come from `tests/envtest/setup.sh` (or `KUBEBUILDER_ASSETS`). Serving
//! certificates and the service-account signing key are generated at start; the admin
//! authenticates with a static token in group `system:masters`; RBAC authorization is on.

use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use tokio::process::{Child, Command};

/// How long etcd and kube-apiserver get to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// The field manager used to install CRDs.
const FIELD_MANAGER: &str = "apikey-operator-localcluster";

#[derive(Debug, thiserror::Error)]
pub enum LocalClusterError {
    #[error("{binary} not found in {dir}: run tests/envtest/setup.sh or set KUBEBUILDER_ASSETS")]
    MissingBinary { binary: &'static str, dir: String },
    #[error("preparing {what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("generating certificates: {0}")]
    Certificates(#[from] rcgen::Error),
    #[error("{process} did not become ready within {timeout:?}; its log is {log}")]
    NotReady {
        process: &'static str,
        timeout: Duration,
        log: String,
    },
    #[error("{process} exited during start-up ({status}); its log is {log}")]
    Exited {
        process: &'static str,
        status: std::process::ExitStatus,
        log: String,
    },
    #[error("building a client from the kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("talking to the API server: {0}")]
    Kube(#[from] kube::Error),
}

type Result<T, E = LocalClusterError> = std::result::Result<T, E>;

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> LocalClusterError {
    move |source| LocalClusterError::Io { what, source }
}

/// A running etcd + kube-apiserver. Dropping it kills both.
pub struct LocalCluster {
    assets: PathBuf,
    dir: PathBuf,
    etcd: Child,
    apiserver: Child,
    kubeconfig: PathBuf,
    server_url: String,
    etcd_url: String,
    apiserver_port: u16,
    apiserver_args: Vec<String>,
}

impl LocalCluster {
    /// Starts etcd and kube-apiserver from the binaries in `assets`, keeping their data,
    /// certificates and logs in `dir` (which must exist and be empty or absent).
    pub async fn start(assets: &Path, dir: &Path) -> Result<Self> {
        Self::start_with_apiserver_args(assets, dir, &[]).await
    }

    /// Like [`LocalCluster::start`], with extra kube-apiserver flags (e.g. admission plugins
    /// a production cluster enables).
    pub async fn start_with_apiserver_args(assets: &Path, dir: &Path, extra: &[&str]) -> Result<Self> {
        for binary in ["etcd", "kube-apiserver"] {
            if !assets.join(binary).is_file() {
                return Err(LocalClusterError::MissingBinary {
                    binary,
                    dir: assets.display().to_string(),
                });
            }
        }
        std::fs::create_dir_all(dir.join("certs")).map_err(io("the control plane directory"))?;
        // The kubeconfig names files by path; absolute paths work from any directory.
        let dir = &std::fs::canonicalize(dir).map_err(io("the control plane directory"))?;
        let pki = Pki::generate()?;
        pki.write(&dir.join("certs"))?;

        let etcd_client_port = free_port()?;
        let etcd_peer_port = free_port()?;
        let etcd_url = format!("http://127.0.0.1:{etcd_client_port}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer_port}");
        let mut etcd = spawn(
            Command::new(assets.join("etcd")).args([
                "--name=default",
                &format!("--data-dir={}", dir.join("etcd").display()),
                &format!("--listen-client-urls={etcd_url}"),
                &format!("--advertise-client-urls={etcd_url}"),
                &format!("--listen-peer-urls={peer_url}"),
                &format!("--initial-advertise-peer-urls={peer_url}"),
                &format!("--initial-cluster=default={peer_url}"),
                "--unsafe-no-fsync=true",
            ]),
            &dir.join("etcd.log"),
        )?;

        let apiserver_port = free_port()?;
        let server_url = format!("https://127.0.0.1:{apiserver_port}");
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            kubeconfig_yaml(&server_url, &dir.join("certs/ca.crt"), &pki.admin_token),
        )
        .map_err(io("the kubeconfig"))?;

        wait_until("etcd", &mut etcd, &dir.join("etcd.log"), || {
            etcd_healthy(&etcd_url)
        })
        .await?;
        let apiserver = spawn_apiserver(assets, dir, &etcd_url, apiserver_port, extra)?;
        let mut cluster = LocalCluster {
            assets: assets.to_path_buf(),
            dir: dir.to_path_buf(),
            etcd,
            apiserver,
            kubeconfig,
            server_url,
            etcd_url,
            apiserver_port,
            apiserver_args: extra.iter().map(|arg| arg.to_string()).collect(),
        };
        cluster.wait_for_apiserver().await?;
        Ok(cluster)
    }

    /// Kills kube-apiserver, waits `down`, and starts it again on the same port, etcd and
    /// flags: what a control-plane upgrade or crash looks like to the operator.
    pub async fn restart_apiserver(&mut self, down: Duration) -> Result<()> {
        self.apiserver
            .kill()
            .await
            .map_err(io("stopping kube-apiserver"))?;
        tokio::time::sleep(down).await;
        let extra: Vec<&str> = self.apiserver_args.iter().map(String::as_str).collect();
        self.apiserver = spawn_apiserver(
            &self.assets,
            &self.dir,
            &self.etcd_url,
            self.apiserver_port,
            &extra,
        )?;
        self.wait_for_apiserver().await
    }

    /// Path of a kubeconfig whose current context is the cluster admin.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server's URL.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// A `kubectl` command (from the same assets) pointed at this cluster.
    pub fn kubectl(&self) -> std::process::Command {
        let mut command = std::process::Command::new(self.assets.join("kubectl"));
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST");
        command
    }

    /// A client authenticated as the cluster admin.
    pub async fn client(&self) -> Result<kube::Client> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)
            .map_err(|e| LocalClusterError::Kubeconfig(e.to_string()))?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| LocalClusterError::Kubeconfig(e.to_string()))?;
        Ok(kube::Client::try_from(config)?)
    }

    /// Applies `crds` (server-side) and waits until every one is Established.
    pub async fn install_crds(&self, crds: &[CustomResourceDefinition]) -> Result<()> {
        let api: Api<CustomResourceDefinition> = Api::all(self.client().await?);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        for crd in crds {
            let name = crd.metadata.name.clone().unwrap_or_default();
            api.patch(&name, &params, &Patch::Apply(crd)).await?;
        }
        for crd in crds {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let established = kube::runtime::conditions::is_crd_established();
            let wait = kube::runtime::wait::await_condition(api.clone(), &name, established);
            tokio::time::timeout(START_TIMEOUT, wait)
                .await
                .map_err(|_| LocalClusterError::NotReady {
                    process: "CRD establishment",
                    timeout: START_TIMEOUT,
                    log: self.dir.join("kube-apiserver.log").display().to_string(),
                })?
                .map_err(|e| LocalClusterError::Kubeconfig(e.to_string()))?;
        }
        self.wait_for_openapi(crds).await
    }

    /// Waits until the OpenAPI v3 document of every CRD's group/version describes its kind:
    /// the API server publishes it a moment after the CRD is Established, and `kubectl
    /// explain` and field validation depend on it.
    async fn wait_for_openapi(&self, crds: &[CustomResourceDefinition]) -> Result<()> {
        let client = self.client().await?;
        for crd in crds {
            for version in &crd.spec.versions {
                let path = format!("/openapi/v3/apis/{}/{}", crd.spec.group, version.name);
                let schema_name = format!(".{}.{}\"", version.name, crd.spec.names.kind);
                let deadline = tokio::time::Instant::now() + START_TIMEOUT;
                loop {
                    let request = http::Request::get(path.as_str())
                        .body(Vec::new())
                        .expect("static request");
                    if client
                        .request_text(request)
                        .await
                        .is_ok_and(|body| body.contains(&schema_name))
                    {
                        break;
                    }
                    if tokio::time::Instant::now() > deadline {
                        return Err(LocalClusterError::NotReady {
                            process: "OpenAPI publication",
                            timeout: START_TIMEOUT,
                            log: self.dir.join("kube-apiserver.log").display().to_string(),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        Ok(())
    }

    async fn wait_for_apiserver(&mut self) -> Result<()> {
        let client = self.client().await?;
        let log = self.dir.join("kube-apiserver.log");
        wait_until("kube-apiserver", &mut self.apiserver, &log, || {
            let client = client.clone();
            async move {
                let ready = client
                    .request_text(
                        http::Request::get("/readyz")
                            .body(Vec::new())
                            .expect("static request"),
                    )
                    .await
                    .is_ok_and(|body| body.trim() == "ok");
                // The default namespace appears once the bootstrap controllers have run.
                ready
                    && Api::<Namespace>::all(client)
                        .get_opt("default")
                        .await
                        .is_ok_and(|ns| ns.is_some())
            }
        })
        .await
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = self.apiserver.start_kill();
        let _ = self.etcd.start_kill();
    }
}

fn spawn_apiserver(assets: &Path, dir: &Path, etcd_url: &str, port: u16, extra: &[&str]) -> Result<Child> {
    let certs = dir.join("certs");
    let cert = |name: &str| certs.join(name).display().to_string();
    let mut command = Command::new(assets.join("kube-apiserver"));
    command.args(extra);
    spawn(
        command.args([
            &format!("--etcd-servers={etcd_url}"),
            &format!("--cert-dir={}", certs.display()),
            &format!("--tls-cert-file={}", cert("apiserver.crt")),
            &format!("--tls-private-key-file={}", cert("apiserver.key")),
            &format!("--secure-port={port}"),
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            "--disable-admission-plugins=ServiceAccount",
            "--authorization-mode=RBAC",
            &format!("--token-auth-file={}", cert("tokens.csv")),
            &format!("--service-account-issuer=https://127.0.0.1:{port}/"),
            &format!("--service-account-key-file={}", cert("sa.pub")),
            &format!("--service-account-signing-key-file={}", cert("sa.key")),
        ]),
        &dir.join("kube-apiserver.log"),
    )
}

/// etcd answers `GET /health` with `{"health":"true"}` once it has a leader.
async fn etcd_healthy(etcd_url: &str) -> bool {
    let Ok(response) = reqwest::get(format!("{etcd_url}/health")).await else {
        return false;
    };
    response
        .text()
        .await
        .is_ok_and(|body| body.contains("\"health\":\"true\""))
}

/// Polls `ready` every 100ms until it holds, the process exits, or the start timeout passes.
async fn wait_until<F, Fut>(process: &'static str, child: &mut Child, log: &Path, mut ready: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    let log = log.display().to_string();
    loop {
        if let Some(status) = child.try_wait().map_err(io("watching a child process"))? {
            return Err(LocalClusterError::Exited { process, status, log });
        }
        if ready().await {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(LocalClusterError::NotReady {
                process,
                timeout: START_TIMEOUT,
                log,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts a child whose output goes to `log` and which dies with the thread that started it
/// (so a crashed or killed test run leaves no etcd or kube-apiserver behind).
fn spawn(command: &mut Command, log: &Path) -> Result<Child> {
    let out = std::fs::File::create(log).map_err(io("a process log"))?;
    let err = out.try_clone().map_err(io("a process log"))?;
    command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true);
    die_with_parent(command.as_std_mut());
    command.spawn().map_err(io("starting a control-plane process"))
}

/// Has the process `command` starts receive SIGKILL when the thread that started it ends
/// (PR_SET_PDEATHSIG), so it cannot outlive a crashed or killed run. The tests and the
/// benchmark start theirs with it too. A `tokio::process::Command` passes `as_std_mut()`.
pub fn die_with_parent(command: &mut std::process::Command) {
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

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io("a free port"))?;
    Ok(listener.local_addr().map_err(io("a free port"))?.port())
}

fn kubeconfig_yaml(server: &str, ca: &Path, token: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: admin
  user:
    token: {token}
contexts:
- name: local
  context:
    cluster: local
    user: admin
    namespace: default
current-context: local
",
        ca = ca.display()
    )
}

/// Certificates and keys generated for one control plane.
struct Pki {
    ca_pem: String,
    serving_cert_pem: String,
    serving_key_pem: String,
    service_account_key_pem: String,
    service_account_public_key_pem: String,
    admin_token: String,
}

impl Pki {
    fn generate() -> Result<Self> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "apikey-operator local CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

        let serving_key = KeyPair::generate()?;
        let mut serving = CertificateParams::new(vec![
            "localhost".to_string(),
            "kubernetes.default.svc".to_string(),
        ])?;
        serving
            .subject_alt_names
            .push(SanType::IpAddress(Ipv4Addr::LOCALHOST.into()));
        serving
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        let serving_cert = serving.signed_by(&serving_key, &ca)?;

        let service_account_key = KeyPair::generate()?;
        Ok(Pki {
            ca_pem: ca.pem(),
            serving_cert_pem: serving_cert.pem(),
            serving_key_pem: serving_key.serialize_pem(),
            service_account_key_pem: service_account_key.serialize_pem(),
            service_account_public_key_pem: service_account_key.public_key_pem(),
            admin_token: random_hex(32),
        })
    }

    fn write(&self, certs: &Path) -> Result<()> {
        let files = [
            ("ca.crt", self.ca_pem.clone()),
            ("apiserver.crt", self.serving_cert_pem.clone()),
            ("apiserver.key", self.serving_key_pem.clone()),
            ("sa.key", self.service_account_key_pem.clone()),
            ("sa.pub", self.service_account_public_key_pem.clone()),
            (
                "tokens.csv",
                format!("{},admin,admin,system:masters\n", self.admin_token),
            ),
        ];
        for (name, content) in files {
            std::fs::write(certs.join(name), content).map_err(io("the control plane certificates"))?;
        }
        Ok(())
    }
}

/// Hex of `bytes` random bytes from the OS.
fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("the OS random source is available");
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}
