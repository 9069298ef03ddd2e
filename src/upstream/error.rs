//! Upstream failures, classified by who has to act on them.

use std::fmt;
use std::time::Duration;

/// Which upstream API a call went to; also a low-cardinality metrics label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Api {
    Akamai,
    Prefactor,
    TrendMicro,
    Zenml,
}

impl Api {
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Akamai => "akamai",
            Api::Prefactor => "prefactor",
            Api::TrendMicro => "trendMicro",
            Api::Zenml => "zenml",
        }
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of failure, and so what a controller should do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The store's credential is missing, malformed or refused: fix the store credential.
    Authentication,
    /// The store's credential is valid but may not do this: fix the credential's grants.
    Permission,
    /// The addressed object does not exist upstream.
    NotFound,
    /// The request clashes with upstream state (a name taken, a transition not allowed,
    /// an idempotency key reused for another request).
    Conflict,
    /// The upstream refused what we asked for: fix the resource's spec (the YAML).
    InvalidRequest,
    /// Unreachable, timed out, rate limited or a 5xx: retry later.
    Transient,
    /// The upstream answered something that breaks its contract: retry later, and report.
    UpstreamBug,
}

impl ErrorClass {
    /// Metric label and condition-reason fragment.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Authentication => "authentication",
            ErrorClass::Permission => "permission",
            ErrorClass::NotFound => "not_found",
            ErrorClass::Conflict => "conflict",
            ErrorClass::InvalidRequest => "invalid_request",
            ErrorClass::Transient => "transient",
            ErrorClass::UpstreamBug => "upstream_bug",
        }
    }

    /// Whether trying the same thing again later can succeed without anyone changing anything.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorClass::Transient | ErrorClass::UpstreamBug)
    }

    /// Whether the store's admin credential (not the key resource) needs fixing.
    pub fn is_store_credential_problem(self) -> bool {
        matches!(self, ErrorClass::Authentication | ErrorClass::Permission)
    }

    /// The class of an HTTP error status, for APIs whose error bodies say no more.
    pub fn from_status(status: u16) -> ErrorClass {
        match status {
            401 => ErrorClass::Authentication,
            403 => ErrorClass::Permission,
            404 | 410 => ErrorClass::NotFound,
            409 | 412 => ErrorClass::Conflict,
            408 | 429 => ErrorClass::Transient,
            400..=499 => ErrorClass::InvalidRequest,
            502..=504 => ErrorClass::Transient,
            _ => ErrorClass::UpstreamBug,
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed upstream operation. The message is meant for a status condition: it says what
/// happened in words and never carries secret material (credentials are redacted from
/// upstream-provided text before it is stored here).
#[derive(Clone, Debug, thiserror::Error)]
#[error("{}", self.describe())]
pub struct UpstreamError {
    class: ErrorClass,
    api: Api,
    operation: &'static str,
    status: Option<u16>,
    code: Option<String>,
    message: String,
    attempts: u32,
    retry_after: Option<Duration>,
}

impl UpstreamError {
    pub(crate) fn new(
        class: ErrorClass,
        api: Api,
        operation: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            class,
            api,
            operation,
            status: None,
            code: None,
            message: message.into(),
            attempts: 1,
            retry_after: None,
        }
    }

    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub(crate) fn with_code(mut self, code: Option<String>) -> Self {
        self.code = code;
        self
    }

    pub(crate) fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    pub(crate) fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    pub fn class(&self) -> ErrorClass {
        self.class
    }

    pub fn api(&self) -> Api {
        self.api
    }

    /// The client operation that failed, e.g. `create_token` (a low-cardinality label).
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// HTTP status, when the upstream answered.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The upstream's machine-readable error code or exception name, when it sent one.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// How many HTTP attempts were made before giving up.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// How long the upstream asked us to wait (429 or 503 with `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    fn describe(&self) -> String {
        let mut text = format!("{} {}: ", self.api, self.operation);
        if let Some(status) = self.status {
            text.push_str(&format!("HTTP {status}"));
            if let Some(code) = &self.code {
                text.push_str(&format!(" {code}"));
            }
            text.push_str(": ");
        }
        text.push_str(&self.message);
        if self.attempts > 1 {
            text.push_str(&format!(" (gave up after {} attempts)", self.attempts));
        }
        if let Some(wait) = self.retry_after {
            text.push_str(&format!(" (upstream asked to retry after {}s)", wait.as_secs()));
        }
        text
    }
}

/// Longest upstream-provided text kept in an error, so a verbose body cannot flood a status.
const MAX_MESSAGE_CHARS: usize = 300;

/// Removes known secret values from upstream-provided text and bounds its length.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    pub(crate) fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        Self {
            secrets: secrets.into_iter().filter(|secret| !secret.is_empty()).collect(),
        }
    }

    pub(crate) fn clean(&self, text: &str) -> String {
        let mut cleaned = text.to_owned();
        for secret in &self.secrets {
            cleaned = cleaned.replace(secret.as_str(), "<redacted>");
        }
        let cleaned = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
        match cleaned.char_indices().nth(MAX_MESSAGE_CHARS) {
            Some((cut, _)) => format!("{}…", &cleaned[..cut]),
            None => cleaned,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_party_that_must_act() {
        assert_eq!(ErrorClass::from_status(401), ErrorClass::Authentication);
        assert_eq!(ErrorClass::from_status(403), ErrorClass::Permission);
        assert_eq!(ErrorClass::from_status(404), ErrorClass::NotFound);
        assert_eq!(ErrorClass::from_status(409), ErrorClass::Conflict);
        assert_eq!(ErrorClass::from_status(422), ErrorClass::InvalidRequest);
        assert_eq!(ErrorClass::from_status(429), ErrorClass::Transient);
        assert_eq!(ErrorClass::from_status(503), ErrorClass::Transient);
        assert_eq!(ErrorClass::from_status(500), ErrorClass::UpstreamBug);
        assert!(ErrorClass::Transient.is_retryable());
        assert!(!ErrorClass::InvalidRequest.is_retryable());
        assert!(ErrorClass::Permission.is_store_credential_problem());
    }

    #[test]
    fn message_names_operation_status_code_and_attempts() {
        let error = UpstreamError::new(
            ErrorClass::Transient,
            Api::Prefactor,
            "create_token",
            "service unavailable",
        )
        .with_status(503)
        .with_code(Some("unexpected".into()))
        .with_attempts(4);
        assert_eq!(
            error.to_string(),
            "prefactor create_token: HTTP 503 unexpected: service unavailable (gave up after 4 attempts)"
        );
    }

    #[test]
    fn redactor_removes_secrets_and_bounds_length() {
        let redactor = Redactor::new(["s3cr3t".to_owned(), String::new()]);
        assert_eq!(
            redactor.clean("token s3cr3t\nrefused"),
            "token <redacted> refused"
        );
        let long = "x".repeat(1000);
        assert_eq!(redactor.clean(&long).chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(!format!("{redactor:?}").contains("s3cr3t"));
    }
}
