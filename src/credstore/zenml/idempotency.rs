//! ZenML's request deduplication (`zen_server/request_management.py`), for the
//! emulation's authenticated POSTs (create service account, create API key):
//!
//! - the `Idempotency-Key` header must be a UUID; any other value makes the real
//!   server fail the request with a plain-text 500, on every route, before routing;
//! - a completed request's response is recorded under that UUID and replayed
//!   (status 200, the same body, a created key's secret included) to a later POST
//!   with the same key by the same principal to the same URL, whatever its body;
//! - the same key from another principal, or for another method or URL, is not an
//!   error: that request runs normally and nothing is recorded for it;
//! - failed requests are not recorded, so a retry after an error runs again;
//! - records last `request_cache_timeout` (300 s) after completion (the real server
//!   then deletes them in a cleanup pass every ~15 s, so a replay may still happen for
//!   a few seconds more there).
//!
//! As for Prefactor's idempotency keys, a recorded response is sealed under a key
//! derived from the idempotency key, which the store keeps only hashed.

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::credstore::db::Tx;
use crate::credstore::http::{ApiError, ZENML_PLAIN_TEXT};
use crate::credstore::secrets::{Sealer, sha256};

pub const HEADER: &str = "idempotency-key";
/// `DEFAULT_ZENML_SERVER_REQUEST_CACHE_TIMEOUT`.
pub const CACHE_SECONDS: i64 = 300;

/// Fails every ZenML request whose `Idempotency-Key` is not a UUID, as the real
/// server's middleware does.
pub async fn check_header(req: Request, next: Next) -> Response {
    if key(req.headers()).is_err() {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ZENML_PLAIN_TEXT,
            "Internal Server Error",
        )
        .into_response();
    }
    next.run(req).await
}

fn key(headers: &HeaderMap) -> Result<Option<Uuid>, ()> {
    match headers.get(HEADER) {
        None => Ok(None),
        Some(value) => {
            let text = value.to_str().map_err(|_| ())?;
            if text.is_empty() {
                return Ok(None);
            }
            Uuid::parse_str(text).map(Some).map_err(|_| ())
        }
    }
}

/// Runs `op` (inside the request's transaction), or replays its recorded response.
pub fn run(
    tx: &Tx<'_>,
    now_ms: i64,
    headers: &HeaderMap,
    principal: Uuid,
    url: &str,
    op: impl FnOnce() -> Result<Value, ApiError>,
) -> Result<Value, ApiError> {
    let Ok(Some(key)) = key(headers) else {
        return op();
    };
    let derive = |purpose: &str| sha256(format!("zenml-{purpose}\0{key}").as_bytes());
    let lookup = derive("idempotency-lookup");
    let sealer = Sealer::new(&derive("idempotency-seal"));
    let fingerprint = sha256(format!("{principal}\nPOST {url}").as_bytes());

    if let Some((stored, _status, sealed)) = tx.idempotent_response(&lookup)? {
        let record: Option<Value> = sealer
            .open(&sealed)
            .ok()
            .and_then(|plain| serde_json::from_slice(&plain).ok());
        let recorded_ms = record.as_ref().and_then(|r| r["at"].as_i64()).unwrap_or(i64::MIN);
        let fresh = now_ms.saturating_sub(recorded_ms) < CACHE_SECONDS * 1000;
        if fresh {
            if stored.as_slice() != fingerprint {
                // Another principal's or another URL's transaction: run, record nothing.
                return op();
            }
            if let Some(body) = record.map(|mut r| r["body"].take()) {
                return Ok(body);
            }
        }
    }
    let body = op()?;
    let sealed = sealer.seal(json!({"at": now_ms, "body": body}).to_string().as_bytes());
    tx.record_idempotent_response(&lookup, &fingerprint, 200, &sealed, now_ms)?;
    Ok(body)
}
