//! ZenML service-account API keys (`/api/v1/service_accounts/{sa}/api_keys`), for
//! ServiceAccountKey resources on ZenML stores.
//!
//! The store's credential — a service account's `ZENKEY_…` key or an admin user's password —
//! is exchanged at `/api/v1/login` for a bearer token, cached and renewed before it expires
//! (and once more if the server refuses it early).
//!
//! Who may change keys differs by server: an open-source server has no RBAC and lets only
//! admin users do it (a service account is never an admin); ZenML Pro enforces RBAC, where a
//! service account with permissions may. The probe finds out which case a store is in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tracing::debug;

use super::credentials::{SecretString, ZenmlCredential};
use super::error::{Api, ErrorClass, Redactor, UpstreamError};
use super::http::{
    Auth, Body, Endpoint, ErrorDetail, Request, Response, Retry, Transport, found, path_segment,
};
use super::prefactor::default_message;

/// Keys requested per list page (the API allows up to 10000; 100 keeps pages small).
const PAGE_SIZE: u32 = 100;
const MAX_PAGES: u32 = 1000;
/// Assumed bearer lifetime when the login answer does not say.
const DEFAULT_BEARER_LIFETIME: Duration = Duration::from_secs(3600);
/// Renew this long before expiry at most, so a call never starts with a nearly dead bearer.
const MAX_RENEW_MARGIN: Duration = Duration::from_secs(300);
/// How long a service account's id is reused without asking again. Ids never change while
/// the account exists; this bounds how long an account deleted and re-created under the
/// same name is addressed by its old id (a create refused as not found forgets it at once).
const ACCOUNT_ID_TTL: Duration = Duration::from_secs(600);

/// A service-account API key as the API describes it, without its secret.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub active: bool,
    pub created: Option<String>,
    pub updated: Option<String>,
    pub description: Option<String>,
    /// Signed: the real server stores a negative value as given.
    pub retain_period_minutes: Option<i64>,
    pub last_login: Option<String>,
    pub last_rotated: Option<String>,
    /// Whether the answer carried the key's metadata (description, retention, use): a
    /// rotate answer does not, so it cannot stand in for a read of the key.
    pub hydrated: bool,
}

impl ApiKey {
    /// `last_login` as an instant: the server writes UTC times without an offset.
    pub fn last_login_at(&self) -> Option<jiff::Timestamp> {
        let text = self.last_login.as_deref()?;
        text.parse::<jiff::Timestamp>().ok().or_else(|| {
            let civil = text.parse::<jiff::civil::DateTime>().ok()?;
            civil
                .to_zoned(jiff::tz::TimeZone::UTC)
                .ok()
                .map(|z| z.timestamp())
        })
    }
}

/// A key together with the secret the API shows only on create and rotate.
#[derive(Clone, Debug)]
pub struct IssuedApiKey {
    pub key: ApiKey,
    /// The `ZENKEY_…` value a consumer logs in with.
    pub secret: SecretString,
}

/// Fields to change; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ApiKeyUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

#[derive(Deserialize)]
struct AccountResponse {
    id: String,
}

#[derive(Deserialize)]
struct CurrentUser {
    id: String,
    name: String,
    #[serde(default)]
    body: Option<CurrentUserBody>,
}

#[derive(Default, Deserialize)]
struct CurrentUserBody {
    #[serde(default)]
    is_service_account: bool,
    #[serde(default)]
    is_admin: bool,
}

/// Who a store's credential acts as, once the probe has shown it may manage keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    AdminUser(String),
    /// A service account on a server that enforces RBAC: its permissions decide per account.
    ServiceAccount(String),
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::AdminUser(name) => write!(f, "admin user {name}"),
            Principal::ServiceAccount(name) => write!(
                f,
                "service account {name} (the server enforces RBAC: the account needs permission to update the service accounts its keys belong to)"
            ),
        }
    }
}

#[derive(Deserialize)]
struct KeyResponse {
    id: String,
    name: String,
    #[serde(default)]
    body: Option<KeyBody>,
    #[serde(default)]
    metadata: Option<KeyMetadata>,
}

#[derive(Deserialize)]
struct KeyBody {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    updated: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    active: bool,
}

#[derive(Deserialize)]
struct KeyMetadata {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    retain_period_minutes: Option<i64>,
    #[serde(default)]
    last_login: Option<String>,
    #[serde(default)]
    last_rotated: Option<String>,
}

impl KeyResponse {
    /// Splits the secret off, so it can only travel as a [`SecretString`].
    fn split(self) -> (ApiKey, Option<String>) {
        let body = self.body.unwrap_or(KeyBody {
            created: None,
            updated: None,
            key: None,
            active: false,
        });
        let metadata = self.metadata;
        let key = ApiKey {
            hydrated: metadata.is_some(),
            id: self.id,
            name: self.name,
            active: body.active,
            created: body.created,
            updated: body.updated,
            description: metadata.as_ref().and_then(|m| m.description.clone()),
            retain_period_minutes: metadata.as_ref().and_then(|m| m.retain_period_minutes),
            last_login: metadata.as_ref().and_then(|m| m.last_login.clone()),
            last_rotated: metadata.and_then(|m| m.last_rotated),
        };
        (key, body.key)
    }
}

#[derive(Deserialize)]
struct Page {
    items: Vec<KeyResponse>,
    #[serde(default)]
    total_pages: u32,
}

#[derive(Serialize)]
struct CreateBody<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
}

#[derive(Serialize)]
struct RotateBody {
    retain_period_minutes: u64,
}

#[derive(Serialize)]
struct LoginForm<'a> {
    grant_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    password: &'a str,
}

impl<'a> LoginForm<'a> {
    fn of(credential: &'a ZenmlCredential) -> Self {
        match credential {
            ZenmlCredential::ApiKey(key) => Self {
                grant_type: "zenml-api-key",
                username: None,
                password: key.expose(),
            },
            ZenmlCredential::User { username, password } => Self {
                grant_type: "password",
                username: Some(username),
                password: password.expose(),
            },
        }
    }
}

#[derive(Deserialize)]
struct LoginResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

struct Bearer {
    token: SecretString,
    renew_at: Instant,
}

/// Client of one ZenML store.
pub struct ZenmlClient {
    transport: Transport,
    credential: ZenmlCredential,
    bearer: Mutex<Option<Bearer>>,
    /// Service account name (or UUID) → its UUID and when it was looked up.
    accounts: std::sync::Mutex<HashMap<String, (String, Instant)>>,
}

impl std::fmt::Debug for ZenmlClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZenmlClient")
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl ZenmlClient {
    /// `endpoint.base_url` is the ZenML server URL (without `/api/v1`).
    pub fn new(endpoint: Endpoint, credential: ZenmlCredential) -> Result<Self, UpstreamError> {
        let endpoint = Endpoint {
            base_url: format!("{}/api/v1", endpoint.base_url.trim_end_matches('/')),
            ..endpoint
        };
        let secret = match &credential {
            ZenmlCredential::ApiKey(key) => key,
            ZenmlCredential::User { password, .. } => password,
        };
        let redactor = Redactor::new([secret.expose().to_owned()]);
        let transport = Transport::new(Api::Zenml, endpoint, Default::default(), parse_error, redactor)?;
        Ok(Self {
            transport,
            credential,
            bearer: Mutex::new(None),
            accounts: Default::default(),
        })
    }

    /// HTTP requests sent so far, logins and retries included.
    pub fn requests_sent(&self) -> u64 {
        self.transport.requests_sent()
    }

    /// Logs in afresh with the store's credential and finds out whether it may manage keys:
    /// an admin user may; a service account may only where the server enforces RBAC, which
    /// an empty update of its own record shows (a server without RBAC refuses it to
    /// non-admins, as it refuses every key change; with RBAC it changes nothing).
    pub async fn probe(&self) -> Result<Principal, UpstreamError> {
        {
            let mut bearer = self.bearer.lock().await;
            *bearer = Some(self.login().await?);
        }
        let response = self
            .send(Request {
                operation: "get_current_user",
                method: Method::GET,
                path: "/current-user".into(),
                body: None,
                retry: Retry::Safe,
            })
            .await?;
        let mut user: CurrentUser = response.json(Api::Zenml, "get_current_user")?;
        let body = user.body.take().unwrap_or_default();
        match (body.is_service_account, body.is_admin) {
            (false, true) => Ok(Principal::AdminUser(user.name)),
            (false, false) => Err(UpstreamError::new(
                ErrorClass::Permission,
                Api::Zenml,
                "get_current_user",
                format!(
                    "user {} is not an admin of the ZenML server, and a server without RBAC lets only admin users manage service-account keys; make the user an admin, or use an admin user's credential",
                    user.name
                ),
            )),
            (true, _) => self.probe_service_account(user).await,
        }
    }

    async fn probe_service_account(&self, account: CurrentUser) -> Result<Principal, UpstreamError> {
        let request = Request {
            operation: "update_service_account",
            method: Method::PUT,
            path: format!("/service_accounts/{}", path_segment(Api::Zenml, &account.id)?),
            body: Some(Body::json(&serde_json::json!({}))),
            retry: Retry::Safe,
        };
        match self.send(request).await {
            Ok(_) => Ok(Principal::ServiceAccount(account.name)),
            Err(error) if error.class() == ErrorClass::Permission => Err(UpstreamError::new(
                ErrorClass::Permission,
                Api::Zenml,
                "update_service_account",
                format!(
                    "the ZenML server refuses changes by service account {} ({error}): a server without RBAC (open-source ZenML) lets only admin users manage service-account keys, so put an admin user's `username` and `password` into the Secret instead of `apiKey`; on a server with RBAC, give the account permission to update service accounts, itself included",
                    account.name
                ),
            )),
            Err(error) => Err(error),
        }
    }

    /// Creates key `name` on `service_account` (name or UUID). The name is unique per account,
    /// so a retried create cannot mint a twin: a repeat answers `Conflict`, unless the server
    /// still holds the answer to `idempotency_key` (a UUID; ZenML keeps answers for five
    /// minutes by default) and replays it, secret included.
    pub async fn create(
        &self,
        service_account: &str,
        name: &str,
        description: Option<&str>,
        idempotency_key: &str,
    ) -> Result<IssuedApiKey, UpstreamError> {
        let response = self
            .send(Request {
                operation: "create_key",
                method: Method::POST,
                path: keys_path(service_account)?,
                body: Some(
                    Body::json(&CreateBody { name, description }).with_idempotency_key(idempotency_key),
                ),
                retry: Retry::Safe,
            })
            .await?;
        issued(&response, "create_key")
    }

    /// The UUID of the service account with name or UUID `name_or_id` (key paths take only
    /// the UUID), or `None` when there is none. Remembered for [`ACCOUNT_ID_TTL`].
    pub async fn service_account_id(&self, name_or_id: &str) -> Result<Option<String>, UpstreamError> {
        if let Some((id, _)) = self
            .accounts_cache()
            .get(name_or_id)
            .filter(|(_, at)| at.elapsed() < ACCOUNT_ID_TTL)
        {
            return Ok(Some(id.clone()));
        }
        let found = self.look_up_service_account(name_or_id).await?;
        if let Some(id) = &found {
            self.accounts_cache()
                .insert(name_or_id.to_owned(), (id.clone(), Instant::now()));
        }
        Ok(found)
    }

    /// Drops what [`ZenmlClient::service_account_id`] remembers of `name_or_id`: the id
    /// was refused as not found, so the account may have been re-created.
    pub fn forget_service_account(&self, name_or_id: &str) {
        self.accounts_cache().remove(name_or_id);
    }

    fn accounts_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        self.accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn look_up_service_account(&self, name_or_id: &str) -> Result<Option<String>, UpstreamError> {
        let request = Request {
            operation: "get_service_account",
            method: Method::GET,
            path: format!("/service_accounts/{}", path_segment(Api::Zenml, name_or_id)?),
            body: None,
            retry: Retry::Safe,
        };
        found(self.send(request).await)?
            .map(|response| response.json::<AccountResponse>(Api::Zenml, "get_service_account"))
            .transpose()
            .map(|account| account.map(|a| a.id))
    }

    /// The key addressed by name or UUID, or `None` when there is none.
    pub async fn get(&self, service_account: &str, key: &str) -> Result<Option<ApiKey>, UpstreamError> {
        let request = Request {
            operation: "get_key",
            method: Method::GET,
            path: key_path(service_account, key, "")?,
            body: None,
            retry: Retry::Safe,
        };
        found(self.send(request).await)?
            .map(|response| response.json::<KeyResponse>(Api::Zenml, "get_key"))
            .transpose()
            .map(|key| key.map(|k| k.split().0))
    }

    /// Changes the given fields (`active: Some(false)` stops the key authenticating).
    pub async fn update(
        &self,
        service_account: &str,
        key: &str,
        update: &ApiKeyUpdate,
    ) -> Result<ApiKey, UpstreamError> {
        let response = self
            .send(Request {
                operation: "update_key",
                method: Method::PUT,
                path: key_path(service_account, key, "")?,
                body: Some(Body::json(update)),
                retry: Retry::Safe,
            })
            .await?;
        Ok(response.json::<KeyResponse>(Api::Zenml, "update_key")?.split().0)
    }

    /// Issues a new secret; the previous one keeps working for `retain_period_minutes`.
    /// Not retried once sent: a second rotation would end the first new secret's overlap.
    pub async fn rotate(
        &self,
        service_account: &str,
        key: &str,
        retain_period_minutes: u64,
    ) -> Result<IssuedApiKey, UpstreamError> {
        let response = self
            .send(Request {
                operation: "rotate_key",
                method: Method::PUT,
                path: key_path(service_account, key, "/rotate")?,
                body: Some(Body::json(&RotateBody {
                    retain_period_minutes,
                })),
                retry: Retry::Unsafe,
            })
            .await?;
        issued(&response, "rotate_key")
    }

    /// Deletes the key. `Ok` also when it is already gone.
    pub async fn delete(&self, service_account: &str, key: &str) -> Result<(), UpstreamError> {
        let request = Request {
            operation: "delete_key",
            method: Method::DELETE,
            path: key_path(service_account, key, "")?,
            body: None,
            retry: Retry::Safe,
        };
        found(self.send(request).await).map(drop)
    }

    /// Every key of `service_account`, all pages.
    pub async fn list(&self, service_account: &str) -> Result<Vec<ApiKey>, UpstreamError> {
        let mut keys = Vec::new();
        for page in 1..=MAX_PAGES {
            let response = self
                .send(Request {
                    operation: "list_keys",
                    method: Method::GET,
                    path: format!(
                        "{}?page={page}&size={PAGE_SIZE}&hydrate=true",
                        keys_path(service_account)?
                    ),
                    body: None,
                    retry: Retry::Safe,
                })
                .await?;
            let listed: Page = response.json(Api::Zenml, "list_keys")?;
            let empty = listed.items.is_empty();
            keys.extend(listed.items.into_iter().map(|item| item.split().0));
            if empty || page >= listed.total_pages {
                return Ok(keys);
            }
        }
        Err(UpstreamError::new(
            ErrorClass::UpstreamBug,
            Api::Zenml,
            "list_keys",
            format!("pagination did not end after {MAX_PAGES} pages"),
        ))
    }

    /// Sends with a valid bearer; a 401 on a cached bearer (revoked or expired early)
    /// gets one fresh login and one more try.
    async fn send(&self, request: Request) -> Result<Response, UpstreamError> {
        let (token, fresh) = self.bearer(false).await?;
        match self.transport.send(&request, Auth::Bearer(token.expose())).await {
            Err(error) if error.class() == ErrorClass::Authentication && !fresh => {
                debug!(api = %Api::Zenml, op = request.operation, "bearer refused, logging in again");
                let (token, _) = self.bearer(true).await?;
                self.transport.send(&request, Auth::Bearer(token.expose())).await
            }
            outcome => outcome,
        }
    }

    /// The cached bearer, or a new one when it is due for renewal (or `renew` is set).
    /// Returns whether it was just issued. The lock makes concurrent callers share one login.
    async fn bearer(&self, renew: bool) -> Result<(SecretString, bool), UpstreamError> {
        let mut bearer = self.bearer.lock().await;
        if let Some(current) = bearer.as_ref().filter(|b| !renew && Instant::now() < b.renew_at) {
            return Ok((current.token.clone(), false));
        }
        let fresh = self.login().await?;
        let token = fresh.token.clone();
        *bearer = Some(fresh);
        Ok((token, true))
    }

    async fn login(&self) -> Result<Bearer, UpstreamError> {
        let response = self
            .transport
            .send(
                &Request {
                    operation: "login",
                    method: Method::POST,
                    path: "/login".into(),
                    body: Some(Body::form(&LoginForm::of(&self.credential))),
                    retry: Retry::Safe,
                },
                Auth::None,
            )
            .await?;
        let login: LoginResponse = response.json(Api::Zenml, "login")?;
        let lifetime = login
            .expires_in
            .map_or(DEFAULT_BEARER_LIFETIME, Duration::from_secs);
        let margin = (lifetime / 5).min(MAX_RENEW_MARGIN);
        Ok(Bearer {
            token: login.access_token.into(),
            renew_at: Instant::now() + lifetime - margin,
        })
    }
}

fn issued(response: &Response, operation: &'static str) -> Result<IssuedApiKey, UpstreamError> {
    let (key, secret) = response.json::<KeyResponse>(Api::Zenml, operation)?.split();
    let secret = secret.filter(|secret| !secret.is_empty()).ok_or_else(|| {
        UpstreamError::new(
            ErrorClass::UpstreamBug,
            Api::Zenml,
            operation,
            "response carries no key value",
        )
        .with_status(response.status)
    })?;
    Ok(IssuedApiKey {
        key,
        secret: secret.into(),
    })
}

fn keys_path(service_account: &str) -> Result<String, UpstreamError> {
    Ok(format!(
        "/service_accounts/{}/api_keys",
        path_segment(Api::Zenml, service_account)?
    ))
}

fn key_path(service_account: &str, key: &str, suffix: &str) -> Result<String, UpstreamError> {
    Ok(format!(
        "{}/{}{suffix}",
        keys_path(service_account)?,
        path_segment(Api::Zenml, key)?
    ))
}

/// `{"detail": ["ExceptionName", "message"]}`, FastAPI's `{"detail": [{"msg": …}, …]}`,
/// `{"detail": "message"}`, or the bare `["ExceptionName", "message"]` the real server
/// answers validation errors (422) and refused keys (401) with.
fn parse_error(status: u16, body: &[u8]) -> ErrorDetail {
    let detail = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| match value {
            serde_json::Value::Array(_) => Some(value),
            value => value.get("detail").cloned(),
        });
    let (code, message) = match detail {
        Some(serde_json::Value::String(message)) => (None, Some(message)),
        Some(serde_json::Value::Array(parts)) => match parts.as_slice() {
            [
                serde_json::Value::String(name),
                serde_json::Value::String(message),
            ] => (Some(name.clone()), Some(message.clone())),
            items => {
                let messages: Vec<String> = items
                    .iter()
                    .filter_map(|item| {
                        let message = item.get("msg")?.as_str()?;
                        let location = item.get("loc").and_then(|loc| loc.as_array()).map(|loc| {
                            loc.iter()
                                .map(|part| part.to_string().trim_matches('"').to_owned())
                                .collect::<Vec<_>>()
                                .join(".")
                        });
                        Some(match location {
                            Some(location) => format!("{location}: {message}"),
                            None => message.to_owned(),
                        })
                    })
                    .collect();
                (None, (!messages.is_empty()).then(|| messages.join("; ")))
            }
        },
        _ => (None, None),
    };
    ErrorDetail {
        class: ErrorClass::from_status(status),
        code,
        message: message.unwrap_or_else(|| default_message(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_in_all_three_shapes() {
        let conflict = parse_error(409, br#"{"detail":["EntityExistsError","key k exists"]}"#);
        assert_eq!(conflict.class, ErrorClass::Conflict);
        assert_eq!(conflict.code.as_deref(), Some("EntityExistsError"));
        assert_eq!(conflict.message, "key k exists");
        let invalid = parse_error(
            422,
            br#"{"detail":[{"loc":["body","name"],"msg":"field required","type":"missing"}]}"#,
        );
        assert_eq!(
            (invalid.class, invalid.message.as_str()),
            (ErrorClass::InvalidRequest, "body.name: field required")
        );
        let plain = parse_error(401, br#"{"detail":"Not authenticated"}"#);
        assert_eq!(
            (plain.class, plain.message.as_str()),
            (ErrorClass::Authentication, "Not authenticated")
        );
        // What zenml[server] 0.98.0 answers a body it cannot validate.
        let bare = parse_error(422, br#"["ValueError","Invalid name: must not be empty"]"#);
        assert_eq!(
            (bare.class, bare.code.as_deref(), bare.message.as_str()),
            (
                ErrorClass::InvalidRequest,
                Some("ValueError"),
                "Invalid name: must not be empty"
            )
        );
    }

    #[test]
    fn responses_tolerate_unknown_fields_and_keep_the_secret_apart() {
        let response: KeyResponse = serde_json::from_str(
            r#"{"id":"9a7c","name":"ci","permission_denied":false,"resources":null,"extra":1,
                "body":{"created":"2025-01-01T00:00:00","updated":"2025-01-01T00:00:00",
                        "key":"ZENKEY_secret","active":true,"service_account":{"id":"s"}},
                "metadata":{"description":"d","retain_period_minutes":5,"last_login":null,"last_rotated":null}}"#,
        )
        .unwrap();
        let (key, secret) = response.split();
        assert!(key.active);
        assert_eq!(key.retain_period_minutes, Some(5));
        assert_eq!(secret.as_deref(), Some("ZENKEY_secret"));
        let issued = IssuedApiKey {
            key,
            secret: "ZENKEY_secret".to_owned().into(),
        };
        assert!(!format!("{issued:?}").contains("ZENKEY_secret"));
    }
}
