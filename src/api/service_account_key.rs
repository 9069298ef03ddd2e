//! ServiceAccountKey: a ZenML service-account API key or a Trend Micro API key.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    DeletionPolicy, KeyStatus, NO_MARK_MESSAGE, NO_MARK_RULE, RolloutTarget, Rotation, SecretTemplate,
    StoreRef,
};

/// An API key of a ZenML service account or a Trend Micro API key, depending on the
/// store's provider. The Secret holds it under key `apiKey`.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "apikeys.dev",
    version = "v1alpha1",
    kind = "ServiceAccountKey",
    namespaced,
    status = "KeyStatus",
    shortname = "sakey",
    category = "apikeys",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Active","type":"boolean","jsonPath":".spec.active"}"#,
    printcolumn = r#"{"name":"Upstream","type":"string","jsonPath":".status.upstreamState"}"#,
    printcolumn = r#"{"name":"Secret","type":"string","jsonPath":".status.secretName"}"#,
    printcolumn = r#"{"name":"Rotated","type":"date","jsonPath":".status.lastRotationTime"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Expires","type":"date","priority":1,"jsonPath":".status.expiresAt"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!(has(self.serviceAccount) && has(self.roleID))",
        "message": "spec.serviceAccount (ZenML) and spec.roleID (Trend Micro) cannot both be set: set the one matching the store's provider",
    },
    {
        "rule": "!has(self.serviceAccount) || (!has(self.locale) && !has(self.timeZone))",
        "message": "spec.locale and spec.timeZone apply to Trend Micro keys only and must be unset with spec.serviceAccount",
    },
    {
        "rule": "has(oldSelf.serviceAccount) == has(self.serviceAccount) && has(oldSelf.keyName) == has(self.keyName)",
        "message": "spec.serviceAccount and spec.keyName cannot be added or removed after creation",
    },
    {
        "rule": "!has(self.secret) || !has(self.secret.keys) || self.secret.keys.all(k, k == 'apiKey')",
        "message": "spec.secret.keys can only rename 'apiKey'",
    },
]))]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountKeySpec {
    /// The CredentialStore or ClusterCredentialStore (with a `zenml` or `trendMicro`
    /// block) to create the key in.
    pub store_ref: StoreRef,
    /// ZenML: the service account (name or UUID) that owns the key. Required for ZenML
    /// stores. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), extend("x-kubernetes-validations" = [{
        "rule": "self == oldSelf",
        "message": "spec.serviceAccount is immutable: create a new ServiceAccountKey for another service account",
    }]))]
    pub service_account: Option<String>,
    /// Name of the key upstream. Unset: `<namespace>-<name>` of this resource. At most
    /// 255 characters (the ZenML limit). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), extend("x-kubernetes-validations" = [{
        "rule": "self == oldSelf",
        "message": "spec.keyName is immutable",
    }]))]
    pub key_name: Option<String>,
    /// Trend Micro: id of the role the key acts with. Required for Trend Micro stores.
    #[serde(default, rename = "roleID", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub role_id: Option<i64>,
    /// Trend Micro: locale of the key, `en-US` (default) or `ja-JP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<Locale>,
    /// Trend Micro: IANA time zone of the key, for example `Europe/Berlin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")
    )]
    pub time_zone: Option<String>,
    /// Free-text description stored with the key upstream. The operator appends the owner
    /// mark `[apikeys.dev/owner=…]` that ties the key to this resource, so the text itself
    /// may not contain `apikeys.dev/owner=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024), extend("x-kubernetes-validations" = [{
        "rule": NO_MARK_RULE,
        "message": NO_MARK_MESSAGE,
    }]))]
    pub description: Option<String>,
    /// Trend Micro: when the key stops working (RFC 3339). Unset: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// Whether the key authenticates. `false` locks it out upstream without deleting it.
    #[serde(default = "default_true")]
    pub active: bool,
    /// The Secret the key is written to (key `apiKey`).
    #[serde(default)]
    pub secret: SecretTemplate,
    /// Workloads restarted after the Secret changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub rollout_restart: Vec<RolloutTarget>,
    /// When the key is replaced by a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
    /// What happens upstream when this resource is deleted: `Delete` (deactivate and
    /// delete the key, the default) or `Orphan` (leave it).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

fn default_true() -> bool {
    true
}

/// Locales a Trend Micro API key can have.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum Locale {
    /// English (United States).
    #[serde(rename = "en-US")]
    EnUs,
    /// Japanese.
    #[serde(rename = "ja-JP")]
    JaJp,
}
