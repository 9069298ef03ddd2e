//! Akamai EdgeGrid `EG1-HMAC-SHA256` request signing, as pure functions.
//!
//! The client side signs with [`Signer`]; a server (the embedded credential store) parses
//! an `Authorization` header with [`AuthorizationFields::parse`] and checks it with
//! [`AuthorizationFields::verify`], which recomputes the signature from the same request
//! parts. Both sides share every step below, so they cannot drift apart. Conformance is
//! proven against the official vectors shipped in `edgegrid-python` (`tests/conformance`).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The only algorithm EdgeGrid defines; the first word of the `Authorization` header.
pub const ALGORITHM: &str = "EG1-HMAC-SHA256";

/// How many body bytes the content hash covers unless an API says otherwise.
pub const DEFAULT_MAX_BODY: usize = 131_072;

/// `strftime` pattern of EdgeGrid timestamps (always UTC).
const TIMESTAMP_FORMAT: &str = "%Y%m%dT%H:%M:%S+0000";

type HmacSha256 = Hmac<Sha256>;

/// The parts of an HTTP request that EdgeGrid signs.
#[derive(Clone, Copy)]
pub struct RequestParts<'a> {
    /// Upper-case method, e.g. `POST`.
    pub method: &'a str,
    /// `http` or `https` (lower-cased before signing).
    pub scheme: &'a str,
    /// The `Host` the request is sent to, with a port only if the URL carries one.
    pub host: &'a str,
    /// Path with any `;params` and `?query` exactly as sent.
    pub path_and_query: &'a str,
    /// Request headers as sent (any order, any case); only those named in the
    /// signer's `headers_to_sign` matter.
    pub headers: &'a [(&'a str, &'a str)],
    /// The request body as sent.
    pub body: &'a [u8],
}

/// Which headers are signed and how much of a body is hashed: agreed between client and API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningPolicy {
    /// Header names covered by the signature, in signing order (compared case-insensitively).
    pub headers_to_sign: Vec<String>,
    /// Body bytes covered by the content hash; longer bodies are truncated, not refused.
    pub max_body: usize,
}

impl Default for SigningPolicy {
    fn default() -> Self {
        Self {
            headers_to_sign: Vec::new(),
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

/// Formats an instant as an EdgeGrid timestamp, e.g. `20140321T19:34:21+0000`.
pub fn format_timestamp(instant: jiff::Timestamp) -> String {
    instant.strftime(TIMESTAMP_FORMAT).to_string()
}

/// Parses an EdgeGrid timestamp, so a verifier can bound clock skew.
pub fn parse_timestamp(text: &str) -> Result<jiff::Timestamp, VerifyError> {
    let malformed = VerifyError::Malformed {
        reason: "timestamp is not in the form 20140321T19:34:21+0000",
    };
    // The offset is always UTC; `%z` parses it while the format above writes it literally.
    if !text.ends_with("+0000") {
        return Err(malformed);
    }
    jiff::Timestamp::strptime("%Y%m%dT%H:%M:%S%z", text).map_err(|_| malformed)
}

/// A fresh nonce: a random UUID, as Akamai's own clients send.
pub fn new_nonce() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The per-request key: base64(HMAC-SHA256(key = client secret, message = timestamp)).
pub fn signing_key(client_secret: &str, timestamp: &str) -> String {
    base64_hmac_sha256(client_secret.as_bytes(), timestamp.as_bytes())
}

/// base64(SHA-256) of the first `max_body` bytes of a non-empty POST body; empty otherwise,
/// because EdgeGrid hashes only POST bodies.
pub fn content_hash(method: &str, body: &[u8], max_body: usize) -> String {
    if !method.eq_ignore_ascii_case("POST") || body.is_empty() {
        return String::new();
    }
    let covered = &body[..body.len().min(max_body)];
    BASE64.encode(Sha256::digest(covered))
}

/// `name:value` for each header in `headers_to_sign` that the request carries, TAB-joined.
/// Names are lower-cased; values are trimmed and inner whitespace runs collapse to one space.
pub fn canonical_headers(headers_to_sign: &[String], headers: &[(&str, &str)]) -> String {
    headers_to_sign
        .iter()
        .filter_map(|wanted| {
            let (_, value) = headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(wanted))?;
            let collapsed = value.split_whitespace().collect::<Vec<_>>().join(" ");
            Some(format!("{}:{collapsed}", wanted.to_ascii_lowercase()))
        })
        .collect::<Vec<_>>()
        .join("\t")
}

/// The `Authorization` header up to, not including, the signature.
pub fn unsigned_header(client_token: &str, access_token: &str, timestamp: &str, nonce: &str) -> String {
    format!(
        "{ALGORITHM} client_token={client_token};access_token={access_token};timestamp={timestamp};nonce={nonce};"
    )
}

/// The TAB-joined string the signature covers.
pub fn data_to_sign(request: &RequestParts<'_>, policy: &SigningPolicy, unsigned_header: &str) -> String {
    [
        request.method.to_ascii_uppercase().as_str(),
        request.scheme.to_ascii_lowercase().as_str(),
        request.host,
        request.path_and_query,
        canonical_headers(&policy.headers_to_sign, request.headers).as_str(),
        content_hash(request.method, request.body, policy.max_body).as_str(),
        unsigned_header,
    ]
    .join("\t")
}

/// base64(HMAC-SHA256(key = the signing key's base64 text, message = data to sign)).
pub fn signature(signing_key: &str, data_to_sign: &str) -> String {
    base64_hmac_sha256(signing_key.as_bytes(), data_to_sign.as_bytes())
}

/// The complete `Authorization` header value for one request.
pub fn authorization_header(
    credential: &ClientCredential,
    policy: &SigningPolicy,
    request: &RequestParts<'_>,
    timestamp: &str,
    nonce: &str,
) -> String {
    let unsigned = unsigned_header(
        &credential.client_token,
        &credential.access_token,
        timestamp,
        nonce,
    );
    let data = data_to_sign(request, policy, &unsigned);
    let key = signing_key(&credential.client_secret, timestamp);
    format!("{unsigned}signature={}", signature(&key, &data))
}

fn base64_hmac_sha256(key: &[u8], message: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    BASE64.encode(mac.finalize().into_bytes())
}

/// The three values of an `.edgerc` section that sign requests. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredential {
    pub client_token: String,
    pub client_secret: String,
    pub access_token: String,
}

impl fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredential")
            .field("client_token", &self.client_token)
            .field("client_secret", &"<redacted>")
            .field("access_token", &self.access_token)
            .finish()
    }
}

/// Signs requests with one credential, a fresh timestamp and a fresh nonce each time.
#[derive(Clone, Debug)]
pub struct Signer {
    credential: ClientCredential,
    policy: SigningPolicy,
}

impl Signer {
    pub fn new(credential: ClientCredential, policy: SigningPolicy) -> Self {
        Self { credential, policy }
    }

    /// The `Authorization` header value for `request`, signed now.
    pub fn sign(&self, request: &RequestParts<'_>) -> String {
        let timestamp = format_timestamp(jiff::Timestamp::now());
        authorization_header(&self.credential, &self.policy, request, &timestamp, &new_nonce())
    }
}

/// Why an `Authorization` header was not accepted. Messages never echo secret material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("authorization header is not EdgeGrid: {reason}")]
    Malformed { reason: &'static str },
    #[error("EdgeGrid signature does not match the request")]
    SignatureMismatch,
}

/// The fields of a received EdgeGrid `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationFields {
    pub client_token: String,
    pub access_token: String,
    pub timestamp: String,
    pub nonce: String,
    pub signature: String,
}

impl AuthorizationFields {
    /// Parses `EG1-HMAC-SHA256 client_token=…;access_token=…;timestamp=…;nonce=…;signature=…`.
    pub fn parse(header: &str) -> Result<Self, VerifyError> {
        let malformed = |reason| VerifyError::Malformed { reason };
        let fields = header
            .strip_prefix(ALGORITHM)
            .and_then(|rest| rest.strip_prefix(' '))
            .ok_or(malformed("it does not start with EG1-HMAC-SHA256"))?;
        let (mut client_token, mut access_token, mut timestamp, mut nonce, mut signature) =
            (None, None, None, None, None);
        for field in fields.split(';').filter(|field| !field.is_empty()) {
            let (name, value) = field
                .split_once('=')
                .ok_or(malformed("a field is not name=value"))?;
            let slot = match name {
                "client_token" => &mut client_token,
                "access_token" => &mut access_token,
                "timestamp" => &mut timestamp,
                "nonce" => &mut nonce,
                "signature" => &mut signature,
                _ => return Err(malformed("it has an unknown field")),
            };
            if slot.replace(value.to_owned()).is_some() {
                return Err(malformed("a field appears twice"));
            }
        }
        Ok(Self {
            client_token: client_token.ok_or(malformed("client_token is missing"))?,
            access_token: access_token.ok_or(malformed("access_token is missing"))?,
            timestamp: timestamp.ok_or(malformed("timestamp is missing"))?,
            nonce: nonce.ok_or(malformed("nonce is missing"))?,
            signature: signature.ok_or(malformed("signature is missing"))?,
        })
    }

    /// The header as the client signed it (everything before `signature=`).
    pub fn unsigned_header(&self) -> String {
        unsigned_header(
            &self.client_token,
            &self.access_token,
            &self.timestamp,
            &self.nonce,
        )
    }

    /// Recomputes the signature for `request` with the client's secret and compares it in
    /// constant time. Clock skew and nonce replay are the caller's to bound: they need
    /// state (a clock, a nonce cache) that pure signing does not have.
    pub fn verify(
        &self,
        request: &RequestParts<'_>,
        policy: &SigningPolicy,
        client_secret: &str,
    ) -> Result<(), VerifyError> {
        let presented = BASE64
            .decode(&self.signature)
            .map_err(|_| VerifyError::Malformed {
                reason: "signature is not base64",
            })?;
        let key = signing_key(client_secret, &self.timestamp);
        let mut mac = HmacSha256::new_from_slice(key.as_bytes()).expect("HMAC accepts keys of any length");
        mac.update(data_to_sign(request, policy, &self.unsigned_header()).as_bytes());
        mac.verify_slice(&presented)
            .map_err(|_| VerifyError::SignatureMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential() -> ClientCredential {
        ClientCredential {
            client_token: "akab-client".into(),
            client_secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQ=".into(),
            access_token: "akab-access".into(),
        }
    }

    fn post<'a>(headers: &'a [(&'a str, &'a str)]) -> RequestParts<'a> {
        RequestParts {
            method: "POST",
            scheme: "https",
            host: "akab-host.luna.akamaiapis.net",
            path_and_query: "/identity-management/v3/api-clients?accountSwitchKey=A-1",
            headers,
            body: br#"{"clientType":"CLIENT"}"#,
        }
    }

    #[test]
    fn timestamps_round_trip() {
        let instant: jiff::Timestamp = "2014-03-21T19:34:21Z".parse().unwrap();
        let text = format_timestamp(instant);
        assert_eq!(text, "20140321T19:34:21+0000");
        assert_eq!(parse_timestamp(&text).unwrap(), instant);
        assert!(parse_timestamp("2014-03-21").is_err());
    }

    #[test]
    fn content_hash_covers_only_post_bodies_up_to_max_body() {
        assert_eq!(content_hash("PUT", b"abc", 10), "");
        assert_eq!(content_hash("POST", b"", 10), "");
        assert_eq!(
            content_hash("POST", b"abcdef", 3),
            content_hash("POST", b"abc", 3)
        );
        assert_ne!(
            content_hash("POST", b"abcdef", 4),
            content_hash("POST", b"abc", 4)
        );
    }

    #[test]
    fn signed_request_verifies_and_tampering_is_detected() {
        let policy = SigningPolicy {
            headers_to_sign: vec!["X-Test1".into()],
            ..SigningPolicy::default()
        };
        let headers = [("x-test1", "  a   b ")];
        let request = post(&headers);
        let header = Signer::new(credential(), policy.clone()).sign(&request);
        let fields = AuthorizationFields::parse(&header).unwrap();
        assert_eq!(fields.client_token, "akab-client");
        fields
            .verify(&request, &policy, &credential().client_secret)
            .unwrap();

        let other_headers = [("X-Test1", "a b c")];
        let tampered = [
            RequestParts {
                path_and_query: "/identity-management/v3/api-clients",
                ..request
            },
            RequestParts {
                body: b"{}",
                ..request
            },
            RequestParts {
                method: "PUT",
                ..request
            },
            RequestParts {
                headers: &other_headers,
                ..request
            },
        ];
        for request in tampered {
            assert_eq!(
                fields.verify(&request, &policy, &credential().client_secret),
                Err(VerifyError::SignatureMismatch)
            );
        }
        assert_eq!(
            fields.verify(&request, &policy, "d3Jvbmc="),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn malformed_headers_are_refused_with_a_reason() {
        for header in [
            "Bearer abc",
            "EG1-HMAC-SHA256 client_token=a;access_token=b;timestamp=c;nonce=d;",
            "EG1-HMAC-SHA256 client_token=a;client_token=a;access_token=b;timestamp=c;nonce=d;signature=e",
            "EG1-HMAC-SHA256 client_token=a;access_token=b;timestamp=c;nonce=d;signature=e;extra=f",
            "EG1-HMAC-SHA256 client_token",
        ] {
            assert!(matches!(
                AuthorizationFields::parse(header),
                Err(VerifyError::Malformed { .. })
            ));
        }
    }

    #[test]
    fn debug_output_hides_the_client_secret() {
        let shown = format!("{:?}", Signer::new(credential(), SigningPolicy::default()));
        assert!(shown.contains("akab-client"));
        assert!(!shown.contains(&credential().client_secret));
    }
}
