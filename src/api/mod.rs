//! The `apikeys.dev/v1alpha1` API: two store kinds and three key kinds.

mod api_client;
mod api_token;
mod common;
mod no_defaults;
mod policy;
pub mod reference;
mod service_account_key;
mod store;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use api_client::{
    AccessLevel, ApiAccess, ApiClient, ApiClientSpec, ApiGrant, ClientType, CpCodeAccess, GroupAccess,
    GroupGrant, IpAcl, ManagedCredential, PurgeOptions,
};
pub use api_token::{ApiToken, ApiTokenSpec, TokenScope, TokenState};
pub use common::{
    DeletionPolicy, KeyStatus, PendingKind, PendingOperation, RetiringCredential, RolloutTarget, Rotation,
    RotationRequests, SecretTemplate, StoreKind, StoreRef, WorkloadKind,
};
pub use policy::{
    AkamaiRule, ApiLimit, GroupLimit, PolicyRule, PrefactorRule, StorePolicy, TrendMicroRule, ZenmlRule,
};
pub use service_account_key::{Locale, ServiceAccountKey, ServiceAccountKeySpec};
pub use store::{
    AkamaiProvider, ClusterCredentialStore, ClusterCredentialStoreSpec, Connection, CredentialStore,
    CredentialStoreSpec, PrefactorProvider, Provider, RateLimit, SecretRef, StoreStatus, StoreUsage,
    TrendMicroProvider, ZenmlProvider,
};

/// The API group of every kind.
pub const GROUP: &str = "apikeys.dev";

/// Every CRD of the operator, in a stable order (stores first, then keys), without schema
/// defaults (see `no_defaults`).
pub fn crds() -> Vec<CustomResourceDefinition> {
    [
        CredentialStore::crd(),
        ClusterCredentialStore::crd(),
        ApiClient::crd(),
        ApiToken::crd(),
        ServiceAccountKey::crd(),
    ]
    .into_iter()
    .map(no_defaults::strip)
    .collect()
}

/// The CRDs as one multi-document YAML stream, as `apikey-operator crd` prints it.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    crds().iter().map(crd_yaml).collect()
}

/// One CRD as a YAML document (with its leading `---`), as stored in `crds/`.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_yaml::Error> {
    Ok(format!("---\n{}", serde_yaml::to_string(crd)?))
}

/// The file a CRD is kept in under `crds/`: `<plural>.apikeys.dev.yaml`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or_default())
}
