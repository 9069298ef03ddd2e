//! ApiToken: a Prefactor API token.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{DeletionPolicy, KeyStatus, RolloutTarget, Rotation, SecretTemplate, StoreRef};

/// Prefactor ids: 32 characters of lowercase Crockford base32.
const PREFACTOR_ID_PATTERN: &str = r"^[0-7][0-9abcdefghjkmnpqrstvwxyz]{31}$";

/// A Prefactor API token. The Secret holds it under key `token`.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "apikeys.dev",
    version = "v1alpha1",
    kind = "ApiToken",
    namespaced,
    status = "KeyStatus",
    shortname = "apitoken",
    category = "apikeys",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".spec.state"}"#,
    printcolumn = r#"{"name":"Upstream","type":"string","jsonPath":".status.upstreamState"}"#,
    printcolumn = r#"{"name":"Secret","type":"string","jsonPath":".status.secretName"}"#,
    printcolumn = r#"{"name":"Rotated","type":"date","jsonPath":".status.lastRotationTime"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Expires","type":"date","priority":1,"jsonPath":".status.expiresAt"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.scope == 'environment' ? has(self.environmentId) : !has(self.environmentId)",
        "message": "spec.environmentId is required when spec.scope is 'environment' and must be unset when it is 'account'",
    },
    {
        // At the spec level, so that removing the field (which means Active) is refused too.
        "rule": "!has(oldSelf.state) || oldSelf.state != 'Revoked' || (has(self.state) && self.state == 'Revoked')",
        "message": "spec.state: Revoked is terminal and cannot be changed back; create a new ApiToken instead",
    },
    {
        "rule": "has(oldSelf.accountId) == has(self.accountId)",
        "message": "spec.accountId cannot be added or removed after creation",
    },
    {
        "rule": "!has(self.secret) || !has(self.secret.keys) || self.secret.keys.all(k, k == 'token')",
        "message": "spec.secret.keys can only rename 'token'",
    },
]))]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenSpec {
    /// The CredentialStore or ClusterCredentialStore (with a `prefactor` block) to create the token in.
    pub store_ref: StoreRef,
    /// What the token can reach: `account` (the whole account) or `environment` (one
    /// environment, named by `environmentId`). Immutable.
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self == oldSelf",
        "message": "spec.scope is immutable: create a new ApiToken for another scope",
    }]))]
    pub scope: TokenScope,
    /// The environment the token is limited to. Required when `scope` is `environment`,
    /// forbidden otherwise. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PREFACTOR_ID_PATTERN), extend("x-kubernetes-validations" = [{
        "rule": "self == oldSelf",
        "message": "spec.environmentId is immutable",
    }]))]
    pub environment_id: Option<String>,
    /// The account the token belongs to. Unset: the store's account. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PREFACTOR_ID_PATTERN), extend("x-kubernetes-validations" = [{
        "rule": "self == oldSelf",
        "message": "spec.accountId is immutable",
    }]))]
    pub account_id: Option<String>,
    /// When the token stops working upstream (RFC 3339). Unset: the upstream default.
    /// A change takes effect at the next rotation, which it triggers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// Desired upstream state: `Active`, `Suspended` (temporarily refused, can be
    /// re-activated) or `Revoked` (permanently refused). `Revoked` is terminal: it cannot
    /// be changed back; create a new ApiToken instead.
    #[serde(default)]
    pub state: TokenState,
    /// The Secret the token is written to (key `token`).
    #[serde(default)]
    pub secret: SecretTemplate,
    /// Workloads restarted after the Secret changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub rollout_restart: Vec<RolloutTarget>,
    /// When the token is replaced by a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
    /// What happens upstream when this resource is deleted: `Delete` (revoke and delete
    /// the token, the default) or `Orphan` (leave it).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// What a Prefactor token can reach.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    /// The whole account.
    Account,
    /// One environment.
    Environment,
}

/// Desired state of a Prefactor token.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum TokenState {
    /// The token authenticates.
    #[default]
    Active,
    /// The token is refused until set back to Active.
    Suspended,
    /// The token is refused for good (terminal).
    Revoked,
}
