//! Trend Micro Deep Security / Workload Security API keys (`/api/apikeys`).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use self::search::SearchFilter;
use crate::credstore::AppState;
use crate::credstore::db::{DbError, Tx};
use crate::credstore::http::{ApiError, JsonBody, json_response};
use crate::credstore::secrets::{random_token, secret_hash};

const API: &str = "trendmicro";
const KEY: &str = "api_key";
const ADMIN_ROLE_ID: i64 = 1;
const TENANT_ID: i64 = 1;

mod search;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/apikeys", get(list).post(create))
        .route("/api/apikeys/search", post(search))
        .route("/api/apikeys/current", get(describe_current).post(modify_current))
        .route("/api/apikeys/current/secretkey", post(regenerate_current))
        .route("/api/apikeys/{id}", get(describe).post(modify).delete(remove))
        .route("/api/apikeys/{id}/secretkey", post(regenerate))
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiKey {
    #[serde(rename = "ID")]
    id: i64,
    key_name: String,
    description: String,
    locale: String,
    #[serde(rename = "roleID")]
    role_id: i64,
    time_zone: String,
    active: bool,
    created: i64,
    last_sign_in: Option<i64>,
    unlock_time: Option<i64>,
    unsuccessful_sign_in_attempts: i64,
    expiry_date: Option<i64>,
    service_account: bool,
}

/// Every field of the ApiKey model; read-only ones are accepted and ignored, as
/// the published SDK sends back whatever a describe returned.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ApiKeyBody {
    key_name: Option<String>,
    description: Option<String>,
    locale: Option<String>,
    #[serde(rename = "roleID")]
    role_id: Option<i64>,
    time_zone: Option<String>,
    active: Option<bool>,
    expiry_date: Option<i64>,
    #[serde(rename = "created")]
    _created: Option<i64>,
    #[serde(rename = "lastSignIn")]
    _last_sign_in: Option<i64>,
    #[serde(rename = "unlockTime")]
    _unlock_time: Option<i64>,
    #[serde(rename = "unsuccessfulSignInAttempts")]
    _unsuccessful_sign_in_attempts: Option<i64>,
    #[serde(rename = "secretKey")]
    _secret_key: Option<String>,
    #[serde(rename = "serviceAccount")]
    _service_account: Option<bool>,
    #[serde(rename = "ID")]
    _id: Option<i64>,
    #[serde(rename = "roleURN")]
    _role_urn: Option<String>,
    #[serde(rename = "tenantID")]
    _tenant_id: Option<i64>,
    #[serde(rename = "tenantGUID")]
    _tenant_guid: Option<String>,
    #[serde(rename = "cloudOneAccountID")]
    _cloud_one_account_id: Option<String>,
}

/// Id written to `bootstrap.json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapIds {
    pub api_key_id: i64,
}

/// A full-access admin key; returns its secret.
pub fn bootstrap(tx: &Tx<'_>, now_ms: i64) -> Result<(BootstrapIds, String), DbError> {
    let body = ApiKeyBody {
        key_name: Some("credstore-admin".into()),
        description: Some("Administers this credential store".into()),
        role_id: Some(ADMIN_ROLE_ID),
        ..ApiKeyBody::default()
    };
    let key = new_key(tx, body, now_ms)?;
    let secret = issue_secret(tx, key.id)?;
    tx.put(API, KEY, &key.id.to_string(), "", &key)?;
    Ok((BootstrapIds { api_key_id: key.id }, secret))
}

fn new_key(tx: &Tx<'_>, body: ApiKeyBody, now_ms: i64) -> Result<ApiKey, DbError> {
    Ok(ApiKey {
        id: tx.next_sequence("trendmicro.apikey")?,
        key_name: body.key_name.unwrap_or_default(),
        description: body.description.unwrap_or_default(),
        locale: body.locale.unwrap_or_else(|| "en-US".into()),
        role_id: body.role_id.unwrap_or(ADMIN_ROLE_ID),
        time_zone: body.time_zone.unwrap_or_else(|| "UTC".into()),
        active: body.active.unwrap_or(true),
        created: now_ms,
        last_sign_in: None,
        unlock_time: None,
        unsuccessful_sign_in_attempts: 0,
        expiry_date: body.expiry_date,
        service_account: false,
    })
}

fn issue_secret(tx: &Tx<'_>, id: i64) -> Result<String, DbError> {
    let secret = format!(
        "{}:{}",
        uuid::Uuid::new_v4().to_string().to_uppercase(),
        random_token(32)
    );
    tx.delete_credentials(API, &id.to_string())?;
    tx.add_credential(&secret_hash(API, &secret), API, &id.to_string(), None)?;
    Ok(secret)
}

fn key_json(key: &ApiKey, secret: Option<&str>) -> Value {
    let mut value = json!(key);
    if let Some(secret) = secret {
        value["secretKey"] = json!(secret);
    }
    value
}

fn current_json(key: &ApiKey, secret: Option<&str>) -> Value {
    let mut value = key_json(key, secret);
    value["roleURN"] = json!(format!(
        "urn:tmds:identity:credstore:{TENANT_ID}:role/{}",
        key.role_id
    ));
    value["tenantID"] = json!(TENANT_ID);
    value["tenantGUID"] = json!("00000000-0000-4000-8000-000000000001");
    value["cloudOneAccountID"] = json!("000000000001");
    value
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::status(StatusCode::BAD_REQUEST, message)
}

/// Checks `api-version` and the secret (`api-secret-key` or `Authorization: ApiKey`); returns the caller's key.
fn authenticate(tx: &Tx<'_>, headers: &HeaderMap, now_ms: i64) -> Result<ApiKey, ApiError> {
    match headers.get("api-version").and_then(|v| v.to_str().ok()) {
        Some("v1") => {}
        Some(_) => return Err(bad_request("Unsupported api-version; use v1")),
        None => return Err(bad_request("The api-version header is required")),
    }
    let secret = headers
        .get("api-secret-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("ApiKey "))
        })
        .map(str::trim)
        .ok_or_else(|| ApiError::status(StatusCode::UNAUTHORIZED, "Authentication required"))?;
    let denied = || ApiError::status(StatusCode::UNAUTHORIZED, "Invalid API key");
    let id = tx
        .credential_owner(&secret_hash(API, secret), API, now_ms)?
        .ok_or_else(denied)?;
    let mut key: ApiKey = tx.get(API, KEY, &id)?.ok_or_else(denied)?;
    if !key.active || key.expiry_date.is_some_and(|at| at <= now_ms) {
        return Err(denied());
    }
    key.last_sign_in = Some(now_ms);
    tx.put(API, KEY, &id, "", &key)?;
    Ok(key)
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0 && raw.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| ApiError::status(StatusCode::NOT_FOUND, "The API key does not exist."))
}

fn load(tx: &Tx<'_>, id: i64) -> Result<ApiKey, ApiError> {
    tx.get(API, KEY, &id.to_string())?
        .ok_or_else(|| ApiError::status(StatusCode::NOT_FOUND, "The API key does not exist."))
}

fn validate(body: &ApiKeyBody) -> Result<(), ApiError> {
    if let Some(locale) = &body.locale
        && !matches!(locale.as_str(), "en-US" | "ja-JP")
    {
        return Err(bad_request("locale must be en-US or ja-JP"));
    }
    if body
        .key_name
        .as_deref()
        .is_some_and(|name| name.trim().is_empty() || name.chars().count() > 254)
    {
        return Err(bad_request("keyName must be 1 to 254 characters"));
    }
    if body.role_id.is_some_and(|role| role < 1) {
        return Err(bad_request("roleID must be a positive role ID"));
    }
    Ok(())
}

fn apply(key: &mut ApiKey, body: ApiKeyBody, current_only: bool) {
    if let Some(v) = body.key_name {
        key.key_name = v;
    }
    if let Some(v) = body.description {
        key.description = v;
    }
    if let Some(v) = body.locale {
        key.locale = v;
    }
    if let Some(v) = body.time_zone {
        key.time_zone = v;
    }
    if current_only {
        return;
    }
    if let Some(v) = body.role_id {
        key.role_id = v;
    }
    if let Some(v) = body.active {
        key.active = v;
    }
    if let Some(v) = body.expiry_date {
        key.expiry_date = Some(v);
    }
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    let keys = state.db.write(|tx| {
        authenticate(tx, &headers, now_ms)?;
        Ok::<_, ApiError>(tx.list::<ApiKey>(API, KEY, None)?)
    })?;
    let keys: Vec<Value> = keys.iter().map(|k| key_json(k, None)).collect();
    Ok(json_response(StatusCode::OK, &json!({"apiKeys": keys})))
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ApiKeyBody>,
) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    validate(&body)?;
    if body.key_name.is_none() {
        return Err(bad_request("keyName is required"));
    }
    if body.role_id.is_none() {
        return Err(bad_request("roleID is required"));
    }
    let (key, secret) = state.db.write(|tx| {
        authenticate(tx, &headers, now_ms)?;
        let key = new_key(tx, body, now_ms)?;
        let secret = issue_secret(tx, key.id)?;
        tx.put(API, KEY, &key.id.to_string(), "", &key)?;
        Ok::<_, ApiError>((key, secret))
    })?;
    Ok(json_response(StatusCode::OK, &key_json(&key, Some(&secret))))
}

async fn describe(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    let key = state.db.write(|tx| {
        authenticate(tx, &headers, now_ms)?;
        load(tx, parse_id(&id)?)
    })?;
    Ok(json_response(StatusCode::OK, &key_json(&key, None)))
}

async fn modify(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ApiKeyBody>,
) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    validate(&body)?;
    let key = state.db.write(|tx| {
        authenticate(tx, &headers, now_ms)?;
        let mut key = load(tx, parse_id(&id)?)?;
        apply(&mut key, body, false);
        tx.put(API, KEY, &key.id.to_string(), "", &key)?;
        Ok::<_, ApiError>(key)
    })?;
    Ok(json_response(StatusCode::OK, &key_json(&key, None)))
}

async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    state.db.write(|tx| {
        authenticate(tx, &headers, now_ms)?;
        let key = load(tx, parse_id(&id)?)?;
        tx.delete_credentials(API, &key.id.to_string())?;
        tx.delete(API, KEY, &key.id.to_string())?;
        Ok::<_, ApiError>(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn regenerate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    let (key, secret) = state.db.write(|tx| {
        authenticate(tx, &headers, now_ms)?;
        let key = load(tx, parse_id(&id)?)?;
        let secret = issue_secret(tx, key.id)?;
        Ok::<_, ApiError>((key, secret))
    })?;
    Ok(json_response(StatusCode::OK, &key_json(&key, Some(&secret))))
}

async fn describe_current(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    let key = state.db.write(|tx| authenticate(tx, &headers, now_ms))?;
    Ok(json_response(StatusCode::OK, &current_json(&key, None)))
}

async fn modify_current(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ApiKeyBody>,
) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    validate(&body)?;
    let key = state.db.write(|tx| {
        let mut key = authenticate(tx, &headers, now_ms)?;
        apply(&mut key, body, true);
        tx.put(API, KEY, &key.id.to_string(), "", &key)?;
        Ok::<_, ApiError>(key)
    })?;
    Ok(json_response(StatusCode::OK, &current_json(&key, None)))
}

async fn regenerate_current(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    let (key, secret) = state.db.write(|tx| {
        let key = authenticate(tx, &headers, now_ms)?;
        let secret = issue_secret(tx, key.id)?;
        Ok::<_, ApiError>((key, secret))
    })?;
    Ok(json_response(StatusCode::OK, &key_json(&key, Some(&secret))))
}

async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(filter): JsonBody<SearchFilter>,
) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    let keys = state.db.write(|tx| {
        authenticate(tx, &headers, now_ms)?;
        Ok::<_, ApiError>(tx.list::<ApiKey>(API, KEY, None)?)
    })?;
    let mut keys: Vec<Value> = keys.iter().map(|k| key_json(k, None)).collect();
    keys.sort_by_key(|k| k["ID"].as_i64());
    let found = search::run(&filter, keys)?;
    Ok(json_response(StatusCode::OK, &json!({"apiKeys": found})))
}
