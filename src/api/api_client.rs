//! ApiClient: an Akamai IAM API client and the credential the operator manages for it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    DeletionPolicy, KeyStatus, NO_MARK_MESSAGE, NO_MARK_RULE, RolloutTarget, Rotation, SecretTemplate,
    StoreRef,
};

/// An Akamai API client. The Secret holds `host`, `client_token`, `client_secret`,
/// `access_token` and a rendered `.edgerc` (section `[default]`).
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "apikeys.dev",
    version = "v1alpha1",
    kind = "ApiClient",
    namespaced,
    status = "KeyStatus",
    shortname = "apiclient",
    category = "apikeys",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Locked","type":"boolean","jsonPath":".spec.locked"}"#,
    printcolumn = r#"{"name":"Upstream","type":"string","jsonPath":".status.upstreamState"}"#,
    printcolumn = r#"{"name":"Secret","type":"string","jsonPath":".status.secretName"}"#,
    printcolumn = r#"{"name":"Rotated","type":"date","jsonPath":".status.lastRotationTime"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Expires","type":"date","priority":1,"jsonPath":".status.expiresAt"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.secret) || !has(self.secret.keys) || self.secret.keys.all(k, k in ['host', 'client_token', 'client_secret', 'access_token', '.edgerc'])",
        "message": "spec.secret.keys can only rename 'host', 'client_token', 'client_secret', 'access_token' and '.edgerc'",
    },
    {
        // At the spec level, so that adding or removing the field (unset means CLIENT) is
        // judged by the type it amounts to.
        "rule": "(has(self.clientType) ? self.clientType : 'CLIENT') == (has(oldSelf.clientType) ? oldSelf.clientType : 'CLIENT')",
        "message": "spec.clientType is immutable: create a new ApiClient for another type",
    },
    {
        "rule": "!has(self.rotation) || !has(self.rotation.retireWhenUnusedFor)",
        "message": "spec.rotation.retireWhenUnusedFor cannot apply: Akamai reports no use of a client credential",
    },
    {
        "rule": "!has(self.apiAccess.allAccessibleApis) || !self.apiAccess.allAccessibleApis || has(self.purgeOptions)",
        "message": "spec.purgeOptions is required with spec.apiAccess.allAccessibleApis: true (it grants the Fast Purge API too); set canPurgeByCacheTag, canPurgeByCpcode and cpcodeAccess",
    },
]))]
#[serde(rename_all = "camelCase")]
pub struct ApiClientSpec {
    /// The CredentialStore or ClusterCredentialStore (with an `akamai` block) to create the client in.
    pub store_ref: StoreRef,
    /// Name of the API client upstream. Unset: `<namespace>-<name>` of this resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub client_name: Option<String>,
    /// Description of the API client upstream. The operator appends the owner mark
    /// `[apikeys.dev/owner=…]` that ties the client to this resource, so the text itself may
    /// not contain `apikeys.dev/owner=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), extend("x-kubernetes-validations" = [{
        "rule": NO_MARK_RULE,
        "message": NO_MARK_MESSAGE,
    }]))]
    pub client_description: Option<String>,
    /// `CLIENT` (the creator owns and manages the credentials, the default) or
    /// `USER_CLIENT` (another user owns the client). Immutable.
    #[serde(default)]
    pub client_type: ClientType,
    /// The one user the client acts for (CLIENT and USER_CLIENT clients have exactly one).
    #[schemars(length(min = 1, max = 1), extend("x-kubernetes-list-type" = "atomic"))]
    #[schemars(inner(length(min = 1, max = 255)))]
    pub authorized_users: Vec<String>,
    /// Which APIs the client may call.
    pub api_access: ApiAccess,
    /// Which groups (and roles in them) the client acts in.
    pub group_access: GroupAccess,
    /// Whether the client may manage other accounts through account switch keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_account_switch: Option<bool>,
    /// Whether the client may create credentials for new API clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_auto_create_credential: Option<bool>,
    /// Restricts the networks the client can be used from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_acl: Option<IpAcl>,
    /// What the client may purge through the Fast Purge (CCU) API. Required with
    /// `apiAccess.allAccessibleApis: true` (as Akamai's Terraform provider requires); with an
    /// `apis` list, only meaningful when the list holds the CCU API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purge_options: Option<PurgeOptions>,
    /// Addresses notified before the client's credentials expire.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 32),
        inner(length(min = 3, max = 254), regex(pattern = r"^[^@\s]+@[^@\s]+$"))
    )]
    pub notification_emails: Vec<String>,
    /// `true` locks the client upstream (it cannot make requests); `false` unlocks it.
    /// Settings changes to a locked client are applied with unlock → update → lock.
    #[serde(default)]
    pub locked: bool,
    /// The credential the operator creates and rotates for this client.
    #[serde(default)]
    pub credential: ManagedCredential,
    /// The Secret the credential is written to.
    #[serde(default)]
    pub secret: SecretTemplate,
    /// Workloads restarted after the Secret changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub rollout_restart: Vec<RolloutTarget>,
    /// When the credential is replaced by a new one. `renewBefore` is measured against the
    /// credential's `expiresOn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
    /// What happens upstream when this resource is deleted: `Delete` (deactivate all
    /// credentials and delete the client, the default) or `Orphan` (leave it).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// Akamai client types that can be created through the API.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum ClientType {
    /// The creator owns and manages the credentials.
    #[default]
    #[serde(rename = "CLIENT")]
    Client,
    /// Another user owns the client and manages the credentials.
    #[serde(rename = "USER_CLIENT")]
    UserClient,
}

/// Which APIs the client may call: either all the authorized user can reach, or a list.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.allAccessibleApis) && self.allAccessibleApis ? !has(self.apis) : has(self.apis)",
    "message": "spec.apiAccess must set either allAccessibleApis: true or a non-empty apis list, not both",
}]))]
pub struct ApiAccess {
    /// Grant every API the authorized user can access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_accessible_apis: Option<bool>,
    /// Grant these APIs only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub apis: Option<Vec<ApiGrant>>,
}

/// One API the client may call, and how.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ApiGrant {
    /// Akamai's id of the API.
    #[schemars(range(min = 1))]
    pub api_id: i64,
    /// `READ-ONLY`, `READ-WRITE`, `CREDENTIAL-READ-ONLY` or `CREDENTIAL-READ-WRITE` (the
    /// levels an API offers are listed by Akamai's allowed-APIs call for the user).
    pub access_level: AccessLevel,
}

/// Access levels of an API grant.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum AccessLevel {
    /// Read calls only.
    #[serde(rename = "READ-ONLY")]
    ReadOnly,
    /// Read and write calls.
    #[serde(rename = "READ-WRITE")]
    ReadWrite,
    /// Reading credentials (of the Identity and Access Management API).
    #[serde(rename = "CREDENTIAL-READ-ONLY")]
    CredentialReadOnly,
    /// Reading and managing credentials.
    #[serde(rename = "CREDENTIAL-READ-WRITE")]
    CredentialReadWrite,
}

/// Fast Purge permissions, with Akamai's field names.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PurgeOptions {
    /// Whether the client may purge by cache tag.
    pub can_purge_by_cache_tag: bool,
    /// Whether the client may purge by CP code.
    #[serde(rename = "canPurgeByCpcode")]
    pub can_purge_by_cp_code: bool,
    /// Which CP codes the client may purge.
    #[serde(rename = "cpcodeAccess")]
    pub cp_code_access: CpCodeAccess,
}

/// The CP codes a client may purge: all (current and future), or a list.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!self.allCurrentAndNewCpcodes || !has(self.cpcodes) || size(self.cpcodes) == 0",
    "message": "spec.purgeOptions.cpcodeAccess.cpcodes must be empty when allCurrentAndNewCpcodes is true",
}]))]
pub struct CpCodeAccess {
    /// Every CP code the authorized user can reach, now and in future.
    #[serde(rename = "allCurrentAndNewCpcodes")]
    pub all_current_and_new_cp_codes: bool,
    /// These CP codes only (when `allCurrentAndNewCpcodes` is false).
    #[serde(default, rename = "cpcodes")]
    #[schemars(length(max = 1024), extend("x-kubernetes-list-type" = "set"))]
    #[schemars(inner(range(min = 1)))]
    pub cp_codes: Vec<i64>,
}

/// Which groups the client acts in: a copy of the authorized user's, or a list.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.cloneAuthorizedUserGroups) && self.cloneAuthorizedUserGroups ? !has(self.groups) : has(self.groups)",
    "message": "spec.groupAccess must set either cloneAuthorizedUserGroups: true or a non-empty groups list, not both",
}]))]
pub struct GroupAccess {
    /// Use the authorized user's groups and roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_authorized_user_groups: Option<bool>,
    /// Use these groups and roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub groups: Option<Vec<GroupGrant>>,
}

/// A group and the role the client has in it.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GroupGrant {
    /// Akamai's id of the group.
    #[schemars(range(min = 1))]
    pub group_id: i64,
    /// Akamai's id of the role in that group.
    #[schemars(range(min = 1))]
    pub role_id: i64,
}

/// An IP allow-list for the client.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IpAcl {
    /// Whether the allow-list is enforced.
    pub enable: bool,
    /// Allowed networks in CIDR notation, for example `203.0.113.0/24`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(max = 43)))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(c, isCIDR(c))",
        "message": "spec.ipAcl.cidr entries must be CIDR blocks such as 203.0.113.0/24",
    }]))]
    pub cidr: Vec<String>,
}

/// The credential (client token + secret) the operator manages for the client.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManagedCredential {
    /// Description stored with the credential upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub description: Option<String>,
    /// When the credential expires (RFC 3339). Unset: the upstream default (two years
    /// after creation). A change is applied to the current credential in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
}
