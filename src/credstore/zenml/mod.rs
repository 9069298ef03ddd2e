//! ZenML service accounts and their API keys (`/api/v1/service_accounts`), the
//! current user (`/api/v1/current-user`) and the login (`/api/v1/login`), emulating
//! the open-source server zenml[server] 0.98.0 as measured against it by
//! tests/credstore/conformance/test_zenml_differential.py (accepted differences:
//! tests/credstore/conformance/zenml_differences.yaml; docs/upstream-behaviour.md).
//!
//! Principals: a bootstrap admin *user* (username + password, `grant_type=password`,
//! as an open-source server needs) and service accounts with API keys. The emulation
//! models a server **with RBAC** that grants every authenticated principal every
//! action: service-account keys (such as the bootstrap admin key) may manage keys and
//! service accounts too, as a suitably granted service account can on ZenML Pro. A
//! real open-source server without RBAC answers those requests from a service
//! account with `403 IllegalOperationError` (only admin users may).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::middleware::from_fn;
use axum::response::Response;
use axum::routing::{get, post, put};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use self::query::{Field, FieldType, Model};
use self::validate::{Kind, field, py_str};
use crate::credstore::AppState;
use crate::credstore::clock::python_isoformat;
use crate::credstore::db::{DbError, Tx};
use crate::credstore::http::{ApiError, json_response};
use crate::credstore::secrets::{random_hex, random_token, secret_hash};

const API: &str = "zenml";
/// Session tokens get their own hash domain so a key can never be used as one.
const SESSION: &str = "zenml-session";
/// User passwords, hashed together with the user's id.
const PASSWORD: &str = "zenml-password";
const ACCOUNT: &str = "service_account";
const KEY: &str = "api_key";
const USER: &str = "user";
const SERVER: &str = "server";
/// `STR_FIELD_MAX_LENGTH` and `TEXT_FIELD_MAX_LENGTH`.
const STR_MAX: usize = 255;
const TEXT_MAX: usize = 65_535;

/// The bootstrap admin user's name.
pub const ADMIN_USER_NAME: &str = "admin";

mod idempotency;
mod query;
mod session;
mod validate;

const KEY_MODEL: Model = Model {
    name: "APIKeyFilter",
    fields: &[
        ("id", FieldType::Text),
        ("created", FieldType::Time),
        ("updated", FieldType::Time),
        ("name", FieldType::Text),
        ("description", FieldType::Text),
        ("active", FieldType::Bool),
        ("last_login", FieldType::Time),
        ("last_rotated", FieldType::Time),
    ],
    excluded: &["service_account"],
};

const ACCOUNT_MODEL: Model = Model {
    name: "ServiceAccountFilter",
    fields: &[
        ("id", FieldType::Text),
        ("created", FieldType::Time),
        ("updated", FieldType::Time),
        ("name", FieldType::Text),
        ("description", FieldType::Text),
        ("active", FieldType::Bool),
        ("external_user_id", FieldType::Text),
    ],
    excluded: &[],
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/login", post(session::login))
        .route("/api/v1/current-user", get(current_user))
        .route(
            "/api/v1/service_accounts",
            get(list_accounts).post(create_account),
        )
        .route(
            "/api/v1/service_accounts/{account}",
            get(show_account).put(update_account),
        )
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
        .route_layer(from_fn(idempotency::check_header))
}

#[derive(Debug, Serialize, Deserialize)]
struct ServiceAccount {
    id: Uuid,
    name: String,
    description: String,
    active: bool,
    created_ms: i64,
    updated_ms: i64,
    #[serde(default)]
    full_name: String,
    #[serde(default)]
    avatar_url: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct User {
    id: Uuid,
    name: String,
    active: bool,
    created_ms: i64,
    updated_ms: i64,
    password_changed_ms: i64,
}

fn first_generation() -> i64 {
    1
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
    /// Counts rotations from 1; access tokens carry the generation they were issued for.
    #[serde(default = "first_generation")]
    generation: i64,
}

impl ApiKey {
    /// `is_previous_key_retained`: the key before the last rotation still works.
    fn previous_retained(&self, now_ms: i64) -> bool {
        match self.last_rotated_ms {
            Some(rotated_ms) if self.active && self.retain_period_minutes > 0 && self.generation > 1 => {
                now_ms.saturating_sub(rotated_ms) < self.retain_period_minutes.saturating_mul(60_000)
            }
            _ => false,
        }
    }

    /// `is_token_generation_valid`.
    fn generation_valid(&self, generation: i64, now_ms: i64) -> bool {
        generation == self.generation || (generation == self.generation - 1 && self.previous_retained(now_ms))
    }
}

/// Ids written to `bootstrap.json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapIds {
    pub admin_service_account_id: Uuid,
    pub service_account_id: Uuid,
    pub service_account_name: String,
    pub admin_user_id: Uuid,
    pub admin_user_name: String,
}

/// The bootstrap credentials: the admin service account's API key, and the admin user's password.
pub struct BootstrapSecrets {
    pub api_key: String,
    pub admin_user: String,
    pub admin_password: String,
}

/// An admin user, an admin service account with one key, and an empty service
/// account for managed keys.
pub fn bootstrap(tx: &Tx<'_>, now_ms: i64) -> Result<(BootstrapIds, BootstrapSecrets), DbError> {
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
    let user = User {
        id: Uuid::new_v4(),
        name: ADMIN_USER_NAME.into(),
        active: true,
        created_ms: now_ms,
        updated_ms: now_ms,
        password_changed_ms: now_ms,
    };
    let password = random_token(24);
    tx.put(API, USER, &user.id.to_string(), "", &user)?;
    tx.add_credential(
        &password_hash(user.id, &password),
        PASSWORD,
        &user.id.to_string(),
        None,
    )?;
    server_id(tx)?;
    let ids = BootstrapIds {
        admin_service_account_id: admin.id,
        service_account_id: managed.id,
        service_account_name: managed.name,
        admin_user_id: user.id,
        admin_user_name: user.name.clone(),
    };
    let secrets = BootstrapSecrets {
        api_key: secret,
        admin_user: user.name,
        admin_password: password,
    };
    Ok((ids, secrets))
}

fn password_hash(user: Uuid, password: &str) -> [u8; 32] {
    secret_hash(PASSWORD, &format!("{user}:{password}"))
}

/// This server's id (in the session cookie's name and the tokens' issuer).
fn server_id(tx: &Tx<'_>) -> Result<Uuid, DbError> {
    #[derive(Serialize, Deserialize)]
    struct Server {
        id: Uuid,
    }
    if let Some(server) = tx.get::<Server>(API, SERVER, SERVER)? {
        return Ok(server.id);
    }
    let server = Server { id: Uuid::new_v4() };
    tx.put(API, SERVER, SERVER, "", &server)?;
    Ok(server.id)
}

fn new_account(name: &str, description: &str, now_ms: i64) -> ServiceAccount {
    ServiceAccount {
        id: Uuid::new_v4(),
        name: name.into(),
        description: description.into(),
        active: true,
        created_ms: now_ms,
        updated_ms: now_ms,
        full_name: String::new(),
        avatar_url: None,
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
        generation: 1,
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

fn account_json(account: &ServiceAccount, hydrate: bool) -> Value {
    json!({
        "id": account.id,
        "name": account.name,
        "permission_denied": false,
        "body": {"created": time(account.created_ms), "updated": time(account.updated_ms), "full_name": account.full_name,
                 "active": account.active, "avatar_url": account.avatar_url},
        "metadata": hydrate.then(|| json!({"description": account.description, "external_user_id": null})),
        "resources": null,
    })
}

/// Keys are shown with their service account unhydrated, and without `resources`.
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
            "service_account": account_json(account, false),
        },
        "metadata": metadata,
        "resources": null,
    })
}

/// A `KeyError`; the real server shows its `str()`, i.e. the message's `repr()`.
fn key_error(message: String) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "KeyError", py_str(&message))
}

fn account_not_found(raw: &str) -> ApiError {
    key_error(format!(
        "No service account with the '{raw}' name or ID was found"
    ))
}

fn load_account(tx: &Tx<'_>, raw: &str) -> Result<ServiceAccount, ApiError> {
    if let Ok(id) = Uuid::parse_str(raw) {
        return tx
            .get(API, ACCOUNT, &id.to_string())?
            .ok_or_else(|| account_not_found(raw));
    }
    let accounts: Vec<ServiceAccount> = tx.list(API, ACCOUNT, None)?;
    accounts
        .into_iter()
        .find(|a| a.name == raw)
        .ok_or_else(|| account_not_found(raw))
}

fn load_key(tx: &Tx<'_>, account: &ServiceAccount, name_or_id: &str) -> Result<ApiKey, ApiError> {
    let keys: Vec<ApiKey> = tx.list(API, KEY, Some(&account.id.to_string()))?;
    let by_id = Uuid::parse_str(name_or_id).ok();
    keys.into_iter()
        .find(|k| Some(k.id) == by_id || k.name == name_or_id)
        .ok_or_else(|| {
            key_error(format!(
                "An API key with ID or name '{name_or_id}' is not configured for service account with ID '{}'.",
                account.id
            ))
        })
}

fn ensure_unique_key_name(
    tx: &Tx<'_>,
    account: &ServiceAccount,
    name: &str,
    except: Option<Uuid>,
    action: &str,
) -> Result<(), ApiError> {
    let keys: Vec<ApiKey> = tx.list(API, KEY, Some(&account.id.to_string()))?;
    if keys.iter().any(|k| k.name == name && Some(k.id) != except) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "EntityExistsError",
            format!(
                "Unable to {action} API key with name '{name}': Found an existing API key with the same name configured for the same '{}' service account.",
                account.name
            ),
        ));
    }
    Ok(())
}

fn text(body: &Map<String, Value>, name: &str) -> Option<String> {
    body.get(name).and_then(Value::as_str).map(str::to_owned)
}

fn flag(body: &Map<String, Value>, name: &str) -> Option<bool> {
    body.get(name).and_then(Value::as_bool)
}

/// The request URL as the idempotency record remembers it.
fn request_url(uri: &Uri) -> String {
    uri.path_and_query()
        .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned())
}

/// Authenticates in a transaction of its own, so that the recorded use of a key
/// stays even when the request then fails (as on the real server).
fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<(session::Principal, i64), ApiError> {
    let now_ms = state.clock.now_ms();
    let principal = state.db.write(|tx| session::authenticate(tx, headers, now_ms))?;
    Ok((principal, state.clock.now_ms()))
}

async fn current_user(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let (principal, _) = authenticate(&state, &headers)?;
    let body = state.db.write(|tx| {
        if let Some(user) = tx.get::<User>(API, USER, &principal.id.to_string())? {
            return Ok::<_, ApiError>(json!({
                "id": user.id,
                "name": user.name,
                "permission_denied": false,
                "body": {"created": time(user.created_ms), "updated": time(user.updated_ms), "active": user.active,
                         "activation_token": null, "full_name": "", "email_opted_in": null, "is_service_account": false,
                         "is_admin": true, "default_project_id": null, "avatar_url": null},
                "metadata": {"password_changed_at": time(user.password_changed_ms), "email": null, "external_user_id": null,
                             "user_metadata": {}, "oidc_claims": {}},
                "resources": null,
            }));
        }
        let account = load_account(tx, &principal.id.to_string())?;
        Ok(json!({
            "id": account.id,
            "name": account.name,
            "permission_denied": false,
            "body": {"created": time(account.created_ms), "updated": time(account.updated_ms), "active": account.active,
                     "activation_token": null, "full_name": account.full_name, "email_opted_in": false,
                     "is_service_account": true, "is_admin": false, "default_project_id": null,
                     "avatar_url": account.avatar_url},
            "metadata": {"password_changed_at": null, "email": null, "external_user_id": null, "user_metadata": {},
                         "oidc_claims": {}},
            "resources": null,
        }))
    })?;
    Ok(json_response(StatusCode::OK, &body))
}

const CREATE_ACCOUNT: &[validate::Field] = &[
    field("name", Kind::Str(STR_MAX), true),
    field("full_name", Kind::Str(STR_MAX), false),
    field("description", Kind::Str(TEXT_MAX), false),
    field("active", Kind::Bool, true),
    field("avatar_url", Kind::Str(usize::MAX), false),
];

async fn create_account(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let (principal, now_ms) = authenticate(&state, &headers)?;
    let body = validate::body(&bytes, CREATE_ACCOUNT)?;
    let name = text(&body, "name").unwrap_or_default();
    let response = state.db.write(|tx| {
        idempotency::run(tx, now_ms, &headers, principal.id, &request_url(&uri), || {
            let accounts: Vec<ServiceAccount> = tx.list(API, ACCOUNT, None)?;
            if accounts.iter().any(|a| a.name == name) {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "EntityExistsError",
                    format!(
                        "Unable to create service account with name '{name}': Found existing service account with this name."
                    ),
                ));
            }
            let mut account = new_account(
                &name,
                &text(&body, "description").unwrap_or_default(),
                now_ms,
            );
            account.active = flag(&body, "active").unwrap_or(true);
            account.full_name = text(&body, "full_name").unwrap_or_default();
            account.avatar_url = text(&body, "avatar_url");
            tx.put(API, ACCOUNT, &account.id.to_string(), "", &account)?;
            Ok(account_json(&account, true))
        })
    })?;
    Ok(json_response(StatusCode::OK, &response))
}

async fn list_accounts(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    authenticate(&state, &headers)?;
    let query = query::parse(raw.as_deref(), &ACCOUNT_MODEL)?;
    let accounts: Vec<ServiceAccount> = state.db.write(|tx| tx.list(API, ACCOUNT, None))?;
    let page = query::page(&query, accounts, account_field, |a| {
        account_json(a, query.hydrate)
    })?;
    Ok(json_response(StatusCode::OK, &page))
}

fn account_field(account: &ServiceAccount, name: &str) -> Field {
    match name {
        "id" => Field::Text(account.id.to_string()),
        "name" => Field::Text(account.name.clone()),
        "description" => Field::Text(account.description.clone()),
        "active" => Field::Bool(account.active),
        "updated" => Field::Time(Some(account.updated_ms)),
        "external_user_id" => Field::Time(None),
        _ => Field::Time(Some(account.created_ms)),
    }
}

async fn show_account(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(account): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    authenticate(&state, &headers)?;
    let hydrate = validate::hydrate_param(raw.as_deref(), true)?;
    let account = state.db.write(|tx| load_account(tx, &account))?;
    Ok(json_response(StatusCode::OK, &account_json(&account, hydrate)))
}

const UPDATE_ACCOUNT: &[validate::Field] = &[
    field("name", Kind::Str(STR_MAX), false),
    field("full_name", Kind::Str(STR_MAX), false),
    field("description", Kind::Str(TEXT_MAX), false),
    field("active", Kind::Bool, false),
    field("avatar_url", Kind::Str(usize::MAX), false),
];

async fn update_account(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let (_, now_ms) = authenticate(&state, &headers)?;
    let body = validate::body(&bytes, UPDATE_ACCOUNT)?;
    let account = state.db.write(|tx| {
        let mut account = load_account(tx, &raw)?;
        if let Some(name) = text(&body, "name") {
            let accounts: Vec<ServiceAccount> = tx.list(API, ACCOUNT, None)?;
            if accounts.iter().any(|a| a.name == name && a.id != account.id) {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "EntityExistsError",
                    format!(
                        "Unable to update service account with name '{name}': Found existing service account with this name."
                    ),
                ));
            }
            account.name = name;
        }
        if let Some(description) = text(&body, "description") {
            account.description = description;
        }
        if let Some(full_name) = text(&body, "full_name") {
            account.full_name = full_name;
        }
        if let Some(avatar_url) = text(&body, "avatar_url") {
            account.avatar_url = Some(avatar_url);
        }
        if let Some(active) = flag(&body, "active") {
            account.active = active;
        }
        account.updated_ms = now_ms;
        tx.put(API, ACCOUNT, &account.id.to_string(), "", &account)?;
        Ok::<_, ApiError>(account)
    })?;
    Ok(json_response(StatusCode::OK, &account_json(&account, true)))
}

const CREATE_KEY: &[validate::Field] = &[
    field("name", Kind::Str(STR_MAX), true),
    field("description", Kind::Str(TEXT_MAX), false),
];

async fn create_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(account): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let (principal, now_ms) = authenticate(&state, &headers)?;
    let account_id = validate::uuid_path("service_account_id", &account)?;
    let body = validate::body(&bytes, CREATE_KEY)?;
    let name = text(&body, "name").unwrap_or_default();
    let response = state.db.write(|tx| {
        idempotency::run(tx, now_ms, &headers, principal.id, &request_url(&uri), || {
            let account = load_account(tx, &account_id.to_string())?;
            ensure_unique_key_name(tx, &account, &name, None, "register")?;
            let key = new_key(
                &account,
                &name,
                &text(&body, "description").unwrap_or_default(),
                now_ms,
            );
            let secret = issue_secret(tx, &key)?;
            tx.put(API, KEY, &key.id.to_string(), &account.id.to_string(), &key)?;
            Ok(key_json(&key, &account, Some(&secret), true))
        })
    })?;
    Ok(json_response(StatusCode::OK, &response))
}

async fn list_keys(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(account): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    authenticate(&state, &headers)?;
    let account_id = validate::uuid_path("service_account_id", &account)?;
    let query = query::parse(raw.as_deref(), &KEY_MODEL)?;
    let (account, keys) = state.db.write(|tx| {
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

async fn show_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((account, key)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    authenticate(&state, &headers)?;
    let account_id = validate::uuid_path("service_account_id", &account)?;
    let hydrate = validate::hydrate_param(raw.as_deref(), true)?;
    let (key, account) = state.db.write(|tx| {
        let account = load_account(tx, &account_id.to_string())?;
        Ok::<_, ApiError>((load_key(tx, &account, &key)?, account))
    })?;
    Ok(json_response(
        StatusCode::OK,
        &key_json(&key, &account, None, hydrate),
    ))
}

const UPDATE_KEY: &[validate::Field] = &[
    field("name", Kind::Str(STR_MAX), false),
    field("description", Kind::Str(TEXT_MAX), false),
    field("active", Kind::Bool, false),
];

async fn update_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((account, key)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let (_, now_ms) = authenticate(&state, &headers)?;
    let account_id = validate::uuid_path("service_account_id", &account)?;
    let body = validate::body(&bytes, UPDATE_KEY)?;
    let (key, account) = state.db.write(|tx| {
        let account = load_account(tx, &account_id.to_string())?;
        let mut key = load_key(tx, &account, &key)?;
        if let Some(name) = text(&body, "name") {
            ensure_unique_key_name(tx, &account, &name, Some(key.id), "update")?;
            key.name = name;
        }
        if let Some(description) = text(&body, "description") {
            key.description = description;
        }
        if let Some(active) = flag(&body, "active") {
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

const ROTATE_KEY: &[validate::Field] = &[field("retain_period_minutes", Kind::Int, false)];

async fn rotate_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((account, key)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let (_, now_ms) = authenticate(&state, &headers)?;
    let account_id = validate::uuid_path("service_account_id", &account)?;
    let body = validate::body(&bytes, ROTATE_KEY)?;
    // Stored as given, negative included (a non-positive period retains nothing).
    let retain_minutes = body
        .get("retain_period_minutes")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let (key, account, secret) = state.db.write(|tx| {
        let account = load_account(tx, &account_id.to_string())?;
        let mut key = load_key(tx, &account, &key)?;
        let owner = key.id.to_string();
        // Only the latest previous key is retained, as upstream keeps a single `previous_key`.
        let retain_until_ms = now_ms.saturating_add(retain_minutes.saturating_mul(60_000));
        tx.retire_credentials(API, &owner, now_ms, retain_until_ms)?;
        let secret = issue_secret(tx, &key)?;
        key.retain_period_minutes = retain_minutes;
        key.generation += 1;
        key.last_rotated_ms = Some(now_ms);
        key.updated_ms = now_ms;
        tx.put(API, KEY, &owner, &account.id.to_string(), &key)?;
        Ok::<_, ApiError>((key, account, secret))
    })?;
    Ok(json_response(
        StatusCode::OK,
        &key_json(&key, &account, Some(&secret), false),
    ))
}

async fn delete_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((account, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    authenticate(&state, &headers)?;
    let account_id = validate::uuid_path("service_account_id", &account)?;
    state.db.write(|tx| {
        let account = load_account(tx, &account_id.to_string())?;
        let key = load_key(tx, &account, &key)?;
        let owner = key.id.to_string();
        // Its access tokens stay decodable, and fail on the missing key (as upstream).
        tx.delete_credentials(API, &owner)?;
        tx.delete(API, KEY, &owner)?;
        Ok::<_, ApiError>(())
    })?;
    Ok(json_response(StatusCode::OK, &Value::Null))
}
