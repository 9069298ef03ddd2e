//! CredentialStore and ClusterCredentialStore: which upstream API, where it is, and the
//! admin credential the operator uses to manage keys in it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::DNS_LABEL_PATTERN;
use super::policy::StorePolicy;

/// Exactly one provider block must be set: the CEL rule on both store specs.
const ONE_PROVIDER_RULE: &str =
    "[has(self.akamai), has(self.prefactor), has(self.trendMicro), has(self.zenml)].filter(p, p).size() == 1";
const ONE_PROVIDER_MESSAGE: &str =
    "spec must set exactly one provider block: akamai, prefactor, trendMicro or zenml";
/// Whichever provider block is set, its `credentialsSecretRef` names no namespace.
const NO_SECRET_NAMESPACE_RULE: &str = "(!has(self.akamai) || !has(self.akamai.credentialsSecretRef.namespace)) && (!has(self.prefactor) || !has(self.prefactor.credentialsSecretRef.namespace)) && (!has(self.trendMicro) || !has(self.trendMicro.credentialsSecretRef.namespace)) && (!has(self.zenml) || !has(self.zenml.credentialsSecretRef.namespace))";
/// Whichever provider block is set, its `credentialsSecretRef` names a namespace.
const SECRET_NAMESPACE_RULE: &str = "(!has(self.akamai) || has(self.akamai.credentialsSecretRef.namespace)) && (!has(self.prefactor) || has(self.prefactor.credentialsSecretRef.namespace)) && (!has(self.trendMicro) || has(self.trendMicro.credentialsSecretRef.namespace)) && (!has(self.zenml) || has(self.zenml.credentialsSecretRef.namespace))";

/// A store of API keys, usable by key resources in the same namespace.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "apikeys.dev",
    version = "v1alpha1",
    kind = "CredentialStore",
    namespaced,
    status = "StoreStatus",
    shortname = "cstore",
    category = "credentialstores",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".status.provider"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Keys","type":"integer","jsonPath":".status.usage.total"}"#,
    printcolumn = r#"{"name":"Violating","type":"integer","jsonPath":".status.usage.violating"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[schemars(extend("x-kubernetes-validations" = [
    { "rule": ONE_PROVIDER_RULE, "message": ONE_PROVIDER_MESSAGE },
    {
        "rule": NO_SECRET_NAMESPACE_RULE,
        "message": "credentialsSecretRef.namespace must be unset in a CredentialStore: it reads its Secret from its own namespace",
    },
]))]
#[serde(rename_all = "camelCase")]
pub struct CredentialStoreSpec {
    #[serde(flatten)]
    pub provider: Provider,
    #[serde(flatten)]
    pub connection: Connection,
    /// Whether key resources using this store may take over an existing upstream object
    /// with the annotation `apikeys.dev/adopt: <upstream id>`. Unset: they may not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adoption: Option<Adoption>,
    /// What keys may ask for through this store. Unset: anything its credential can do; a
    /// key of a namespace no rule matches is not constrained either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<StorePolicy>,
}

/// Adoption through a CredentialStore.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Adoption {
    /// `true` lets key resources in the store's namespace adopt upstream objects that carry
    /// no other resource's owner mark.
    pub allowed: bool,
}

/// Adoption through a ClusterCredentialStore: off unless a namespace is listed.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAdoption {
    /// Namespaces (among those the store serves) whose key resources may adopt upstream
    /// objects that carry no other resource's owner mark. `["*"]` allows all.
    #[schemars(schema_with = "allowed_namespaces_schema")]
    pub namespaces: Vec<String>,
}

impl ClusterAdoption {
    pub fn allows(&self, namespace: &str) -> bool {
        self.namespaces.iter().any(|n| n == "*" || n == namespace)
    }
}

/// A cluster-wide store of API keys, usable by key resources in the namespaces it allows.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "apikeys.dev",
    version = "v1alpha1",
    kind = "ClusterCredentialStore",
    status = "StoreStatus",
    shortname = "ccstore",
    category = "credentialstores",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".status.provider"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Keys","type":"integer","jsonPath":".status.usage.total"}"#,
    printcolumn = r#"{"name":"Violating","type":"integer","jsonPath":".status.usage.violating"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[schemars(extend("x-kubernetes-validations" = [
    { "rule": ONE_PROVIDER_RULE, "message": ONE_PROVIDER_MESSAGE },
    {
        "rule": SECRET_NAMESPACE_RULE,
        "message": "credentialsSecretRef.namespace is required in a ClusterCredentialStore",
    },
    {
        "rule": "has(self.allowedNamespaces) || has(self.namespaceSelector)",
        "message": "spec must set allowedNamespaces or namespaceSelector: a ClusterCredentialStore serves no namespace by default",
    },
]))]
#[serde(rename_all = "camelCase")]
pub struct ClusterCredentialStoreSpec {
    #[serde(flatten)]
    pub provider: Provider,
    #[serde(flatten)]
    pub connection: Connection,
    /// Namespaces whose key resources may use this store, by name. `["*"]` allows all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "allowed_namespaces_schema")]
    pub allowed_namespaces: Vec<String>,
    /// Namespaces whose key resources may use this store, by label. Combined with
    /// `allowedNamespaces` by OR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Which namespaces may take over existing upstream objects with the annotation
    /// `apikeys.dev/adopt: <upstream id>`. Unset: none may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adoption: Option<ClusterAdoption>,
    /// What keys may ask for through this store. Unset: anything its credential can do.
    /// Set: a key of a namespace no rule matches is refused (`PolicyViolation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<StorePolicy>,
}

fn allowed_namespaces_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "maxItems": 256,
        "x-kubernetes-list-type": "set",
        "items": {
            "type": "string",
            "maxLength": 63,
            "pattern": format!("^\\*$|{DNS_LABEL_PATTERN}"),
        },
    })
}

/// The upstream API behind a store. Exactly one block is set.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Provider {
    /// Akamai Identity and Access Management API v3 (for ApiClient resources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub akamai: Option<AkamaiProvider>,
    /// Prefactor API tokens (for ApiToken resources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefactor: Option<PrefactorProvider>,
    /// Trend Micro Deep Security / Workload Security API keys (for ServiceAccountKey resources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend_micro: Option<TrendMicroProvider>,
    /// ZenML service-account API keys (for ServiceAccountKey resources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zenml: Option<ZenmlProvider>,
}

/// Akamai IAM: the admin credential is an API client's .edgerc section.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AkamaiProvider {
    /// Base URL of the API, for example `https://akab-xxxx.luna.akamaiapis.net`. Unset: the
    /// `host` key of the credential Secret, over HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"))]
    pub url: Option<String>,
    /// Account switch key sent with every call, to manage another account's clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub account_switch_key: Option<String>,
    /// Secret holding the .edgerc fields in keys `host`, `client_token`, `client_secret`
    /// and `access_token`.
    pub credentials_secret_ref: SecretRef,
}

/// Prefactor: the admin credential is a bearer token.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrefactorProvider {
    /// Base URL of the API, without `/api/v1`, for example `https://app.prefactor.tech`.
    #[schemars(length(max = 2048), regex(pattern = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"))]
    pub url: String,
    /// Account the tokens belong to. Unset: the account of the admin token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-7][0-9abcdefghjkmnpqrstvwxyz]{31}$"))]
    pub account_id: Option<String>,
    /// Secret holding the admin bearer token in key `token`.
    pub credentials_secret_ref: SecretRef,
}

/// Trend Micro: the admin credential is an API secret key.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrendMicroProvider {
    /// Base URL of the API including `/api`, for example `https://dsm.example.com:4119/api`
    /// or `https://workload.us-1.cloudone.trendmicro.com/api`.
    #[schemars(length(max = 2048), regex(pattern = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"))]
    pub url: String,
    /// Secret holding the admin API secret key in key `apiSecretKey`.
    pub credentials_secret_ref: SecretRef,
}

/// ZenML: the admin credential is an admin user (open-source servers, which have no RBAC and
/// let only admin users manage service-account keys) or a service account's API key (servers
/// that enforce RBAC, such as ZenML Pro), exchanged for a bearer token.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZenmlProvider {
    /// Base URL of the ZenML server, without `/api/v1`, for example `https://zenml.example.com`.
    #[schemars(length(max = 2048), regex(pattern = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"))]
    pub url: String,
    /// Secret holding an admin user's name and password in keys `username` and `password`,
    /// or a service account's `ZENKEY_…` API key in key `apiKey` (one of the two). The
    /// store's `Ready` condition says which it found and whether it may manage keys.
    pub credentials_secret_ref: SecretRef,
}

/// Settings that apply to every provider.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// PEM bundle of CA certificates trusted for the upstream's HTTPS certificate, for
    /// private upstreams. Unset: the public web PKI roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 262144))]
    pub ca_bundle: Option<String>,
    /// Upper bound on the request rate the operator sends to this store, shared by all
    /// controllers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

/// A token bucket: `requestsPerSecond` sustained, `burst` at once.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Sustained requests per second, 1 to 1000.
    #[schemars(range(min = 1, max = 1000))]
    pub requests_per_second: u32,
    /// Requests allowed at once above the sustained rate, 1 to 1000. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub burst: Option<u32>,
}

/// A Secret holding a store's admin credential.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = super::common::DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Namespace of the Secret. Required for a ClusterCredentialStore; a CredentialStore
    /// always reads from its own namespace and must leave this unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub namespace: Option<String>,
}

/// Observed state of a store.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoreStatus {
    /// `Ready` is True after an authenticated probe of the upstream succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Which provider block is set: `akamai`, `prefactor`, `trendMicro` or `zenml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// When the upstream was last probed successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
    /// The key resources using this store, and how many of them its policy refuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<StoreUsage>,
}

/// How a store is used, counted from the key resources that reference it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StoreUsage {
    pub api_tokens: u32,
    pub service_account_keys: u32,
    pub api_clients: u32,
    /// All key resources using the store.
    pub total: u32,
    /// Those refused by the store's policy (`Ready=False`, reason `PolicyViolation`).
    pub violating: u32,
}
