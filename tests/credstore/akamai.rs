use apikey_operator::upstream::edgegrid::{
    AuthorizationFields, ClientCredential, RequestParts, Signer, SigningPolicy, authorization_header,
    format_timestamp, new_nonce,
};
use reqwest::Method;
use serde_json::{Value, json};

use apikey_operator_test_support::credstore::{Store, status_json};

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
        let (host, credential) = parse_edgerc(&store.file("akamai.edgerc"));
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
    assert_eq!(me["clientId"], store.ids("akamai")["clientId"]);
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
    let other = store.ids("akamai")["otherAccountSwitchKey"]
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
                    store.ids("akamai")["accountSwitchKey"].as_str().unwrap()
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

    let me = store.ids("akamai")["clientId"].as_str().unwrap().to_owned();
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

/// What the official Go SDK (edgegrid-golang v11) and Terraform send: `cidr: null`,
/// `purgeOptions`, and the `CREDENTIAL-*` and `READ` access levels.
fn sdk_create_body() -> Value {
    json!({
        "allowAccountSwitch": false,
        "apiAccess": {"allAccessibleApis": false, "apis": [
            {"apiId": 1, "accessLevel": "CREDENTIAL-READ-WRITE"},
            {"apiId": 5580, "accessLevel": "CREDENTIAL-READ-ONLY"},
            {"apiId": 5801, "accessLevel": "READ"},
        ]},
        "authorizedUsers": ["sdk-user"],
        "canAutoCreateCredential": false,
        "clientDescription": "",
        "clientName": "",
        "clientType": "CLIENT",
        "createCredential": false,
        "groupAccess": {"cloneAuthorizedUserGroups": false, "groups": [
            {"groupId": 10, "roleId": 5, "subgroups": [{"groupId": 11, "roleId": 6, "subgroups": null}]},
        ]},
        "ipAcl": {"cidr": null, "enable": false},
        "notificationEmails": null,
        "purgeOptions": {"canPurgeByCacheTag": true, "canPurgeByCpcode": true,
            "cpcodeAccess": {"allCurrentAndNewCpcodes": false, "cpcodes": [101]}},
    })
}

#[tokio::test]
async fn sdk_bodies_are_accepted_and_answered_with_details() {
    let store = Store::start().await;
    let admin = EdgeClient::admin(&store);
    let (status, created) = admin.send(Method::POST, CLIENTS, Some(sdk_create_body())).await;
    assert_eq!(status, 201, "{created}");
    let id = created["clientId"].as_str().unwrap();
    assert_eq!(
        created["clientName"], id,
        "an empty clientName gets a generated name"
    );
    assert_eq!(created["ipAcl"], json!({"enable": false, "cidr": []}));
    assert_eq!(
        created["purgeOptions"],
        sdk_create_body()["purgeOptions"],
        "purgeOptions are kept"
    );
    let apis = created["apiAccess"]["apis"].as_array().unwrap();
    let levels: Vec<(i64, &str)> = apis
        .iter()
        .map(|a| (a["apiId"].as_i64().unwrap(), a["accessLevel"].as_str().unwrap()))
        .collect();
    assert_eq!(
        levels,
        [
            (1, "CREDENTIAL-READ-WRITE"),
            (5580, "CREDENTIAL-READ-ONLY"),
            (5801, "READ")
        ]
    );
    assert!(
        apis.iter()
            .all(|a| ["apiName", "description", "endPoint", "documentationUrl"]
                .iter()
                .all(|k| a[k].as_str().is_some_and(|v| !v.is_empty()))),
        "{apis:?}"
    );
    let group = &created["groupAccess"]["groups"][0];
    assert_eq!((&group["groupId"], &group["roleId"]), (&json!(10), &json!(5)));
    assert!(
        group["groupName"].is_string()
            && group["roleName"].is_string()
            && group["roleDescription"].is_string()
    );
    assert_eq!(group["subGroups"][0]["roleId"], 6, "subgroups are described too");

    let mut update = sdk_create_body();
    update.as_object_mut().unwrap().remove("createCredential");
    update["clientName"] = json!("renamed");
    update["purgeOptions"] = json!({"canPurgeByCacheTag": false, "canPurgeByCpcode": false,
        "cpcodeAccess": {"allCurrentAndNewCpcodes": true, "cpcodes": null}});
    let (status, updated) = admin
        .send(Method::PUT, &format!("{CLIENTS}/{id}"), Some(update.clone()))
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        updated["purgeOptions"]["cpcodeAccess"],
        json!({"allCurrentAndNewCpcodes": true, "cpcodes": []})
    );
    update["clientName"] = json!("");
    assert_eq!(
        admin
            .send(Method::PUT, &format!("{CLIENTS}/{id}"), Some(update))
            .await
            .0,
        400,
        "an update names the client"
    );
}

#[tokio::test]
async fn get_options_select_parts_and_all_access_is_spelled_out() {
    let store = Store::start().await;
    let admin = EdgeClient::admin(&store);
    let (_, api_only) = admin
        .send(Method::GET, &format!("{CLIENTS}/self?apiAccess=true"), None)
        .await;
    assert!(api_only.get("groupAccess").is_none(), "{api_only}");
    assert!(
        api_only["purgeOptions"].is_object(),
        "purgeOptions come with apiAccess"
    );
    let apis = api_only["apiAccess"]["apis"].as_array().unwrap();
    assert!(apis.len() >= 2, "allAccessibleApis lists the APIs: {apis:?}");

    let (_, groups_only) = admin
        .send(Method::GET, &format!("{CLIENTS}/self?groupAccess=true"), None)
        .await;
    assert!(groups_only.get("apiAccess").is_none() && groups_only.get("purgeOptions").is_none());
    let cloned = &groups_only["groupAccess"]["groups"][0];
    assert!(
        cloned["groupId"].as_i64().unwrap() > 0 && cloned["roleName"].is_string(),
        "{groups_only}"
    );

    let (_, plain) = admin.send(Method::GET, &format!("{CLIENTS}/self"), None).await;
    assert!(plain.get("purgeOptions").is_none() && plain.get("actions").is_none());
}

#[tokio::test]
async fn actions_offer_every_edit_and_account_switching_only_to_switchers() {
    let store = Store::start().await;
    let admin = EdgeClient::admin(&store);
    let (_, created) = admin.send(Method::POST, CLIENTS, Some(create_body())).await;
    let actions = &created["actions"];
    for edit in [
        "edit",
        "editApis",
        "editAuth",
        "editGroups",
        "editIpAcl",
        "editSwitchAccount",
    ] {
        assert_eq!(actions[edit], true, "{edit} for an admin that switches accounts");
    }
    let issued = EdgeClient::for_credential(&store, &created, &created["credentials"][0]);
    let (_, own) = issued
        .send(Method::GET, &format!("{CLIENTS}/self?actions=true"), None)
        .await;
    assert_eq!(own["actions"]["editSwitchAccount"], false, "{own}");
    assert_eq!(own["actions"]["editApis"], true);

    let id = created["clientId"].as_str().unwrap();
    let (_, locked) = admin
        .send(Method::PUT, &format!("{CLIENTS}/{id}/lock"), None)
        .await;
    for edit in [
        "edit",
        "editApis",
        "editAuth",
        "editGroups",
        "editIpAcl",
        "editSwitchAccount",
        "lock",
    ] {
        assert_eq!(locked["actions"][edit], false, "{edit} on a locked client");
    }
}

#[tokio::test]
async fn purge_options_need_a_consistent_cpcode_list() {
    let store = Store::start().await;
    let admin = EdgeClient::admin(&store);
    for access in [
        json!({"allCurrentAndNewCpcodes": false, "cpcodes": null}),
        json!({"allCurrentAndNewCpcodes": false}),
        json!({"allCurrentAndNewCpcodes": true, "cpcodes": [101]}),
    ] {
        let mut body = create_body();
        body["purgeOptions"] =
            json!({"canPurgeByCacheTag": false, "canPurgeByCpcode": true, "cpcodeAccess": access});
        let (status, problem) = admin.send(Method::POST, CLIENTS, Some(body)).await;
        assert_eq!(status, 400, "{access}");
        assert!(
            problem["detail"].as_str().unwrap().contains("cpcodes"),
            "{problem}"
        );
    }
    let mut body = create_body();
    body["apiAccess"] = json!({"apis": [{"apiId": 1, "accessLevel": "ADMIN"}]});
    assert_eq!(admin.send(Method::POST, CLIENTS, Some(body)).await.0, 400);
}

#[tokio::test]
async fn credential_expiry_needs_fractional_seconds_like_upstream() {
    let store = Store::start().await;
    let admin = EdgeClient::admin(&store);
    let (_, client) = admin.send(Method::POST, CLIENTS, Some(create_body())).await;
    let path = format!(
        "{CLIENTS}/{}/credentials/{}",
        client["clientId"].as_str().unwrap(),
        client["credentials"][0]["credentialId"]
    );
    let whole = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 30))
        .strftime("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let update = |expires_on: String| Some(json!({"expiresOn": expires_on, "status": "ACTIVE"}));
    let (status, problem) = admin.send(Method::PUT, &path, update(format!("{whole}Z"))).await;
    assert_eq!(status, 400, "no fractional seconds: {problem}");
    // The Go SDK's work-around for that: whole seconds plus one nanosecond.
    let (status, updated) = admin
        .send(Method::PUT, &path, update(format!("{whole}.000000001Z")))
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["expiresOn"], format!("{whole}.000Z"));
    let (_, stored) = admin.send(Method::GET, &path, None).await;
    assert_eq!(stored["expiresOn"], format!("{whole}.000Z"));
    let (status, _) = admin
        .send(Method::PUT, &path, update(format!("{whole}.250Z")))
        .await;
    assert_eq!(status, 200);
}
