//! Condition types and reasons, and the one way conditions are updated.
//!
//! `Ready` summarises; the detail conditions say which step is unhappy. `Reconciling` and
//! `Stalled` are kstatus' abnormal-true conditions (present only while true), so Flux
//! `wait: true`, `kubectl wait` and Argo CD judge every kind without custom rules: work in
//! progress, or a problem only a person can fix. Reasons are CamelCase constants so alerts
//! and `kubectl wait` can match on them.

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
/// Previous credentials are retired (False while a rollout or a recent use holds one back).
/// Not part of `Ready`: the current credential works either way.
pub const PREVIOUS_RETIRED: &str = "PreviousRetired";
/// kstatus: the operator is working towards the spec (a credential being issued, a retry).
pub const RECONCILING: &str = "Reconciling";
/// kstatus: the operator cannot make progress until someone changes something.
pub const STALLED: &str = "Stalled";

pub mod reason {
    //! Reasons, one per distinct situation a user acts on differently.

    pub const RECONCILED: &str = "Reconciled";
    pub const PROBE_SUCCEEDED: &str = "ProbeSucceeded";
    /// `apikeys.dev/paused: "true"`: the operator keeps its hands off until it is removed.
    pub const PAUSED: &str = "Paused";

    // Store problems: fix the store or its credential Secret.
    pub const STORE_NOT_FOUND: &str = "StoreNotFound";
    pub const STORE_NOT_READY: &str = "StoreNotReady";
    /// The store exists but this operator process has not probed it yet (it just started).
    pub const WAITING_FOR_STORE: &str = "WaitingForStore";
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

    // Retirement of previous credentials.
    pub const RETIRED: &str = "Retired";
    pub const RETIREMENT_HELD: &str = "RetirementHeld";
    pub const RETIREMENT_FORCED: &str = "RetirementForced";

    // Secret problems.
    pub const SECRET_WRITTEN: &str = "SecretWritten";
    pub const SECRET_CONFLICT: &str = "SecretOwnedByOther";
}

/// Whether a resource that is not Ready for `reason` becomes Ready without anyone acting:
/// kstatus reads it as in progress (`Reconciling`); every other reason as `Stalled`.
pub fn resolves_by_itself(reason: &str) -> bool {
    matches!(
        reason,
        reason::CREATING
            | reason::ROTATING
            | reason::WAITING_FOR_STORE
            | reason::STORE_NOT_READY
            | reason::UPSTREAM_UNREACHABLE
            | reason::UPSTREAM_ERROR
    )
}

/// An operation the operator has started and not finished, shown as `Reconciling`.
pub struct InFlight {
    pub reason: &'static str,
    pub message: String,
}

/// Sets `Reconciling` and `Stalled` from `Ready` and the operation in flight, and removes
/// them when false (kstatus treats an absent abnormal-true condition as false). A Ready
/// that is False for a reason only a person can fix stalls; one that resolves by itself,
/// or an operation in flight, is reconciling.
pub fn set_progress(
    conditions: &mut Vec<Condition>,
    in_flight: Option<InFlight>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let ready = find(conditions, READY).filter(|c| c.status != "True").cloned();
    let (reconciling, stalled) = match (ready, in_flight) {
        (Some(ready), _) if !resolves_by_itself(&ready.reason) => (None, Some(ready)),
        (Some(ready), _) => (Some((ready.reason, ready.message)), None),
        (None, Some(op)) => (Some((op.reason.to_string(), op.message)), None),
        (None, None) => (None, None),
    };
    match reconciling {
        Some((reason, message)) => set(conditions, RECONCILING, true, &reason, message, generation, now),
        None => remove(conditions, RECONCILING),
    }
    match stalled {
        Some(ready) => set(
            conditions,
            STALLED,
            true,
            &ready.reason,
            ready.message,
            generation,
            now,
        ),
        None => remove(conditions, STALLED),
    }
}

/// Marks a paused resource: `Ready` keeps its status (`Unknown` before there was one) and
/// its observed generation, with the reason `Paused`; nothing is reconciling or stalled.
pub fn pause(conditions: &mut Vec<Condition>, message: String, now: Timestamp) {
    match conditions.iter_mut().find(|c| c.type_ == READY) {
        Some(ready) => {
            ready.reason = reason::PAUSED.to_string();
            ready.message = message;
        }
        None => conditions.push(Condition {
            type_: READY.to_string(),
            status: "Unknown".to_string(),
            reason: reason::PAUSED.to_string(),
            message,
            observed_generation: None,
            last_transition_time: Time(now),
        }),
    }
    remove(conditions, RECONCILING);
    remove(conditions, STALLED);
}

/// Removes condition `type_` if present.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
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

    fn ready(status: bool, reason: &str) -> Vec<Condition> {
        let mut conditions = Vec::new();
        let now = Timestamp::now();
        set(
            &mut conditions,
            READY,
            status,
            reason,
            "m".to_string(),
            Some(1),
            now,
        );
        conditions
    }

    fn progress(
        mut conditions: Vec<Condition>,
        in_flight: Option<InFlight>,
    ) -> (Option<String>, Option<String>) {
        set_progress(&mut conditions, in_flight, Some(1), Timestamp::now());
        let reason = |t| {
            find(&conditions, t)
                .filter(|c| c.status == "True")
                .map(|c| c.reason.clone())
        };
        (reason(RECONCILING), reason(STALLED))
    }

    #[test]
    fn a_problem_for_a_person_stalls_and_a_retry_reconciles() {
        let rotating = || {
            Some(InFlight {
                reason: reason::ROTATING,
                message: "issuing".into(),
            })
        };
        assert_eq!(progress(ready(true, reason::RECONCILED), None), (None, None));
        assert_eq!(
            progress(ready(true, reason::RECONCILED), rotating()),
            (Some(reason::ROTATING.into()), None),
            "a rotation in flight keeps the current credential Ready"
        );
        assert_eq!(
            progress(ready(false, reason::UPSTREAM_UNREACHABLE), rotating()),
            (Some(reason::UPSTREAM_UNREACHABLE.into()), None),
            "the retry says more than the operation"
        );
        assert_eq!(
            progress(ready(false, reason::CREDENTIALS_REFUSED), rotating()),
            (None, Some(reason::CREDENTIALS_REFUSED.into()))
        );
        assert_eq!(
            progress(ready(false, reason::WAITING_FOR_STORE), None),
            (Some(reason::WAITING_FOR_STORE.into()), None)
        );
    }

    #[test]
    fn progress_conditions_are_removed_once_false() {
        let mut conditions = ready(false, reason::NAME_TAKEN);
        set_progress(&mut conditions, None, Some(1), Timestamp::now());
        assert!(is_true(&conditions, STALLED));
        set(
            &mut conditions,
            READY,
            true,
            reason::RECONCILED,
            String::new(),
            Some(1),
            Timestamp::now(),
        );
        set_progress(&mut conditions, None, Some(1), Timestamp::now());
        assert_eq!(conditions.len(), 1, "only Ready is left: {conditions:?}");
    }
}
