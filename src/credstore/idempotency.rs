//! Prefactor's `idempotency_key`: the same request with the same key gets the
//! original response; a different request with that key is refused. The stored
//! response can carry a freshly issued token, so it is sealed under a key derived
//! from the idempotency key itself, which the store keeps only hashed: the
//! database alone never yields the token.

use axum::http::StatusCode;
use serde_json::Value;

use super::db::Tx;
use super::http::ApiError;
use super::secrets::{Sealer, sha256};

pub struct Request<'a> {
    /// Who asked: keys are scoped per principal.
    pub principal: &'a str,
    /// `METHOD /concrete/path`.
    pub operation: &'a str,
    pub body: &'a Value,
}

pub type Outcome = (StatusCode, Value);

pub fn run(
    tx: &Tx<'_>,
    now_ms: i64,
    request: Request<'_>,
    op: impl FnOnce() -> Result<Outcome, ApiError>,
) -> Result<Outcome, ApiError> {
    let Some(key) = idempotency_key(request.body)? else {
        return op();
    };
    let derive = |purpose: &str| sha256(format!("{purpose}\0{}\0{key}", request.principal).as_bytes());
    let lookup = derive("idempotency-lookup");
    let sealer = Sealer::new(&derive("idempotency-seal"));
    let fingerprint = fingerprint(&request);

    if let Some((stored_fingerprint, status, sealed)) = tx.idempotent_response(&lookup)? {
        if stored_fingerprint != fingerprint {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_key_already_used",
                "idempotency_key was already used for a different request",
            ));
        }
        let plain = sealer.open(&sealed).map_err(|_| stored_response_unreadable())?;
        let body = serde_json::from_slice(&plain).map_err(|_| stored_response_unreadable())?;
        let status = StatusCode::from_u16(status).map_err(|_| stored_response_unreadable())?;
        return Ok((status, body));
    }

    let (status, body) = op()?;
    let sealed = sealer.seal(body.to_string().as_bytes());
    tx.record_idempotent_response(&lookup, &fingerprint, status.as_u16(), &sealed, now_ms)?;
    Ok((status, body))
}

fn idempotency_key(body: &Value) -> Result<Option<&str>, ApiError> {
    match body.get("idempotency_key") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(key)) if (1..=64).contains(&key.chars().count()) => Ok(Some(key)),
        Some(_) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_value",
            "idempotency_key must be a string of 1 to 64 characters",
        )),
    }
}

/// The request without its idempotency key; serde_json maps are sorted, so the
/// text is canonical.
fn fingerprint(request: &Request<'_>) -> [u8; 32] {
    let mut body = request.body.clone();
    if let Value::Object(map) = &mut body {
        map.remove("idempotency_key");
    }
    sha256(format!("{}\n{body}", request.operation).as_bytes())
}

fn stored_response_unreadable() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "unexpected",
        "stored idempotent response is unreadable",
    )
}
