//! The embedded credential store and the operator, each started as a real process of the
//! crate's binary, shared by the tests of this binary.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};

use crate::support;

/// A credential store process and what tests need to talk to it.
pub struct Credstore {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// Its data directory, holding the bootstrap credential files.
    pub data: PathBuf,
    /// The bootstrap Prefactor admin token.
    pub prefactor_token: String,
    /// Held, never waited on: the process lives as long as the test binary (PDEATHSIG).
    _process: Child,
}

impl Credstore {
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
    CREDSTORE.get_or_init(|| start_credstore(&support::control_plane().dir.join("credstore")))
}

/// The shared operator (watching every namespace), started after the control plane.
pub fn operator() -> &'static Operator {
    OPERATOR.get_or_init(|| start_operator(&support::control_plane().dir, "operator", None))
}

/// A credential store of one test's own, for tests that move its clock or count its
/// requests without disturbing the others.
pub fn private_credstore(name: &str) -> Credstore {
    start_credstore(&support::control_plane().dir.join(format!("credstore-{name}")))
}

/// Starts a credential store with its data in `dir`.
pub fn start_credstore(dir: &Path) -> Credstore {
    let mut command = Command::new(env!("CARGO_BIN_EXE_apikey-operator"));
    command
        .args(["credstore", "--listen", "127.0.0.1:0", "--admin-api", "--data"])
        .arg(dir)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(log_file(&dir.with_extension("log")));
    let mut child = spawn_lasting(command);
    let stdout = child.stdout.take().expect("piped stdout");
    let mut first_line = String::new();
    BufReader::new(stdout)
        .read_line(&mut first_line)
        .expect("credstore prints its address");
    let address = first_line
        .trim()
        .strip_prefix("credstore listening on ")
        .unwrap_or_else(|| panic!("unexpected first line from the credential store: {first_line:?}"));
    let prefactor_token = std::fs::read_to_string(dir.join("prefactor.token"))
        .expect("bootstrap token")
        .trim()
        .to_string();
    Credstore {
        url: format!("http://{address}"),
        data: dir.to_path_buf(),
        prefactor_token,
        _process: child,
    }
}

/// Starts an operator against the test control plane, logging to `<dir>/<name>.log`.
pub fn start_operator(dir: &Path, name: &str, namespace: Option<&str>) -> Operator {
    let port = free_port();
    let log = dir.join(format!("{name}.log"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_apikey-operator"));
    command
        .args(["run", "--listen", &format!("127.0.0.1:{port}")])
        .env("KUBECONFIG", &support::control_plane().kubeconfig)
        .env(
            "RUST_LOG",
            "debug,hyper=info,kube_client=info,tower=info,h2=info,rustls=info",
        )
        .stdout(Stdio::null())
        .stderr(log_file(&log));
    if let Some(namespace) = namespace {
        command.args(["--namespace", namespace]);
    }
    let process = spawn_lasting(command);
    let probes = format!("http://127.0.0.1:{port}");
    wait_ready(&probes);
    Operator {
        probes,
        log,
        _process: process,
    }
}

fn wait_ready(probes: &str) {
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

pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `command` from a thread that lives as long as the test binary, with a parent-death
/// signal, so the process dies with the test binary however it ends.
pub fn spawn_lasting(mut command: Command) -> Child {
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
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner.lock().unwrap().send((command, reply_tx)).unwrap();
    reply_rx.recv().unwrap().expect("the process starts")
}
