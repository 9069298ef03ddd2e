//! Akamai Identity and Access Management API v3 (`/identity-management/v3/api-clients`),
//! for ApiClient resources. Requests are EdgeGrid-signed per attempt.
//!
//! The API has no idempotency mechanism: creates of clients and credentials are sent at
//! most once past the connection; recovery finds a client by its (operator-chosen) name.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::credentials::SecretString;
use super::edgegrid::{ClientCredential, Signer, SigningPolicy};
use super::error::{Api, ErrorClass, Redactor, UpstreamError};
use super::http::{
    Auth, Body, Endpoint, ErrorDetail, Request, Response, Retry, Transport, found, path_segment,
};
use super::name_index::{Listed, Lookup, NameIndex};
use super::prefactor::default_message;
use crate::api::{ApiAccess, ClientType, GroupAccess, IpAcl, PurgeOptions};

/// The settings of an API client: the create body without `createCredential`, and the
/// (full-replace) update body.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientSettings {
    pub client_type: ClientType,
    pub api_access: ApiAccess,
    pub group_access: GroupAccess,
    /// Exactly one user for `CLIENT` and `USER_CLIENT`.
    pub authorized_users: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_account_switch: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_auto_create_credential: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_acl: Option<IpAcl>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purge_options: Option<PurgeOptions>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notification_emails: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateClientBody<'a> {
    #[serde(flatten)]
    settings: &'a ClientSettings,
    /// The operator creates the credential itself, so it sees the secret and chooses the
    /// description and expiry.
    create_credential: bool,
}

/// An API client as the API describes it. Detail-only fields are `None` in lists.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AkamaiApiClient {
    pub client_id: String,
    #[serde(default)]
    pub client_name: Option<String>,
    #[serde(default)]
    pub client_description: Option<String>,
    #[serde(default)]
    pub client_type: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub is_locked: bool,
    #[serde(default)]
    pub active_credential_count: Option<u32>,
    #[serde(default)]
    pub allow_account_switch: Option<bool>,
    #[serde(default)]
    pub can_auto_create_credential: Option<bool>,
    #[serde(default)]
    pub authorized_users: Vec<String>,
    #[serde(default)]
    pub notification_emails: Vec<String>,
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub created_date: Option<String>,
    #[serde(default)]
    pub service_consumer_token: Option<String>,
    /// Kept as JSON: the API adds descriptive fields to these that the spec does not set.
    #[serde(default)]
    pub api_access: Option<serde_json::Value>,
    #[serde(default)]
    pub group_access: Option<serde_json::Value>,
    #[serde(default)]
    pub ip_acl: Option<serde_json::Value>,
    #[serde(default, rename = "baseURL")]
    pub base_url: Option<String>,
    #[serde(default)]
    pub credentials: Vec<Credential>,
}

impl Listed for AkamaiApiClient {
    fn name(&self) -> Option<&str> {
        self.client_name.as_deref()
    }
    fn id(&self) -> String {
        self.client_id.clone()
    }
}

/// Lifecycle of a credential: ACTIVE ⇄ INACTIVE → DELETED (terminal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CredentialStatus {
    Active,
    Inactive,
    Deleted,
}

/// A client credential, without its secret.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credential {
    pub credential_id: i64,
    pub client_token: String,
    pub status: CredentialStatus,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub created_on: Option<jiff::Timestamp>,
    #[serde(default)]
    pub expires_on: Option<jiff::Timestamp>,
    #[serde(default)]
    pub max_allowed_expiry: Option<jiff::Timestamp>,
}

/// A new credential with the secret the API shows only in the create response.
#[derive(Clone, Debug)]
pub struct IssuedCredential {
    pub credential: Credential,
    pub client_secret: SecretString,
}

/// The update body of a credential; every field is sent (status and expiry are required).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialUpdate {
    #[serde(serialize_with = "serialize_expiry")]
    pub expires_on: jiff::Timestamp,
    pub status: CredentialStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The API refuses an expiry without milliseconds, and one whose milliseconds are zero
/// (Akamai ticket IDM-3347; the official Go SDK adds a nanosecond for it). A whole-second
/// expiry — every one a spec gives, as Kubernetes times have no fraction — goes out as
/// `2028-10-11T23:06:59.000000001Z`, any other with its milliseconds.
fn serialize_expiry<S: serde::Serializer>(at: &jiff::Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
    let text = if at.subsec_millisecond() == 0 {
        format!("{}.000000001Z", at.strftime("%Y-%m-%dT%H:%M:%S"))
    } else {
        at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    };
    serializer.serialize_str(&text)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreatedCredential {
    #[serde(flatten)]
    credential: Credential,
    #[serde(default)]
    client_secret: Option<String>,
}

#[derive(Deserialize)]
struct Problem {
    #[serde(default, rename = "type")]
    problem_type: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

/// Client of one Akamai store.
#[derive(Debug)]
pub struct AkamaiClient {
    transport: Transport,
    /// The host requests go to (the `.edgerc` `host`), without scheme.
    host: String,
    signer: Signer,
    account_switch_key: Option<String>,
    names: NameIndex<AkamaiApiClient>,
}

impl AkamaiClient {
    /// `endpoint.base_url` is the store's `url`, or `https://{host}` from its `.edgerc`.
    pub fn new(
        endpoint: Endpoint,
        credential: ClientCredential,
        account_switch_key: Option<String>,
    ) -> Result<Self, UpstreamError> {
        let host = endpoint
            .base_url
            .split_once("://")
            .map_or(endpoint.base_url.as_str(), |(_, rest)| rest)
            .trim_end_matches('/')
            .to_owned();
        let endpoint = Endpoint {
            base_url: format!(
                "{}/identity-management/v3",
                endpoint.base_url.trim_end_matches('/')
            ),
            ..endpoint
        };
        let redactor = Redactor::new([credential.client_secret.clone()]);
        let transport = Transport::new(Api::Akamai, endpoint, Default::default(), parse_error, redactor)?;
        Ok(Self {
            transport,
            host,
            signer: Signer::new(credential, SigningPolicy::default()),
            account_switch_key,
            names: NameIndex::default(),
        })
    }

    /// HTTP requests sent so far, retries included.
    pub fn requests_sent(&self) -> u64 {
        self.transport.requests_sent()
    }

    /// The host this client sends requests to: where a new client's credentials work when
    /// the API names no `baseURL` for it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Reads the store's own client (`/api-clients/self`): proves the credential.
    pub async fn probe(&self) -> Result<AkamaiApiClient, UpstreamError> {
        self.call(
            "get_self",
            Method::GET,
            "/api-clients/self",
            &[],
            None,
            Retry::Safe,
        )
        .await?
        .json(Api::Akamai, "get_self")
    }

    /// Creates a client without credentials. Sent at most once past the connection.
    pub async fn create_client(&self, settings: &ClientSettings) -> Result<AkamaiApiClient, UpstreamError> {
        let body = Body::json(&CreateClientBody {
            settings,
            create_credential: false,
        });
        let created: AkamaiApiClient = self
            .call(
                "create_client",
                Method::POST,
                "/api-clients",
                &[],
                Some(body),
                Retry::Unsafe,
            )
            .await?
            .json(Api::Akamai, "create_client")?;
        self.names.seen(created.clone());
        Ok(created)
    }

    /// The client with its credentials, or `None` when there is none.
    pub async fn get_client(&self, client_id: &str) -> Result<Option<AkamaiApiClient>, UpstreamError> {
        let path = format!("/api-clients/{}", path_segment(Api::Akamai, client_id)?);
        let query = [
            ("credentials", "true"),
            ("apiAccess", "true"),
            ("groupAccess", "true"),
            ("ipAcl", "true"),
        ];
        let outcome = self
            .call("get_client", Method::GET, &path, &query, None, Retry::Safe)
            .await;
        found(outcome)?
            .map(|response| response.json(Api::Akamai, "get_client"))
            .transpose()
    }

    /// Every client the store's credential can see (the API does not paginate).
    pub async fn list_clients(&self) -> Result<Vec<AkamaiApiClient>, UpstreamError> {
        self.call(
            "list_clients",
            Method::GET,
            "/api-clients",
            &[],
            None,
            Retry::Safe,
        )
        .await?
        .json(Api::Akamai, "list_clients")
    }

    /// Clients named exactly `client_name`, as a list of every client shows them (the API
    /// has no name filter), taken now or recently as `lookup` says.
    pub async fn find_clients_by_name(
        &self,
        client_name: &str,
        lookup: Lookup,
    ) -> Result<Vec<AkamaiApiClient>, UpstreamError> {
        self.names
            .named(client_name, lookup, || self.list_clients())
            .await
    }

    /// Replaces the client's settings. A locked client must be unlocked first.
    pub async fn update_client(
        &self,
        client_id: &str,
        settings: &ClientSettings,
    ) -> Result<AkamaiApiClient, UpstreamError> {
        let path = format!("/api-clients/{}", path_segment(Api::Akamai, client_id)?);
        let updated: AkamaiApiClient = self
            .call(
                "update_client",
                Method::PUT,
                &path,
                &[],
                Some(Body::json(settings)),
                Retry::Safe,
            )
            .await?
            .json(Api::Akamai, "update_client")?;
        self.names.seen(updated.clone());
        Ok(updated)
    }

    /// Locks (`true`) or unlocks (`false`) the client.
    pub async fn set_locked(&self, client_id: &str, locked: bool) -> Result<AkamaiApiClient, UpstreamError> {
        let (operation, action) = if locked {
            ("lock_client", "lock")
        } else {
            ("unlock_client", "unlock")
        };
        let path = format!("/api-clients/{}/{action}", path_segment(Api::Akamai, client_id)?);
        self.call(operation, Method::PUT, &path, &[], None, Retry::Safe)
            .await?
            .json(Api::Akamai, operation)
    }

    /// Deletes the client. `Ok` also when it is already gone.
    pub async fn delete_client(&self, client_id: &str) -> Result<(), UpstreamError> {
        let path = format!("/api-clients/{}", path_segment(Api::Akamai, client_id)?);
        let outcome = self
            .call("delete_client", Method::DELETE, &path, &[], None, Retry::Safe)
            .await;
        found(outcome)?;
        self.names.deleted(client_id);
        Ok(())
    }

    /// Creates an ACTIVE credential with the API's default expiry. Sent at most once past
    /// the connection. Set its description and expiry with
    /// [`AkamaiClient::update_credential`] after the secret is safely stored: a failure
    /// there must not lose the secret, which this response alone carries.
    pub async fn create_credential(&self, client_id: &str) -> Result<IssuedCredential, UpstreamError> {
        let path = format!(
            "/api-clients/{}/credentials",
            path_segment(Api::Akamai, client_id)?
        );
        let response = self
            .call("create_credential", Method::POST, &path, &[], None, Retry::Unsafe)
            .await?;
        let created: CreatedCredential = response.json(Api::Akamai, "create_credential")?;
        let client_secret = created
            .client_secret
            .filter(|secret| !secret.is_empty())
            .ok_or_else(|| {
                UpstreamError::new(
                    ErrorClass::UpstreamBug,
                    Api::Akamai,
                    "create_credential",
                    "response carries no clientSecret",
                )
                .with_status(response.status)
            })?;
        Ok(IssuedCredential {
            credential: created.credential,
            client_secret: client_secret.into(),
        })
    }

    /// The client's credentials, without secrets.
    pub async fn list_credentials(&self, client_id: &str) -> Result<Vec<Credential>, UpstreamError> {
        let path = format!(
            "/api-clients/{}/credentials",
            path_segment(Api::Akamai, client_id)?
        );
        self.call("list_credentials", Method::GET, &path, &[], None, Retry::Safe)
            .await?
            .json(Api::Akamai, "list_credentials")
    }

    /// Sets a credential's status (ACTIVE/INACTIVE), expiry and description.
    pub async fn update_credential(
        &self,
        client_id: &str,
        credential_id: i64,
        update: &CredentialUpdate,
    ) -> Result<Credential, UpstreamError> {
        let path = credential_path(client_id, credential_id, "")?;
        self.call(
            "update_credential",
            Method::PUT,
            &path,
            &[],
            Some(Body::json(update)),
            Retry::Safe,
        )
        .await?
        .json(Api::Akamai, "update_credential")
    }

    /// Deactivates one credential (idempotent).
    pub async fn deactivate_credential(
        &self,
        client_id: &str,
        credential_id: i64,
    ) -> Result<(), UpstreamError> {
        let path = credential_path(client_id, credential_id, "/deactivate")?;
        self.call(
            "deactivate_credential",
            Method::POST,
            &path,
            &[],
            None,
            Retry::Safe,
        )
        .await
        .map(drop)
    }

    /// Deactivates every credential of the client (idempotent).
    pub async fn deactivate_all_credentials(&self, client_id: &str) -> Result<(), UpstreamError> {
        let path = format!(
            "/api-clients/{}/credentials/deactivate",
            path_segment(Api::Akamai, client_id)?
        );
        self.call(
            "deactivate_all_credentials",
            Method::POST,
            &path,
            &[],
            None,
            Retry::Safe,
        )
        .await
        .map(drop)
    }

    /// Deletes an INACTIVE credential. `Ok` also when it is already gone.
    pub async fn delete_credential(&self, client_id: &str, credential_id: i64) -> Result<(), UpstreamError> {
        let path = credential_path(client_id, credential_id, "")?;
        let outcome = self
            .call("delete_credential", Method::DELETE, &path, &[], None, Retry::Safe)
            .await;
        found(outcome).map(drop)
    }

    /// Sends a signed request; `accountSwitchKey` joins the query (it is part of the signed path).
    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Body>,
        retry: Retry,
    ) -> Result<Response, UpstreamError> {
        let mut query: Vec<(&str, &str)> = query.to_vec();
        if let Some(key) = &self.account_switch_key {
            query.push(("accountSwitchKey", key));
        }
        let path = if query.is_empty() {
            path.to_owned()
        } else {
            format!(
                "{path}?{}",
                serde_urlencoded::to_string(&query).expect("query encodes")
            )
        };
        let request = Request {
            operation,
            method,
            path,
            body,
            retry,
        };
        self.transport.send(&request, Auth::EdgeGrid(&self.signer)).await
    }
}

fn credential_path(client_id: &str, credential_id: i64, suffix: &str) -> Result<String, UpstreamError> {
    Ok(format!(
        "/api-clients/{}/credentials/{credential_id}{suffix}",
        path_segment(Api::Akamai, client_id)?
    ))
}

/// RFC 7807 problem details; the last segment of `type` serves as the code.
fn parse_error(status: u16, body: &[u8]) -> ErrorDetail {
    let problem = serde_json::from_slice::<Problem>(body).ok();
    let code = problem
        .as_ref()
        .and_then(|problem| problem.problem_type.as_deref())
        .and_then(|problem_type| problem_type.rsplit('/').next())
        .filter(|code| !code.is_empty())
        .map(str::to_owned);
    let message = problem
        .and_then(|problem| problem.detail.or(problem.title))
        .unwrap_or_else(|| default_message(status));
    ErrorDetail {
        class: ErrorClass::from_status(status),
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::upstream::edgegrid::{AuthorizationFields, RequestParts};
    use crate::upstream::http::ClientOptions;
    use crate::upstream::http::tests::{Answer, Scripted};
    use crate::upstream::ratelimit::StoreRateLimiter;

    /// The signature the client sends verifies, on the server side, against the request as
    /// received: path, `accountSwitchKey` query and host included.
    #[tokio::test]
    async fn requests_are_signed_as_sent() {
        let server = Scripted::start(vec![Answer::Status(
            201,
            &[],
            r#"{"credentialId":1,"clientToken":"akab-new","clientSecret":"new-secret","status":"ACTIVE"}"#,
        )])
        .await;
        let credential = ClientCredential {
            client_token: "akab-client".into(),
            client_secret: "c2VjcmV0".into(),
            access_token: "akab-access".into(),
        };
        let endpoint = Endpoint {
            store: "CredentialStore test/akamai".into(),
            store_kind: crate::api::StoreKind::CredentialStore,
            base_url: server.base_url.clone(),
            ca_bundle: None,
            limiter: Arc::new(StoreRateLimiter::new(100, 100)),
            options: ClientOptions::default(),
        };
        let client = AkamaiClient::new(endpoint, credential.clone(), Some("A-1:B".into())).unwrap();
        let issued = client.create_credential("cl1").await.unwrap();
        assert_eq!(issued.client_secret.expose(), "new-secret");

        let head = &server.requests()[0];
        let target = head.split(' ').nth(1).unwrap();
        assert_eq!(
            target,
            "/identity-management/v3/api-clients/cl1/credentials?accountSwitchKey=A-1%3AB"
        );
        let header = |name: &str| {
            head.lines()
                .find_map(|line| {
                    line.split_once(": ")
                        .filter(|(key, _)| key.eq_ignore_ascii_case(name))
                })
                .map(|(_, value)| value.trim().to_owned())
                .unwrap()
        };
        let fields = AuthorizationFields::parse(&header("authorization")).unwrap();
        assert_eq!(fields.client_token, "akab-client");
        let host = header("host");
        let received = RequestParts {
            method: "POST",
            scheme: "http",
            host: &host,
            path_and_query: target,
            headers: &[],
            body: b"",
        };
        fields
            .verify(&received, &SigningPolicy::default(), &credential.client_secret)
            .unwrap();
    }

    #[test]
    fn create_body_has_the_vendor_shape() {
        let settings = ClientSettings {
            client_type: ClientType::Client,
            api_access: ApiAccess {
                all_accessible_apis: Some(true),
                apis: None,
            },
            group_access: GroupAccess {
                clone_authorized_user_groups: Some(true),
                groups: None,
            },
            authorized_users: vec!["alice".into()],
            allow_account_switch: None,
            can_auto_create_credential: None,
            client_description: None,
            client_name: Some("ci".into()),
            ip_acl: None,
            purge_options: Some(PurgeOptions {
                can_purge_by_cache_tag: false,
                can_purge_by_cp_code: true,
                cp_code_access: crate::api::CpCodeAccess {
                    all_current_and_new_cp_codes: false,
                    cp_codes: vec![321],
                },
            }),
            notification_emails: vec![],
        };
        let body = serde_json::to_value(CreateClientBody {
            settings: &settings,
            create_credential: false,
        })
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "clientType": "CLIENT",
                "apiAccess": {"allAccessibleApis": true},
                "groupAccess": {"cloneAuthorizedUserGroups": true},
                "authorizedUsers": ["alice"],
                "clientName": "ci",
                "purgeOptions": {"canPurgeByCacheTag": false, "canPurgeByCpcode": true,
                                 "cpcodeAccess": {"allCurrentAndNewCpcodes": false, "cpcodes": [321]}},
                "createCredential": false,
            })
        );
    }

    #[test]
    fn credential_expiry_never_goes_out_with_zero_milliseconds() {
        let update = |at: &str| CredentialUpdate {
            expires_on: at.parse().unwrap(),
            status: CredentialStatus::Inactive,
            description: None,
        };
        assert_eq!(
            serde_json::to_value(update("2028-10-11T23:06:59Z")).unwrap(),
            serde_json::json!({"expiresOn": "2028-10-11T23:06:59.000000001Z", "status": "INACTIVE"})
        );
        assert_eq!(
            serde_json::to_value(update("2028-10-11T23:06:59.000400Z")).unwrap()["expiresOn"],
            "2028-10-11T23:06:59.000000001Z"
        );
        assert_eq!(
            serde_json::to_value(update("2028-10-11T23:06:59.123Z")).unwrap()["expiresOn"],
            "2028-10-11T23:06:59.123Z"
        );
    }

    #[test]
    fn problem_details_give_code_and_message() {
        let detail = parse_error(
            404,
            br#"{"type":"/identity-management/error-types/2","title":"Not Found","detail":"client x not found","statusCode":404}"#,
        );
        assert_eq!(detail.class, ErrorClass::NotFound);
        assert_eq!(detail.code.as_deref(), Some("2"));
        assert_eq!(detail.message, "client x not found");
    }

    #[test]
    fn created_credential_keeps_the_secret_apart() {
        let created: CreatedCredential = serde_json::from_str(
            r#"{"credentialId":5,"clientToken":"akab-ct","clientSecret":"s3cr3t","status":"ACTIVE",
                "createdOn":"2025-01-01T00:00:00.000Z","expiresOn":"2027-01-01T00:00:00.000Z","actions":{}}"#,
        )
        .unwrap();
        assert_eq!(created.credential.credential_id, 5);
        let issued = IssuedCredential {
            credential: created.credential,
            client_secret: created.client_secret.unwrap().into(),
        };
        assert!(!format!("{issued:?}").contains("s3cr3t"));
    }
}
