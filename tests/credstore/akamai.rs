use apikey_operator::upstream::edgegrid::{
    AuthorizationFields, ClientCredential, RequestParts, Signer, SigningPolicy, authorization_header,
    format_timestamp, new_nonce,
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Store, ids, status_json};

const CLIENTS: &str = "/identity-management/v3/api-clients";

struct EdgeClient<'a> {
    store: &'a Store,
    credential: ClientCredential,
    host: String,
}

fn parse_edgerc(text: &str) -> (String, ClientCredential) {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| {
                line.split_once(" = ")
                    .filter(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_owned())
            })
            .unwrap_or_else(|| panic!("{name} in .edgerc"))
    };
    assert!(text.starts_with("[default]\n"));
    let credential = ClientCredential {
        client_token: field("client_token"),
        client_secret: field("client_secret"),
        access_token: field("access_token"),
    };
    (field("host"), credential)
}

impl<'a> EdgeClient<'a> {
    fn admin(store: &'a Store) -> Self {
        let (host, credential) = parse_edgerc(&store.read_file("akamai.edgerc"));
        assert_eq!(format!("http://{host}"), store.base);
        Self {
            store,
            credential,
            host,
        }
    }

    fn for_credential(store: &'a Store, client: &Value, credential: &Value) -> Self {
        let credential = ClientCredential {
            client_token: credential["clientToken"].as_str().unwrap().into(),
            client_secret: credential["clientSecret"].as_str().unwrap().into(),
            access_token: client["accessToken"].as_str().unwrap().into(),
        };
        Self {
            store,
            credential,
            host: store.base.trim_start_matches("http://").into(),
        }
    }

    fn authorization(&self, method: &Method, path: &str, body: &[u8]) -> String {
        let parts = RequestParts {
            method: method.as_str(),
            scheme: "http",
            host: &self.host,
            path_and_query: path,
            headers: &[],
            body,
        };
        Signer::new(self.credential.clone(), SigningPolicy::default()).sign(&parts)
    }

    async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        authorization: String,
    ) -> (u16, Value) {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let mut request = self
            .store
            .request(method, path)
            .header("authorization", authorization);
        if !bytes.is_empty() {
            request = request.header("content-type", "application/json").body(bytes);
        }
        status_json(request.send().await.unwrap()).await
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let bytes = body
            .as_ref()
            .map(|b| b.to_string().into_bytes())
            .unwrap_or_default();
        let authorization = self.authorization(&method, path, &bytes);
        self.send_with(method, path, body, authorization).await
    }
}

fn create_body() -> Value {
    json!({
        "clientType": "CLIENT",
        "clientName": "ci-client",
        "authorizedUsers": ["admin"],
        "apiAccess": {"allAccessibleApis": true},
        "groupAccess": {"cloneAuthorizedUserGroups": true},
        "createCredential": true,
    })
}

#[tokio::test]
async fn clients_are_created_and_their_credentials_authenticate() {
    let store = Store::start().await;
    let admin = EdgeClient::admin(&store);
    let (status, me) = admin
        .send(
            Method::GET,
            &format!("{CLIENTS}/self?actions=true&credentials=true"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["clientId"], ids(&store)["akamai"]["clientId"]);
    assert_eq!(me["actions"]["lock"], true);
    assert!(me["credentials"][0].get("clientSecret").is_none());

    let (status, client) = admin.send(Method::POST, CLIENTS, Some(create_body())).await;
    assert_eq!(status, 201, "{client}");
    assert_eq!(client["clientName"], "ci-client");
    assert_eq!(client["activeCredentialCount"], 1);
    let credential = &client["credentials"][0];
    assert!(credential["clientToken"].as_str().unwrap().starts_with("akab-"));
    assert!(
        credential["expiresOn"].as_str().unwrap().ends_with(".000Z")
            || credential["expiresOn"].as_str().unwrap().ends_with('Z')
    );
    let client_id = client["clientId"].as_str().unwrap().to_owned();
    let credential_id = credential["credentialId"].as_i64().unwrap();

    let issued = EdgeClient::for_credential(&store, &client, credential);
    let (status, own) = issued.send(Method::GET, &format!("{CLIENTS}/self"), None).await;
    assert_eq!(
        (status, own["clientId"].as_str()),
        (200, Some(client_id.as_str())),
        "the issued credential authenticates"
    );

    let (status, listed) = admin.send(Method::GET, CLIENTS, None).await;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().unwrap().len(), 2);

    // Lock: the client cannot be used, nor changed until unlocked.
    let (status, locked) = admin
        .send(Method::PUT, &format!("{CLIENTS}/{client_id}/lock"), None)
        .await;
    assert_eq!((status, &locked["isLocked"]), (200, &json!(true)));
    assert_eq!(
        issued.send(Method::GET, &format!("{CLIENTS}/self"), None).await.0,
        401
    );
    let mut update = create_body();
    update.as_object_mut().unwrap().remove("createCredential");
    update["clientDescription"] = json!("changed");
    assert_eq!(
        admin
            .send(
                Method::PUT,
                &format!("{CLIENTS}/{client_id}"),
                Some(update.clone())
            )
            .await
            .0,
        409
    );
    assert_eq!(
        admin
            .send(Method::PUT, &format!("{CLIENTS}/{client_id}/unlock"), None)
            .await
            .0,
        200
    );
    let (status, updated) = admin
        .send(Method::PUT, &format!("{CLIENTS}/{client_id}"), Some(update))
        .await;
    assert_eq!(
        (status, updated["clientDescription"].as_str()),
        (200, Some("changed")),
        "{updated}"
    );
    assert_eq!(
        issued.send(Method::GET, &format!("{CLIENTS}/self"), None).await.0,
        200
    );

    // Credentials: a second one, deactivate the first, delete it.
    let (status, second) = admin
        .send(Method::POST, &format!("{CLIENTS}/{client_id}/credentials"), None)
        .await;
    assert_eq!(status, 201);
    assert!(second["clientSecret"].is_string());
    let creds_path = format!("{CLIENTS}/{client_id}/credentials");
    let (_, list) = admin.send(Method::GET, &creds_path, None).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|c| c.get("clientSecret").is_none())
    );

    assert_eq!(
        admin
            .send(Method::DELETE, &format!("{creds_path}/{credential_id}"), None)
            .await
            .0,
        400,
        "only INACTIVE can be deleted"
    );
    assert_eq!(
        admin
            .send(
                Method::POST,
                &format!("{creds_path}/{credential_id}/deactivate"),
                None
            )
            .await
            .0,
        204
    );
    assert_eq!(
        issued.send(Method::GET, &format!("{CLIENTS}/self"), None).await.0,
        401,
        "a deactivated credential does not authenticate"
    );
    let (status, reactivated) = admin
        .send(
            Method::PUT,
            &format!("{creds_path}/{credential_id}"),
            Some(json!({"expiresOn": "2099-01-01T00:00:00.000Z", "status": "ACTIVE"})),
        )
        .await;
    assert_eq!(status, 400, "past maxAllowedExpiry: {reactivated}");
    let soon = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24))
        .strftime("%Y-%m-%dT%H:%M:%S.000Z")
        .to_string();
    let (status, reactivated) = admin
        .send(
            Method::PUT,
            &format!("{creds_path}/{credential_id}"),
            Some(json!({"expiresOn": soon, "status": "ACTIVE", "description": "d"})),
        )
        .await;
    assert_eq!(
        (status, reactivated["status"].as_str()),
        (200, Some("ACTIVE")),
        "{reactivated}"
    );
    assert_eq!(
        issued.send(Method::GET, &format!("{CLIENTS}/self"), None).await.0,
        200
    );
    store.advance_clock(25 * 3600).await;
    assert_eq!(
        issued.send(Method::GET, &format!("{CLIENTS}/self"), None).await.0,
        401,
        "an expired credential does not authenticate"
    );

    assert_eq!(
        admin
            .send(Method::POST, &format!("{creds_path}/deactivate"), None)
            .await
            .0,
        204
    );
    assert_eq!(
        admin
            .send(Method::DELETE, &format!("{creds_path}/{credential_id}"), None)
            .await
            .0,
        204
    );
    let (_, deleted) = admin
        .send(Method::GET, &format!("{creds_path}/{credential_id}"), None)
        .await;
    assert_eq!(deleted["status"], "DELETED");

    assert_eq!(
        admin
            .send(Method::DELETE, &format!("{CLIENTS}/{client_id}"), None)
            .await
            .0,
        204
    );
    let (status, problem) = admin
        .send(Method::GET, &format!("{CLIENTS}/{client_id}"), None)
        .await;
    assert_eq!((status, problem["statusCode"].as_u64()), (404, Some(404)));
}

#[tokio::test]
async fn signatures_are_verified_with_skew_and_replay_protection() {
    let store = Store::start().await;
    let admin = EdgeClient::admin(&store);
    let path = format!("{CLIENTS}/self");

    let authorization = admin.authorization(&Method::GET, &path, b"");
    assert_eq!(
        admin
            .send_with(Method::GET, &path, None, authorization.clone())
            .await
            .0,
        200
    );
    let (status, problem) = admin.send_with(Method::GET, &path, None, authorization).await;
    assert_eq!(status, 401, "a replayed nonce is refused");
    assert_eq!(problem["title"], "Unauthorized");
    assert!(problem["type"].is_string() && problem["instance"].is_string() && problem["detail"].is_string());

    let tampered = admin.authorization(&Method::GET, &format!("{path}?actions=true"), b"");
    assert_eq!(
        admin.send_with(Method::GET, &path, None, tampered).await.0,
        401,
        "signed for another path"
    );

    let body = create_body();
    let signed_for_other_body = admin.authorization(&Method::POST, CLIENTS, b"{}");
    assert_eq!(
        admin
            .send_with(Method::POST, CLIENTS, Some(body), signed_for_other_body)
            .await
            .0,
        401,
        "body hash mismatch"
    );

    let old = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(10);
    let parts = RequestParts {
        method: "GET",
        scheme: "http",
        host: &admin.host,
        path_and_query: &path,
        headers: &[],
        body: b"",
    };
    let stale = authorization_header(
        &admin.credential,
        &SigningPolicy::default(),
        &parts,
        &format_timestamp(old),
        &new_nonce(),
    );
    let (status, problem) = admin.send_with(Method::GET, &path, None, stale).await;
    assert_eq!(status, 401);
    assert!(problem["detail"].as_str().unwrap().contains("skew"), "{problem}");

    let mut wrong_secret = admin.credential.clone();
    wrong_secret.client_secret = "d3Jvbmc=".into();
    let forged = authorization_header(
        &wrong_secret,
        &SigningPolicy::default(),
        &parts,
        &format_timestamp(jiff::Timestamp::now()),
        &new_nonce(),
    );
    assert!(AuthorizationFields::parse(&forged).is_ok());
    assert_eq!(admin.send_with(Method::GET, &path, None, forged).await.0, 401);

    let https_signed = {
        let parts = RequestParts {
            scheme: "https",
            ..parts
        };
        Signer::new(admin.credential.clone(), SigningPolicy::default()).sign(&parts)
    };
    assert_eq!(
        admin.send_with(Method::GET, &path, None, https_signed).await.0,
        200,
        "clients that sign https are accepted"
    );
    let (status, _) = status_json(store.request(Method::GET, &path).send().await.unwrap()).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn account_switch_key_scopes_clients() {
    let store = Store::start().await;
    let admin = EdgeClient::admin(&store);
    let other = ids(&store)["akamai"]["otherAccountSwitchKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let switched = format!("{CLIENTS}?accountSwitchKey={other}");
    let (status, created) = admin.send(Method::POST, &switched, Some(create_body())).await;
    assert_eq!(status, 201, "{created}");
    let (_, in_other) = admin.send(Method::GET, &switched, None).await;
    assert_eq!(in_other.as_array().unwrap().len(), 1);
    let (_, at_home) = admin.send(Method::GET, CLIENTS, None).await;
    assert_eq!(
        at_home.as_array().unwrap().len(),
        1,
        "only the admin client lives at home"
    );
    let id = created["clientId"].as_str().unwrap();
    assert_eq!(
        admin.send(Method::GET, &format!("{CLIENTS}/{id}"), None).await.0,
        404
    );
    assert_eq!(
        admin
            .send(
                Method::GET,
                &format!("{CLIENTS}/{id}?accountSwitchKey={other}"),
                None
            )
            .await
            .0,
        200
    );
    assert_eq!(
        admin
            .send(
                Method::GET,
                &format!("{CLIENTS}?accountSwitchKey=1-NOPE:1-NOPE"),
                None
            )
            .await
            .0,
        403
    );

    let issued = EdgeClient::for_credential(&store, &created, &created["credentials"][0]);
    assert_eq!(
        issued
            .send(
                Method::GET,
                &format!(
                    "{CLIENTS}?accountSwitchKey={}",
                    ids(&store)["akamai"]["accountSwitchKey"].as_str().unwrap()
                ),
                None
            )
            .await
            .0,
        403,
        "a client without allowAccountSwitch cannot switch"
    );
}

#[tokio::test]
async fn bodies_with_unknown_or_invalid_fields_are_refused() {
    let store = Store::start().await;
    let admin = EdgeClient::admin(&store);
    let mut extra = create_body();
    extra["surprise"] = json!(true);
    let (status, problem) = admin.send(Method::POST, CLIENTS, Some(extra)).await;
    assert_eq!(status, 400);
    assert!(
        problem["detail"].as_str().unwrap().contains("surprise"),
        "{problem}"
    );

    let mut nested_extra = create_body();
    nested_extra["apiAccess"] = json!({"allAccessibleApis": true, "bogus": 1});
    assert_eq!(admin.send(Method::POST, CLIENTS, Some(nested_extra)).await.0, 400);

    let mut two_users = create_body();
    two_users["authorizedUsers"] = json!(["a", "b"]);
    assert_eq!(admin.send(Method::POST, CLIENTS, Some(two_users)).await.0, 400);

    let mut missing = create_body();
    missing.as_object_mut().unwrap().remove("groupAccess");
    assert_eq!(admin.send(Method::POST, CLIENTS, Some(missing)).await.0, 400);

    let me = ids(&store)["akamai"]["clientId"].as_str().unwrap().to_owned();
    assert_eq!(
        admin
            .send(Method::PUT, &format!("{CLIENTS}/{me}"), Some(create_body()))
            .await
            .0,
        400,
        "createCredential is not part of an update"
    );
    assert_eq!(
        admin
            .send(Method::PUT, &format!("{CLIENTS}/self/unlock"), None)
            .await
            .0,
        404
    );
}
