//! An embedded credential store on a real TCP port, and clients built for it the way the
//! controllers build them: from a store spec and the credential Secret's data.

use std::collections::BTreeMap;
use std::time::Duration;

use apikey_operator::api::{
    AkamaiProvider, Connection, PrefactorProvider, Provider, RateLimit, SecretRef, TrendMicroProvider,
    ZenmlProvider,
};
use apikey_operator::credstore::{Config, CredStore, FaultSettings};
use apikey_operator::upstream::{ClientOptions, RateLimiters, StoreSpec, UpstreamClient, connect};
use k8s_openapi::ByteString;
use serde_json::{Value, json};
use tempfile::TempDir;

pub struct Store {
    pub base: String,
    pub http: reqwest::Client,
    dir: TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Store {
    pub async fn start() -> Self {
        Self::start_with_zenml_sessions(None).await
    }

    /// A store whose ZenML sessions expire `minutes` after login (never, with `None`).
    pub async fn start_with_zenml_sessions(minutes: Option<u32>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config {
            listen: "127.0.0.1:0".parse().expect("address"),
            data: dir.path().join("data"),
            advertise_address: None,
            admin_api: true,
            clock_offset_seconds: 0,
            zenml_session_minutes: minutes,
            faults: FaultSettings::default(),
        };
        let store = CredStore::open(config).await.expect("credstore opens");
        let base = format!("http://{}", store.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(store.serve(async move {
            let _ = rx.await;
        }));
        Self {
            base,
            http: reqwest::Client::new(),
            dir,
            shutdown: Some(tx),
        }
    }

    /// A bootstrap file the store wrote into its data directory.
    pub fn file(&self, name: &str) -> String {
        let path = self.dir.path().join("data").join(name);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
            .trim()
            .to_owned()
    }

    /// The bootstrap ids (`bootstrap.json`) of one API.
    pub fn ids(&self, api: &str) -> Value {
        let ids: Value = serde_json::from_str(&self.file("bootstrap.json")).expect("bootstrap.json is JSON");
        ids[api].clone()
    }

    pub async fn set_faults(&self, settings: Value) {
        let response = self
            .http
            .put(format!("{}/_credstore/faults", self.base))
            .json(&settings)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "setting faults: {}",
            response.status()
        );
    }

    pub async fn advance_clock(&self, seconds: i64) {
        let response = self
            .http
            .post(format!("{}/_credstore/clock", self.base))
            .json(&json!({"advanceSeconds": seconds}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    pub fn prefactor(&self, token: &str) -> UpstreamClient {
        let provider = Provider {
            prefactor: Some(PrefactorProvider {
                url: self.base.clone(),
                account_id: None,
                credentials_secret_ref: secret_ref(),
            }),
            ..Provider::default()
        };
        client(&provider, &[("token", token)])
    }

    pub fn zenml(&self, api_key: &str) -> UpstreamClient {
        let provider = Provider {
            zenml: Some(ZenmlProvider {
                url: self.base.clone(),
                credentials_secret_ref: secret_ref(),
            }),
            ..Provider::default()
        };
        client(&provider, &[("apiKey", api_key)])
    }

    pub fn trend(&self, api_secret_key: &str) -> UpstreamClient {
        let provider = Provider {
            trend_micro: Some(TrendMicroProvider {
                url: format!("{}/api", self.base),
                credentials_secret_ref: secret_ref(),
            }),
            ..Provider::default()
        };
        client(&provider, &[("apiSecretKey", api_secret_key)])
    }
}

impl Store {
    /// An Akamai client from an .edgerc section's fields, reaching this store over HTTP.
    pub fn akamai(
        &self,
        client_token: &str,
        client_secret: &str,
        access_token: &str,
        switch_key: Option<&str>,
    ) -> UpstreamClient {
        let provider = Provider {
            akamai: Some(AkamaiProvider {
                url: Some(self.base.clone()),
                account_switch_key: switch_key.map(str::to_string),
                credentials_secret_ref: secret_ref(),
            }),
            ..Provider::default()
        };
        let host = self.base.trim_start_matches("http://").to_string();
        client(
            &provider,
            &[
                ("host", &host),
                ("client_token", client_token),
                ("client_secret", client_secret),
                ("access_token", access_token),
            ],
        )
    }

    /// The bootstrap admin's `.edgerc` fields.
    pub fn akamai_admin(&self, switch_key: Option<&str>) -> UpstreamClient {
        let edgerc = self.file("akamai.edgerc");
        let field = |name: &str| {
            edgerc
                .lines()
                .filter_map(|line| line.split_once('='))
                .find(|(k, _)| k.trim() == name)
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_else(|| panic!("akamai.edgerc has no {name}"))
        };
        self.akamai(
            &field("client_token"),
            &field("client_secret"),
            &field("access_token"),
            switch_key,
        )
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn secret_ref() -> SecretRef {
    SecretRef {
        name: "store-credentials".into(),
        namespace: None,
    }
}

/// Fast retries, so bounded-retry tests finish quickly; the rate limit is the CRD's maximum.
pub fn options() -> ClientOptions {
    ClientOptions {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        max_retry_after: Duration::from_secs(3),
        ..ClientOptions::default()
    }
}

fn client(provider: &Provider, secret: &[(&str, &str)]) -> UpstreamClient {
    let connection = Connection {
        ca_bundle: None,
        rate_limit: Some(RateLimit {
            requests_per_second: 1000,
            burst: Some(1000),
        }),
    };
    let data: BTreeMap<String, ByteString> = secret
        .iter()
        .map(|(key, value)| (key.to_string(), ByteString(format!("{value}\n").into_bytes())))
        .collect();
    let store = StoreSpec {
        identity: "CredentialStore/test/store",
        provider,
        connection: &connection,
    };
    connect(store, &data, &RateLimiters::default(), &options()).expect("client builds")
}
