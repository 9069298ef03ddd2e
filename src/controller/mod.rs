//! Controllers: one per kind, plus the machinery they share.

pub mod api_client;
pub mod api_token;
pub mod compromised;
pub mod conditions;
pub mod context;
pub mod inventory;
pub mod key_run;
pub mod key_status;
pub mod own_writes;
pub mod ownership;
pub mod policy;
pub mod reconcile_key;
pub mod rollout;
pub mod schedule;
pub mod service_account_key;
pub mod status_proof;
pub mod store;
pub mod stores;
pub mod target_secret;

pub use context::Context;

/// The one field manager every server-side apply of the operator uses.
pub const FIELD_MANAGER: &str = "apikey-operator";

/// Why a reconciliation failed; it is retried by the error policy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[source] kube::Error),
    #[error(transparent)]
    Secret(#[from] target_secret::SecretError),
    #[error(transparent)]
    Upstream(#[from] crate::upstream::UpstreamError),
    #[error(transparent)]
    Spec(#[from] schedule::InvalidDuration),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("the cached object was stale; retrying with a fresh view")]
    StaleView,
    #[error("cleanup is blocked: {0}")]
    CleanupBlocked(String),
    #[error("the status records an unreadable request: {0}")]
    CorruptPending(#[source] serde_json::Error),
    #[error("the status records an unusable value: {0}")]
    CorruptStatus(String),
}

impl Error {
    /// A low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Secret(_) => "secret",
            Error::Upstream(e) => e.class().as_str(),
            Error::Spec(_) => "spec",
            Error::Finalizer(_) => "finalizer",
            Error::StaleView => "stale_view",
            Error::CleanupBlocked(_) => "cleanup_blocked",
            Error::CorruptPending(_) => "corrupt_pending",
            Error::CorruptStatus(_) => "corrupt_status",
        }
    }
}
