//! The credential store served in-process on a real TCP port, for the tests of the store
//! itself (tests/credstore), of the upstream clients (tests/upstream, whose client builders
//! are in `upstream_clients`) and its loopback benchmark.

use std::path::{Path, PathBuf};

use apikey_operator::credstore::{Config, CredStore, FaultSettings};
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{Value, json};
use tempfile::TempDir;

pub struct Store {
    pub base: String,
    pub http: Client,
    dir: TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Store {
    /// A store with the admin API, no faults and ZenML sessions that never expire.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A store whose configuration (that of [`Store::start`]) `configure` changes first:
    /// start-up faults, ZenML session length, no admin API.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("address"),
            data: dir.path().join("data"),
            admin_api: true,
            advertise_address: None,
            clock_offset_seconds: 0,
            zenml_session_minutes: None,
            faults: FaultSettings::default(),
        };
        configure(&mut config);
        let store = CredStore::open(config).await.expect("credstore opens");
        let base = format!("http://{}", store.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(store.serve(async move {
            let _ = rx.await;
        }));
        Self {
            base,
            http: Client::new(),
            dir,
            shutdown: Some(tx),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A bootstrap file the store wrote into its data directory.
    pub fn file(&self, name: &str) -> String {
        read_data_file(&self.data_dir(), name)
    }

    /// The bootstrap ids (`bootstrap.json`) of one API.
    pub fn ids(&self, api: &str) -> Value {
        let ids: Value = serde_json::from_str(&self.file("bootstrap.json")).expect("bootstrap.json is JSON");
        ids[api].clone()
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    pub async fn advance_clock(&self, seconds: i64) {
        let response = self
            .request(Method::POST, "/_credstore/clock")
            .json(&json!({"advanceSeconds": seconds}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "advancing the clock");
    }

    /// Sets the faults (`PUT /_credstore/faults`), which must succeed.
    pub async fn set_faults(&self, settings: Value) {
        let response = self.put_faults(settings).await;
        assert!(
            response.status().is_success(),
            "setting faults: {}",
            response.status()
        );
    }

    /// `PUT /_credstore/faults`, for tests of what it answers.
    pub async fn put_faults(&self, settings: Value) -> Response {
        self.request(Method::PUT, "/_credstore/faults")
            .json(&settings)
            .send()
            .await
            .unwrap()
    }

    pub async fn request_counts(&self) -> Value {
        self.request(Method::GET, "/_credstore/requests")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn read_data_file(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_else(|err| panic!("reading {name}: {err}"))
        .trim()
        .to_owned()
}

/// Status and JSON body (Value::Null when the body is empty or not JSON).
pub async fn status_json(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("response body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}
