//! Upstream clients for an in-process [`Store`], built the way the controllers build them:
//! from a store spec and the credential Secret's data.

use std::collections::BTreeMap;
use std::time::Duration;

use apikey_operator::api::{
    AkamaiProvider, Connection, PrefactorProvider, Provider, RateLimit, SecretRef, StoreKind,
    TrendMicroProvider, ZenmlProvider,
};
use apikey_operator::upstream::{ClientOptions, RateLimiters, StoreSpec, UpstreamClient, connect};
use k8s_openapi::ByteString;

use crate::credstore::Store;

impl Store {
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

fn secret_ref() -> SecretRef {
    SecretRef {
        name: "store-credentials".into(),
        namespace: None,
    }
}

/// Fast retries, so bounded-retry tests finish quickly; the rate limit is the CRD's maximum.
fn options() -> ClientOptions {
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
        identity: "CredentialStore test/store",
        kind: StoreKind::CredentialStore,
        provider,
        connection: &connection,
    };
    connect(store, &data, &RateLimiters::default(), &options()).expect("client builds")
}
