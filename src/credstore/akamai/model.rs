//! Akamai IAM API client and credential records, request bodies, and their JSON.

use axum::http::StatusCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

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
    #[serde(rename = "apiId")]
    _api_id: i64,
    #[serde(rename = "accessLevel")]
    _access_level: AccessLevel,
}

#[derive(Debug, Deserialize)]
enum AccessLevel {
    #[serde(rename = "READ-ONLY")]
    ReadOnly,
    #[serde(rename = "READ-WRITE")]
    ReadWrite,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GroupAccess {
    clone_authorized_user_groups: Option<bool>,
    groups: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IpAcl {
    #[serde(rename = "enable")]
    _enable: bool,
    #[serde(rename = "cidr", default)]
    _cidr: Vec<String>,
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
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid-input", message)
}

impl ClientBody {
    /// Checks what the JSON schema of the API says beyond field types.
    pub fn validate(&self, is_update: bool) -> Result<(), ApiError> {
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
        let api_access: ApiAccess =
            serde_json::from_value(self.api_access.clone()).map_err(|e| bad(format!("apiAccess: {e}")))?;
        if api_access.all_accessible_apis != Some(true) && api_access.apis.as_ref().is_none_or(Vec::is_empty)
        {
            return Err(bad(
                "apiAccess needs allAccessibleApis: true or a non-empty apis list",
            ));
        }
        let group_access: GroupAccess = serde_json::from_value(self.group_access.clone())
            .map_err(|e| bad(format!("groupAccess: {e}")))?;
        if group_access.clone_authorized_user_groups != Some(true)
            && group_access.groups.as_ref().is_none_or(Vec::is_empty)
        {
            return Err(bad(
                "groupAccess needs cloneAuthorizedUserGroups: true or a non-empty groups list",
            ));
        }
        if let Some(acl) = &self.ip_acl {
            serde_json::from_value::<IpAcl>(acl.clone()).map_err(|e| bad(format!("ipAcl: {e}")))?;
        }
        if self
            .client_name
            .as_deref()
            .is_some_and(|n| n.is_empty() || n.chars().count() > 255)
        {
            return Err(bad("clientName must be 1 to 255 characters"));
        }
        Ok(())
    }

    /// Replaces the client's settings with this body's.
    pub fn apply_to(self, client: &mut Client) {
        client.client_type = self.client_type;
        client.authorized_users = self.authorized_users;
        client.allow_account_switch = self.allow_account_switch.unwrap_or(false);
        client.can_auto_create_credential = self.can_auto_create_credential.unwrap_or(false);
        client.client_description = self.client_description.unwrap_or_default();
        if let Some(name) = self.client_name {
            client.client_name = name;
        }
        client.notification_emails = self.notification_emails.unwrap_or_default();
        client.api_access = self.api_access;
        client.group_access = self.group_access;
        client.ip_acl = self
            .ip_acl
            .unwrap_or_else(|| json!({"enable": false, "cidr": []}));
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialUpdate {
    pub expires_on: String,
    pub status: CredentialStatus,
    pub description: Option<String>,
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

/// Which optional parts a response carries.
#[derive(Clone, Copy, Debug, Default)]
pub struct Detail {
    pub actions: bool,
    pub access: bool,
    pub credentials: bool,
    pub ip_acl: bool,
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
        "purgeOptions": {"canPurgeByCacheTag": false, "canPurgeByCpcode": false, "cpcodeAccess": {"allCurrentAndNewCpcodes": false, "cpcodes": []}},
    });
    if detail.actions {
        value["actions"] = json!({
            "delete": true,
            "deactivateAll": active > 0,
            "edit": !client.is_locked,
            "lock": !client.is_locked,
            "transfer": !client.is_locked,
            "unlock": client.is_locked,
        });
    }
    if detail.access {
        value["apiAccess"] = client.api_access.clone();
        value["groupAccess"] = client.group_access.clone();
    }
    if detail.ip_acl {
        value["ipAcl"] = client.ip_acl.clone();
    }
    if detail.credentials {
        value["credentials"] = credentials.iter().map(|c| credential_json(c, None)).collect();
    }
    value
}
