//! Types shared by the three key kinds: where the key comes from, where its secret goes,
//! when it rotates and what happens upstream when it is deleted.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Upstream descriptions carry the operator's owner mark (`[apikeys.dev/owner=…]`, see
/// `controller::ownership`); a description that wrote one could claim another resource's
/// object, so the API server refuses it.
pub(crate) const NO_MARK_RULE: &str = "!self.contains('apikeys.dev/owner=')";
pub(crate) const NO_MARK_MESSAGE: &str =
    "must not contain 'apikeys.dev/owner=': the operator appends that owner mark itself";

/// Go-style duration such as `720h`, `90m` or `1h30m` (units: h, m, s).
pub(crate) const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(h|m|s))+$";
/// A Kubernetes object name (RFC 1123 subdomain).
pub(crate) const DNS_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A Kubernetes label value or namespace/workload name (RFC 1123 label).
pub(crate) const DNS_LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A key inside a Secret's `data`.
pub(crate) const SECRET_KEY_PATTERN: &str = r"^[-._a-zA-Z0-9]+$";

/// Which store a key is created in.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
// On the struct, so that adding or removing `kind` (unset means CredentialStore) is
// judged by the kind it amounts to.
// The name too: the upstream ids in status belong to the store that issued them.
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.kind) ? self.kind : 'CredentialStore') == (has(oldSelf.kind) ? oldSelf.kind : 'CredentialStore')",
        "message": "storeRef.kind is immutable: create a new resource to use another kind of store"
    },
    {
        "rule": "self.name == oldSelf.name",
        "message": "storeRef.name is immutable: the key's upstream objects belong to that store; create a new resource to use another store"
    },
]))]
pub struct StoreRef {
    /// Name of the CredentialStore (in this namespace) or ClusterCredentialStore.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Kind of the store: `CredentialStore` (same namespace, the default) or
    /// `ClusterCredentialStore` (cluster-wide, only if it allows this namespace).
    /// Immutable: a key cannot move between stores of different kinds.
    #[serde(default)]
    pub kind: StoreKind,
}

/// The two kinds of store a key can reference.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
pub enum StoreKind {
    /// A namespaced store in the key's own namespace.
    #[default]
    CredentialStore,
    /// A cluster-scoped store that lists the key's namespace as allowed.
    ClusterCredentialStore,
}

impl StoreKind {
    /// The kind's name, also a bounded metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::CredentialStore => "CredentialStore",
            StoreKind::ClusterCredentialStore => "ClusterCredentialStore",
        }
    }
}

/// The Kubernetes Secret the operator writes the generated credential into.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    /// Name of the Secret, in the resource's namespace. Defaults to the resource name.
    /// The operator refuses to take over a Secret it did not create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: Option<String>,
    /// Labels added to the Secret (the operator also sets its own `apikeys.dev/*` labels).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Renames the keys the operator writes: each entry maps a key the operator produces
    /// (listed in the resource's documentation, for example `token`) to the key name the
    /// consuming workload expects. Target names must be distinct.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "secret_key_renames_schema")]
    pub keys: BTreeMap<String, String>,
}

/// Target names are validated by the schema itself; CEL only checks they are distinct
/// (the map is bounded so the API server can estimate the rule's cost).
fn secret_key_renames_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "maxProperties": 16,
        "additionalProperties": {
            "type": "string",
            "minLength": 1,
            "maxLength": 253,
            "pattern": SECRET_KEY_PATTERN,
        },
        "x-kubernetes-validations": [{
            "rule": "self.all(k, self.filter(j, self[j] == self[k]).size() == 1)",
            "message": "secret.keys: two keys cannot be renamed to the same target name",
        }],
    })
}

/// A workload restarted (like `kubectl rollout restart`) after its Secret changes.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutTarget {
    /// Kind of the workload.
    pub kind: WorkloadKind,
    /// Name of the workload in the resource's namespace.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
}

/// Workload kinds whose pod template the operator can annotate to trigger a rollout.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum WorkloadKind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
}

impl std::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
        })
    }
}

/// When and how the credential is replaced by a fresh one.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.maxRetain) || !has(self.retainPrevious) || !self.maxRetain.matches('^([0-9]+(\\\\.[0-9]+)?(h|m|s))+$') || !self.retainPrevious.matches('^([0-9]+(\\\\.[0-9]+)?(h|m|s))+$') || duration(self.maxRetain) >= duration(self.retainPrevious)",
    "message": "rotation.maxRetain must be at least rotation.retainPrevious: it bounds the wait after the retain period"
}]))]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// Rotate this often, as a Go duration (for example `720h` for 30 days). At least `1m`.
    /// Each resource rotates up to a tenth of the interval early, by an amount fixed by its
    /// UID, so keys created together do not all rotate at once; `status.nextRotationTime`
    /// shows when. Unset: no scheduled rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN), extend("x-kubernetes-validations" = [{
        "rule": "!self.matches('^([0-9]+(\\\\.[0-9]+)?(h|m|s))+$') || duration(self) >= duration('1m')",
        "message": "rotation.interval must be at least 1m"
    }]))]
    pub interval: Option<String>,
    /// Rotate this long before the upstream credential expires (Go duration, for example
    /// `168h`). Unset: rotate only on `interval` or on request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN), extend("x-kubernetes-validations" = [{
        "rule": "!self.matches('^([0-9]+(\\\\.[0-9]+)?(h|m|s))+$') || duration(self) >= duration('1m')",
        "message": "rotation.renewBefore must be at least 1m"
    }]))]
    pub renew_before: Option<String>,
    /// How long the previous credential stays valid upstream after a rotation (Go duration,
    /// `0s` to `8760h`), so consumers can pick up the new one without downtime. After this
    /// the previous credential is deactivated and deleted. Default `0s`: retired at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN), extend("x-kubernetes-validations" = [{
        "rule": "!self.matches('^([0-9]+(\\\\.[0-9]+)?(h|m|s))+$') || duration(self) <= duration('8760h')",
        "message": "rotation.retainPrevious must be at most 8760h (one year)"
    }]))]
    pub retain_previous: Option<String>,
    /// Retire the previous credential only once the upstream reports it unused for this
    /// long (Go duration, for example `10m`), on top of `retainPrevious` and the rollout of
    /// every `rolloutRestart` target: evidence that no consumer still holds it. Prefactor
    /// and Trend Micro report use; ZenML retires the previous secret itself after its retain
    /// period, and Akamai reports no use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN), extend("x-kubernetes-validations" = [{
        "rule": "!self.matches('^([0-9]+(\\\\.[0-9]+)?(h|m|s))+$') || duration(self) <= duration('720h')",
        "message": "rotation.retireWhenUnusedFor must be at most 720h"
    }]))]
    pub retire_when_unused_for: Option<String>,
    /// The longest the previous credential is kept while a rollout or its use holds its
    /// retirement (Go duration, at least `retainPrevious`). When it passes, the credential is
    /// retired anyway, with a `RetirementForced` warning naming what held it: a second live
    /// secret must not outlive a rollout that never finishes. Default `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN), extend("x-kubernetes-validations" = [{
        "rule": "!self.matches('^([0-9]+(\\\\.[0-9]+)?(h|m|s))+$') || duration(self) <= duration('8760h')",
        "message": "rotation.maxRetain must be at most 8760h (one year)"
    }]))]
    pub max_retain: Option<String>,
    /// Any value (a timestamp or a counter); each change asks for exactly one rotation.
    /// The GitOps-friendly trigger; the annotation `apikeys.dev/rotate` does the same from kubectl.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub requested_at: Option<String>,
}

/// What happens upstream when the resource is deleted.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Revoke/deactivate and delete the credential upstream (the default).
    #[default]
    Delete,
    /// Leave the credential untouched upstream; only the Kubernetes objects go away.
    Orphan,
}

/// Observed state shared by ApiClient, ApiToken and ServiceAccountKey.
///
/// Besides what a user reads (conditions, upstream state, rotation times), it holds the
/// operator's durable record of intent: an upstream create or rotation is recorded in
/// `pending` before it is sent, so a restarted operator finds what it created instead of
/// creating a twin.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KeyStatus {
    /// Current conditions: `Ready` summarises; detail conditions say which step is unhappy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Identifier of the object upstream (API client id, token id, key id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub upstream_id: Option<String>,
    /// Identifier of the credential currently written to the Secret, where the upstream
    /// distinguishes it from the object (Akamai credential id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub credential_id: Option<String>,
    /// State last observed upstream, in the upstream's own words (for example `active`,
    /// `suspended`, `revoked`, `locked`, `inactive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub upstream_state: Option<String>,
    /// Name of the Secret holding the current credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// `sha256:` followed by the first 16 hex digits of the SHA-256 of the current secret:
    /// tells two credentials apart without revealing either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^sha256:[0-9a-f]{16}$"))]
    pub secret_fingerprint: Option<String>,
    /// When the current credential was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation_time: Option<Time>,
    /// When the operator will rotate next (from `interval`, `renewBefore` and expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_time: Option<Time>,
    /// When the current credential expires upstream, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// When the current credential was last used upstream, as the upstream reports it
    /// (ZenML, Prefactor and Trend Micro do; Akamai does not), to within an hour.
    /// Observed with the upstream object, at the drift resync; absent while unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_time: Option<Time>,
    /// How many times the credential has been rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub rotation_count: Option<i64>,
    /// The rotation requests already acted on, so that each new value of
    /// `rotation.requestedAt` or of the `apikeys.dev/rotate` annotation rotates exactly once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_rotation_requests: Option<RotationRequests>,
    /// An upstream create or rotation that was recorded before it was sent and is not yet
    /// confirmed. Present only while such an operation is in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingOperation>,
    /// Previous credentials still valid upstream during `retainPrevious`, with when each
    /// will be retired.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["id"]))]
    pub retiring: Vec<RetiringCredential>,
    /// A keyed hash the operator writes over this resource's UID and the upstream ids above
    /// (`upstreamId`, `credentialId`, `retiring`). A status whose ids it does not match was
    /// not written by the operator, and the operator does not act on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub owner_proof: Option<String>,
}

/// The values of the two rotation triggers.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RotationRequests {
    /// `spec.rotation.requestedAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub requested_at: Option<String>,
    /// The `apikeys.dev/rotate` annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub annotation: Option<String>,
}

/// The durable record of an upstream create or rotation written before the call.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PendingOperation {
    /// Which operation is in flight.
    pub operation: PendingKind,
    /// The nonce the upstream idempotency key is derived from (ApiToken, and the ZenML
    /// create's `Idempotency-Key` of a ServiceAccountKey), or the client id a credential
    /// is issued on (ApiClient). At most 64 characters, the Prefactor limit.
    #[schemars(length(min = 1, max = 64))]
    pub idempotency_key: String,
    /// When the operation was recorded.
    pub started_at: Time,
    /// Why: `create`, `interval`, `expiring`, `requestedAt`, `annotation` or `secretLost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub trigger: Option<String>,
    /// The exact upstream request (JSON, no secret material), so a retry after a crash
    /// repeats it byte for byte and the upstream recognises it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub request: Option<String>,
}

/// Operations that mint a new secret upstream.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum PendingKind {
    /// First creation of the upstream object.
    Create,
    /// Replacement of the current credential by a new one.
    Rotate,
}

/// A previous credential kept valid during `retainPrevious`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RetiringCredential {
    /// Upstream identifier of the previous credential.
    #[schemars(length(min = 1, max = 255))]
    pub id: String,
    /// When the operator deactivates and deletes it, once nothing holds it (see
    /// `spec.rotation.retireWhenUnusedFor` and `maxRetain`).
    pub retire_at: Time,
    /// Retired at once whatever holds it: replaced by a break-glass (compromised) rotation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub break_glass: bool,
    /// What its retirement waits for after `retireAt`: a rollout still in progress, or a
    /// recent use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub waiting_for: Option<String>,
    /// When the rotation that replaced it happened: `maxRetain` counts from then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<Time>,
}
