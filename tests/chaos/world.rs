//! One namespace with its own credential store, a store of each of the four APIs, and the
//! operator processes (scoped to the namespace) that the tests kill and restart.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Child;

use apikey_operator::api::CredentialStore;
use kube::Client;
use kube::api::Api;
use serde_json::{Value, json};

use apikey_operator_test_support::envtest;
use apikey_operator_test_support::fixtures::{self, is_ready, wait_for};
use apikey_operator_test_support::processes::{self, Credstore, OperatorCommand};

/// The four stores, by name.
pub const STORES: [&str; 4] = ["prefactor", "zenml", "trend", "akamai"];

pub struct World {
    pub client: Client,
    pub namespace: String,
    pub credstore: Credstore,
    /// Logs of this world's processes.
    pub dir: PathBuf,
    /// The credential store's `bootstrap.json`: the admin objects every listing includes.
    pub bootstrap: Value,
}

impl World {
    pub async fn new(prefix: &str) -> Self {
        let client = envtest::client().await;
        let namespace = envtest::namespace(&client, prefix).await;
        let dir = envtest::control_plane().dir.join(&namespace);
        std::fs::create_dir_all(&dir).unwrap();
        let credstore = processes::start_credstore(&dir.join("credstore"));
        let bootstrap = serde_json::from_str(&credstore.bootstrap_file("bootstrap.json")).unwrap();
        fixtures::prefactor_store(&client, &namespace, "prefactor", &credstore).await;
        fixtures::zenml_store(&client, &namespace, "zenml", &credstore).await;
        fixtures::trend_store(&client, &namespace, "trend", &credstore).await;
        fixtures::akamai_store(&client, &namespace, "akamai", &credstore).await;
        let stores: Api<CredentialStore> = Api::namespaced(client.clone(), &namespace);
        // Above the default (10/s), so that 200 resources converge in the test's budget; the
        // operator still paces itself per store.
        for store in STORES {
            fixtures::merge(
                &stores,
                store,
                json!({"spec": {"rateLimit": {"requestsPerSecond": 40, "burst": 20}}}),
            )
            .await;
        }
        World {
            client,
            namespace,
            credstore,
            dir,
            bootstrap,
        }
    }

    /// Waits until every store reports Ready (needs a running operator).
    pub async fn stores_ready(&self) {
        let stores: Api<CredentialStore> = Api::namespaced(self.client.clone(), &self.namespace);
        for store in STORES {
            wait_for(&stores, store, "store Ready", is_ready).await;
        }
    }
}

/// The operator of one world: one process at a time, killed with SIGKILL and restarted.
pub struct Operator {
    namespace: String,
    dir: PathBuf,
    process: Option<Child>,
    /// Processes started so far (each logs to `operator-<n>.log`).
    pub started: u32,
    /// Processes that died of the SIGKILL they were sent.
    pub killed: u32,
}

impl Operator {
    pub fn start(world: &World) -> Self {
        let mut operator = Operator {
            namespace: world.namespace.clone(),
            dir: world.dir.clone(),
            process: None,
            started: 0,
            killed: 0,
        };
        operator.spawn();
        operator
    }

    fn spawn(&mut self) {
        self.started += 1;
        let log = self.dir.join(format!("operator-{}.log", self.started));
        let command = OperatorCommand::new(&envtest::control_plane().kubeconfig)
            .namespace(&self.namespace)
            .log(&log);
        self.process = Some(command.spawn());
    }

    /// SIGKILLs the running process (which must still be running: an operator that exited
    /// by itself is a failure) and starts a fresh one.
    pub fn kill_and_restart(&mut self) {
        let mut process = self.process.take().expect("an operator is running");
        if let Some(status) = process.try_wait().unwrap() {
            panic!(
                "operator-{} exited by itself ({status}); see {}",
                self.started,
                self.dir.display()
            );
        }
        process.kill().unwrap();
        let status = process.wait().unwrap();
        // Only a process that was still running when the signal came dies of it.
        if status.signal() == Some(libc::SIGKILL) {
            self.killed += 1;
        }
        self.spawn();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}
