//! ZenML's login (`POST /api/v1/login`: grant `password` for users, `zenml-api-key`
//! for service-account keys, the grant inferred when absent) and the authentication
//! of API calls, with the real server's (zenml[server] 0.98.0) answers and messages.
//!
//! Access tokens are JWT-shaped but verified by hash lookup; like the real server's
//! default configuration they do not expire (`expires_in: null`). A token from an API
//! key carries the key's generation: it dies when the key is rotated without
//! retention (or when the retain period ends, or after a second rotation), when the
//! key or its service account is deactivated (until reactivated), and with the key.
//! A password login also sets the server's session cookie, which authenticates on
//! its own and takes precedence over an `Authorization` header.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{
    ACCOUNT, API, ApiKey, KEY, PASSWORD, SESSION, ServiceAccount, USER, User, password_hash, server_id,
};
use crate::credstore::AppState;
use crate::credstore::db::Tx;
use crate::credstore::http::{ApiError, ZENML_DETAIL_TEXT, json_response};
use crate::credstore::secrets::{random_token, secret_hash};

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "CredentialsNotValid", message)
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ZENML_DETAIL_TEXT, message)
}

/// Who a request is authenticated as: a user, or a service account through one of its keys.
#[derive(Clone, Copy, Debug)]
pub(super) struct Principal {
    pub id: Uuid,
}

fn cookie_name(tx: &Tx<'_>) -> Result<String, ApiError> {
    Ok(format!("zenml-server-{}", server_id(tx)?))
}

fn cookie_token<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

/// Authenticates an API call (session cookie first, then the bearer token), and
/// records the use of an API key as the real server does (`last_login`, `updated`).
pub(super) fn authenticate(tx: &Tx<'_>, headers: &HeaderMap, now_ms: i64) -> Result<Principal, ApiError> {
    let cookie = cookie_name(tx)?;
    let token = cookie_token(headers, &cookie)
        .or_else(|| bearer(headers))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, ZENML_DETAIL_TEXT, "Not authenticated"))?;
    if token.starts_with("ZENKEY_") {
        // An API key used in place of an access token.
        return api_key_login(tx, token, now_ms).map(|(account, _)| Principal { id: account.id });
    }
    let decoding = |why: &str| {
        invalid(format!(
            "Authentication error: error decoding access token: Invalid JWT token: {why}"
        ))
    };
    if token.split('.').count() < 3 {
        return Err(decoding("Not enough segments."));
    }
    let owner = tx
        .credential_owner(&secret_hash(SESSION, token), SESSION, now_ms)?
        .and_then(|owner| parse_owner(&owner))
        .ok_or_else(|| decoding("Signature verification failed."))?;
    // The token's account first (a user, or the key's service account), then its key.
    let subject = match owner {
        SessionOwner::User(id) | SessionOwner::Key(id, _, _) => id,
    };
    let retrieving = || {
        invalid(format!(
            "Authentication error: error retrieving token account {subject}"
        ))
    };
    let (name, active) = match tx.get::<User>(API, USER, &subject.to_string())? {
        Some(user) => (user.name, user.active),
        None => {
            let account: ServiceAccount = tx
                .get(API, ACCOUNT, &subject.to_string())?
                .ok_or_else(retrieving)?;
            (account.name, account.active)
        }
    };
    if !active {
        return Err(invalid(format!(
            "Authentication error: account {name} is not active"
        )));
    }
    if let SessionOwner::Key(_, key_id, generation) = owner {
        verify_key(tx, key_id, now_ms, |key| {
            key.generation_valid(generation, now_ms).then_some(()).ok_or_else(|| {
                invalid(format!(
                    "Authentication error: access token for API key {} was issued for an API key generation that is no longer valid",
                    key.name
                ))
            })
        })?;
    }
    Ok(Principal { id: subject })
}

enum SessionOwner {
    User(Uuid),
    /// Service account, key, key generation.
    Key(Uuid, Uuid, i64),
}

fn user_owner(id: Uuid) -> String {
    format!("user:{id}")
}

fn key_owner(account: Uuid, key: Uuid, generation: i64) -> String {
    format!("key:{account}:{key}:{generation}")
}

fn parse_owner(owner: &str) -> Option<SessionOwner> {
    if let Some(id) = owner.strip_prefix("user:") {
        return Uuid::parse_str(id).ok().map(SessionOwner::User);
    }
    let mut parts = owner.strip_prefix("key:")?.split(':');
    let account = Uuid::parse_str(parts.next()?).ok()?;
    let key = Uuid::parse_str(parts.next()?).ok()?;
    let generation = parts.next()?.parse().ok()?;
    Some(SessionOwner::Key(account, key, generation))
}

/// `_fetch_and_verify_api_key`: the key exists, its account and itself are active,
/// `check` passes; then its use is recorded.
fn verify_key(
    tx: &Tx<'_>,
    key_id: Uuid,
    now_ms: i64,
    check: impl FnOnce(&ApiKey) -> Result<(), ApiError>,
) -> Result<(ServiceAccount, ApiKey), ApiError> {
    let mut key: ApiKey = tx
        .get(API, KEY, &key_id.to_string())?
        .ok_or_else(|| invalid(format!("Authentication error: error retrieving API key {key_id}")))?;
    let account: ServiceAccount = tx
        .get(API, ACCOUNT, &key.service_account_id.to_string())?
        .ok_or_else(|| invalid(format!("Authentication error: error retrieving API key {key_id}")))?;
    if !account.active {
        return Err(invalid(format!(
            "Authentication error: service account {} associated with API key {} is not active",
            account.name, key.name
        )));
    }
    if !key.active {
        return Err(invalid(format!(
            "Authentication error: API key {} associated with service account {} is not active",
            key.name, account.name
        )));
    }
    check(&key)?;
    key.last_login_ms = Some(now_ms);
    key.updated_ms = now_ms;
    tx.put(API, KEY, &key.id.to_string(), &account.id.to_string(), &key)?;
    Ok((account, key))
}

#[derive(Deserialize)]
struct EncodedKey {
    id: Uuid,
    #[allow(dead_code)]
    key: String,
}

/// Authenticates a `ZENKEY_…` secret (the current one, or the previous one within
/// its retain period).
fn api_key_login(tx: &Tx<'_>, secret: &str, now_ms: i64) -> Result<(ServiceAccount, ApiKey), ApiError> {
    let decoded: EncodedKey = secret
        .strip_prefix("ZENKEY_")
        .and_then(|b64| STANDARD.decode(b64).ok())
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or_else(|| invalid("Authentication error: error decoding API key"))?;
    let owner = tx.credential_owner(&secret_hash(API, secret.trim()), API, now_ms)?;
    let (account, key) = verify_key(tx, decoded.id, now_ms, |key| {
        (owner.as_deref() == Some(key.id.to_string().as_str()))
            .then_some(())
            .ok_or_else(|| {
                invalid(format!(
                    "Authentication error: could not verify key value for API key {}",
                    key.name
                ))
            })
    })?;
    Ok((account, key))
}

#[derive(Default)]
struct LoginForm {
    grant_type: Option<String>,
    username: Option<String>,
    password: Option<String>,
    client_id: Option<String>,
    device_code: Option<String>,
}

enum Grant {
    Password { username: String, password: String },
    ApiKey(String),
}

/// `OAuthLoginRequestForm`: the grant, from `grant_type` or inferred from the fields.
fn grant(form: LoginForm) -> Result<Grant, ApiError> {
    const PASSWORD: &str = "password";
    const API_KEY: &str = "zenml-api-key";
    const DEVICE: &str = "urn:ietf:params:oauth:grant-type:device_code";
    const EXTERNAL: &str = "zenml-external";
    let grant_type = match form.grant_type.as_deref().filter(|g| !g.is_empty()) {
        None if form.username.is_some() => PASSWORD,
        None if form.password.as_deref().is_some_and(|p| !p.is_empty()) => API_KEY,
        None if form.device_code.as_deref().is_some_and(|d| !d.is_empty()) => DEVICE,
        None => PASSWORD,
        Some(g @ (PASSWORD | API_KEY | DEVICE | EXTERNAL)) => g,
        Some(other) => return Err(bad_request(format!("Unsupported grant type: {other}"))),
    };
    match grant_type {
        PASSWORD => {
            let username = form
                .username
                .filter(|u| !u.is_empty())
                .ok_or_else(|| bad_request("Invalid request: username is required."))?;
            Ok(Grant::Password {
                username,
                password: form.password.unwrap_or_default(),
            })
        }
        API_KEY => form
            .password
            .filter(|p| !p.is_empty())
            .map(Grant::ApiKey)
            .ok_or_else(|| bad_request("API key is required.")),
        DEVICE => {
            if form.device_code.is_none_or(|d| d.is_empty()) || form.client_id.is_none_or(|c| c.is_empty()) {
                return Err(bad_request(
                    "Invalid request: device code and client ID are required.",
                ));
            }
            // No device was ever authorized here.
            Err(invalid("Authentication error: invalid or unknown device code"))
        }
        // Only servers with external (ZenML Pro) authentication take this grant.
        _ => Err(bad_request(format!("Unsupported grant type: {EXTERNAL}."))),
    }
}

fn parse_form(body: &[u8]) -> LoginForm {
    let mut form = LoginForm::default();
    for (name, value) in form_urlencoded::parse(body) {
        let slot = match &*name {
            "grant_type" => &mut form.grant_type,
            "username" => &mut form.username,
            "password" => &mut form.password,
            "client_id" => &mut form.client_id,
            "device_code" => &mut form.device_code,
            _ => continue,
        };
        *slot = Some(value.into_owned());
    }
    form
}

fn issue_token(
    tx: &Tx<'_>,
    owner: &str,
    subject: Uuid,
    extra: serde_json::Value,
    now_ms: i64,
    expires_ms: Option<i64>,
) -> Result<String, ApiError> {
    let issuer = server_id(tx)?;
    let mut claims = json!({"sub": subject, "iss": issuer, "aud": issuer, "iat": now_ms as f64 / 1000.0});
    if let (Some(claims), serde_json::Value::Object(extra)) = (claims.as_object_mut(), extra) {
        claims.extend(extra);
    }
    // Shaped like a JWT, but verified by hash lookup, so the signature part is just randomness.
    let token = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        random_token(32)
    );
    tx.add_credential(&secret_hash(SESSION, &token), SESSION, owner, expires_ms)?;
    Ok(token)
}

pub(super) async fn login(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let grant = grant(parse_form(&body))?;
    let now_ms = state.clock.now_ms();
    let lifetime_s = state.zenml_session_minutes.map(|m| i64::from(m) * 60);
    let expires_ms = lifetime_s.map(|s| now_ms + s * 1000);
    let (token, cookie) = state.db.write(|tx| match &grant {
        Grant::Password { username, password } => {
            let users: Vec<User> = tx.list(API, USER, None)?;
            let wrong = || invalid("Authentication error: invalid username or password");
            let user = users
                .into_iter()
                .find(|u| &u.name == username)
                .ok_or_else(wrong)?;
            let owner = tx.credential_owner(&password_hash(user.id, password), PASSWORD, now_ms)?;
            if owner.as_deref() != Some(user.id.to_string().as_str()) {
                return Err(wrong());
            }
            if !user.active {
                return Err(invalid(format!(
                    "Authentication error: user {} is not active",
                    user.name
                )));
            }
            let token = issue_token(tx, &user_owner(user.id), user.id, json!({}), now_ms, expires_ms)?;
            let cookie = format!("{}={token}; HttpOnly; Path=/; SameSite=lax", cookie_name(tx)?);
            Ok::<_, ApiError>((token, Some(cookie)))
        }
        Grant::ApiKey(secret) => {
            let (account, key) = api_key_login(tx, secret, now_ms)?;
            let token = issue_token(
                tx,
                &key_owner(account.id, key.id, key.generation),
                account.id,
                json!({"api_key_id": key.id, "api_key_generation": key.generation}),
                now_ms,
                expires_ms,
            )?;
            Ok((token, None))
        }
    })?;
    let mut response = json_response(
        StatusCode::OK,
        &json!({"access_token": token, "token_type": "bearer", "expires_in": lifetime_s, "refresh_token": null,
                "csrf_token": null, "scope": null, "device_id": null, "device_metadata": null}),
    );
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    Ok(response)
}
