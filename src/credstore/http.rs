//! What the four APIs share on the wire: which API a path belongs to, errors
//! rendered in each vendor's own shape, a JSON body extractor whose failures are
//! vendor-shaped too, and the request log.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequest, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::AppState;
use super::db::DbError;

/// Upper bound for any request body; larger bodies get a vendor-shaped 413.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    Akamai,
    Prefactor,
    TrendMicro,
    Zenml,
}

impl Vendor {
    pub fn for_path(path: &str) -> Option<Self> {
        if path.starts_with("/identity-management/") {
            Some(Self::Akamai)
        } else if path.starts_with("/api/v1/api_token") || path == "/api/v1/ping" {
            Some(Self::Prefactor)
        } else if path.starts_with("/api/v1/") {
            Some(Self::Zenml)
        } else if path.starts_with("/api/") {
            Some(Self::TrendMicro)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Akamai => "akamai",
            Self::Prefactor => "prefactor",
            Self::TrendMicro => "trendmicro",
            Self::Zenml => "zenml",
        }
    }

    /// The vendor's error code for a status when no handler chose one.
    fn default_code(self, status: StatusCode) -> &'static str {
        match (self, status.as_u16()) {
            (Self::Prefactor, 401) => "not_authenticated",
            (Self::Prefactor, 403) => "not_permitted",
            (Self::Prefactor, 404) => "not_found",
            (Self::Prefactor, 405) => "not_implemented",
            (Self::Prefactor, 409) => "invalid_action",
            (Self::Prefactor, 422) => "invalid_value",
            (Self::Prefactor, 400..=499) => "bad_request",
            (Self::Prefactor, _) => "unexpected",
            (Self::Zenml, 401) => "CredentialsNotValid",
            (Self::Zenml, 403) => "IllegalOperationError",
            (Self::Zenml, 404) => "KeyError",
            (Self::Zenml, 405) => ZENML_DETAIL_TEXT,
            (Self::Zenml, 409) => "EntityExistsError",
            (Self::Zenml, 400..=499) => "ValueError",
            (Self::Zenml, _) => "RuntimeError",
            (Self::Akamai, 401) => "unauthorized",
            (Self::Akamai, 403) => "forbidden",
            (Self::Akamai, 404) => "not-found",
            (Self::Akamai, 405) => "method-not-allowed",
            (Self::Akamai, 409) => "conflict",
            (Self::Akamai, 413) => "payload-too-large",
            (Self::Akamai, 429) => "too-many-requests",
            (Self::Akamai, 400..=499) => "bad-request",
            _ => "internal-error",
        }
    }

    pub fn render(self, status: StatusCode, code: &str, message: &str, path: &str) -> Response {
        let (content_type, body) = match self {
            Self::Akamai => (
                "application/problem+json",
                json!({
                    "type": format!("/identity-management/error-types/{code}"),
                    "title": status.canonical_reason().unwrap_or("Error"),
                    "detail": message,
                    "instance": path,
                    "statusCode": status.as_u16(),
                }),
            ),
            Self::Prefactor => (
                "application/json",
                json!({"status": "error", "code": code, "message": message}),
            ),
            Self::TrendMicro => ("application/json", json!({"message": message})),
            // ZenML's own shapes, as the real server (zenml[server] 0.98.0) answers.
            Self::Zenml if code == ZENML_PLAIN_TEXT => {
                ("text/plain; charset=utf-8", Value::String(message.into()))
            }
            Self::Zenml if code == ZENML_DETAIL_TEXT => ("application/json", json!({"detail": message})),
            Self::Zenml if code == ZENML_VALIDATION || code == "body" => {
                ("application/json", json!(["ValueError", message]))
            }
            Self::Zenml => ("application/json", json!({"detail": [code, message]})),
        };
        let text = match body {
            Value::String(text) if content_type.starts_with("text/") => text,
            body => body.to_string(),
        };
        let mut response = (status, text).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }
}

/// ZenML error codes that pick a shape rather than name an exception: request
/// validation failures are a bare `["ValueError", "<pydantic text>"]`; FastAPI's own
/// errors (not authenticated, unknown route, wrong method, bad login form) are
/// `{"detail": "<text>"}`; an unhandled server error is plain text.
pub const ZENML_VALIDATION: &str = "zenml-validation";
pub const ZENML_DETAIL_TEXT: &str = "zenml-detail-text";
pub const ZENML_PLAIN_TEXT: &str = "zenml-plain-text";

/// An error a handler returns; rendered in the vendor's shape by [`shape_errors`].
/// `code` is the vendor's code (Prefactor `code`, ZenML exception name, Akamai
/// error type, or one of the `ZENML_*` shape codes). Messages never carry secrets.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// An error whose code is the vendor's usual one for `status`.
    pub fn status(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, "", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        tracing::error!(error = %err, "credstore database failure");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected",
            "internal storage error",
        )
    }
}

/// A JSON body; unreadable, oversized or ill-typed bodies become an [`ApiError`]
/// with `invalid_status` (vendors answer these with 400 or 422).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let vendor = Vendor::for_path(req.uri().path());
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| ApiError::status(rejection.status(), rejection.body_text()))?;
        let (status, code) = match vendor {
            Some(Vendor::Zenml) => (StatusCode::UNPROCESSABLE_ENTITY, "body"),
            Some(Vendor::Prefactor) => (StatusCode::BAD_REQUEST, "bad_request"),
            _ => (StatusCode::BAD_REQUEST, "invalid-request-body"),
        };
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            &b"{}"[..]
        } else {
            &bytes[..]
        };
        serde_json::from_slice(body)
            .map(JsonBody)
            .map_err(|err| ApiError::new(status, code, format!("request body is not valid: {err}")))
    }
}

/// Renders every 4xx/5xx of an API route in its vendor's shape, including the
/// framework's own (unknown route, wrong method, bad path or query, body too large).
pub async fn shape_errors(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let Some(vendor) = Vendor::for_path(&path) else {
        return response;
    };
    if let Some(err) = response.extensions().get::<ApiError>().cloned() {
        let code = if err.code.is_empty() {
            vendor.default_code(err.status)
        } else {
            err.code
        };
        let mut shaped = vendor.render(err.status, code, &err.message, &path);
        carry_retry_after(&response, &mut shaped);
        return shaped;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if is_json {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let message = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text.into_owned()
    };
    vendor.render(status, vendor.default_code(status), &message, &path)
}

fn carry_retry_after(from: &Response, to: &mut Response) {
    if let Some(value) = from.headers().get(header::RETRY_AFTER) {
        to.headers_mut().insert(header::RETRY_AFTER, value.clone());
    }
}

/// Debug-level request log and per-operation counters. Only the route template is
/// recorded (never the concrete path, query, headers or body), so no secret
/// material can reach the log.
pub async fn log_and_count(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let api = Vendor::for_path(&path).map_or("admin", Vendor::name);
    let operation = format!("{method} {}", route.as_deref().unwrap_or("<unmatched>"));
    state.counters.increment(api, &operation);
    let response = next.run(req).await;
    tracing::debug!(
        api,
        operation = %operation,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "credstore request"
    );
    response
}

pub fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, axum::Json(body)).into_response()
}

pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    match Vendor::for_path(uri.path()) {
        Some(Vendor::Zenml) => ApiError::new(StatusCode::NOT_FOUND, ZENML_DETAIL_TEXT, "Not Found"),
        _ => ApiError::status(StatusCode::NOT_FOUND, "no such resource"),
    }
}
