//! ZenML's key-for-token login (`POST /api/v1/login`, grant `zenml-api-key`) and
//! the bearer sessions it hands out.

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::json;

use super::{ACCOUNT, API, ApiKey, KEY, SESSION, SESSION_SECONDS, ServiceAccount};
use crate::credstore::AppState;
use crate::credstore::db::Tx;
use crate::credstore::http::{ApiError, json_response};
use crate::credstore::secrets::{random_token, secret_hash};

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "AuthorizationException", message)
}

/// A bearer session whose key and service account are still active.
pub(super) fn authenticate(tx: &Tx<'_>, headers: &HeaderMap, now_ms: i64) -> Result<(), ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("Authentication error: not authenticated"))?;
    let invalid = || unauthorized("Authentication error: invalid or expired token");
    let key_id = tx
        .credential_owner(&secret_hash(SESSION, bearer.trim()), SESSION, now_ms)?
        .ok_or_else(invalid)?;
    let key: ApiKey = tx.get(API, KEY, &key_id)?.ok_or_else(invalid)?;
    let account: ServiceAccount = tx
        .get(API, ACCOUNT, &key.service_account_id.to_string())?
        .ok_or_else(invalid)?;
    if !key.active || !account.active {
        return Err(invalid());
    }
    Ok(())
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    grant_type: Option<String>,
    password: Option<String>,
}

pub(super) async fn login(
    State(state): State<AppState>,
    Form(form): Form<LoginForm>,
) -> Result<Response, ApiError> {
    if form.grant_type.as_deref() != Some("zenml-api-key") {
        return Err(ApiError::status(
            StatusCode::BAD_REQUEST,
            "Unsupported grant type: only zenml-api-key is served here",
        ));
    }
    let secret = form.password.unwrap_or_default();
    let now_ms = state.clock.now_ms();
    let token = state.db.write(|tx| {
        let invalid = || unauthorized("Authentication error: invalid API key");
        let key_id = tx
            .credential_owner(&secret_hash(API, secret.trim()), API, now_ms)?
            .ok_or_else(invalid)?;
        let mut key: ApiKey = tx.get(API, KEY, &key_id)?.ok_or_else(invalid)?;
        let account: ServiceAccount = tx
            .get(API, ACCOUNT, &key.service_account_id.to_string())?
            .ok_or_else(invalid)?;
        if !key.active || !account.active {
            return Err(invalid());
        }
        key.last_login_ms = Some(now_ms);
        tx.put(API, KEY, &key_id, &account.id.to_string(), &key)?;
        let expires_ms = now_ms + SESSION_SECONDS * 1000;
        let claims =
            json!({"sub": account.id, "api_key_id": key.id, "exp": expires_ms / 1000, "iss": "credstore"});
        // Shaped like a JWT, but verified by hash lookup, so the signature part is just randomness.
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            random_token(32)
        );
        tx.add_credential(&secret_hash(SESSION, &token), SESSION, &key_id, Some(expires_ms))?;
        Ok(token)
    })?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"access_token": token, "token_type": "bearer", "expires_in": SESSION_SECONDS, "refresh_token": null,
                "csrf_token": null, "scope": null, "device_id": null, "device_metadata": null}),
    ))
}
