//! EdgeGrid verification of incoming requests (signing steps shared with the
//! client in `crate::upstream::edgegrid`), plus clock-skew and replay checks and
//! the `accountSwitchKey` parameter.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use jiff::{SignedDuration, Timestamp};

use super::model::{Account, Client, Credential, CredentialStatus};
use super::{ACCOUNT, API, CLIENT, CREDENTIAL};
use crate::credstore::Shared;
use crate::credstore::db::Tx;
use crate::credstore::http::ApiError;
use crate::credstore::secrets::secret_hash;
use crate::upstream::edgegrid::{AuthorizationFields, RequestParts, SigningPolicy, parse_timestamp};

/// How far a request's timestamp may be from the wall clock (inferred: Akamai
/// documents the need for NTP, not the window). Checked against real time, not
/// the store's adjustable clock, so tests can move the latter without breaking signing.
const MAX_SKEW: SignedDuration = SignedDuration::from_secs(300);

/// The parts of a request EdgeGrid signs, kept whole for verification.
pub struct SignedRequest {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for SignedRequest {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let body = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|rejection| ApiError::status(rejection.status(), rejection.body_text()))?;
        Ok(Self {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
        })
    }
}

/// The authenticated API client and the account the request acts in.
pub struct Caller {
    pub client: Client,
    pub account: Account,
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

pub fn authenticate(tx: &Tx<'_>, shared: &Shared, request: &SignedRequest) -> Result<Caller, ApiError> {
    let header_value = request
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("The signature does not match: no EdgeGrid Authorization header"))?;
    let fields = AuthorizationFields::parse(header_value).map_err(|e| unauthorized(&e.to_string()))?;
    let signed_at = parse_timestamp(&fields.timestamp).map_err(|e| unauthorized(&e.to_string()))?;
    if Timestamp::now().duration_since(signed_at).abs() > MAX_SKEW {
        return Err(unauthorized(
            "The request timestamp is outside the allowed clock skew",
        ));
    }

    let now_ms = shared.clock.now_ms();
    let invalid = || unauthorized("Invalid client token, access token or signature");
    let credential_id = tx
        .credential_owner(&secret_hash(API, &fields.client_token), API, now_ms)?
        .ok_or_else(invalid)?;
    let credential: Credential = tx.get(API, CREDENTIAL, &credential_id)?.ok_or_else(invalid)?;
    let client: Client = tx.get(API, CLIENT, &credential.client_id)?.ok_or_else(invalid)?;
    if credential.status != CredentialStatus::Active || credential.expires_ms <= now_ms {
        return Err(unauthorized("The credential is inactive or expired"));
    }
    if client.access_token != fields.access_token {
        return Err(invalid());
    }
    if client.is_locked {
        return Err(unauthorized("The API client is locked"));
    }
    let secret = shared.sealer.open(&credential.sealed_secret).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-error",
            "a stored credential cannot be unsealed",
        )
    })?;
    let secret = String::from_utf8_lossy(&secret);
    let host = request
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let path_and_query = request.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let policy = SigningPolicy::default();
    // Served over plain HTTP, but clients configured for Akamai sign `https`: accept either.
    let verified = ["http", "https"].into_iter().any(|scheme| {
        let parts = RequestParts {
            method: request.method.as_str(),
            scheme,
            host,
            path_and_query,
            headers: &[],
            body: &request.body,
        };
        fields.verify(&parts, &policy, &secret).is_ok()
    });
    if !verified {
        return Err(unauthorized("The signature does not match"));
    }
    let forget_before_ms = Timestamp::now().as_millisecond() - 2 * MAX_SKEW.as_millis() as i64;
    if !tx.remember_nonce(&fields.nonce, Timestamp::now().as_millisecond(), forget_before_ms)? {
        return Err(unauthorized("The nonce was already used (replayed request)"));
    }

    let account = account_for(tx, &client, &request.uri)?;
    Ok(Caller { client, account })
}

fn account_for(tx: &Tx<'_>, client: &Client, uri: &Uri) -> Result<Account, ApiError> {
    let switch_key = form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "accountSwitchKey")
        .map(|(_, value)| value.into_owned());
    let home: Account = tx
        .get(API, ACCOUNT, &client.account_id)?
        .ok_or_else(|| unauthorized("The API client's account no longer exists"))?;
    let Some(switch_key) = switch_key else {
        return Ok(home);
    };
    if switch_key == home.switch_key {
        return Ok(home);
    }
    let forbidden = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "The accountSwitchKey is not valid for this API client",
        )
    };
    if !client.allow_account_switch {
        return Err(forbidden());
    }
    let accounts: Vec<Account> = tx.list(API, ACCOUNT, None)?;
    accounts
        .into_iter()
        .find(|a| a.switch_key == switch_key)
        .ok_or_else(forbidden)
}
