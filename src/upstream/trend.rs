//! Trend Micro Deep Security / Workload Security API keys (`/api/apikeys`), for
//! ServiceAccountKey resources on Trend Micro stores.
//!
//! The API has no idempotency mechanism and key names need not be unique, so a create is
//! never repeated once it may have reached the server; recovery finds a key by name.

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use super::credentials::SecretString;
use super::error::{Api, ErrorClass, Redactor, UpstreamError};
use super::http::{Auth, Body, Endpoint, ErrorDetail, Request, Response, Retry, Transport, found};
use super::name_index::{Listed, Lookup, NameIndex};
use super::prefactor::default_message;

/// Keys per search page; page boundaries follow `ID`, so any size works.
const PAGE_SIZE: u32 = 100;
const MAX_PAGES: u32 = 10_000;

/// An API key as the API describes it, without its secret. Times are ms since the epoch.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    #[serde(rename = "ID")]
    pub id: i64,
    #[serde(default)]
    pub key_name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub locale: Option<String>,
    #[serde(rename = "roleID", default)]
    pub role_id: Option<i64>,
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub created: Option<i64>,
    #[serde(default)]
    pub last_sign_in: Option<i64>,
    #[serde(default)]
    pub unlock_time: Option<i64>,
    #[serde(default)]
    pub unsuccessful_sign_in_attempts: Option<i64>,
    #[serde(default)]
    pub expiry_date: Option<i64>,
    #[serde(default)]
    pub service_account: Option<bool>,
}

impl Listed for ApiKey {
    fn name(&self) -> Option<&str> {
        Some(&self.key_name)
    }
    fn id(&self) -> String {
        self.id.to_string()
    }
}

/// A key together with the secret the API shows only on create and regenerate.
#[derive(Clone, Debug)]
pub struct IssuedApiKey {
    pub key: ApiKey,
    pub secret: SecretString,
}

/// Settings of a key: the create body, or a partial modify body (`None` leaves a field).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeySettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `en-US` or `ja-JP`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(rename = "roleID", skip_serializing_if = "Option::is_none")]
    pub role_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// `false` locks the key out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// Ms since the epoch; the key stops working then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry_date: Option<i64>,
}

#[derive(Deserialize)]
struct IssuedResponse {
    #[serde(flatten)]
    key: ApiKey,
    #[serde(rename = "secretKey", default)]
    secret_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyList {
    #[serde(default)]
    api_keys: Vec<ApiKey>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SearchFilter {
    max_items: u32,
    search_criteria: Vec<serde_json::Value>,
    #[serde(rename = "sortByObjectID")]
    sort_by_object_id: bool,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
}

/// Client of one Trend Micro store.
#[derive(Debug)]
pub struct TrendMicroClient {
    transport: Transport,
    api_secret_key: SecretString,
    names: NameIndex<ApiKey>,
}

impl TrendMicroClient {
    /// `endpoint.base_url` is the store's `url`, `/api` included.
    pub fn new(endpoint: Endpoint, api_secret_key: SecretString) -> Result<Self, UpstreamError> {
        let mut headers = HeaderMap::new();
        headers.insert("api-version", HeaderValue::from_static("v1"));
        let redactor = Redactor::new([api_secret_key.expose().to_owned()]);
        let transport = Transport::new(Api::TrendMicro, endpoint, headers, parse_error, redactor)?;
        Ok(Self {
            transport,
            api_secret_key,
            names: NameIndex::default(),
        })
    }

    /// HTTP requests sent so far, retries included.
    pub fn requests_sent(&self) -> u64 {
        self.transport.requests_sent()
    }

    /// Describes the store's own key (`GET /apikeys/current`): proves the credential.
    pub async fn probe(&self) -> Result<ApiKey, UpstreamError> {
        let response = self.send(get("current_key", "/apikeys/current".into())).await?;
        response.json(Api::TrendMicro, "current_key")
    }

    /// Creates a key. Sent at most once past the connection (no idempotency upstream): after
    /// an ambiguous failure, look for it with [`TrendMicroClient::find_by_name`].
    pub async fn create(&self, settings: &ApiKeySettings) -> Result<IssuedApiKey, UpstreamError> {
        let response = self
            .send(Request {
                operation: "create_key",
                method: Method::POST,
                path: "/apikeys".into(),
                body: Some(Body::json(settings)),
                retry: Retry::Unsafe,
            })
            .await?;
        let issued = issued(&response, "create_key")?;
        self.names.seen(issued.key.clone());
        Ok(issued)
    }

    /// The key with `id`, or `None` when there is none.
    pub async fn get(&self, id: i64) -> Result<Option<ApiKey>, UpstreamError> {
        found(self.send(get("get_key", format!("/apikeys/{id}"))).await)?
            .map(|response| response.json(Api::TrendMicro, "get_key"))
            .transpose()
    }

    /// Changes the fields set in `changes` (a partial update: POST, not PUT).
    pub async fn modify(&self, id: i64, changes: &ApiKeySettings) -> Result<ApiKey, UpstreamError> {
        let response = self
            .send(Request {
                operation: "modify_key",
                method: Method::POST,
                path: format!("/apikeys/{id}"),
                body: Some(Body::json(changes)),
                retry: Retry::Safe,
            })
            .await?;
        let modified: ApiKey = response.json(Api::TrendMicro, "modify_key")?;
        self.names.seen(modified.clone());
        Ok(modified)
    }

    /// Replaces the key's secret; the old one stops working at once. Retried like an
    /// idempotent call: whichever attempt answers last returns the secret that is valid.
    pub async fn regenerate_secret(&self, id: i64) -> Result<IssuedApiKey, UpstreamError> {
        let response = self
            .send(Request {
                operation: "regenerate_secret",
                method: Method::POST,
                path: format!("/apikeys/{id}/secretkey"),
                body: None,
                retry: Retry::Safe,
            })
            .await?;
        issued(&response, "regenerate_secret")
    }

    /// Deletes the key. `Ok` also when it is already gone.
    pub async fn delete(&self, id: i64) -> Result<(), UpstreamError> {
        let request = Request {
            operation: "delete_key",
            method: Method::DELETE,
            path: format!("/apikeys/{id}"),
            body: None,
            retry: Retry::Safe,
        };
        found(self.send(request).await)?;
        self.names.deleted(&id.to_string());
        Ok(())
    }

    /// Keys named exactly `key_name`: searched for now, or for [`Lookup::Recent`] from a
    /// recent list of every key.
    pub async fn find_by_name(&self, key_name: &str, lookup: Lookup) -> Result<Vec<ApiKey>, UpstreamError> {
        if lookup == Lookup::Recent {
            return self.names.named(key_name, lookup, || self.list()).await;
        }
        let criterion =
            serde_json::json!({"fieldName": "keyName", "stringTest": "equal", "stringValue": key_name});
        self.search_all("find_keys", vec![criterion]).await
    }

    /// Every key, paged by `ID`.
    pub async fn list(&self) -> Result<Vec<ApiKey>, UpstreamError> {
        self.search_all("list_keys", Vec::new()).await
    }

    /// Pages through a search by asking for IDs above the last one seen.
    async fn search_all(
        &self,
        operation: &'static str,
        criteria: Vec<serde_json::Value>,
    ) -> Result<Vec<ApiKey>, UpstreamError> {
        let mut keys: Vec<ApiKey> = Vec::new();
        for _ in 0..MAX_PAGES {
            let mut search_criteria = criteria.clone();
            if let Some(last) = keys.last() {
                search_criteria.push(
                    serde_json::json!({"fieldName": "ID", "idTest": "greater-than", "idValue": last.id}),
                );
            }
            let filter = SearchFilter {
                max_items: PAGE_SIZE,
                search_criteria,
                sort_by_object_id: true,
            };
            let response = self
                .send(Request {
                    operation,
                    method: Method::POST,
                    path: "/apikeys/search".into(),
                    body: Some(Body::json(&filter)),
                    retry: Retry::Safe,
                })
                .await?;
            let page: KeyList = response.json(Api::TrendMicro, operation)?;
            let full = page.api_keys.len() >= PAGE_SIZE as usize;
            let advanced = page.api_keys.last().map(|key| key.id) > keys.last().map(|key| key.id);
            keys.extend(page.api_keys);
            if !full || !advanced {
                return Ok(keys);
            }
        }
        Err(UpstreamError::new(
            ErrorClass::UpstreamBug,
            Api::TrendMicro,
            operation,
            format!("search did not end after {MAX_PAGES} pages"),
        ))
    }

    async fn send(&self, request: Request) -> Result<Response, UpstreamError> {
        let auth = Auth::Header("api-secret-key", self.api_secret_key.expose());
        self.transport.send(&request, auth).await
    }
}

fn get(operation: &'static str, path: String) -> Request {
    Request {
        operation,
        method: Method::GET,
        path,
        body: None,
        retry: Retry::Safe,
    }
}

fn issued(response: &Response, operation: &'static str) -> Result<IssuedApiKey, UpstreamError> {
    let issued: IssuedResponse = response.json(Api::TrendMicro, operation)?;
    let secret = issued
        .secret_key
        .filter(|secret| !secret.is_empty())
        .ok_or_else(|| {
            UpstreamError::new(
                ErrorClass::UpstreamBug,
                Api::TrendMicro,
                operation,
                "response carries no secretKey",
            )
            .with_status(response.status)
        })?;
    Ok(IssuedApiKey {
        key: issued.key,
        secret: secret.into(),
    })
}

/// `{"message": "…"}`; the status decides the class.
fn parse_error(status: u16, body: &[u8]) -> ErrorDetail {
    let message = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|body| body.message);
    ErrorDetail {
        class: ErrorClass::from_status(status),
        code: None,
        message: message.unwrap_or_else(|| default_message(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_use_the_vendor_field_names_and_tolerate_unknown_fields() {
        let issued: IssuedResponse = serde_json::from_str(
            r#"{"ID":7,"keyName":"ci","description":"d","locale":"en-US","roleID":1,"timeZone":"UTC",
                "active":true,"created":1700000000000,"lastSignIn":null,"unlockTime":null,
                "unsuccessfulSignInAttempts":0,"expiryDate":null,"serviceAccount":false,
                "secretKey":"2:abc","roleURN":"urn:x"}"#,
        )
        .unwrap();
        assert_eq!((issued.key.id, issued.key.role_id), (7, Some(1)));
        assert_eq!(issued.secret_key.as_deref(), Some("2:abc"));
        let body = serde_json::to_value(ApiKeySettings {
            key_name: Some("ci".into()),
            role_id: Some(1),
            active: Some(false),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"keyName": "ci", "roleID": 1, "active": false})
        );
    }

    #[test]
    fn error_message_and_status_class() {
        let detail = parse_error(429, br#"{"message":"Too many API requests."}"#);
        assert_eq!(
            (detail.class, detail.message.as_str()),
            (ErrorClass::Transient, "Too many API requests.")
        );
    }
}
