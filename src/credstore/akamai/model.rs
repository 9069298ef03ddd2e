//! Akamai IAM API client and credential records, request bodies, and their JSON.

use axum::http::StatusCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::catalogue;
use crate::credstore::clock::{rfc3339, rfc3339_millis};
use crate::credstore::http::ApiError;

/// Credentials may live at most this long (and do by default).
pub const MAX_CREDENTIAL_LIFETIME_MS: i64 = 2 * 365 * 24 * 3600 * 1000 + 24 * 3600 * 1000;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub switch_key: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClientType {
    Client,
    UserClient,
    ServiceAccount,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Client {
    pub client_id: String,
    pub account_id: String,
    pub client_name: String,
    pub client_description: String,
    pub client_type: ClientType,
    pub authorized_users: Vec<String>,
    pub allow_account_switch: bool,
    pub can_auto_create_credential: bool,
    pub is_locked: bool,
    pub notification_emails: Vec<String>,
    pub api_access: Value,
    pub group_access: Value,
    pub ip_acl: Value,
    /// Absent from records written before the store kept purge options.
    #[serde(default)]
    pub purge_options: Option<Value>,
    pub created_by: String,
    pub created_ms: i64,
    pub access_token: String,
    pub service_consumer_token: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CredentialStatus {
    Active,
    Inactive,
    Deleted,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Credential {
    pub credential_id: i64,
    pub client_id: String,
    pub client_token: String,
    /// The client secret, sealed under the master key: EdgeGrid is an HMAC, so
    /// the verifier needs the secret itself, not a hash.
    pub sealed_secret: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub status: CredentialStatus,
    pub description: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ApiAccess {
    all_accessible_apis: Option<bool>,
    apis: Option<Vec<ApiGrant>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ApiGrant {
    api_id: i64,
    #[serde(rename = "accessLevel")]
    _access_level: AccessLevel,
}

/// The levels of the official Go SDK's `AccessLevel` (edgegrid-golang v11): the
/// `CREDENTIAL-*` levels grant only credential management; `READ` is the SDK's too.
#[derive(Debug, Deserialize)]
enum AccessLevel {
    #[serde(rename = "READ-ONLY")]
    ReadOnly,
    #[serde(rename = "READ-WRITE")]
    ReadWrite,
    #[serde(rename = "READ")]
    Read,
    #[serde(rename = "CREDENTIAL-READ-ONLY")]
    CredentialReadOnly,
    #[serde(rename = "CREDENTIAL-READ-WRITE")]
    CredentialReadWrite,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GroupAccess {
    clone_authorized_user_groups: Option<bool>,
    groups: Option<Vec<GroupGrant>>,
}

/// A group and role, with nested grants in subgroups (the SDK's `ClientGroupRequestItem`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GroupGrant {
    group_id: i64,
    role_id: i64,
    subgroups: Option<Vec<GroupGrant>>,
}

impl GroupGrant {
    fn check(&self) -> Result<(), ApiError> {
        if self.group_id <= 0 || self.role_id <= 0 {
            return Err(bad("groupAccess.groups need a groupId and a roleId"));
        }
        self.subgroups.iter().flatten().try_for_each(GroupGrant::check)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IpAcl {
    enable: bool,
    /// `null` is what the SDK (and Terraform through it) sends for no list.
    cidr: Option<Vec<String>>,
}

/// Access to the Fast Purge API (the SDK's `PurgeOptions`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PurgeOptions {
    can_purge_by_cache_tag: bool,
    #[serde(rename = "canPurgeByCpcode")]
    can_purge_by_cpcode: bool,
    cpcode_access: CpcodeAccess,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CpcodeAccess {
    #[serde(rename = "allCurrentAndNewCpcodes")]
    all_current_and_new_cpcodes: bool,
    cpcodes: Option<Vec<i64>>,
}

impl PurgeOptions {
    /// The stored form; the SDK requires a cpcodes list unless every CP code is granted,
    /// and Terraform refuses CP codes next to `allCurrentAndNewCpcodes`.
    fn stored(self) -> Result<Value, ApiError> {
        let access = self.cpcode_access;
        let cpcodes = match (access.all_current_and_new_cpcodes, access.cpcodes) {
            (false, None) => {
                return Err(bad(
                    "purgeOptions.cpcodeAccess.cpcodes is required unless allCurrentAndNewCpcodes is true",
                ));
            }
            (true, Some(codes)) if !codes.is_empty() => {
                return Err(bad(
                    "purgeOptions.cpcodeAccess.cpcodes must be empty when allCurrentAndNewCpcodes is true",
                ));
            }
            (_, codes) => codes.unwrap_or_default(),
        };
        Ok(json!({
            "canPurgeByCacheTag": self.can_purge_by_cache_tag,
            "canPurgeByCpcode": self.can_purge_by_cpcode,
            "cpcodeAccess": {
                "allCurrentAndNewCpcodes": access.all_current_and_new_cpcodes,
                "cpcodes": cpcodes,
            },
        }))
    }
}

/// The create body (`additionalProperties: false`); update is the same minus `createCredential`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientBody {
    pub client_type: ClientType,
    api_access: Value,
    group_access: Value,
    pub authorized_users: Vec<String>,
    pub allow_account_switch: Option<bool>,
    pub can_auto_create_credential: Option<bool>,
    pub client_description: Option<String>,
    pub client_name: Option<String>,
    pub create_credential: Option<bool>,
    ip_acl: Option<Value>,
    pub notification_emails: Option<Vec<String>>,
    purge_options: Option<Value>,
}

/// A checked body, its access parts in the form the client stores.
pub struct ClientSettings {
    body: ClientBody,
    ip_acl: Value,
    purge_options: Option<Value>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid-input", message)
}

fn parse<T: serde::de::DeserializeOwned>(field: &str, value: &Value) -> Result<T, ApiError> {
    serde_json::from_value(value.clone()).map_err(|e| bad(format!("{field}: {e}")))
}

impl ClientBody {
    /// Checks what the JSON schema of the API says beyond field types.
    pub fn validate(mut self, is_update: bool) -> Result<ClientSettings, ApiError> {
        if is_update && self.create_credential.is_some() {
            return Err(bad("createCredential is not allowed in an update"));
        }
        if self.client_type == ClientType::ServiceAccount {
            return Err(bad("clientType must be CLIENT or USER_CLIENT"));
        }
        if self.authorized_users.len() != 1 || self.authorized_users[0].trim().is_empty() {
            return Err(bad(
                "authorizedUsers must name exactly one user for CLIENT and USER_CLIENT",
            ));
        }
        check_api_access(parse("apiAccess", &self.api_access)?)?;
        check_group_access(parse("groupAccess", &self.group_access)?)?;
        // The SDK always sends clientName, empty when unset: a create names the client then.
        if !is_update && self.client_name.as_deref() == Some("") {
            self.client_name = None;
        }
        if self
            .client_name
            .as_deref()
            .is_some_and(|n| n.is_empty() || n.chars().count() > 255)
        {
            return Err(bad("clientName must be 1 to 255 characters"));
        }
        let ip_acl = match &self.ip_acl {
            Some(acl) => {
                let acl: IpAcl = parse("ipAcl", acl)?;
                json!({"enable": acl.enable, "cidr": acl.cidr.unwrap_or_default()})
            }
            None => json!({"enable": false, "cidr": []}),
        };
        let purge_options = match &self.purge_options {
            Some(options) => Some(parse::<PurgeOptions>("purgeOptions", options)?.stored()?),
            None => None,
        };
        Ok(ClientSettings {
            body: self,
            ip_acl,
            purge_options,
        })
    }
}

fn check_api_access(access: ApiAccess) -> Result<(), ApiError> {
    let apis = access.apis.unwrap_or_default();
    if access.all_accessible_apis != Some(true) && apis.is_empty() {
        return Err(bad(
            "apiAccess needs allAccessibleApis: true or a non-empty apis list",
        ));
    }
    if apis.iter().any(|api| api.api_id <= 0) {
        return Err(bad("apiAccess.apis need an apiId"));
    }
    Ok(())
}

fn check_group_access(access: GroupAccess) -> Result<(), ApiError> {
    let groups = access.groups.unwrap_or_default();
    if access.clone_authorized_user_groups != Some(true) && groups.is_empty() {
        return Err(bad(
            "groupAccess needs cloneAuthorizedUserGroups: true or a non-empty groups list",
        ));
    }
    groups.iter().try_for_each(GroupGrant::check)
}

impl ClientSettings {
    /// Whether the body asks for a credential along with the new client.
    pub fn creates_credential(&self) -> bool {
        self.body.create_credential == Some(true)
    }

    /// Replaces the client's settings with these (a full replace: what is absent is reset).
    pub fn apply_to(self, client: &mut Client) {
        let body = self.body;
        client.client_type = body.client_type;
        client.authorized_users = body.authorized_users;
        client.allow_account_switch = body.allow_account_switch.unwrap_or(false);
        client.can_auto_create_credential = body.can_auto_create_credential.unwrap_or(false);
        client.client_description = body.client_description.unwrap_or_default();
        if let Some(name) = body.client_name {
            client.client_name = name;
        }
        client.notification_emails = body.notification_emails.unwrap_or_default();
        client.api_access = body.api_access;
        client.group_access = body.group_access;
        client.ip_acl = self.ip_acl;
        client.purge_options = self.purge_options;
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialUpdate {
    pub expires_on: String,
    pub status: CredentialStatus,
    pub description: Option<String>,
}

impl CredentialUpdate {
    /// `expiresOn` in milliseconds. Akamai refuses a date-time without fractional seconds:
    /// that is why the Go SDK sends whole seconds plus 1 ns (`.000000001Z`, its IDM-3347).
    pub fn expires_ms(&self) -> Result<i64, ApiError> {
        let expires: Timestamp = self
            .expires_on
            .parse()
            .map_err(|_| bad("expiresOn must be an ISO 8601 date-time"))?;
        let has_fraction = self
            .expires_on
            .split_once('T')
            .is_some_and(|(_, time)| time.as_bytes().get(8) == Some(&b'.'));
        if !has_fraction {
            return Err(bad(
                "expiresOn needs fractional seconds, e.g. 2028-10-11T23:06:59.000Z",
            ));
        }
        Ok(expires.as_millisecond())
    }
}

fn ts(ms: i64) -> Value {
    Timestamp::from_millisecond(ms)
        .map(rfc3339)
        .map(Value::String)
        .unwrap_or(Value::Null)
}

fn ts_millis(ms: i64) -> Value {
    Timestamp::from_millisecond(ms)
        .map(rfc3339_millis)
        .map(Value::String)
        .unwrap_or(Value::Null)
}

pub fn credential_json(credential: &Credential, secret: Option<&str>) -> Value {
    let status = credential.status;
    let mut value = json!({
        "credentialId": credential.credential_id,
        "clientToken": credential.client_token,
        "createdOn": ts_millis(credential.created_ms),
        "expiresOn": ts_millis(credential.expires_ms),
        "maxAllowedExpiry": ts_millis(credential.created_ms + MAX_CREDENTIAL_LIFETIME_MS),
        "status": status,
        "description": credential.description,
        "actions": {
            "activate": status == CredentialStatus::Inactive,
            "deactivate": status == CredentialStatus::Active,
            "delete": status == CredentialStatus::Inactive,
            "editDescription": status != CredentialStatus::Deleted,
            "editExpiration": status != CredentialStatus::Deleted,
        },
    });
    if let Some(secret) = secret {
        value["clientSecret"] = json!(secret);
    }
    value
}

/// Which optional parts a response carries, and who asks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Detail {
    pub actions: bool,
    /// `apiAccess`, and `purgeOptions` (access to the Fast Purge API) with it.
    pub api_access: bool,
    pub group_access: bool,
    pub credentials: bool,
    pub ip_acl: bool,
    /// Whether the caller may switch accounts, and so grant account switching.
    pub caller_switches_accounts: bool,
}

impl Detail {
    /// Everything: what create and update answer with.
    pub fn full(caller_switches_accounts: bool) -> Self {
        Self {
            actions: true,
            api_access: true,
            group_access: true,
            credentials: true,
            ip_acl: true,
            caller_switches_accounts,
        }
    }
}

/// Fast Purge access of a client created without `purgeOptions`.
fn default_purge_options() -> Value {
    json!({
        "canPurgeByCacheTag": false,
        "canPurgeByCpcode": false,
        "cpcodeAccess": {"allCurrentAndNewCpcodes": false, "cpcodes": []},
    })
}

pub fn client_json(client: &Client, credentials: &[Credential], base_url: &str, detail: Detail) -> Value {
    let active = credentials
        .iter()
        .filter(|c| c.status == CredentialStatus::Active)
        .count();
    let mut value = json!({
        "accessToken": client.access_token,
        "activeCredentialCount": active,
        "allowAccountSwitch": client.allow_account_switch,
        "authorizedUsers": client.authorized_users,
        "canAutoCreateCredential": client.can_auto_create_credential,
        "clientDescription": client.client_description,
        "clientId": client.client_id,
        "clientName": client.client_name,
        "clientType": client.client_type,
        "createdBy": client.created_by,
        "createdDate": ts(client.created_ms),
        "isLocked": client.is_locked,
        "notificationEmails": client.notification_emails,
        "serviceConsumerToken": client.service_consumer_token,
        "baseURL": base_url,
        "serviceProviderId": 1,
    });
    if detail.actions {
        value["actions"] = actions_json(client, active, detail.caller_switches_accounts);
    }
    if detail.api_access {
        value["apiAccess"] = api_access_json(&client.api_access);
        value["purgeOptions"] = client.purge_options.clone().unwrap_or_else(default_purge_options);
    }
    if detail.group_access {
        value["groupAccess"] = group_access_json(&client.group_access);
    }
    if detail.ip_acl {
        value["ipAcl"] = client.ip_acl.clone();
    }
    if detail.credentials {
        value["credentials"] = credentials.iter().map(|c| credential_json(c, None)).collect();
    }
    value
}

/// A locked client must be unlocked before any change, so every edit action follows the lock.
fn actions_json(client: &Client, active: usize, caller_switches_accounts: bool) -> Value {
    let editable = !client.is_locked;
    json!({
        "delete": true,
        "deactivateAll": active > 0,
        "edit": editable,
        "editApis": editable,
        "editAuth": editable,
        "editGroups": editable,
        "editIpAcl": editable,
        // Only a caller that manages several accounts can grant account switching.
        "editSwitchAccount": editable && caller_switches_accounts,
        "lock": editable,
        "transfer": editable,
        "unlock": client.is_locked,
    })
}

/// The stored grants with the API details responses add; all APIs for `allAccessibleApis`.
fn api_access_json(stored: &Value) -> Value {
    let all = stored["allAccessibleApis"].as_bool() == Some(true);
    let apis: Vec<Value> = if all {
        catalogue::all_apis()
    } else {
        grants(&stored["apis"])
            .map(|g| {
                catalogue::api(
                    g["apiId"].as_i64().unwrap_or_default(),
                    g["accessLevel"].as_str().unwrap_or_default(),
                )
            })
            .collect()
    };
    json!({"allAccessibleApis": all, "apis": apis})
}

/// The stored groups with names and roles; the authorized user's for `cloneAuthorizedUserGroups`.
fn group_access_json(stored: &Value) -> Value {
    let clone = stored["cloneAuthorizedUserGroups"].as_bool() == Some(true);
    let groups = if clone {
        catalogue::user_groups()
    } else {
        described_groups(&stored["groups"])
    };
    json!({"cloneAuthorizedUserGroups": clone, "groups": groups})
}

fn described_groups(stored: &Value) -> Vec<Value> {
    grants(stored)
        .map(|g| {
            catalogue::group(
                g["groupId"].as_i64().unwrap_or_default(),
                g["roleId"].as_i64().unwrap_or_default(),
                described_groups(&g["subgroups"]),
            )
        })
        .collect()
}

/// The entries of a stored (validated) grant list; none for `null` or absent.
fn grants(list: &Value) -> impl Iterator<Item = &Value> {
    list.as_array().into_iter().flatten()
}
