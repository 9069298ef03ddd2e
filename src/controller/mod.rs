//! Controllers: one per kind, plus the machinery they share.

pub mod admission;
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
pub mod plain;
pub mod policy;
pub mod reconcile_key;
pub mod retirement;
pub mod rollout;
pub mod schedule;
pub mod service_account_key;
pub mod status_proof;
pub mod store_probe;
pub mod store_registry;
pub mod target_secret;
pub mod trigger;

pub use context::Context;
use kube::runtime::finalizer::Error as FinalizerError;

/// The one field manager every server-side apply of the operator uses.
pub const FIELD_MANAGER: &str = "apikey-operator";

/// Why a reconciliation failed; it is retried by the error policy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API request failed: {}", plain::kube_error(.0))]
    Kube(#[source] kube::Error),
    #[error(transparent)]
    Secret(#[from] target_secret::SecretError),
    #[error(transparent)]
    Upstream(#[from] crate::upstream::UpstreamError),
    #[error(transparent)]
    Spec(#[from] schedule::InvalidDuration),
    #[error("{}", finalizer_message(.0))]
    Finalizer(#[source] Box<FinalizerError<Error>>),
    #[error("the cached object was stale; retrying with a fresh view")]
    StaleView,
    #[error("cleanup is blocked: {0}")]
    CleanupBlocked(String),
    #[error("the status records an unreadable request: {0}")]
    CorruptPending(#[source] serde_json::Error),
    #[error("the status records an unusable value: {0}")]
    CorruptStatus(String),
}

/// A finalizer failure in plain words (kube-runtime's own carries kube's debug dump).
fn finalizer_message(error: &FinalizerError<Error>) -> String {
    match error {
        FinalizerError::ApplyFailed(error) | FinalizerError::CleanupFailed(error) => error.to_string(),
        FinalizerError::AddFinalizer(error) => {
            format!("adding the finalizer failed: {}", plain::kube_error(error))
        }
        FinalizerError::RemoveFinalizer(error) => {
            format!("removing the finalizer failed: {}", plain::kube_error(error))
        }
        other => other.to_string(),
    }
}

impl Error {
    /// A low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Secret(_) => "secret",
            Error::Upstream(e) => e.class().as_str(),
            Error::Spec(_) => "spec",
            Error::Finalizer(inner) => match &**inner {
                FinalizerError::ApplyFailed(error) | FinalizerError::CleanupFailed(error) => {
                    error.metric_label()
                }
                FinalizerError::AddFinalizer(_) | FinalizerError::RemoveFinalizer(_) => "kube",
                FinalizerError::UnnamedObject | FinalizerError::InvalidFinalizer => "finalizer",
            },
            Error::StaleView => "stale_view",
            Error::CleanupBlocked(_) => "cleanup_blocked",
            Error::CorruptPending(_) => "corrupt_pending",
            Error::CorruptStatus(_) => "corrupt_status",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::{Api, ErrorClass, UpstreamError};

    #[test]
    fn a_failure_inside_the_finalizer_is_labelled_by_what_failed() {
        let transient = || {
            Error::Upstream(UpstreamError::new(
                ErrorClass::Transient,
                Api::Prefactor,
                "get_token",
                "down",
            ))
        };
        let wrapped = |inner| Error::Finalizer(Box::new(inner));
        assert_eq!(
            wrapped(FinalizerError::ApplyFailed(transient())).metric_label(),
            "transient"
        );
        assert_eq!(
            wrapped(FinalizerError::CleanupFailed(Error::CleanupBlocked(
                "store".into()
            )))
            .metric_label(),
            "cleanup_blocked"
        );
        assert_eq!(
            wrapped(FinalizerError::ApplyFailed(Error::StaleView)).metric_label(),
            "stale_view"
        );
        let refused = kube::Error::Api(Box::new(
            kube::core::Status::failure("conflict", "Conflict").with_code(409),
        ));
        assert_eq!(
            wrapped(FinalizerError::AddFinalizer(refused)).metric_label(),
            "kube"
        );
    }

    #[test]
    fn kube_failures_read_without_a_debug_dump() {
        let missing = kube::core::Status::failure("secrets \"s\" is forbidden", "Forbidden").with_code(403);
        let message = Error::Kube(kube::Error::Api(Box::new(missing))).to_string();
        assert_eq!(
            message,
            "Kubernetes API request failed: secrets \"s\" is forbidden"
        );
    }
}
