//! The embedded credential store and the operator, each started as a real process of the
//! crate's binary: the shared ones of a test binary, and how each test (or the convergence
//! benchmark) starts its own.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};

use anyhow::{Context, bail};
use apikey_operator::failpoint;
use apikey_operator::localcluster::die_with_parent;

use crate::{envtest, paths};

/// A credential store process and what tests need to talk to it.
pub struct Credstore {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// Its data directory, holding the bootstrap credential files.
    data: PathBuf,
    /// The bootstrap Prefactor admin token.
    pub prefactor_token: String,
    /// Held, never waited on: the process lives as long as the test binary (PDEATHSIG).
    _process: Child,
}

impl Credstore {
    /// Starts `binary credstore` with its data in `dir`. With a `log`, its stderr goes
    /// there at debug level; without one (the benchmark, which must not pay for logging),
    /// nowhere.
    pub fn start(binary: &Path, dir: &Path, log: Option<&Path>) -> anyhow::Result<Self> {
        let mut command = Command::new(binary);
        command
            .args(["credstore", "--listen", "127.0.0.1:0", "--admin-api", "--data"])
            .arg(dir)
            .stdout(Stdio::piped());
        match log {
            Some(log) => command.env("RUST_LOG", "debug").stderr(log_file(log)),
            None => command.stderr(Stdio::null()),
        };
        let mut child =
            try_spawn_lasting(command).with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let mut first_line = String::new();
        BufReader::new(stdout)
            .read_line(&mut first_line)
            .context("credstore prints its address")?;
        let Some(address) = first_line.trim().strip_prefix("credstore listening on ") else {
            bail!("unexpected first line from the credential store: {first_line:?}")
        };
        let prefactor_token = std::fs::read_to_string(dir.join("prefactor.token"))
            .context("bootstrap token")?
            .trim()
            .to_string();
        Ok(Credstore {
            url: format!("http://{address}"),
            data: dir.to_path_buf(),
            prefactor_token,
            _process: child,
        })
    }

    /// A bootstrap credential file of the data directory (`zenml.api-key`,
    /// `trendmicro.secret-key`, `.edgerc`, `bootstrap.json`).
    pub fn bootstrap_file(&self, name: &str) -> String {
        std::fs::read_to_string(self.data.join(name))
            .unwrap_or_else(|e| panic!("bootstrap file {name}: {e}"))
            .trim()
            .to_string()
    }
}

/// An operator process.
pub struct Operator {
    /// `http://127.0.0.1:PORT` serving /healthz, /readyz, /metrics.
    pub probes: String,
    /// Its log (debug level), scanned by the secret-leak test.
    pub log: PathBuf,
    /// Held, never waited on: the process lives as long as the test binary (PDEATHSIG).
    _process: Child,
}

static CREDSTORE: OnceLock<Credstore> = OnceLock::new();
static OPERATOR: OnceLock<Operator> = OnceLock::new();

/// The shared credential store.
pub fn credstore() -> &'static Credstore {
    CREDSTORE.get_or_init(|| start_credstore(&envtest::control_plane().dir.join("credstore")))
}

/// The shared operator (watching every namespace), started after the control plane.
pub fn operator() -> &'static Operator {
    OPERATOR.get_or_init(|| start_operator(&envtest::control_plane().dir, "operator", None))
}

/// A credential store of one test's own, for tests that move its clock or count its
/// requests without disturbing the others.
pub fn private_credstore(name: &str) -> Credstore {
    start_credstore(&envtest::control_plane().dir.join(format!("credstore-{name}")))
}

/// Starts a credential store of the crate's binary with its data in `dir`, logging to
/// `<dir>.log`.
pub fn start_credstore(dir: &Path) -> Credstore {
    Credstore::start(&paths::operator_binary(), dir, Some(&dir.with_extension("log")))
        .unwrap_or_else(|error| panic!("the credential store did not start: {error:#}"))
}

/// Starts an operator against the test control plane, logging to `<dir>/<name>.log`.
pub fn start_operator(dir: &Path, name: &str, namespace: Option<&str>) -> Operator {
    let log = dir.join(format!("{name}.log"));
    let mut command = OperatorCommand::new(&envtest::control_plane().kubeconfig)
        .with_probes()
        .log(&log)
        .env(
            "RUST_LOG",
            "debug,hyper=info,kube_client=info,tower=info,h2=info,rustls=info",
        );
    if let Some(namespace) = namespace {
        command = command.namespace(namespace);
    }
    let probes = command.probes();
    let process = command.spawn();
    wait_ready(&probes);
    Operator {
        probes,
        log,
        _process: process,
    }
}

/// `apikey-operator run`, as every test that starts an operator runs it: against the
/// cluster of a kubeconfig, logging at info level, not armed at any failpoint (unless
/// [`failpoint::ENV`] is set with [`OperatorCommand::env`]), with probes on a port of the
/// system's choosing unless [`OperatorCommand::with_probes`] is asked for.
pub struct OperatorCommand {
    command: Command,
    /// The probes' port; 0 until [`OperatorCommand::with_probes`].
    port: u16,
}

impl OperatorCommand {
    pub fn new(kubeconfig: &Path) -> Self {
        let mut command = Command::new(paths::operator_binary());
        command
            .arg("run")
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info")
            .env_remove(failpoint::ENV)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        OperatorCommand { command, port: 0 }
    }

    /// Watches only `namespace`.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.command.args(["--namespace", namespace]);
        self
    }

    /// Runs the controllers only while holding the lease.
    pub fn leader_election(mut self) -> Self {
        self.command.arg("--leader-election");
        self
    }

    pub fn lease_name(mut self, lease: &str) -> Self {
        self.command.args(["--lease-name", lease]);
        self
    }

    /// Writes the process's log (stderr) to `path`.
    pub fn log(mut self, path: &Path) -> Self {
        self.command.stderr(log_file(path));
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// Serves the probes on a free port, so that [`OperatorCommand::probes`] can tell where.
    pub fn with_probes(mut self) -> Self {
        self.port = free_port();
        self
    }

    /// `http://127.0.0.1:PORT`, serving /healthz, /readyz and /metrics.
    pub fn probes(&self) -> String {
        assert_ne!(self.port, 0, "ask for with_probes() to know where the probes are");
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the process (see [`spawn_lasting`]).
    pub fn spawn(mut self) -> Child {
        self.command
            .args(["--listen", &format!("127.0.0.1:{}", self.port)]);
        spawn_lasting(self.command)
    }
}

/// The samples of the operator's `/metrics` at `probes`, keyed by series (`name{labels}`);
/// `None` while the probes are not up.
pub async fn scrape(probes: &str) -> Option<BTreeMap<String, f64>> {
    let text = reqwest::get(format!("{probes}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let samples = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect();
    Some(samples)
}

pub fn wait_ready(probes: &str) {
    let url = format!("{probes}/readyz");
    // A thread of its own: this may run inside a test's async runtime.
    let ready = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
            while tokio::time::Instant::now() < deadline {
                if reqwest::get(&url).await.is_ok_and(|r| r.status().is_success()) {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            false
        })
    })
    .join()
    .unwrap();
    assert!(ready, "the operator did not become ready at {probes}");
}

fn log_file(path: &Path) -> std::fs::File {
    std::fs::File::create(path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()))
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `command` from a thread that lives as long as the test binary, with a parent-death
/// signal, so the process dies with the test binary however it ends.
pub(crate) fn spawn_lasting(command: Command) -> Child {
    try_spawn_lasting(command).expect("the process starts")
}

fn try_spawn_lasting(mut command: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("process-spawner".into())
            .spawn(move || {
                // The sender is a static, so this loop (and the thread) lasts until exit.
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .unwrap();
        Mutex::new(tx)
    });
    die_with_parent(&mut command);
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner.lock().unwrap().send((command, reply_tx)).unwrap();
    reply_rx.recv().unwrap()
}
