//! Condition types and reasons, and the one way conditions are updated.
//!
//! `Ready` summarises; the detail conditions say which step is unhappy. Reasons are
//! CamelCase constants so alerts and `kubectl wait` can match on them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// The summary: the credential works and matches the spec.
pub const READY: &str = "Ready";
/// The store the resource references is usable.
pub const STORE_READY: &str = "StoreReady";
/// The upstream object exists and is in the desired state.
pub const UPSTREAM_SYNCED: &str = "UpstreamSynced";
/// The target Secret holds the current credential.
pub const SECRET_SYNCED: &str = "SecretSynced";

pub mod reason {
    //! Reasons, one per distinct situation a user acts on differently.

    pub const RECONCILED: &str = "Reconciled";
    pub const PROBE_SUCCEEDED: &str = "ProbeSucceeded";
    pub const PAUSED: &str = "Paused";

    // Store problems: fix the store or its credential Secret.
    pub const STORE_NOT_FOUND: &str = "StoreNotFound";
    pub const STORE_NOT_READY: &str = "StoreNotReady";
    pub const NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";
    pub const WRONG_PROVIDER: &str = "WrongProvider";
    pub const CREDENTIALS_SECRET_MISSING: &str = "CredentialsSecretMissing";
    pub const CREDENTIALS_INVALID: &str = "CredentialsInvalid";
    pub const CREDENTIALS_REFUSED: &str = "CredentialsRefused";
    pub const PERMISSION_DENIED: &str = "PermissionDenied";
    pub const UPSTREAM_UNREACHABLE: &str = "UpstreamUnreachable";
    pub const CONFIGURATION_INVALID: &str = "ConfigurationInvalid";

    // Upstream object problems.
    pub const CREATING: &str = "Creating";
    pub const ROTATING: &str = "Rotating";
    pub const INVALID_REQUEST: &str = "InvalidRequest";
    pub const REVOKED_UPSTREAM: &str = "RevokedUpstream";
    pub const DELETED_UPSTREAM: &str = "DeletedUpstream";
    pub const UPSTREAM_ERROR: &str = "UpstreamError";
    pub const STATE_CHANGED: &str = "StateChanged";
    pub const DRIFT_CORRECTED: &str = "DriftCorrected";
    /// A ServiceAccountKey on a ZenML store names no `spec.serviceAccount`.
    pub const SERVICE_ACCOUNT_REQUIRED: &str = "ServiceAccountRequired";
    /// The ZenML service account `spec.serviceAccount` names does not exist.
    pub const SERVICE_ACCOUNT_NOT_FOUND: &str = "ServiceAccountNotFound";
    /// A ServiceAccountKey on a Trend Micro store names no `spec.roleID`.
    pub const ROLE_ID_REQUIRED: &str = "RoleIDRequired";
    /// A spec field the store's provider has no use for (e.g. `serviceAccount` on Trend Micro).
    pub const FIELD_NOT_APPLICABLE: &str = "FieldNotApplicable";
    /// An upstream object of the name the resource would use exists and carries no proof
    /// of being the resource's own (another namespace's, another cluster's, made by hand).
    pub const NAME_TAKEN: &str = "NameTaken";
    /// An id recorded in status names an upstream object carrying another resource's mark.
    pub const OWNED_BY_OTHER: &str = "UpstreamOwnedByOther";
    /// The key asks for something its store's policy does not allow.
    pub const POLICY_VIOLATION: &str = "PolicyViolation";
    /// The upstream ids in status carry no valid proof that the operator wrote them.
    pub const STATUS_NOT_PROVEN: &str = "StatusNotProven";
    /// `apikeys.dev/adopt` names an object the store or its owner does not let this resource take.
    pub const ADOPTION_REFUSED: &str = "AdoptionRefused";

    // Secret problems.
    pub const SECRET_WRITTEN: &str = "SecretWritten";
    pub const SECRET_CONFLICT: &str = "SecretOwnedByOther";
}

/// Sets condition `type_` in `conditions`, keeping `lastTransitionTime` when the status
/// does not change (so an unchanged condition never causes a status write).
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if status { "True" } else { "False" }.to_string();
    let message = message.into();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = Time(now);
            }
            existing.status = status;
            existing.reason = reason.to_string();
            existing.message = message;
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_string(),
            status,
            reason: reason.to_string(),
            message,
            observed_generation: generation,
            last_transition_time: Time(now),
        }),
    }
}

/// The condition `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether condition `type_` is present and True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-01T00:05:00Z".parse().unwrap();
        let t2: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            READY,
            false,
            reason::CREATING,
            "creating",
            Some(1),
            t0,
        );
        set(
            &mut conditions,
            READY,
            false,
            reason::STORE_NOT_READY,
            "store",
            Some(1),
            t1,
        );
        assert_eq!(conditions[0].last_transition_time, Time(t0));
        assert_eq!(conditions[0].reason, reason::STORE_NOT_READY);
        set(
            &mut conditions,
            READY,
            true,
            reason::RECONCILED,
            "ok",
            Some(2),
            t2,
        );
        assert_eq!(conditions[0].last_transition_time, Time(t2));
        assert_eq!(conditions.len(), 1);
        assert!(is_true(&conditions, READY));
    }
}
