//! Store policy: what key resources may ask for through a store (DESIGN §6, last rule).
//! The store's owner writes it; the operator checks every key against it before anything
//! happens upstream.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{DNS_LABEL_PATTERN, DURATION_PATTERN};
use super::{AccessLevel, TokenScope};

/// Rules, tried in order: the first whose namespaces match the key's namespace applies. A
/// ClusterCredentialStore with a policy refuses keys from a namespace no rule matches.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorePolicy {
    #[schemars(length(min = 1, max = 64), extend("x-kubernetes-list-type" = "atomic"))]
    pub rules: Vec<PolicyRule>,
}

/// What keys from the namespaces a rule matches may ask for. Unset fields do not constrain.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.namespaces) || has(self.namespaceSelector)",
    "message": "a rule must name namespaces or set a namespaceSelector",
}]))]
pub struct PolicyRule {
    /// Name of the rule, quoted in refusals.
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub name: String,
    /// Namespaces the rule applies to, by name; `*` matches all. Combined with
    /// `namespaceSelector` by OR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 63)), extend("x-kubernetes-list-type" = "set"))]
    pub namespaces: Vec<String>,
    /// Namespaces the rule applies to, by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// The longest a credential may live: `spec.expiresAt` (ApiClient:
    /// `spec.credential.expiresAt`) no later than this after now, and required. ZenML keys
    /// never expire, so a rule with `maxLifetime` refuses them: bound them with
    /// `maxRotationInterval` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub max_lifetime: Option<String>,
    /// The longest a credential may go unrotated: `spec.rotation.interval` required and no
    /// longer than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub max_rotation_interval: Option<String>,
    /// Upstream names (`spec.keyName`, `spec.clientName`, or the default
    /// `<namespace>-<name>-<hash>`) must start with this. Prefactor tokens have no name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub name_prefix: Option<String>,
    /// The most key resources (of all kinds) one namespace may have using this store; the
    /// oldest win, a newer one is refused until another is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub max_keys_per_namespace: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zenml: Option<ZenmlRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend_micro: Option<TrendMicroRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub akamai: Option<AkamaiRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefactor: Option<PrefactorRule>,
}

/// ZenML keys.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZenmlRule {
    /// Service accounts keys may be created on, as `spec.serviceAccount` names them (name
    /// or UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 255)))]
    pub service_accounts: Option<Vec<String>>,
}

/// Trend Micro keys.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrendMicroRule {
    /// Roles keys may act with (`spec.roleID`).
    #[serde(default, rename = "roleIDs", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub role_ids: Option<Vec<i64>>,
    /// Keys must set `spec.expiresAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_expiry: Option<bool>,
}

/// Akamai API clients.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AkamaiRule {
    /// Users a client may act for (`spec.authorizedUsers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 255)))]
    pub authorized_users: Option<Vec<String>>,
    /// Whether `spec.apiAccess.allAccessibleApis: true` is allowed. Unset: allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_all_accessible_apis: Option<bool>,
    /// APIs a client may be granted, each with the highest access level allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub apis: Option<Vec<ApiLimit>>,
    /// Whether `spec.groupAccess.cloneAuthorizedUserGroups: true` is allowed. Unset: allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_clone_groups: Option<bool>,
    /// Groups a client may be given, each with the roles allowed in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub groups: Option<Vec<GroupLimit>>,
    /// Whether `spec.allowAccountSwitch: true` is allowed. Unset: allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_account_switch: Option<bool>,
    /// Clients must have an enabled IP allow-list (`spec.ipAcl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_ip_acl: Option<bool>,
    /// Every network of a client's IP allow-list must lie within one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256), inner(length(max = 43)))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(c, isCIDR(c))",
        "message": "ipAclWithin entries must be CIDR blocks such as 10.0.0.0/8",
    }]))]
    pub ip_acl_within: Option<Vec<String>>,
}

/// An API a client may be granted, up to an access level.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ApiLimit {
    #[schemars(range(min = 1))]
    pub api_id: i64,
    /// The most a grant of this API may ask: `READ-WRITE` allows every level; `READ-ONLY`
    /// allows `READ-ONLY` and `CREDENTIAL-READ-ONLY`; `CREDENTIAL-READ-WRITE` allows the two
    /// `CREDENTIAL-*` levels only; `CREDENTIAL-READ-ONLY` only itself.
    pub max_access_level: AccessLevel,
}

/// A group a client may be given, with the roles allowed in it.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GroupLimit {
    #[schemars(range(min = 1))]
    pub group_id: i64,
    #[schemars(length(min = 1, max = 256))]
    pub role_ids: Vec<i64>,
}

/// Prefactor tokens.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrefactorRule {
    /// Scopes tokens may have (`spec.scope`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<TokenScope>>,
    /// Environments environment-scoped tokens may be bound to (`spec.environmentId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub environment_ids: Option<Vec<String>>,
    /// Accounts tokens may belong to (`spec.accountId`, else the store's `accountId`; a
    /// token naming neither is refused, as its account is only the admin token's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub account_ids: Option<Vec<String>>,
}
