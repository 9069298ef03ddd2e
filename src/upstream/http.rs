//! One HTTP round trip to an upstream, made resilient: a per-store rate limit, a timeout on
//! every attempt, retries with exponential backoff and jitter where a retry is safe, and
//! `Retry-After` honoured on 429 and 503.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Method, Url};
use tracing::{debug, warn};

use super::edgegrid::{RequestParts, Signer};
use super::error::{Api, ErrorClass, Redactor, UpstreamError};
use super::ratelimit::StoreRateLimiter;
use crate::api::StoreKind;
use crate::metrics::UpstreamMetrics;

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Timeouts and retry bounds of a client.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Bound on one attempt, from sending the request to the end of the response body.
    pub request_timeout: Duration,
    /// Bound on establishing a connection (TCP + TLS).
    pub connect_timeout: Duration,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// Backoff before the second attempt; it doubles per attempt up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// The longest `Retry-After` waited out in place; a longer one is returned to the caller
    /// (as a transient error carrying the wait) so a controller can requeue instead of block.
    pub max_retry_after: Duration,
    /// Where every HTTP attempt is counted and timed (`None`: not recorded).
    pub metrics: Option<UpstreamMetrics>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(5),
            max_attempts: 4,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
            metrics: None,
        }
    }
}

/// Whether an operation may be sent again after an attempt that may have reached the upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Idempotent, or made so by an idempotency key or a deterministic name: retried on
    /// connection errors, timeouts, 5xx and 429.
    Safe,
    /// A repeat could act twice: retried only when the upstream provably did not act
    /// (the connection was never established, or it answered 429).
    Unsafe,
}

/// How a request proves who sends it.
#[derive(Clone, Copy)]
pub(crate) enum Auth<'a> {
    None,
    Bearer(&'a str),
    Header(&'static str, &'a str),
    /// Signed per attempt, so every attempt has a fresh timestamp and nonce.
    EdgeGrid(&'a Signer),
}

pub(crate) struct Request {
    pub operation: &'static str,
    pub method: Method,
    /// Path and query below the client's base URL, starting with `/`.
    pub path: String,
    pub body: Option<Body>,
    pub retry: Retry,
}

pub(crate) struct Body {
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
    /// Sent as the `Idempotency-Key` header, for APIs that replay a repeated request
    /// (ZenML) rather than reading a key from the body (Prefactor).
    pub idempotency_key: Option<String>,
}

impl Body {
    pub(crate) fn json(value: &impl serde::Serialize) -> Self {
        Self {
            content_type: "application/json",
            bytes: serde_json::to_vec(value).expect("request types serialize to JSON"),
            idempotency_key: None,
        }
    }

    pub(crate) fn form(value: &impl serde::Serialize) -> Self {
        Self {
            content_type: "application/x-www-form-urlencoded",
            bytes: serde_urlencoded::to_string(value)
                .expect("form fields serialize")
                .into_bytes(),
            idempotency_key: None,
        }
    }

    pub(crate) fn with_idempotency_key(self, key: impl Into<String>) -> Self {
        Self {
            idempotency_key: Some(key.into()),
            ..self
        }
    }
}

pub(crate) struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    retry_after: Option<Duration>,
}

/// Bodies can hold freshly issued secrets, so `Debug` shows only their size.
impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// The answer to a request for something that may not exist: `Ok(None)` when the
/// upstream says it does not (404, 410), so a lookup or a delete of what is gone is no error.
pub(crate) fn found(outcome: Result<Response, UpstreamError>) -> Result<Option<Response>, UpstreamError> {
    match outcome {
        Ok(response) => Ok(Some(response)),
        Err(error) if error.class() == ErrorClass::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

impl Response {
    /// Decodes a JSON body; a body that breaks the documented shape is an upstream bug.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(
        &self,
        api: Api,
        operation: &'static str,
    ) -> Result<T, UpstreamError> {
        serde_json::from_slice(&self.body).map_err(|error| {
            UpstreamError::new(
                ErrorClass::UpstreamBug,
                api,
                operation,
                format!("response does not match the documented shape: {error}"),
            )
            .with_status(self.status)
        })
    }
}

/// What an API's error body says: its code, message and, where the code decides it, class.
pub(crate) struct ErrorDetail {
    pub class: ErrorClass,
    pub code: Option<String>,
    pub message: String,
}

/// Parses an API's error body; one per API.
pub(crate) type ErrorParser = fn(status: u16, body: &[u8]) -> ErrorDetail;

/// The HTTP side of one store's client.
#[derive(Debug)]
pub(crate) struct Transport {
    api: Api,
    store: String,
    /// The store's kind, a metrics label.
    store_kind: &'static str,
    base: String,
    http: reqwest::Client,
    limiter: Arc<StoreRateLimiter>,
    options: ClientOptions,
    redactor: Redactor,
    default_headers: HeaderMap,
    parse_error: ErrorParser,
    requests_sent: AtomicU64,
}

/// Everything a client needs to talk to one store.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Identity of the store, for logs and the rate-limit registry (e.g. `CredentialStore ns/name`).
    pub store: String,
    /// Which kind of store it is, for metrics.
    pub store_kind: StoreKind,
    /// Base URL the API paths are appended to.
    pub base_url: String,
    /// PEM CA bundle trusted instead of the public roots, for private upstreams.
    pub ca_bundle: Option<String>,
    pub limiter: Arc<StoreRateLimiter>,
    pub options: ClientOptions,
}

impl Transport {
    pub(crate) fn new(
        api: Api,
        endpoint: Endpoint,
        default_headers: HeaderMap,
        parse_error: ErrorParser,
        redactor: Redactor,
    ) -> Result<Self, UpstreamError> {
        let invalid =
            |message: String| UpstreamError::new(ErrorClass::InvalidRequest, api, "connect", message);
        let base = endpoint.base_url.trim_end_matches('/').to_owned();
        let parsed = Url::parse(&base)
            .map_err(|error| invalid(format!("store URL {base:?} is not a URL: {error}")))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(invalid(format!("store URL {base:?} must use https")));
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .https_only(false)
            .connect_timeout(endpoint.options.connect_timeout)
            .timeout(endpoint.options.request_timeout)
            .user_agent(concat!("apikey-operator/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &endpoint.ca_bundle {
            let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|error| invalid(format!("caBundle is not a PEM bundle: {error}")))?;
            if certificates.is_empty() {
                return Err(invalid("caBundle holds no certificate".to_owned()));
            }
            builder = builder.tls_built_in_root_certs(false);
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder
            .build()
            .map_err(|error| invalid(format!("cannot build an HTTP client: {error}")))?;
        Ok(Self {
            api,
            store_kind: endpoint.store_kind.as_str(),
            store: endpoint.store,
            base,
            http,
            limiter: endpoint.limiter,
            options: endpoint.options,
            redactor,
            default_headers,
            parse_error,
            requests_sent: AtomicU64::new(0),
        })
    }

    /// HTTP requests sent so far, retries included.
    pub(crate) fn requests_sent(&self) -> u64 {
        self.requests_sent.load(Ordering::Relaxed)
    }

    /// Sends `request`, retrying as its [`Retry`] allows. Any non-2xx final answer is an error.
    pub(crate) async fn send(&self, request: &Request, auth: Auth<'_>) -> Result<Response, UpstreamError> {
        let url = Url::parse(&format!("{}{}", self.base, request.path)).map_err(|error| {
            UpstreamError::new(
                ErrorClass::InvalidRequest,
                self.api,
                request.operation,
                format!("bad request URL: {error}"),
            )
        })?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.limiter.acquire().await;
            self.requests_sent.fetch_add(1, Ordering::Relaxed);
            let started = std::time::Instant::now();
            let answer = self.attempt(request, &url, auth).await;
            if let Some(metrics) = &self.options.metrics {
                let status = answer.as_ref().ok().map(|response| response.status);
                metrics.request(
                    self.store_kind,
                    self.api.as_str(),
                    request.operation,
                    status,
                    started.elapsed(),
                );
            }
            let (error, wait) = match answer {
                Ok(response) if (200..300).contains(&response.status) => {
                    debug!(store = %self.store, api = %self.api, op = request.operation, attempt, status = response.status, "upstream call succeeded");
                    return Ok(response);
                }
                Ok(response) => self.judge_response(request, response, attempt),
                Err(error) => self.judge_transport_error(request, error, attempt),
            };
            let Some(wait) = wait else {
                return Err(error.with_attempts(attempt));
            };
            if attempt >= self.options.max_attempts {
                warn!(store = %self.store, api = %self.api, op = request.operation, attempt, class = %error.class(), "upstream call failed, no attempts left");
                return Err(error.with_attempts(attempt));
            }
            debug!(store = %self.store, api = %self.api, op = request.operation, attempt, class = %error.class(), wait_ms = wait.as_millis() as u64, "upstream call failed, retrying");
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(
        &self,
        request: &Request,
        url: &Url,
        auth: Auth<'_>,
    ) -> Result<Response, reqwest::Error> {
        let body = request.body.as_ref();
        let mut headers = self.default_headers.clone();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(body) = body {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(body.content_type));
            if let Some(key) = body
                .idempotency_key
                .as_deref()
                .and_then(|k| HeaderValue::from_str(k).ok())
            {
                headers.insert(IDEMPOTENCY_KEY, key);
            }
        }
        let authorization = match auth {
            Auth::None => None,
            Auth::Bearer(token) => Some((AUTHORIZATION, format!("Bearer {token}"))),
            Auth::Header(name, value) => Some((HeaderName::from_static(name), value.to_owned())),
            Auth::EdgeGrid(signer) => {
                let (host, path_and_query) = signed_target(url);
                let parts = RequestParts {
                    method: request.method.as_str(),
                    scheme: url.scheme(),
                    host: &host,
                    path_and_query: &path_and_query,
                    headers: &[],
                    body: body.map_or(&[], |body| &body.bytes),
                };
                Some((AUTHORIZATION, signer.sign(&parts)))
            }
        };
        if let Some((name, value)) = authorization {
            let mut value =
                HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let mut builder = self
            .http
            .request(request.method.clone(), url.clone())
            .headers(headers);
        if let Some(body) = body {
            builder = builder.body(body.bytes.clone());
        }
        let response = builder.send().await?;
        let status = response.status().as_u16();
        let retry_after = header_text(response.headers(), RETRY_AFTER)
            .as_deref()
            .and_then(parse_retry_after);
        let body = response.bytes().await?.to_vec();
        Ok(Response {
            status,
            body,
            retry_after,
        })
    }

    fn judge_response(
        &self,
        request: &Request,
        response: Response,
        attempt: u32,
    ) -> (UpstreamError, Option<Duration>) {
        let retry_after = response.retry_after;
        let detail = (self.parse_error)(response.status, &response.body);
        // Throttling and server errors are transient whatever code the body carries
        // (a store may label its 429 `bad_request`): only the status is trustworthy there.
        let class = match response.status {
            429 | 500..=599 => ErrorClass::from_status(response.status),
            _ => detail.class,
        };
        let error = UpstreamError::new(
            class,
            self.api,
            request.operation,
            self.redactor.clean(&detail.message),
        )
        .with_status(response.status)
        .with_code(detail.code)
        .with_retry_after(retry_after);
        let wait = match response.status {
            429 => Some(retry_after.unwrap_or_else(|| self.backoff(attempt))),
            503 if retry_after.is_some() => retry_after,
            500..=599 if request.retry == Retry::Safe => Some(self.backoff(attempt)),
            _ => None,
        };
        match wait {
            Some(wait) if wait > self.options.max_retry_after => (error, None),
            wait => (error, wait),
        }
    }

    fn judge_transport_error(
        &self,
        request: &Request,
        error: reqwest::Error,
        attempt: u32,
    ) -> (UpstreamError, Option<Duration>) {
        let what = if error.is_timeout() {
            format!("no answer within {}s", self.options.request_timeout.as_secs())
        } else if error.is_connect() {
            "cannot connect".to_owned()
        } else {
            "connection failed".to_owned()
        };
        let cause = std::error::Error::source(&error)
            .map(|source| source.to_string())
            .unwrap_or_default();
        let message = self.redactor.clean(&format!("{what} to {}: {cause}", self.base));
        let retryable = error.is_connect()
            || (request.retry == Retry::Safe
                && (error.is_timeout() || error.is_request() || error.is_body()));
        let upstream_error = UpstreamError::new(ErrorClass::Transient, self.api, request.operation, message);
        (upstream_error, retryable.then(|| self.backoff(attempt)))
    }

    /// Exponential backoff with "equal jitter": half the delay is fixed, half random, so
    /// clients that failed together spread out without ever retrying immediately.
    fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self
            .options
            .initial_backoff
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(self.options.max_backoff);
        let half = exponential / 2;
        let jitter = half.mul_f64(getrandom::u64().unwrap_or(0) as f64 / u64::MAX as f64);
        half + jitter
    }
}

fn header_text(headers: &HeaderMap, name: HeaderName) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_owned)
}

/// `Retry-After` as delay-seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let seconds = at.duration_since(jiff::Timestamp::now()).as_secs();
    Some(Duration::from_secs(seconds.max(0) as u64))
}

/// The `Host` and path-with-query exactly as reqwest will send them for `url`.
fn signed_target(url: &Url) -> (String, String) {
    let mut host = url.host_str().unwrap_or_default().to_owned();
    if let Some(port) = url.port() {
        host.push_str(&format!(":{port}"));
    }
    let mut path_and_query = url.path().to_owned();
    if let Some(query) = url.query() {
        path_and_query.push('?');
        path_and_query.push_str(query);
    }
    (host, path_and_query)
}

/// `id` as one URL path segment: percent-encoded, and never empty, `.` or `..`, so an id
/// taken from a spec or a status can only ever address an object, not another path.
pub(crate) fn path_segment(api: Api, id: &str) -> Result<String, UpstreamError> {
    if matches!(id, "" | "." | "..") {
        return Err(UpstreamError::new(
            ErrorClass::InvalidRequest,
            api,
            "address",
            format!("{id:?} is not a valid upstream id"),
        ));
    }
    Ok(id
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect())
}

#[cfg(test)]
pub(crate) mod tests {
    //! Retry mechanics against a scripted HTTP/1.1 responder: the credential store's fault
    //! injection cannot script a hung connection or an exact sequence of answers.

    use std::sync::Mutex;
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::upstream::ratelimit::StoreRateLimiter;

    #[derive(Clone)]
    pub(crate) enum Answer {
        Status(u16, &'static [(&'static str, &'static str)], &'static str),
        Hang,
    }

    pub(crate) struct Scripted {
        pub(crate) base_url: String,
        seen: Arc<Mutex<Vec<String>>>,
    }

    impl Scripted {
        /// Answers the n-th request with `answers[n]`, repeating the last one.
        pub(crate) async fn start(answers: Vec<Answer>) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base_url = format!("http://{}", listener.local_addr().unwrap());
            let seen = Arc::new(Mutex::new(Vec::new()));
            let log = seen.clone();
            tokio::spawn(async move {
                let mut served = 0;
                loop {
                    let Ok((mut socket, _)) = listener.accept().await else {
                        return;
                    };
                    let answer = answers[served.min(answers.len() - 1)].clone();
                    served += 1;
                    let log = log.clone();
                    tokio::spawn(async move {
                        let mut buffer = Vec::new();
                        let mut chunk = [0u8; 4096];
                        while !buffer.windows(4).any(|window| window == b"\r\n\r\n") {
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
                            }
                        }
                        log.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&buffer).into_owned());
                        match answer {
                            Answer::Hang => tokio::time::sleep(Duration::from_secs(30)).await,
                            Answer::Status(status, headers, body) => {
                                let mut response = format!(
                                    "HTTP/1.1 {status} X\r\nconnection: close\r\ncontent-length: {}\r\n",
                                    body.len()
                                );
                                for (name, value) in headers {
                                    response.push_str(&format!("{name}: {value}\r\n"));
                                }
                                response.push_str("\r\n");
                                response.push_str(body);
                                let _ = socket.write_all(response.as_bytes()).await;
                            }
                        }
                    });
                }
            });
            Self { base_url, seen }
        }

        /// The head (request line and headers) of each request received.
        pub(crate) fn requests(&self) -> Vec<String> {
            self.seen.lock().unwrap().clone()
        }
    }

    fn options() -> ClientOptions {
        ClientOptions {
            request_timeout: Duration::from_millis(300),
            connect_timeout: Duration::from_millis(300),
            max_attempts: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
            max_retry_after: Duration::from_secs(2),
            metrics: None,
        }
    }

    fn status_only(status: u16, body: &[u8]) -> ErrorDetail {
        ErrorDetail {
            class: ErrorClass::from_status(status),
            code: None,
            message: String::from_utf8_lossy(body).into_owned(),
        }
    }

    fn transport(base_url: &str, limiter: StoreRateLimiter) -> Transport {
        let endpoint = Endpoint {
            store: "CredentialStore test/store".into(),
            store_kind: StoreKind::CredentialStore,
            base_url: base_url.into(),
            ca_bundle: None,
            limiter: Arc::new(limiter),
            options: options(),
        };
        let redactor = Redactor::new(["admin-secret-token".to_owned()]);
        Transport::new(Api::Prefactor, endpoint, HeaderMap::new(), status_only, redactor).unwrap()
    }

    fn request(retry: Retry) -> Request {
        Request {
            operation: "test_call",
            method: Method::POST,
            path: "/things".into(),
            body: Some(Body::json(&serde_json::json!({"a": 1}))),
            retry,
        }
    }

    fn unlimited() -> StoreRateLimiter {
        StoreRateLimiter::new(1000, 1000)
    }

    const OK: Answer = Answer::Status(200, &[], "{}");
    const UNAVAILABLE: Answer = Answer::Status(503, &[], "down");
    const INTERNAL: Answer = Answer::Status(500, &[], "boom");

    #[tokio::test]
    async fn safe_calls_retry_5xx_until_success() {
        let server = Scripted::start(vec![UNAVAILABLE, INTERNAL, OK]).await;
        let transport = transport(&server.base_url, unlimited());
        let response = transport
            .send(&request(Retry::Safe), Auth::Bearer("admin-secret-token"))
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(server.requests().len(), 3);
        assert_eq!(transport.requests_sent(), 3);
    }

    #[tokio::test]
    async fn every_attempt_is_counted_by_status_class_and_timed() {
        let metrics = crate::metrics::Metrics::default();
        let measured = |base_url: &str| {
            let endpoint = Endpoint {
                store: "ClusterCredentialStore shared".into(),
                store_kind: StoreKind::ClusterCredentialStore,
                base_url: base_url.into(),
                ca_bundle: None,
                limiter: Arc::new(unlimited()),
                options: ClientOptions {
                    metrics: Some(metrics.upstream.clone()),
                    ..options()
                },
            };
            Transport::new(
                Api::Prefactor,
                endpoint,
                HeaderMap::new(),
                status_only,
                Redactor::new([]),
            )
            .unwrap()
        };
        let server = Scripted::start(vec![UNAVAILABLE, INTERNAL, OK]).await;
        measured(&server.base_url)
            .send(&request(Retry::Safe), Auth::None)
            .await
            .unwrap();
        let hung = Scripted::start(vec![Answer::Hang]).await;
        measured(&hung.base_url)
            .send(&request(Retry::Safe), Auth::None)
            .await
            .unwrap_err();

        let text = metrics.encode();
        let series = |class: &str| {
            format!(
                "apikey_operator_upstream_requests_total{{store_kind=\"ClusterCredentialStore\",api=\"prefactor\",operation=\"test_call\",status_class=\"{class}\"}}"
            )
        };
        for (class, count) in [("5xx", 2), ("2xx", 1), ("error", 3)] {
            assert!(
                text.contains(&format!("{} {count}\n", series(class))),
                "{class} x{count}:\n{text}"
            );
        }
        assert!(
            text.contains(
                "apikey_operator_upstream_request_duration_seconds_count{api=\"prefactor\",operation=\"test_call\"} 6\n"
            ),
            "{text}"
        );
    }

    #[tokio::test]
    async fn retries_are_bounded_and_the_error_says_what_happened() {
        let server = Scripted::start(vec![UNAVAILABLE]).await;
        let transport = transport(&server.base_url, unlimited());
        let error = transport
            .send(&request(Retry::Safe), Auth::None)
            .await
            .unwrap_err();
        assert_eq!(server.requests().len(), 3);
        assert_eq!(
            (error.class(), error.status(), error.attempts()),
            (ErrorClass::Transient, Some(503), 3)
        );
        assert_eq!(
            error.to_string(),
            "prefactor test_call: HTTP 503: down (gave up after 3 attempts)"
        );
    }

    #[tokio::test]
    async fn unsafe_calls_are_not_repeated_after_a_5xx() {
        let server = Scripted::start(vec![INTERNAL, OK]).await;
        let transport = transport(&server.base_url, unlimited());
        let error = transport
            .send(&request(Retry::Unsafe), Auth::None)
            .await
            .unwrap_err();
        assert_eq!(server.requests().len(), 1);
        assert_eq!((error.class(), error.attempts()), (ErrorClass::UpstreamBug, 1));
    }

    #[tokio::test]
    async fn too_many_requests_waits_for_retry_after_even_for_unsafe_calls() {
        let server = Scripted::start(vec![
            Answer::Status(429, &[("retry-after", "1")], "slow down"),
            OK,
        ])
        .await;
        let transport = transport(&server.base_url, unlimited());
        let started = Instant::now();
        transport.send(&request(Retry::Unsafe), Auth::None).await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(950),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(server.requests().len(), 2);
    }

    #[tokio::test]
    async fn a_long_retry_after_is_handed_to_the_caller() {
        let server = Scripted::start(vec![Answer::Status(429, &[("retry-after", "120")], "later")]).await;
        let transport = transport(&server.base_url, unlimited());
        let error = transport
            .send(&request(Retry::Safe), Auth::None)
            .await
            .unwrap_err();
        assert_eq!(server.requests().len(), 1);
        assert_eq!(error.class(), ErrorClass::Transient);
        assert_eq!(error.retry_after(), Some(Duration::from_secs(120)));
        assert!(error.to_string().contains("retry after 120s"), "{error}");
    }

    #[tokio::test]
    async fn timeouts_retry_only_safe_calls() {
        let server = Scripted::start(vec![Answer::Hang]).await;
        let transport = transport(&server.base_url, unlimited());
        let error = transport
            .send(&request(Retry::Safe), Auth::None)
            .await
            .unwrap_err();
        assert_eq!((error.class(), error.attempts()), (ErrorClass::Transient, 3));
        assert!(error.to_string().contains("no answer within"), "{error}");

        let server = Scripted::start(vec![Answer::Hang]).await;
        let transport = super::tests::transport(&server.base_url, unlimited());
        let error = transport
            .send(&request(Retry::Unsafe), Auth::None)
            .await
            .unwrap_err();
        assert_eq!(error.attempts(), 1);
    }

    #[tokio::test]
    async fn refused_connections_retry_even_unsafe_calls() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let transport = transport(&base_url, unlimited());
        let error = transport
            .send(&request(Retry::Unsafe), Auth::None)
            .await
            .unwrap_err();
        assert_eq!((error.class(), error.attempts()), (ErrorClass::Transient, 3));
        assert!(error.to_string().contains("cannot connect"), "{error}");
    }

    #[tokio::test]
    async fn error_text_never_carries_the_credential() {
        let server = Scripted::start(vec![Answer::Status(
            401,
            &[],
            "token admin-secret-token is not valid",
        )])
        .await;
        let transport = transport(&server.base_url, unlimited());
        let error = transport
            .send(&request(Retry::Safe), Auth::Bearer("admin-secret-token"))
            .await
            .unwrap_err();
        assert_eq!(error.class(), ErrorClass::Authentication);
        assert!(server.requests()[0].contains("Bearer admin-secret-token"));
        for shown in [error.to_string(), format!("{error:?}"), format!("{transport:?}")] {
            assert!(!shown.contains("admin-secret-token"), "{shown}");
        }
    }

    #[tokio::test]
    async fn every_attempt_waits_for_the_store_rate_limit() {
        let server = Scripted::start(vec![OK]).await;
        let transport = transport(&server.base_url, StoreRateLimiter::new(10, 1));
        let started = Instant::now();
        for _ in 0..3 {
            transport.send(&request(Retry::Safe), Auth::None).await.unwrap();
        }
        // One at once, then two more at 10/s.
        assert!(
            started.elapsed() >= Duration::from_millis(180),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60);
        let date = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&soon)
            .unwrap();
        let parsed = parse_retry_after(&date).unwrap();
        assert!(
            parsed > Duration::from_secs(55) && parsed <= Duration::from_secs(60),
            "{parsed:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_grows_exponentially_within_bounds() {
        let transport = transport("http://127.0.0.1:9", unlimited());
        for attempt in 1..10 {
            let ceiling = (Duration::from_millis(10) * (1 << (attempt - 1))).min(Duration::from_millis(40));
            let wait = transport.backoff(attempt);
            assert!(
                wait >= ceiling / 2 && wait <= ceiling,
                "attempt {attempt}: {wait:?}"
            );
        }
    }

    #[test]
    fn path_segments_are_encoded_and_dot_segments_refused() {
        assert_eq!(path_segment(Api::Zenml, "a b/c?").unwrap(), "a%20b%2Fc%3F");
        assert!(path_segment(Api::Zenml, "..").is_err());
        assert!(path_segment(Api::Zenml, "").is_err());
    }

    #[test]
    fn bad_store_urls_and_ca_bundles_are_configuration_errors() {
        let endpoint = |base_url: &str, ca_bundle: Option<&str>| Endpoint {
            store: "s".into(),
            store_kind: StoreKind::CredentialStore,
            base_url: base_url.into(),
            ca_bundle: ca_bundle.map(str::to_owned),
            limiter: Arc::new(unlimited()),
            options: options(),
        };
        let build = |endpoint| {
            Transport::new(
                Api::Prefactor,
                endpoint,
                HeaderMap::new(),
                status_only,
                Redactor::default(),
            )
        };
        for endpoint in [
            endpoint("not a url", None),
            endpoint("ftp://example.com", None),
            endpoint("https://example.com", Some("not pem")),
        ] {
            assert_eq!(build(endpoint).unwrap_err().class(), ErrorClass::InvalidRequest);
        }
        let certificate = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        build(endpoint("https://localhost", Some(&certificate.cert.pem()))).unwrap();
    }
}
