//! Prefactor API tokens (`/api/v1/api_token`, `/api/v1/ping`).

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Router, http::header};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::clock::rfc3339;
use super::db::Tx;
use super::http::{ApiError, JsonBody, json_response};
use super::secrets::{random_bytes, random_token, secret_hash};
use super::{AppState, idempotency};

const API: &str = "prefactor";
const TOKEN: &str = "api_token";
const ADMIN: &str = "admin_user";
const ACCOUNT: &str = "account";
const CROCKFORD: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";

mod list;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/ping", get(ping))
        .route("/api/v1/api_token", get(list::list).post(create))
        .route("/api/v1/api_token/{id}", get(show).delete(remove))
        .route("/api/v1/api_token/{id}/suspend", post(suspend))
        .route("/api/v1/api_token/{id}/activate", post(activate))
        .route("/api/v1/api_token/{id}/revoke", post(revoke))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Scope {
    Account,
    Environment,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Active,
    Suspended,
    Revoked,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Token {
    id: String,
    account_id: String,
    environment_id: Option<String>,
    created_by_admin_user_id: Option<String>,
    token_scope: Scope,
    status: Status,
    expires_at_ms: Option<i64>,
    inserted_at_ms: i64,
    updated_at_ms: i64,
    last_used_at_ms: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Account {
    id: String,
    environment_ids: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct AdminUser {
    id: String,
    account_id: String,
}

/// What `/api/v1/ping` and token management run as.
struct Caller {
    principal: String,
    account_id: String,
    admin_user_id: Option<String>,
    may_manage_tokens: bool,
}

/// Ids written to `bootstrap.json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapIds {
    pub account_id: String,
    pub environment_id: String,
    pub admin_user_id: String,
}

/// Creates the account, one environment and an admin user; returns the admin's bearer token.
pub fn bootstrap(tx: &Tx<'_>, now_ms: i64) -> Result<(BootstrapIds, String), super::db::DbError> {
    let ids = BootstrapIds {
        account_id: new_id(now_ms),
        environment_id: new_id(now_ms),
        admin_user_id: new_id(now_ms),
    };
    tx.put(
        API,
        ACCOUNT,
        &ids.account_id,
        "",
        &Account {
            id: ids.account_id.clone(),
            environment_ids: vec![ids.environment_id.clone()],
        },
    )?;
    tx.put(
        API,
        ADMIN,
        &ids.admin_user_id,
        "",
        &AdminUser {
            id: ids.admin_user_id.clone(),
            account_id: ids.account_id.clone(),
        },
    )?;
    let token = new_secret();
    tx.add_credential(
        &secret_hash(API, &token),
        API,
        &format!("{ADMIN}:{}", ids.admin_user_id),
        None,
    )?;
    Ok((ids, token))
}

fn new_secret() -> String {
    format!("pfat_{}", random_token(32))
}

/// 32 lowercase Crockford base32 characters: 48-bit ms timestamp, 30-bit partition, 80 random bits.
fn new_id(now_ms: i64) -> String {
    let random = random_bytes::<16>();
    let partition = u32::from_le_bytes([random[10], random[11], random[12], random[13]]) & 0x3fff_ffff;
    let mut tail = [0u8; 16];
    tail[6..].copy_from_slice(&random[..10]);
    let mut out = String::with_capacity(32);
    push_base32(&mut out, (now_ms.max(0) as u128) & 0xffff_ffff_ffff, 10);
    push_base32(&mut out, partition as u128, 6);
    push_base32(&mut out, u128::from_be_bytes(tail), 16);
    out
}

fn push_base32(out: &mut String, value: u128, chars: u32) {
    for i in (0..chars).rev() {
        out.push(CROCKFORD[((value >> (5 * i)) & 31) as usize] as char);
    }
}

fn is_valid_id(id: &str) -> bool {
    id.len() == 32
        && id.as_bytes()[0].is_ascii_digit()
        && id.as_bytes()[0] <= b'7'
        && id.bytes().all(|b| CROCKFORD.contains(&b))
}

fn authenticate(tx: &Tx<'_>, headers: &HeaderMap, now_ms: i64) -> Result<Caller, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "not_authenticated",
                "missing bearer token",
            )
        })?;
    let bad_token = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_authtoken",
            "the bearer token is not valid",
        )
    };
    let owner = tx
        .credential_owner(&secret_hash(API, bearer), API, now_ms)?
        .ok_or_else(bad_token)?;
    match owner.split_once(':') {
        Some((ADMIN, id)) => {
            let admin: AdminUser = tx.get(API, ADMIN, id)?.ok_or_else(bad_token)?;
            Ok(Caller {
                principal: owner.clone(),
                account_id: admin.account_id,
                admin_user_id: Some(admin.id),
                may_manage_tokens: true,
            })
        }
        Some((TOKEN, id)) => {
            let mut token: Token = tx.get(API, TOKEN, id)?.ok_or_else(bad_token)?;
            if token.status != Status::Active || token.expires_at_ms.is_some_and(|at| at <= now_ms) {
                return Err(bad_token());
            }
            token.last_used_at_ms = Some(now_ms);
            tx.put(API, TOKEN, &token.id, &token.account_id, &token)?;
            Ok(Caller {
                principal: owner.clone(),
                account_id: token.account_id,
                admin_user_id: token.created_by_admin_user_id,
                may_manage_tokens: token.token_scope == Scope::Account,
            })
        }
        _ => Err(bad_token()),
    }
}

fn authenticate_manager(tx: &Tx<'_>, headers: &HeaderMap, now_ms: i64) -> Result<Caller, ApiError> {
    let caller = authenticate(tx, headers, now_ms)?;
    if !caller.may_manage_tokens {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_permitted",
            "environment-scoped tokens cannot manage API tokens",
        ));
    }
    Ok(caller)
}

fn details(token: &Token) -> Value {
    let ts = |ms: i64| Timestamp::from_millisecond(ms).map(rfc3339).ok();
    json!({
        "id": token.id,
        "type": "api_token",
        "account_id": token.account_id,
        "environment_id": token.environment_id,
        "created_by_admin_user_id": token.created_by_admin_user_id,
        "token_scope": token.token_scope,
        "status": token.status,
        "expires_at": token.expires_at_ms.and_then(ts),
        "inserted_at": ts(token.inserted_at_ms),
        "updated_at": ts(token.updated_at_ms),
        "last_used_at": token.last_used_at_ms.and_then(ts),
        "available_actions": {
            "activate": token.status == Status::Suspended,
            "suspend": token.status == Status::Active,
            "revoke": token.status != Status::Revoked,
            "delete": token.status == Status::Revoked,
        },
    })
}

fn respond(outcome: idempotency::Outcome) -> Response {
    json_response(outcome.0, &outcome.1)
}

async fn ping(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    state.db.write(|tx| authenticate(tx, &headers, now_ms))?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"status": "success", "message": "pong"}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    details: CreateDetails,
    #[serde(rename = "idempotency_key")]
    _idempotency_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateDetails {
    token_scope: Scope,
    account_id: Option<String>,
    environment_id: Option<String>,
    expires_at: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    let outcome = state.db.write(|tx| {
        let caller = authenticate_manager(tx, &headers, now_ms)?;
        let request = idempotency::Request {
            principal: &caller.principal,
            operation: "POST /api/v1/api_token",
            body: &body,
        };
        idempotency::run(tx, now_ms, request, || {
            let request: CreateRequest = serde_json::from_value(body.clone()).map_err(|err| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_value",
                    format!("invalid request: {err}"),
                )
            })?;
            let (token, secret) = issue(tx, &caller, request.details, now_ms)?;
            Ok((
                StatusCode::CREATED,
                json!({"status": "success", "details": details(&token), "token": secret}),
            ))
        })
    })?;
    Ok(respond(outcome))
}

fn issue(
    tx: &Tx<'_>,
    caller: &Caller,
    details: CreateDetails,
    now_ms: i64,
) -> Result<(Token, String), ApiError> {
    let invalid = |message: &str| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", message);
    let account_id = details.account_id.unwrap_or_else(|| caller.account_id.clone());
    if account_id != caller.account_id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_permitted",
            "account_id is not an account of the caller",
        ));
    }
    let account: Account = tx
        .get(API, ACCOUNT, &account_id)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "account not found"))?;
    match (details.token_scope, &details.environment_id) {
        (Scope::Environment, None) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "required_value",
                "environment_id is required for environment scope",
            ));
        }
        (Scope::Account, Some(_)) => {
            return Err(invalid("environment_id is only allowed for environment scope"));
        }
        (Scope::Environment, Some(env)) if !account.environment_ids.contains(env) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "environment not found",
            ));
        }
        _ => {}
    }
    let expires_at_ms = match details.expires_at {
        None => None,
        Some(text) => {
            let at: Timestamp = text
                .parse()
                .map_err(|_| invalid("expires_at must be an RFC 3339 date-time"))?;
            if at.as_millisecond() <= now_ms {
                return Err(invalid("expires_at must be in the future"));
            }
            Some(at.as_millisecond())
        }
    };
    let token = Token {
        id: new_id(now_ms),
        account_id,
        environment_id: details.environment_id,
        created_by_admin_user_id: caller.admin_user_id.clone(),
        token_scope: details.token_scope,
        status: Status::Active,
        expires_at_ms,
        inserted_at_ms: now_ms,
        updated_at_ms: now_ms,
        last_used_at_ms: None,
    };
    let secret = new_secret();
    tx.put(API, TOKEN, &token.id, &token.account_id, &token)?;
    tx.add_credential(
        &secret_hash(API, &secret),
        API,
        &format!("{TOKEN}:{}", token.id),
        None,
    )?;
    Ok((token, secret))
}

fn load(tx: &Tx<'_>, caller: &Caller, id: &str) -> Result<Token, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "not_found", "API token not found");
    if !is_valid_id(id) {
        return Err(not_found());
    }
    let token: Token = tx.get(API, TOKEN, id)?.ok_or_else(not_found)?;
    if token.account_id != caller.account_id {
        return Err(not_found());
    }
    Ok(token)
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    let token = state.db.write(|tx| {
        let caller = authenticate_manager(tx, &headers, now_ms)?;
        load(tx, &caller, &id)
    })?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"status": "success", "details": details(&token)}),
    ))
}

async fn suspend(
    state: State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
    id: Path<String>,
    body: JsonBody<Value>,
) -> Result<Response, ApiError> {
    transition(
        state,
        uri,
        headers,
        id,
        body,
        &[Status::Active],
        Status::Suspended,
    )
}

async fn activate(
    state: State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
    id: Path<String>,
    body: JsonBody<Value>,
) -> Result<Response, ApiError> {
    transition(
        state,
        uri,
        headers,
        id,
        body,
        &[Status::Suspended],
        Status::Active,
    )
}

async fn revoke(
    state: State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
    id: Path<String>,
    body: JsonBody<Value>,
) -> Result<Response, ApiError> {
    transition(
        state,
        uri,
        headers,
        id,
        body,
        &[Status::Active, Status::Suspended],
        Status::Revoked,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransitionRequest {
    #[serde(rename = "idempotency_key")]
    _idempotency_key: Option<String>,
}

fn transition(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
    from: &[Status],
    to: Status,
) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    let operation = format!("{} {}", Method::POST, uri.path());
    let outcome = state.db.write(|tx| {
        let caller = authenticate_manager(tx, &headers, now_ms)?;
        idempotency::run(
            tx,
            now_ms,
            idempotency::Request {
                principal: &caller.principal,
                operation: &operation,
                body: &body,
            },
            || {
                serde_json::from_value::<TransitionRequest>(body.clone()).map_err(|err| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_value",
                        format!("invalid request: {err}"),
                    )
                })?;
                let mut token = load(tx, &caller, &id)?;
                if !from.contains(&token.status) {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "invalid_action",
                        format!("a {} token cannot become {}", json!(token.status), json!(to)),
                    ));
                }
                token.status = to;
                token.updated_at_ms = now_ms;
                tx.put(API, TOKEN, &token.id, &token.account_id, &token)?;
                if to == Status::Revoked {
                    tx.delete_credentials(API, &format!("{TOKEN}:{}", token.id))?;
                }
                Ok((
                    StatusCode::OK,
                    json!({"status": "success", "details": details(&token)}),
                ))
            },
        )
    })?;
    Ok(respond(outcome))
}

async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    let token = state.db.write(|tx| {
        let caller = authenticate_manager(tx, &headers, now_ms)?;
        let token = load(tx, &caller, &id)?;
        if token.status != Status::Revoked {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "invalid_action",
                "only revoked tokens can be deleted",
            ));
        }
        tx.delete(API, TOKEN, &token.id)?;
        Ok(token)
    })?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"status": "success", "details": details(&token)}),
    ))
}
