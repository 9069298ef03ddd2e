//! Akamai Identity and Access Management API v3: API clients and their
//! credentials (`/identity-management/v3/api-clients`), authenticated by EdgeGrid.

mod auth;
mod catalogue;
mod model;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::json;

use self::auth::{Caller, SignedRequest, authenticate};
use self::model::{
    Account, Client, ClientBody, ClientType, Credential, CredentialStatus, CredentialUpdate, Detail,
    MAX_CREDENTIAL_LIFETIME_MS,
};
use super::db::{DbError, Tx};
use super::http::{ApiError, json_response};
use super::secrets::{random_bytes, random_string, secret_hash};
use super::{AppState, Shared};

const API: &str = "akamai";
const ACCOUNT: &str = "account";
const CLIENT: &str = "api_client";
const CREDENTIAL: &str = "credential";
const BASE: &str = "/identity-management/v3/api-clients";
const ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(BASE, get(list_clients).post(create_client))
        .route(
            &format!("{BASE}/{{client}}"),
            get(get_client).put(update_client).delete(delete_client),
        )
        .route(&format!("{BASE}/{{client}}/lock"), put(lock))
        .route(&format!("{BASE}/{{client}}/unlock"), put(unlock))
        .route(
            &format!("{BASE}/{{client}}/credentials"),
            get(list_credentials).post(create_credential),
        )
        .route(
            &format!("{BASE}/{{client}}/credentials/deactivate"),
            post(deactivate_all),
        )
        .route(
            &format!("{BASE}/{{client}}/credentials/{{credential}}"),
            get(get_credential)
                .put(update_credential)
                .delete(delete_credential),
        )
        .route(
            &format!("{BASE}/{{client}}/credentials/{{credential}}/deactivate"),
            post(deactivate_credential),
        )
}

/// Ids written to `bootstrap.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapIds {
    pub account_id: String,
    pub account_switch_key: String,
    /// A second account the admin client may switch into.
    pub other_account_id: String,
    pub other_account_switch_key: String,
    pub client_id: String,
    pub credential_id: i64,
}

/// Two accounts and an admin API client (allowed to switch accounts) with one credential.
pub fn bootstrap(tx: &Tx<'_>, shared: &Shared, now_ms: i64) -> Result<BootstrapIds, DbError> {
    let home = Account {
        id: "A-CCT0001".into(),
        switch_key: "1-CREDST:1-ADMIN".into(),
    };
    let other = Account {
        id: "A-CCT0002".into(),
        switch_key: "1-CREDST:1-OTHER".into(),
    };
    tx.put(API, ACCOUNT, &home.id, "", &home)?;
    tx.put(API, ACCOUNT, &other.id, "", &other)?;
    let mut client = new_client(&home, "credstore-admin", now_ms);
    client.client_name = "credstore-admin".into();
    client.client_description = "Administers this credential store".into();
    client.allow_account_switch = true;
    client.can_auto_create_credential = true;
    client.api_access = json!({"allAccessibleApis": true});
    client.group_access = json!({"cloneAuthorizedUserGroups": true});
    tx.put(API, CLIENT, &client.client_id, &home.id, &client)?;
    let (credential, _) = issue_credential(tx, shared, &client, now_ms)?;
    Ok(BootstrapIds {
        account_id: home.id,
        account_switch_key: home.switch_key,
        other_account_id: other.id,
        other_account_switch_key: other.switch_key,
        client_id: client.client_id,
        credential_id: credential.credential_id,
    })
}

/// The admin `.edgerc` (section `[default]`), if its credential still exists.
pub fn edgerc(tx: &Tx<'_>, shared: &Shared, ids: &BootstrapIds) -> Result<Option<String>, DbError> {
    let Some(credential) = tx.get::<Credential>(API, CREDENTIAL, &ids.credential_id.to_string())? else {
        return Ok(None);
    };
    let Some(client) = tx.get::<Client>(API, CLIENT, &ids.client_id)? else {
        return Ok(None);
    };
    let Ok(secret) = shared.sealer.open(&credential.sealed_secret) else {
        return Ok(None);
    };
    let host = shared.base_url.trim_start_matches("http://");
    Ok(Some(format!(
        "[default]\nhost = {host}\nclient_token = {}\nclient_secret = {}\naccess_token = {}\n",
        credential.client_token,
        String::from_utf8_lossy(&secret),
        client.access_token
    )))
}

fn akab_token() -> String {
    format!(
        "akab-{}-{}",
        random_string(ID_ALPHABET, 16),
        random_string(ID_ALPHABET, 16)
    )
}

fn new_client(account: &Account, user: &str, now_ms: i64) -> Client {
    let client_id = random_string(ID_ALPHABET, 16);
    Client {
        client_name: client_id.clone(),
        client_id,
        account_id: account.id.clone(),
        client_description: String::new(),
        client_type: ClientType::Client,
        authorized_users: vec![user.to_owned()],
        allow_account_switch: false,
        can_auto_create_credential: false,
        is_locked: false,
        notification_emails: Vec::new(),
        api_access: json!({}),
        group_access: json!({}),
        ip_acl: json!({"enable": false, "cidr": []}),
        purge_options: None,
        created_by: user.to_owned(),
        created_ms: now_ms,
        access_token: akab_token(),
        service_consumer_token: akab_token(),
    }
}

fn issue_credential(
    tx: &Tx<'_>,
    shared: &Shared,
    client: &Client,
    now_ms: i64,
) -> Result<(Credential, String), DbError> {
    let secret = STANDARD.encode(random_bytes::<32>());
    let credential = Credential {
        credential_id: tx.next_sequence("akamai.credential")?,
        client_id: client.client_id.clone(),
        client_token: akab_token(),
        sealed_secret: shared.sealer.seal(secret.as_bytes()),
        created_ms: now_ms,
        expires_ms: now_ms + MAX_CREDENTIAL_LIFETIME_MS - 24 * 3600 * 1000,
        status: CredentialStatus::Active,
        description: String::new(),
    };
    let id = credential.credential_id.to_string();
    tx.put(API, CREDENTIAL, &id, &client.client_id, &credential)?;
    tx.add_credential(&secret_hash(API, &credential.client_token), API, &id, None)?;
    Ok((credential, secret))
}

fn not_found(what: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not-found", format!("{what} not found"))
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid-input", message)
}

/// Runs `work` in one transaction on the client `id` names, for the caller the request is
/// signed by: the prologue of every handler on one client.
fn on_client<T>(
    state: &AppState,
    request: &SignedRequest,
    id: &str,
    work: impl FnOnce(&Tx<'_>, &Caller, Client) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    state.db.write(|tx| {
        let caller = authenticate(tx, state, request)?;
        let client = resolve(tx, &caller, id)?;
        work(tx, &caller, client)
    })
}

/// `self` or a client of the caller's (possibly switched) account.
fn resolve(tx: &Tx<'_>, caller: &Caller, id: &str) -> Result<Client, ApiError> {
    if id == "self" {
        return Ok(caller.client.clone());
    }
    let client: Client = tx.get(API, CLIENT, id)?.ok_or_else(|| not_found("API client"))?;
    if client.account_id != caller.account.id {
        return Err(not_found("API client"));
    }
    Ok(client)
}

fn credentials_of(tx: &Tx<'_>, client: &Client) -> Result<Vec<Credential>, DbError> {
    tx.list(API, CREDENTIAL, Some(&client.client_id))
}

fn load_credential(tx: &Tx<'_>, client: &Client, raw: &str) -> Result<Credential, ApiError> {
    let id: i64 = raw.parse().map_err(|_| not_found("Credential"))?;
    let credential: Credential = tx
        .get(API, CREDENTIAL, &id.to_string())?
        .ok_or_else(|| not_found("Credential"))?;
    if credential.client_id != client.client_id {
        return Err(not_found("Credential"));
    }
    Ok(credential)
}

fn flag(request: &SignedRequest, name: &str) -> bool {
    form_urlencoded::parse(request.uri.query().unwrap_or_default().as_bytes())
        .any(|(n, v)| n == name && v == "true")
}

fn parse_body<T: serde::de::DeserializeOwned>(request: &SignedRequest) -> Result<T, ApiError> {
    serde_json::from_slice(&request.body).map_err(|e| bad(format!("The request body is not valid: {e}")))
}

fn client_response(
    tx: &Tx<'_>,
    shared: &Shared,
    client: &Client,
    detail: Detail,
) -> Result<serde_json::Value, ApiError> {
    Ok(model::client_json(
        client,
        &credentials_of(tx, client)?,
        &shared.base_url,
        detail,
    ))
}

async fn create_client(State(state): State<AppState>, request: SignedRequest) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    let value = state.db.write(|tx| {
        let caller = authenticate(tx, &state, &request)?;
        let settings = parse_body::<ClientBody>(&request)?.validate(false)?;
        let user = caller
            .client
            .authorized_users
            .first()
            .cloned()
            .unwrap_or_default();
        let mut client = new_client(&caller.account, &user, now_ms);
        let create_credential = settings.creates_credential();
        settings.apply_to(&mut client);
        tx.put(API, CLIENT, &client.client_id, &client.account_id, &client)?;
        let detail = Detail::full(caller.client.allow_account_switch);
        let mut value = client_response(tx, &state, &client, detail)?;
        if create_credential {
            let (credential, secret) = issue_credential(tx, &state, &client, now_ms)?;
            value["credentials"] = json!([model::credential_json(&credential, Some(&secret))]);
            value["activeCredentialCount"] = json!(1);
        }
        Ok::<_, ApiError>(value)
    })?;
    let mut response = json_response(StatusCode::CREATED, &value);
    let location = format!("{BASE}/{}", value["clientId"].as_str().unwrap_or_default());
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn list_clients(State(state): State<AppState>, request: SignedRequest) -> Result<Response, ApiError> {
    let clients = state.db.write(|tx| {
        let caller = authenticate(tx, &state, &request)?;
        let detail = Detail {
            actions: flag(&request, "actions"),
            caller_switches_accounts: caller.client.allow_account_switch,
            ..Detail::default()
        };
        let clients: Vec<Client> = tx.list(API, CLIENT, Some(&caller.account.id))?;
        clients
            .iter()
            .map(|c| client_response(tx, &state, c, detail))
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(json_response(StatusCode::OK, &json!(clients)))
}

async fn get_client(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: SignedRequest,
) -> Result<Response, ApiError> {
    let value = on_client(&state, &request, &id, |tx, caller, client| {
        let detail = Detail {
            actions: flag(&request, "actions"),
            api_access: flag(&request, "apiAccess"),
            group_access: flag(&request, "groupAccess"),
            credentials: flag(&request, "credentials"),
            ip_acl: flag(&request, "ipAcl"),
            caller_switches_accounts: caller.client.allow_account_switch,
        };
        client_response(tx, &state, &client, detail)
    })?;
    Ok(json_response(StatusCode::OK, &value))
}

async fn update_client(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: SignedRequest,
) -> Result<Response, ApiError> {
    let value = on_client(&state, &request, &id, |tx, caller, mut client| {
        let settings = parse_body::<ClientBody>(&request)?.validate(true)?;
        if client.is_locked {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "A locked API client cannot be changed; unlock it first",
            ));
        }
        settings.apply_to(&mut client);
        tx.put(API, CLIENT, &client.client_id, &client.account_id, &client)?;
        let detail = Detail {
            credentials: false,
            ..Detail::full(caller.client.allow_account_switch)
        };
        client_response(tx, &state, &client, detail)
    })?;
    Ok(json_response(StatusCode::OK, &value))
}

async fn delete_client(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: SignedRequest,
) -> Result<Response, ApiError> {
    on_client(&state, &request, &id, |tx, _, client| {
        for credential in credentials_of(tx, &client)? {
            let credential_id = credential.credential_id.to_string();
            tx.delete_credentials(API, &credential_id)?;
            tx.delete(API, CREDENTIAL, &credential_id)?;
        }
        tx.delete(API, CLIENT, &client.client_id)?;
        Ok::<_, ApiError>(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn lock(
    state: State<AppState>,
    id: Path<String>,
    request: SignedRequest,
) -> Result<Response, ApiError> {
    set_lock(state, id, request, true)
}

async fn unlock(
    state: State<AppState>,
    id: Path<String>,
    request: SignedRequest,
) -> Result<Response, ApiError> {
    if id.0 == "self" {
        return Err(not_found("Operation"));
    }
    set_lock(state, id, request, false)
}

fn set_lock(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: SignedRequest,
    locked: bool,
) -> Result<Response, ApiError> {
    let value = on_client(&state, &request, &id, |tx, caller, mut client| {
        client.is_locked = locked;
        tx.put(API, CLIENT, &client.client_id, &client.account_id, &client)?;
        client_response(
            tx,
            &state,
            &client,
            Detail {
                actions: true,
                caller_switches_accounts: caller.client.allow_account_switch,
                ..Detail::default()
            },
        )
    })?;
    Ok(json_response(StatusCode::OK, &value))
}

async fn create_credential(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: SignedRequest,
) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    let value = on_client(&state, &request, &id, |tx, _, client| {
        if !request.body.iter().all(u8::is_ascii_whitespace) {
            return Err(bad("This operation takes no request body"));
        }
        let (credential, secret) = issue_credential(tx, &state, &client, now_ms)?;
        Ok::<_, ApiError>(model::credential_json(&credential, Some(&secret)))
    })?;
    Ok(json_response(StatusCode::CREATED, &value))
}

async fn list_credentials(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: SignedRequest,
) -> Result<Response, ApiError> {
    let value = on_client(&state, &request, &id, |tx, _, client| {
        let credentials = credentials_of(tx, &client)?;
        Ok::<_, ApiError>(
            credentials
                .iter()
                .map(|c| model::credential_json(c, None))
                .collect::<Vec<_>>(),
        )
    })?;
    Ok(json_response(StatusCode::OK, &json!(value)))
}

fn save_credential(tx: &Tx<'_>, credential: &Credential) -> Result<(), DbError> {
    tx.put(
        API,
        CREDENTIAL,
        &credential.credential_id.to_string(),
        &credential.client_id,
        credential,
    )
}

async fn deactivate_all(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: SignedRequest,
) -> Result<Response, ApiError> {
    on_client(&state, &request, &id, |tx, _, client| {
        for mut credential in credentials_of(tx, &client)? {
            if credential.status == CredentialStatus::Active {
                credential.status = CredentialStatus::Inactive;
                save_credential(tx, &credential)?;
            }
        }
        Ok::<_, ApiError>(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_credential(
    State(state): State<AppState>,
    Path((id, credential)): Path<(String, String)>,
    request: SignedRequest,
) -> Result<Response, ApiError> {
    let value = on_client(&state, &request, &id, |tx, _, client| {
        Ok::<_, ApiError>(model::credential_json(
            &load_credential(tx, &client, &credential)?,
            None,
        ))
    })?;
    Ok(json_response(StatusCode::OK, &value))
}

async fn update_credential(
    State(state): State<AppState>,
    Path((id, credential)): Path<(String, String)>,
    request: SignedRequest,
) -> Result<Response, ApiError> {
    let now_ms = state.clock.now_ms();
    let value = on_client(&state, &request, &id, |tx, _, client| {
        let mut credential = load_credential(tx, &client, &credential)?;
        let body: CredentialUpdate = parse_body(&request)?;
        if credential.status == CredentialStatus::Deleted || body.status == CredentialStatus::Deleted {
            return Err(bad("Deleted credentials cannot be changed, and DELETE deletes"));
        }
        let expires_ms = body.expires_ms()?;
        if expires_ms > credential.created_ms + MAX_CREDENTIAL_LIFETIME_MS {
            return Err(bad("expiresOn is past maxAllowedExpiry"));
        }
        if expires_ms <= now_ms {
            return Err(bad("expiresOn must be in the future"));
        }
        credential.expires_ms = expires_ms;
        credential.status = body.status;
        if let Some(description) = body.description {
            credential.description = description;
        }
        save_credential(tx, &credential)?;
        Ok::<_, ApiError>(model::credential_json(&credential, None))
    })?;
    Ok(json_response(StatusCode::OK, &value))
}

async fn delete_credential(
    State(state): State<AppState>,
    Path((id, credential)): Path<(String, String)>,
    request: SignedRequest,
) -> Result<Response, ApiError> {
    on_client(&state, &request, &id, |tx, _, client| {
        let mut credential = load_credential(tx, &client, &credential)?;
        if credential.status != CredentialStatus::Inactive {
            return Err(bad(
                "Only an INACTIVE credential can be deleted; deactivate it first",
            ));
        }
        credential.status = CredentialStatus::Deleted;
        save_credential(tx, &credential)?;
        tx.delete_credentials(API, &credential.credential_id.to_string())?;
        Ok::<_, ApiError>(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn deactivate_credential(
    State(state): State<AppState>,
    Path((id, credential)): Path<(String, String)>,
    request: SignedRequest,
) -> Result<Response, ApiError> {
    on_client(&state, &request, &id, |tx, _, client| {
        let mut credential = load_credential(tx, &client, &credential)?;
        if credential.status == CredentialStatus::Deleted {
            return Err(bad("The credential is deleted"));
        }
        credential.status = CredentialStatus::Inactive;
        save_credential(tx, &credential)?;
        Ok::<_, ApiError>(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
