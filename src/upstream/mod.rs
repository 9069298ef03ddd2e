//! Clients for the upstream credential stores, one per API, shaped by what reconciliation
//! needs: observe (`get`, `list`, `find_*`), create, change state, rotate, retire, delete.
//!
//! A controller resolves a store, reads its credential Secret and calls [`connect`] to get
//! an [`UpstreamClient`]; it keeps the client while the store's spec and Secret are
//! unchanged. Every call is rate limited per store (shared through [`RateLimiters`]), timed
//! out, and retried where a retry is safe. Failures are [`UpstreamError`]s whose
//! [`ErrorClass`] tells "fix the resource" from "fix the store credential" from "retry later".
//!
//! HTTP requests per operation, without retries (measured in `tests/upstream`):
//!
//! | API | create | rotation |
//! |---|---|---|
//! | Prefactor | 1 (`POST /api_token`) | 3: create new, revoke old, delete old |
//! | ZenML | 1 (+1 login per bearer lifetime) | 1: `rotate` (the old key expires upstream after the retain period) |
//! | Trend Micro | 1 | 1 with no overlap (`secretkey` regenerate); 2 with overlap (create new, delete old) |
//! | Akamai | 3: client, credential, credential update (description/expiry); +1 to lock | 4: credential, its update, deactivate old, delete old |

pub mod akamai;
pub mod credentials;
pub mod edgegrid;
pub mod error;
pub mod http;
pub mod name_index;
pub mod prefactor;
pub mod ratelimit;
pub mod trend;
pub mod zenml;

use std::collections::BTreeMap;

use k8s_openapi::ByteString;

pub use akamai::AkamaiClient;
pub use credentials::{CredentialError, SecretData, SecretString};
pub use error::{Api, ErrorClass, UpstreamError};
pub use http::{ClientOptions, Endpoint};
pub use prefactor::PrefactorClient;
pub use ratelimit::RateLimiters;
pub use trend::TrendMicroClient;
pub use zenml::ZenmlClient;

use crate::api::{
    AkamaiProvider, Connection, PrefactorProvider, Provider, StoreKind, TrendMicroProvider, ZenmlProvider,
};

/// The one provider block a store sets, converted once from the API's struct of options
/// (the schema keeps a field per provider, so `kubectl explain` shows each).
#[derive(Clone, Copy, Debug)]
pub enum ProviderBlock<'a> {
    Akamai(&'a AkamaiProvider),
    Prefactor(&'a PrefactorProvider),
    TrendMicro(&'a TrendMicroProvider),
    Zenml(&'a ZenmlProvider),
}

impl<'a> ProviderBlock<'a> {
    /// The block `provider` sets; `None` when it sets none (the schema requires one).
    pub fn of(provider: &'a Provider) -> Option<Self> {
        let Provider {
            akamai,
            prefactor,
            trend_micro,
            zenml,
        } = provider;
        (akamai.as_ref().map(ProviderBlock::Akamai))
            .or(prefactor.as_ref().map(ProviderBlock::Prefactor))
            .or(trend_micro.as_ref().map(ProviderBlock::TrendMicro))
            .or(zenml.as_ref().map(ProviderBlock::Zenml))
    }

    /// The API the block configures.
    pub fn api(self) -> Api {
        match self {
            ProviderBlock::Akamai(_) => Api::Akamai,
            ProviderBlock::Prefactor(_) => Api::Prefactor,
            ProviderBlock::TrendMicro(_) => Api::TrendMicro,
            ProviderBlock::Zenml(_) => Api::Zenml,
        }
    }
}

/// The API a store's provider block configures, `None` when it sets none.
pub fn provider_api(provider: &Provider) -> Option<Api> {
    ProviderBlock::of(provider).map(ProviderBlock::api)
}

/// A client for whichever API a store's provider block names.
#[derive(Debug)]
pub enum UpstreamClient {
    Akamai(AkamaiClient),
    Prefactor(PrefactorClient),
    TrendMicro(TrendMicroClient),
    Zenml(ZenmlClient),
}

/// Why no client could be built for a store: each variant is a distinct store condition.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the store sets no provider block")]
    NoProvider,
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// A bad URL or CA bundle in the store spec.
    #[error(transparent)]
    Configuration(#[from] UpstreamError),
}

/// A store as the client builder needs it.
#[derive(Clone, Copy, Debug)]
pub struct StoreSpec<'a> {
    /// Stable identity for logs and the rate-limit registry, e.g. `CredentialStore ns/name`.
    pub identity: &'a str,
    pub kind: StoreKind,
    pub provider: &'a Provider,
    pub connection: &'a Connection,
}

/// Builds the client for `store` from its credential Secret's `data`.
pub fn connect(
    store: StoreSpec<'_>,
    secret_data: &BTreeMap<String, ByteString>,
    limiters: &RateLimiters,
    options: &ClientOptions,
) -> Result<UpstreamClient, ConnectError> {
    let endpoint = |base_url: &str| Endpoint {
        store: store.identity.to_owned(),
        store_kind: store.kind,
        base_url: base_url.to_owned(),
        ca_bundle: store.connection.ca_bundle.clone(),
        limiter: limiters.for_store(store.identity, store.connection.rate_limit.as_ref()),
        options: options.clone(),
    };
    let secret = SecretData(secret_data);
    let block = ProviderBlock::of(store.provider).ok_or(ConnectError::NoProvider)?;
    let client = match block {
        ProviderBlock::Akamai(akamai) => {
            let edgerc = secret.akamai()?;
            let base_url = akamai
                .url
                .clone()
                .unwrap_or_else(|| format!("https://{}", edgerc.host));
            UpstreamClient::Akamai(AkamaiClient::new(
                endpoint(&base_url),
                edgerc.credential,
                akamai.account_switch_key.clone(),
            )?)
        }
        ProviderBlock::Prefactor(prefactor) => UpstreamClient::Prefactor(PrefactorClient::new(
            endpoint(&prefactor.url),
            secret.prefactor_token()?,
            prefactor.account_id.clone(),
        )?),
        ProviderBlock::TrendMicro(trend) => UpstreamClient::TrendMicro(TrendMicroClient::new(
            endpoint(&trend.url),
            secret.trend_micro_api_secret_key()?,
        )?),
        ProviderBlock::Zenml(zenml) => {
            UpstreamClient::Zenml(ZenmlClient::new(endpoint(&zenml.url), secret.zenml()?)?)
        }
    };
    Ok(client)
}

impl UpstreamClient {
    /// The Prefactor client, or `None` for a store of another provider.
    pub fn prefactor(&self) -> Option<&PrefactorClient> {
        match self {
            UpstreamClient::Prefactor(client) => Some(client),
            _ => None,
        }
    }

    /// The ZenML client, or `None` for a store of another provider.
    pub fn zenml(&self) -> Option<&ZenmlClient> {
        match self {
            UpstreamClient::Zenml(client) => Some(client),
            _ => None,
        }
    }

    /// The Trend Micro client, or `None` for a store of another provider.
    pub fn trend_micro(&self) -> Option<&TrendMicroClient> {
        match self {
            UpstreamClient::TrendMicro(client) => Some(client),
            _ => None,
        }
    }

    /// The Akamai client, or `None` for a store of another provider.
    pub fn akamai(&self) -> Option<&AkamaiClient> {
        match self {
            UpstreamClient::Akamai(client) => Some(client),
            _ => None,
        }
    }

    pub fn api(&self) -> Api {
        match self {
            UpstreamClient::Akamai(_) => Api::Akamai,
            UpstreamClient::Prefactor(_) => Api::Prefactor,
            UpstreamClient::TrendMicro(_) => Api::TrendMicro,
            UpstreamClient::Zenml(_) => Api::Zenml,
        }
    }

    /// An authenticated call that changes nothing: what a store's `Ready` condition reports.
    /// Returns who the credential acts as, where the API says it in a way worth showing.
    pub async fn probe(&self) -> Result<Option<String>, UpstreamError> {
        match self {
            UpstreamClient::Akamai(client) => client.probe().await.map(|_| None),
            UpstreamClient::Prefactor(client) => client.probe().await.map(|()| None),
            UpstreamClient::TrendMicro(client) => client.probe().await.map(|_| None),
            UpstreamClient::Zenml(client) => {
                client.probe().await.map(|principal| Some(principal.to_string()))
            }
        }
    }

    /// HTTP requests this client has sent, retries and logins included.
    pub fn requests_sent(&self) -> u64 {
        match self {
            UpstreamClient::Akamai(client) => client.requests_sent(),
            UpstreamClient::Prefactor(client) => client.requests_sent(),
            UpstreamClient::TrendMicro(client) => client.requests_sent(),
            UpstreamClient::Zenml(client) => client.requests_sent(),
        }
    }
}
