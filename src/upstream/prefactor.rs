//! Prefactor API tokens (`/api/v1/api_token`), for ApiToken resources.
//!
//! Every mutating call carries an `idempotency_key`, so each is safe to retry: a repeat of
//! the same request returns the original answer instead of acting twice.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::credentials::SecretString;
use super::error::{Api, ErrorClass, Redactor, UpstreamError};
use super::http::{Auth, Body, Endpoint, ErrorDetail, Request, Retry, Transport, found, path_segment};

/// Page size used when listing; the API's maximum is not documented, 100 is conservative.
const PAGE_SIZE: u32 = 100;
/// Bound on pages followed, so a server that never ends its pagination cannot loop us.
const MAX_PAGES: u32 = 1000;

/// What a token can reach. Prefactor's own SDK knows `agent_deployment` too (and types the
/// field as a plain string), so a scope this client does not manage is read as `Other`
/// rather than failing every list of an account that holds one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    Account,
    Environment,
    AgentDeployment,
    #[serde(other, skip_serializing)]
    Other,
}

/// Upstream state of a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenStatus {
    Active,
    Suspended,
    /// Terminal: the token never authenticates again and may be deleted.
    Revoked,
}

/// Which state transitions the upstream currently allows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct AvailableActions {
    pub activate: bool,
    pub delete: bool,
    pub revoke: bool,
    pub suspend: bool,
}

/// A token as the API describes it (`details`, or a list `summaries` entry). Never the secret.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ApiTokenDetails {
    pub id: String,
    pub account_id: String,
    #[serde(default)]
    pub environment_id: Option<String>,
    #[serde(default)]
    pub created_by_admin_user_id: Option<String>,
    pub token_scope: TokenScope,
    pub status: TokenStatus,
    #[serde(default)]
    pub expires_at: Option<jiff::Timestamp>,
    #[serde(default)]
    pub inserted_at: Option<jiff::Timestamp>,
    #[serde(default)]
    pub updated_at: Option<jiff::Timestamp>,
    #[serde(default)]
    pub last_used_at: Option<jiff::Timestamp>,
    #[serde(default)]
    pub available_actions: AvailableActions,
}

/// The settings of a token to create (`details` of the create body).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NewApiToken {
    pub token_scope: TokenScope,
    /// Unset: the store's account, else the admin token's own account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Required for `environment` scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<jiff::Timestamp>,
}

/// A freshly created token: the only time the secret is shown.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub details: ApiTokenDetails,
    pub token: SecretString,
}

/// A state change the API offers as an action endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenAction {
    Suspend,
    Activate,
    Revoke,
}

impl TokenAction {
    fn endpoint(self) -> &'static str {
        match self {
            TokenAction::Suspend => "suspend",
            TokenAction::Activate => "activate",
            TokenAction::Revoke => "revoke",
        }
    }

    fn operation(self) -> &'static str {
        match self {
            TokenAction::Suspend => "suspend_token",
            TokenAction::Activate => "activate_token",
            TokenAction::Revoke => "revoke_token",
        }
    }
}

/// Client of one Prefactor store.
#[derive(Debug)]
pub struct PrefactorClient {
    transport: Transport,
    token: SecretString,
    account_id: Option<String>,
}

#[derive(Serialize)]
struct CreateBody<'a> {
    details: NewApiToken,
    idempotency_key: &'a str,
}

#[derive(Serialize)]
struct ActionBody<'a> {
    idempotency_key: &'a str,
}

#[derive(Deserialize)]
struct DetailsEnvelope {
    details: ApiTokenDetails,
}

#[derive(Deserialize)]
struct CreatedEnvelope {
    details: ApiTokenDetails,
    token: String,
}

#[derive(Deserialize)]
struct ListEnvelope {
    summaries: Vec<ApiTokenDetails>,
    #[serde(default)]
    pagination: Option<Pagination>,
}

#[derive(Deserialize)]
struct Pagination {
    #[serde(default)]
    next_page_offset: Option<u64>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl PrefactorClient {
    /// `endpoint.base_url` is the store's `url` (without `/api/v1`); `account_id` the store's.
    pub fn new(
        endpoint: Endpoint,
        token: SecretString,
        account_id: Option<String>,
    ) -> Result<Self, UpstreamError> {
        let endpoint = Endpoint {
            base_url: format!("{}/api/v1", endpoint.base_url.trim_end_matches('/')),
            ..endpoint
        };
        let redactor = Redactor::new([token.expose().to_owned()]);
        let transport = Transport::new(
            Api::Prefactor,
            endpoint,
            Default::default(),
            parse_error,
            redactor,
        )?;
        Ok(Self {
            transport,
            token,
            account_id,
        })
    }

    /// HTTP requests sent so far, retries included.
    pub fn requests_sent(&self) -> u64 {
        self.transport.requests_sent()
    }

    /// Checks the admin token (`GET /ping`).
    pub async fn probe(&self) -> Result<(), UpstreamError> {
        self.send(Request {
            operation: "ping",
            method: Method::GET,
            path: "/ping".into(),
            body: None,
            retry: Retry::Safe,
        })
        .await
        .map(drop)
    }

    /// Creates a token. `idempotency_key` (1–64 chars) must be recorded durably before the
    /// call: repeating the call with it returns the same token instead of minting a twin.
    pub async fn create(
        &self,
        token: &NewApiToken,
        idempotency_key: &str,
    ) -> Result<IssuedToken, UpstreamError> {
        let details = NewApiToken {
            account_id: token.account_id.clone().or_else(|| self.account_id.clone()),
            ..token.clone()
        };
        let response = self
            .send(Request {
                operation: "create_token",
                method: Method::POST,
                path: "/api_token".into(),
                body: Some(Body::json(&CreateBody {
                    details,
                    idempotency_key,
                })),
                retry: Retry::Safe,
            })
            .await?;
        let created: CreatedEnvelope = response.json(Api::Prefactor, "create_token")?;
        Ok(IssuedToken {
            details: created.details,
            token: created.token.into(),
        })
    }

    /// The token with `id`, or `None` when the upstream has no such token.
    pub async fn get(&self, id: &str) -> Result<Option<ApiTokenDetails>, UpstreamError> {
        let request = Request {
            operation: "get_token",
            method: Method::GET,
            path: format!("/api_token/{}", path_segment(Api::Prefactor, id)?),
            body: None,
            retry: Retry::Safe,
        };
        found(self.send(request).await)?
            .map(|response| response.json::<DetailsEnvelope>(Api::Prefactor, "get_token"))
            .transpose()
            .map(|envelope| envelope.map(|e| e.details))
    }

    /// Suspends, activates or revokes. The key makes a retried call harmless; pass a fresh
    /// one per intended transition.
    pub async fn change_state(
        &self,
        id: &str,
        action: TokenAction,
        idempotency_key: &str,
    ) -> Result<ApiTokenDetails, UpstreamError> {
        let response = self
            .send(Request {
                operation: action.operation(),
                method: Method::POST,
                path: format!(
                    "/api_token/{}/{}",
                    path_segment(Api::Prefactor, id)?,
                    action.endpoint()
                ),
                body: Some(Body::json(&ActionBody { idempotency_key })),
                retry: Retry::Safe,
            })
            .await?;
        Ok(response
            .json::<DetailsEnvelope>(Api::Prefactor, action.operation())?
            .details)
    }

    /// Deletes a revoked token. `Ok` also when it is already gone: the goal is reached.
    pub async fn delete(&self, id: &str) -> Result<(), UpstreamError> {
        let request = Request {
            operation: "delete_token",
            method: Method::DELETE,
            path: format!("/api_token/{}", path_segment(Api::Prefactor, id)?),
            body: None,
            retry: Retry::Safe,
        };
        found(self.send(request).await).map(drop)
    }

    /// Every token of the store's account (or of the admin token's account), all pages.
    pub async fn list(&self) -> Result<Vec<ApiTokenDetails>, UpstreamError> {
        let mut tokens = Vec::new();
        let mut offset = 0;
        for _ in 0..MAX_PAGES {
            let mut query = vec![
                ("pagination[offset]", offset.to_string()),
                ("pagination[page_size]", PAGE_SIZE.to_string()),
            ];
            if let Some(account_id) = &self.account_id {
                query.push(("account_id", account_id.clone()));
            }
            let response = self
                .send(Request {
                    operation: "list_tokens",
                    method: Method::GET,
                    path: format!(
                        "/api_token?{}",
                        serde_urlencoded::to_string(&query).expect("query encodes")
                    ),
                    body: None,
                    retry: Retry::Safe,
                })
                .await?;
            let page: ListEnvelope = response.json(Api::Prefactor, "list_tokens")?;
            let next = page.pagination.and_then(|pagination| pagination.next_page_offset);
            let empty = page.summaries.is_empty();
            tokens.extend(page.summaries);
            match next {
                Some(next) if !empty && next > offset => offset = next,
                _ => return Ok(tokens),
            }
        }
        Err(UpstreamError::new(
            ErrorClass::UpstreamBug,
            Api::Prefactor,
            "list_tokens",
            format!("pagination did not end after {MAX_PAGES} pages"),
        ))
    }

    async fn send(&self, request: Request) -> Result<super::http::Response, UpstreamError> {
        self.transport
            .send(&request, Auth::Bearer(self.token.expose()))
            .await
    }
}

/// `{status:"error", code, message, errors?}`; the code decides the class where it can.
fn parse_error(status: u16, body: &[u8]) -> ErrorDetail {
    let envelope: Option<ErrorEnvelope> = serde_json::from_slice(body).ok();
    let code = envelope.as_ref().and_then(|envelope| envelope.code.clone());
    let class = match code.as_deref() {
        Some("bad_authtoken" | "not_authenticated") => ErrorClass::Authentication,
        Some("not_permitted") => ErrorClass::Permission,
        Some("not_found") => ErrorClass::NotFound,
        Some("invalid_action" | "idempotency_key_already_used") => ErrorClass::Conflict,
        Some("bad_request" | "invalid_value" | "required_value" | "unexpected_ref_type") => {
            ErrorClass::InvalidRequest
        }
        Some("not_implemented") => ErrorClass::UpstreamBug,
        _ => ErrorClass::from_status(status),
    };
    let message = envelope
        .and_then(|envelope| envelope.message)
        .unwrap_or_else(|| default_message(status));
    ErrorDetail { class, code, message }
}

pub(crate) fn default_message(status: u16) -> String {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("unexpected status")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_decide_the_class() {
        let detail = parse_error(
            409,
            br#"{"status":"error","code":"idempotency_key_already_used","message":"used"}"#,
        );
        assert_eq!(detail.class, ErrorClass::Conflict);
        assert_eq!(detail.code.as_deref(), Some("idempotency_key_already_used"));
        assert_eq!(
            parse_error(401, br#"{"code":"bad_authtoken","message":"x"}"#).class,
            ErrorClass::Authentication
        );
        assert_eq!(
            parse_error(422, br#"{"code":"required_value","message":"x"}"#).class,
            ErrorClass::InvalidRequest
        );
        let html = parse_error(502, b"<html>bad gateway</html>");
        assert_eq!(
            (html.class, html.message.as_str()),
            (ErrorClass::Transient, "bad gateway")
        );
    }

    #[test]
    fn details_tolerate_unknown_fields_and_nulls() {
        let details: ApiTokenDetails = serde_json::from_str(
            r#"{"id":"01abc","type":"api_token","account_id":"a","environment_id":null,
                "token_scope":"account","status":"suspended","expires_at":null,
                "inserted_at":"2025-01-02T03:04:05Z","future_field":{"x":1},
                "available_actions":{"activate":true,"delete":false,"revoke":true,"suspend":false}}"#,
        )
        .unwrap();
        assert_eq!(details.status, TokenStatus::Suspended);
        assert!(details.available_actions.activate);
    }

    #[test]
    fn issued_token_debug_hides_the_secret() {
        let issued = IssuedToken {
            details: serde_json::from_str(
                r#"{"id":"i","account_id":"a","token_scope":"account","status":"active"}"#,
            )
            .unwrap(),
            token: "pf_secret_value".to_owned().into(),
        };
        assert!(!format!("{issued:?}").contains("pf_secret_value"));
    }
}
