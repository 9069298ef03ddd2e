//! ZenML service accounts and their API keys (`/api/v1/service_accounts`), and
//! the key-for-token login (`/api/v1/login`).

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post, put};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use self::query::Field;
use crate::credstore::AppState;
use crate::credstore::clock::python_isoformat;
use crate::credstore::db::{DbError, Tx};
use crate::credstore::http::{ApiError, JsonBody, json_response};
use crate::credstore::secrets::{random_hex, secret_hash};

const API: &str = "zenml";
/// Session tokens get their own hash domain so a key can never be used as one.
const SESSION: &str = "zenml-session";
const ACCOUNT: &str = "service_account";
const KEY: &str = "api_key";
const SESSION_SECONDS: i64 = 3600;
const KEY_FIELDS: &[&str] = &[
    "id",
    "name",
    "description",
    "active",
    "created",
    "updated",
    "last_login",
    "last_rotated",
];

mod query;
mod session;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/login", post(session::login))
        .route("/api/v1/service_accounts", post(create_account))
        .route("/api/v1/service_accounts/{account}", get(show_account))
        .route(
            "/api/v1/service_accounts/{account}/api_keys",
            get(list_keys).post(create_key),
        )
        .route(
            "/api/v1/service_accounts/{account}/api_keys/{key}",
            get(show_key).put(update_key).delete(delete_key),
        )
        .route(
            "/api/v1/service_accounts/{account}/api_keys/{key}/rotate",
            put(rotate_key),
        )
}

#[derive(Debug, Serialize, Deserialize)]
struct ServiceAccount {
    id: Uuid,
    name: String,
    description: String,
    active: bool,
    created_ms: i64,
    updated_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct ApiKey {
    id: Uuid,
    name: String,
    description: String,
    service_account_id: Uuid,
    active: bool,
    created_ms: i64,
    updated_ms: i64,
    last_login_ms: Option<i64>,
    last_rotated_ms: Option<i64>,
    retain_period_minutes: i64,
}

/// Ids written to `bootstrap.json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapIds {
    pub admin_service_account_id: Uuid,
    pub service_account_id: Uuid,
    pub service_account_name: String,
}

/// An admin service account with one key (returned), and an empty service account for managed keys.
pub fn bootstrap(tx: &Tx<'_>, now_ms: i64) -> Result<(BootstrapIds, String), DbError> {
    let admin = new_account("credstore-admin", "Administers this credential store", now_ms);
    let managed = new_account(
        "apikey-operator",
        "Holds the API keys apikey-operator manages",
        now_ms,
    );
    tx.put(API, ACCOUNT, &admin.id.to_string(), "", &admin)?;
    tx.put(API, ACCOUNT, &managed.id.to_string(), "", &managed)?;
    let key = new_key(&admin, "credstore-admin", "", now_ms);
    let secret = issue_secret(tx, &key)?;
    tx.put(API, KEY, &key.id.to_string(), &admin.id.to_string(), &key)?;
    let ids = BootstrapIds {
        admin_service_account_id: admin.id,
        service_account_id: managed.id,
        service_account_name: managed.name,
    };
    Ok((ids, secret))
}

fn new_account(name: &str, description: &str, now_ms: i64) -> ServiceAccount {
    ServiceAccount {
        id: Uuid::new_v4(),
        name: name.into(),
        description: description.into(),
        active: true,
        created_ms: now_ms,
        updated_ms: now_ms,
    }
}

fn new_key(account: &ServiceAccount, name: &str, description: &str, now_ms: i64) -> ApiKey {
    ApiKey {
        id: Uuid::new_v4(),
        name: name.into(),
        description: description.into(),
        service_account_id: account.id,
        active: true,
        created_ms: now_ms,
        updated_ms: now_ms,
        last_login_ms: None,
        last_rotated_ms: None,
        retain_period_minutes: 0,
    }
}

/// `ZENKEY_` + base64 of `{"id":"<key uuid>","key":"<64 hex>"}`; only its hash is kept.
fn issue_secret(tx: &Tx<'_>, key: &ApiKey) -> Result<String, DbError> {
    let payload = json!({"id": key.id, "key": random_hex(32)});
    let secret = format!("ZENKEY_{}", STANDARD.encode(payload.to_string()));
    tx.add_credential(&secret_hash(API, &secret), API, &key.id.to_string(), None)?;
    Ok(secret)
}

fn time(ms: i64) -> Value {
    Timestamp::from_millisecond(ms)
        .map(python_isoformat)
        .map(Value::String)
        .unwrap_or(Value::Null)
}

fn account_json(account: &ServiceAccount) -> Value {
    json!({
        "id": account.id,
        "name": account.name,
        "permission_denied": false,
        "body": {"created": time(account.created_ms), "updated": time(account.updated_ms), "full_name": "", "active": account.active, "avatar_url": null},
        "metadata": {"description": account.description, "external_user_id": null},
        "resources": null,
    })
}

fn key_json(key: &ApiKey, account: &ServiceAccount, secret: Option<&str>, hydrate: bool) -> Value {
    let metadata = hydrate.then(|| {
        json!({
            "description": key.description,
            "retain_period_minutes": key.retain_period_minutes,
            "last_login": key.last_login_ms.map(time),
            "last_rotated": key.last_rotated_ms.map(time),
        })
    });
    json!({
        "id": key.id,
        "name": key.name,
        "permission_denied": false,
        "body": {
            "created": time(key.created_ms),
            "updated": time(key.updated_ms),
            "key": secret,
            "active": key.active,
            "service_account": account_json(account),
        },
        "metadata": metadata,
        "resources": hydrate.then(|| json!({})),
    })
}

fn parse_account_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "path.service_account_id",
            "Input should be a valid UUID",
        )
    })
}

fn load_account(tx: &Tx<'_>, raw: &str) -> Result<ServiceAccount, ApiError> {
    let not_found = || {
        ApiError::status(
            StatusCode::NOT_FOUND,
            format!(
                "Unable to get service account with name or ID '{raw}': No service account with this name or ID was found."
            ),
        )
    };
    if let Ok(id) = Uuid::parse_str(raw) {
        return tx.get(API, ACCOUNT, &id.to_string())?.ok_or_else(not_found);
    }
    let accounts: Vec<ServiceAccount> = tx.list(API, ACCOUNT, None)?;
    accounts.into_iter().find(|a| a.name == raw).ok_or_else(not_found)
}

fn load_key(tx: &Tx<'_>, account: &ServiceAccount, name_or_id: &str) -> Result<ApiKey, ApiError> {
    let keys: Vec<ApiKey> = tx.list(API, KEY, Some(&account.id.to_string()))?;
    let by_id = Uuid::parse_str(name_or_id).ok();
    keys.into_iter()
        .find(|k| Some(k.id) == by_id || k.name == name_or_id)
        .ok_or_else(|| {
            ApiError::status(
                StatusCode::NOT_FOUND,
                format!(
                    "An API key with ID or name '{name_or_id}' is not configured for service account '{}'.",
                    account.name
                ),
            )
        })
}

fn ensure_unique_name(
    tx: &Tx<'_>,
    account: &ServiceAccount,
    name: &str,
    except: Option<Uuid>,
) -> Result<(), ApiError> {
    let keys: Vec<ApiKey> = tx.list(API, KEY, Some(&account.id.to_string()))?;
    if keys.iter().any(|k| k.name == name && Some(k.id) != except) {
        return Err(ApiError::status(
            StatusCode::CONFLICT,
            format!(
                "Unable to register API key with name '{name}': Found an existing API key with the same name for the same service account."
            ),
        ));
    }
    Ok(())
}

fn validate_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.chars().count() > 255 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "body.name",
            "name must be 1 to 255 characters",
        ));
    }
    Ok(())
}

fn validate_description(description: &str) -> Result<(), ApiError> {
    if description.chars().count() > 65_535 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "body.description",
            "description must be at most 65535 characters",
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
struct CreateAccount {
    name: String,
    description: Option<String>,
    active: Option<bool>,
}

async fn create_account(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateAccount>,
) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    validate_name(&body.name)?;
    let account = state.db.write(|tx| {
        session::authenticate(tx, &headers, now_ms)?;
        let accounts: Vec<ServiceAccount> = tx.list(API, ACCOUNT, None)?;
        if accounts.iter().any(|a| a.name == body.name) {
            return Err(ApiError::status(
                StatusCode::CONFLICT,
                format!("A service account with name '{}' already exists.", body.name),
            ));
        }
        let mut account = new_account(
            &body.name,
            body.description.as_deref().unwrap_or_default(),
            now_ms,
        );
        account.active = body.active.unwrap_or(true);
        tx.put(API, ACCOUNT, &account.id.to_string(), "", &account)?;
        Ok(account)
    })?;
    Ok(json_response(StatusCode::OK, &account_json(&account)))
}

async fn show_account(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(account): Path<String>,
) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    let account = state.db.write(|tx| {
        session::authenticate(tx, &headers, now_ms)?;
        load_account(tx, &account)
    })?;
    Ok(json_response(StatusCode::OK, &account_json(&account)))
}

#[derive(Deserialize)]
struct CreateKey {
    name: String,
    description: Option<String>,
}

async fn create_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(account): Path<String>,
    JsonBody(body): JsonBody<CreateKey>,
) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    let account_id = parse_account_id(&account)?;
    validate_name(&body.name)?;
    validate_description(body.description.as_deref().unwrap_or_default())?;
    let (key, account, secret) = state.db.write(|tx| {
        session::authenticate(tx, &headers, now_ms)?;
        let account = load_account(tx, &account_id.to_string())?;
        ensure_unique_name(tx, &account, &body.name, None)?;
        let key = new_key(
            &account,
            &body.name,
            body.description.as_deref().unwrap_or_default(),
            now_ms,
        );
        let secret = issue_secret(tx, &key)?;
        tx.put(API, KEY, &key.id.to_string(), &account.id.to_string(), &key)?;
        Ok::<_, ApiError>((key, account, secret))
    })?;
    Ok(json_response(
        StatusCode::OK,
        &key_json(&key, &account, Some(&secret), true),
    ))
}

async fn list_keys(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(account): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    let account_id = parse_account_id(&account)?;
    let query = query::parse(raw.as_deref(), KEY_FIELDS)?;
    let (account, keys) = state.db.write(|tx| {
        session::authenticate(tx, &headers, now_ms)?;
        let account = load_account(tx, &account_id.to_string())?;
        let keys: Vec<ApiKey> = tx.list(API, KEY, Some(&account.id.to_string()))?;
        Ok::<_, ApiError>((account, keys))
    })?;
    let page = query::page(&query, keys, key_field, |key| {
        key_json(key, &account, None, query.hydrate)
    })?;
    Ok(json_response(StatusCode::OK, &page))
}

fn key_field(key: &ApiKey, name: &str) -> Field {
    match name {
        "id" => Field::Text(key.id.to_string()),
        "name" => Field::Text(key.name.clone()),
        "description" => Field::Text(key.description.clone()),
        "active" => Field::Bool(key.active),
        "updated" => Field::Time(Some(key.updated_ms)),
        "last_login" => Field::Time(key.last_login_ms),
        "last_rotated" => Field::Time(key.last_rotated_ms),
        _ => Field::Time(Some(key.created_ms)),
    }
}

fn parse_hydrate(raw: Option<&str>) -> Result<bool, ApiError> {
    // A single key's view is hydrated unless asked otherwise (lists are the reverse).
    let mut hydrate = true;
    for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if name == "hydrate" {
            hydrate = query::parse_bool(&value).ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "query.hydrate",
                    "hydrate must be a boolean",
                )
            })?;
        }
    }
    Ok(hydrate)
}

async fn show_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((account, key)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    let account_id = parse_account_id(&account)?;
    let hydrate = parse_hydrate(raw.as_deref())?;
    let (key, account) = state.db.write(|tx| {
        session::authenticate(tx, &headers, now_ms)?;
        let account = load_account(tx, &account_id.to_string())?;
        Ok::<_, ApiError>((load_key(tx, &account, &key)?, account))
    })?;
    Ok(json_response(
        StatusCode::OK,
        &key_json(&key, &account, None, hydrate),
    ))
}

#[derive(Deserialize)]
struct UpdateKey {
    name: Option<String>,
    description: Option<String>,
    active: Option<bool>,
}

async fn update_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((account, key)): Path<(String, String)>,
    JsonBody(body): JsonBody<UpdateKey>,
) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    let account_id = parse_account_id(&account)?;
    if let Some(name) = &body.name {
        validate_name(name)?;
    }
    validate_description(body.description.as_deref().unwrap_or_default())?;
    let (key, account) = state.db.write(|tx| {
        session::authenticate(tx, &headers, now_ms)?;
        let account = load_account(tx, &account_id.to_string())?;
        let mut key = load_key(tx, &account, &key)?;
        if let Some(name) = body.name {
            ensure_unique_name(tx, &account, &name, Some(key.id))?;
            key.name = name;
        }
        if let Some(description) = body.description {
            key.description = description;
        }
        if let Some(active) = body.active {
            key.active = active;
        }
        key.updated_ms = now_ms;
        tx.put(API, KEY, &key.id.to_string(), &account.id.to_string(), &key)?;
        Ok::<_, ApiError>((key, account))
    })?;
    Ok(json_response(
        StatusCode::OK,
        &key_json(&key, &account, None, true),
    ))
}

#[derive(Deserialize)]
struct RotateKey {
    #[serde(default)]
    retain_period_minutes: i64,
}

async fn rotate_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((account, key)): Path<(String, String)>,
    JsonBody(body): JsonBody<RotateKey>,
) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    let account_id = parse_account_id(&account)?;
    if !(0..=i64::MAX / 60_000).contains(&body.retain_period_minutes) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "body.retain_period_minutes",
            "retain_period_minutes must be a non-negative integer",
        ));
    }
    let (key, account, secret) = state.db.write(|tx| {
        session::authenticate(tx, &headers, now_ms)?;
        let account = load_account(tx, &account_id.to_string())?;
        let mut key = load_key(tx, &account, &key)?;
        let owner = key.id.to_string();
        // Only the latest previous key is retained, as upstream keeps a single `previous_key`.
        let retain_until_ms = now_ms.saturating_add(body.retain_period_minutes.saturating_mul(60_000));
        tx.retire_credentials(API, &owner, now_ms, retain_until_ms)?;
        let secret = issue_secret(tx, &key)?;
        key.retain_period_minutes = body.retain_period_minutes;
        key.last_rotated_ms = Some(now_ms);
        key.updated_ms = now_ms;
        tx.put(API, KEY, &owner, &account.id.to_string(), &key)?;
        Ok::<_, ApiError>((key, account, secret))
    })?;
    Ok(json_response(
        StatusCode::OK,
        &key_json(&key, &account, Some(&secret), true),
    ))
}

async fn delete_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((account, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    let account_id = parse_account_id(&account)?;
    state.db.write(|tx| {
        session::authenticate(tx, &headers, now_ms)?;
        let account = load_account(tx, &account_id.to_string())?;
        let key = load_key(tx, &account, &key)?;
        let owner = key.id.to_string();
        tx.delete_credentials(API, &owner)?;
        tx.delete_credentials(SESSION, &owner)?;
        tx.delete(API, KEY, &owner)?;
        Ok::<_, ApiError>(())
    })?;
    Ok(json_response(StatusCode::OK, &Value::Null))
}
