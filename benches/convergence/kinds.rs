//! The key kinds the benchmark creates, one upstream API each: what a resource of the kind
//! looks like, which store it uses, and the one upstream create the floor makes for it.

use std::collections::BTreeMap;

use apikey_operator::api::{ApiClient, ApiToken, ClientType, Connection, Provider, ServiceAccountKey};
use apikey_operator::upstream::akamai::ClientSettings;
use apikey_operator::upstream::prefactor::{NewApiToken, TokenScope};
use apikey_operator::upstream::trend::ApiKeySettings;
use apikey_operator::upstream::{self, ClientOptions, RateLimiters, UpstreamClient};
use k8s_openapi::ByteString;
use kube::core::ApiResource;
use serde_json::{Value, json};

use apikey_operator_test_support::fixtures;
use apikey_operator_test_support::processes::Credstore;

/// The ZenML service account the credential store bootstraps.
const ZENML_SERVICE_ACCOUNT: &str = "apikey-operator";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Kind {
    /// ApiToken on a Prefactor store.
    ApiToken,
    /// ServiceAccountKey on a ZenML store.
    ZenmlKey,
    /// ServiceAccountKey on a Trend Micro store.
    TrendKey,
    /// ApiClient (with its credential) on an Akamai store.
    ApiClient,
}

impl Kind {
    pub fn resource(self) -> ApiResource {
        match self {
            Kind::ApiToken => ApiResource::erase::<ApiToken>(&()),
            Kind::ZenmlKey | Kind::TrendKey => ApiResource::erase::<ServiceAccountKey>(&()),
            Kind::ApiClient => ApiResource::erase::<ApiClient>(&()),
        }
    }

    /// Object `i` of this kind: its name.
    pub fn name(self, i: usize) -> String {
        let prefix = match self {
            Kind::ApiToken => "token",
            Kind::ZenmlKey => "zenml",
            Kind::TrendKey => "trend",
            Kind::ApiClient => "client",
        };
        format!("{prefix}-{i:05}")
    }

    /// The store (namespaced CredentialStore) this kind's resources reference.
    pub fn store(self) -> &'static str {
        match self {
            Kind::ApiToken => "prefactor",
            Kind::ZenmlKey => "zenml",
            Kind::TrendKey => "trend-micro",
            Kind::ApiClient => "akamai",
        }
    }

    /// A resource of this kind named `name`, with the fewest fields its API needs.
    pub fn manifest(self, name: &str) -> Value {
        let resource = self.resource();
        let store = json!({"name": self.store()});
        let spec = match self {
            Kind::ApiToken => json!({"storeRef": store, "scope": "account"}),
            Kind::ZenmlKey => json!({"storeRef": store, "serviceAccount": ZENML_SERVICE_ACCOUNT}),
            Kind::TrendKey => json!({"storeRef": store, "keyName": name, "roleID": 1}),
            Kind::ApiClient => json!({
                "storeRef": store,
                "authorizedUsers": ["platform-bot"],
                "apiAccess": {"allAccessibleApis": true}, "purgeOptions": {"canPurgeByCacheTag": true, "canPurgeByCpcode": true, "cpcodeAccess": {"allCurrentAndNewCpcodes": true}},
                "groupAccess": {"cloneAuthorizedUserGroups": true},
            }),
        };
        json!({
            "apiVersion": resource.api_version, "kind": resource.kind,
            "metadata": {"name": name}, "spec": spec,
        })
    }

    /// The Secret holding the admin credential of this kind's store.
    pub fn secret_name(self) -> String {
        format!("{}-admin", self.store())
    }

    /// The spec of this kind's store (allowed 1000 req/s, so the benchmark measures the
    /// operator, not the limiter) and the data of its credentials Secret.
    pub fn store_parts(self, credstore: &Credstore) -> (Value, BTreeMap<String, String>) {
        let (mut spec, data) = self.provider(credstore);
        spec["rateLimit"] = json!({"requestsPerSecond": 1000, "burst": 1000});
        (spec, data)
    }

    fn provider(self, credstore: &Credstore) -> (Value, BTreeMap<String, String>) {
        let url = &credstore.url;
        let secret = json!({"name": self.secret_name()});
        let single =
            |key: &str, file: &str| BTreeMap::from([(key.to_string(), credstore.bootstrap_file(file))]);
        match self {
            Kind::ApiToken => (
                json!({"prefactor": {"url": url, "credentialsSecretRef": secret}}),
                single("token", "prefactor.token"),
            ),
            Kind::ZenmlKey => (
                json!({"zenml": {"url": url, "credentialsSecretRef": secret}}),
                single("apiKey", "zenml.api-key"),
            ),
            Kind::TrendKey => (
                json!({"trendMicro": {"url": format!("{url}/api"), "credentialsSecretRef": secret}}),
                single("apiSecretKey", "trendmicro.secret-key"),
            ),
            Kind::ApiClient => (
                json!({"akamai": {"url": url, "credentialsSecretRef": secret}}),
                fixtures::akamai_admin(credstore),
            ),
        }
    }

    /// The upstream client of this kind's store, built as the operator builds it, and what
    /// it looks up once per store (the ZenML service account's UUID).
    pub async fn client(self, credstore: &Credstore) -> anyhow::Result<FloorClient> {
        let (spec, secret) = self.store_parts(credstore);
        let provider: Provider = serde_json::from_value(spec.clone())?;
        let connection: Connection = serde_json::from_value(spec)?;
        let data: BTreeMap<String, ByteString> = secret
            .into_iter()
            .map(|(k, v)| (k, ByteString(v.into_bytes())))
            .collect();
        let spec = upstream::StoreSpec {
            identity: self.store(),
            kind: apikey_operator::api::StoreKind::CredentialStore,
            provider: &provider,
            connection: &connection,
        };
        let client = upstream::connect(spec, &data, &RateLimiters::default(), &ClientOptions::default())?;
        let zenml_account = match client.zenml() {
            Some(zenml) => zenml.service_account_id(ZENML_SERVICE_ACCOUNT).await?,
            None => None,
        };
        Ok(FloorClient {
            client,
            zenml_account,
        })
    }

    /// The floor's upstream work for object `name`: the create(s) no implementation can
    /// avoid. Returns the credential id and the secret value to store.
    pub async fn create_upstream(self, floor: &FloorClient, name: &str) -> anyhow::Result<(String, String)> {
        let client = &floor.client;
        let missing = || anyhow::anyhow!("the {self:?} store has another provider");
        Ok(match self {
            Kind::ApiToken => {
                let token = NewApiToken {
                    token_scope: TokenScope::Account,
                    account_id: None,
                    environment_id: None,
                    expires_at: None,
                };
                let issued = client
                    .prefactor()
                    .ok_or_else(missing)?
                    .create(&token, name)
                    .await?;
                (issued.details.id, issued.token.expose().to_string())
            }
            Kind::ZenmlKey => {
                let zenml = client.zenml().ok_or_else(missing)?;
                let account = floor.zenml_account.as_deref().ok_or_else(missing)?;
                let replay = uuid::Uuid::new_v4().to_string();
                let issued = zenml.create(account, name, None, &replay).await?;
                (issued.key.id, issued.secret.expose().to_string())
            }
            Kind::TrendKey => {
                let settings = ApiKeySettings {
                    key_name: Some(name.to_string()),
                    role_id: Some(1),
                    ..Default::default()
                };
                let issued = client
                    .trend_micro()
                    .ok_or_else(missing)?
                    .create(&settings)
                    .await?;
                (issued.key.id.to_string(), issued.secret.expose().to_string())
            }
            // The operator makes the client, then its credential (so it chooses the
            // credential's description and expiry): two creates, whichever way.
            Kind::ApiClient => {
                let akamai = client.akamai().ok_or_else(missing)?;
                let settings = ClientSettings {
                    client_type: ClientType::Client,
                    api_access: serde_json::from_value(json!({"allAccessibleApis": true}))?,
                    group_access: serde_json::from_value(json!({"cloneAuthorizedUserGroups": true}))?,
                    authorized_users: vec!["platform-bot".into()],
                    allow_account_switch: None,
                    can_auto_create_credential: None,
                    client_description: None,
                    client_name: Some(name.to_string()),
                    ip_acl: None,
                    purge_options: serde_json::from_value(json!({
                        "canPurgeByCacheTag": true, "canPurgeByCpcode": true,
                        "cpcodeAccess": {"allCurrentAndNewCpcodes": true},
                    }))?,
                    notification_emails: Vec::new(),
                };
                let created = akamai.create_client(&settings).await?;
                let issued = akamai.create_credential(&created.client_id).await?;
                (created.client_id, issued.client_secret.expose().to_string())
            }
        })
    }
}

/// A store's upstream client for the floor.
pub struct FloorClient {
    client: UpstreamClient,
    zenml_account: Option<String>,
}

/// Which kind object `i` is: round robin over `kinds`.
pub fn kind_of(kinds: &[Kind], i: usize) -> Kind {
    kinds[i % kinds.len()]
}
