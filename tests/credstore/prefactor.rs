use reqwest::Method;
use serde_json::{Value, json};

use apikey_operator_test_support::credstore::{Store, status_json};

fn admin_token(store: &Store) -> String {
    store.file("prefactor.token")
}

async fn call(store: &Store, token: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = store.request(method, path).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    status_json(request.send().await.unwrap()).await
}

async fn ping(store: &Store, token: &str) -> u16 {
    call(store, token, Method::GET, "/api/v1/ping", None).await.0
}

async fn create(store: &Store, body: Value) -> (String, String) {
    let (status, body) = call(
        store,
        &admin_token(store),
        Method::POST,
        "/api/v1/api_token",
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (
        body["details"]["id"].as_str().unwrap().to_owned(),
        body["token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn bearer_authentication() {
    let store = Store::start().await;
    assert_eq!(ping(&store, &admin_token(&store)).await, 200);

    let (status, body) = call(&store, "pfat_wrong", Method::GET, "/api/v1/ping", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("bad_authtoken")),
        "{body}"
    );

    let (status, body) = status_json(
        store
            .request(Method::GET, "/api/v1/api_token")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"status": "error", "code": "not_authenticated", "message": "missing bearer token"})
    );
}

#[tokio::test]
async fn lifecycle_follows_the_state_machine_and_authentication_follows_state() {
    let store = Store::start().await;
    let admin = admin_token(&store);
    let account_id = store.ids("prefactor")["accountId"].as_str().unwrap().to_owned();
    let (status, created) = call(
        &store,
        &admin,
        Method::POST,
        "/api/v1/api_token",
        Some(json!({"details": {"token_scope": "account"}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let details = &created["details"];
    let id = details["id"].as_str().unwrap();
    let token = created["token"].as_str().unwrap();
    assert!(regex_like_id(id), "{id}");
    assert_eq!(details["type"], "api_token");
    assert_eq!(details["account_id"], account_id.as_str());
    assert_eq!(details["status"], "active");
    assert_eq!(details["environment_id"], Value::Null);
    assert_eq!(
        details["created_by_admin_user_id"],
        store.ids("prefactor")["adminUserId"]
    );
    assert_eq!(
        details["available_actions"],
        json!({"activate": false, "suspend": true, "revoke": true, "delete": false})
    );
    assert_eq!(ping(&store, token).await, 200);

    let (status, shown) = call(
        &store,
        &admin,
        Method::GET,
        &format!("/api/v1/api_token/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        shown.get("token").is_none(),
        "the token is shown only at creation"
    );
    assert!(
        shown["details"]["last_used_at"].is_string(),
        "ping records last use: {shown}"
    );

    let (status, body) = call(
        &store,
        &admin,
        Method::POST,
        &format!("/api/v1/api_token/{id}/suspend"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["details"]["status"], "suspended");
    assert_eq!(
        body["details"]["available_actions"],
        json!({"activate": true, "suspend": false, "revoke": true, "delete": false})
    );
    assert_eq!(
        ping(&store, token).await,
        401,
        "a suspended token does not authenticate"
    );

    let (status, body) = call(
        &store,
        &admin,
        Method::POST,
        &format!("/api/v1/api_token/{id}/suspend"),
        Some(json!({})),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("invalid_action")));

    let (status, _) = call(
        &store,
        &admin,
        Method::POST,
        &format!("/api/v1/api_token/{id}/activate"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ping(&store, token).await, 200);

    let (status, body) = call(
        &store,
        &admin,
        Method::DELETE,
        &format!("/api/v1/api_token/{id}"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("invalid_action")),
        "only revoked tokens can be deleted"
    );

    let (status, body) = call(
        &store,
        &admin,
        Method::POST,
        &format!("/api/v1/api_token/{id}/revoke"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["details"]["available_actions"],
        json!({"activate": false, "suspend": false, "revoke": false, "delete": true})
    );
    assert_eq!(
        ping(&store, token).await,
        401,
        "a revoked token does not authenticate"
    );
    let (status, _) = call(
        &store,
        &admin,
        Method::POST,
        &format!("/api/v1/api_token/{id}/activate"),
        None,
    )
    .await;
    assert_eq!(status, 409, "revoked is terminal");

    let (status, body) = call(
        &store,
        &admin,
        Method::DELETE,
        &format!("/api/v1/api_token/{id}"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["details"]["status"].as_str()),
        (200, Some("revoked"))
    );
    let (status, body) = call(
        &store,
        &admin,
        Method::GET,
        &format!("/api/v1/api_token/{id}"),
        None,
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
}

fn regex_like_id(id: &str) -> bool {
    id.len() == 32
        && ('0'..='7').contains(&id.chars().next().unwrap())
        && id.chars().all(|c| "0123456789abcdefghjkmnpqrstvwxyz".contains(c))
}

#[tokio::test]
async fn idempotency_key_replays_the_original_response_and_refuses_a_different_request() {
    let store = Store::start().await;
    let admin = admin_token(&store);
    let body = json!({"details": {"token_scope": "account"}, "idempotency_key": "create-1"});
    let first = call(
        &store,
        &admin,
        Method::POST,
        "/api/v1/api_token",
        Some(body.clone()),
    )
    .await;
    let again = call(&store, &admin, Method::POST, "/api/v1/api_token", Some(body)).await;
    assert_eq!(first.0, 201);
    assert_eq!(
        first, again,
        "same request, same key: the original response, token included"
    );
    assert_eq!(ping(&store, first.1["token"].as_str().unwrap()).await, 200);

    let (status, list) = call(&store, &admin, Method::GET, "/api/v1/api_token", None).await;
    assert_eq!(
        (status, list["pagination"]["item_count"].as_u64()),
        (200, Some(1)),
        "no twin was created"
    );

    let different = json!({"details": {"token_scope": "account", "expires_at": "2099-01-01T00:00:00Z"}, "idempotency_key": "create-1"});
    let (status, body) = call(&store, &admin, Method::POST, "/api/v1/api_token", Some(different)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("idempotency_key_already_used"))
    );

    let id = first.1["details"]["id"].as_str().unwrap();
    let suspend = |key: &str| json!({"idempotency_key": key});
    let path = format!("/api/v1/api_token/{id}/suspend");
    let s1 = call(&store, &admin, Method::POST, &path, Some(suspend("s-1"))).await;
    let s2 = call(&store, &admin, Method::POST, &path, Some(suspend("s-1"))).await;
    assert_eq!(s1.0, 200);
    assert_eq!(
        s1, s2,
        "a replayed suspend is answered like the first, not with invalid_action"
    );

    let (status, body) = call(
        &store,
        &admin,
        Method::POST,
        &path,
        Some(json!({"idempotency_key": ""})),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (422, Some("invalid_value")));
}

#[tokio::test]
async fn expiry_follows_the_store_clock() {
    let store = Store::start().await;
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 30);
    let (_, token) = create(
        &store,
        json!({"details": {"token_scope": "account", "expires_at": expires.to_string()}}),
    )
    .await;
    assert_eq!(ping(&store, &token).await, 200);
    store.advance_clock(29 * 24 * 3600).await;
    assert_eq!(ping(&store, &token).await, 200);
    store.advance_clock(2 * 24 * 3600).await;
    assert_eq!(
        ping(&store, &token).await,
        401,
        "past expires_at the token stops authenticating"
    );

    let (status, body) = call(
        &store,
        &admin_token(&store),
        Method::POST,
        "/api/v1/api_token",
        Some(json!({"details": {"token_scope": "account", "expires_at": expires.to_string()}})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_value")),
        "expires_at in the (store's) past"
    );
}

#[tokio::test]
async fn environment_scope_is_validated_and_cannot_manage_tokens() {
    let store = Store::start().await;
    let admin = admin_token(&store);
    let env = store.ids("prefactor")["environmentId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = call(
        &store,
        &admin,
        Method::POST,
        "/api/v1/api_token",
        Some(json!({"details": {"token_scope": "environment"}})),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (422, Some("required_value")));
    let (status, body) = call(&store, &admin, Method::POST, "/api/v1/api_token",
        Some(json!({"details": {"token_scope": "environment", "environment_id": "0000000000000000000000000000000z"}}))).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));

    let (_, token) = create(
        &store,
        json!({"details": {"token_scope": "environment", "environment_id": env}}),
    )
    .await;
    assert_eq!(ping(&store, &token).await, 200);
    let (status, body) = call(&store, &token, Method::GET, "/api/v1/api_token", None).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("not_permitted")));
}

#[tokio::test]
async fn list_paginates_and_sorts() {
    let store = Store::start().await;
    let admin = admin_token(&store);
    let mut ids = Vec::new();
    for _ in 0..7 {
        ids.push(
            create(&store, json!({"details": {"token_scope": "account"}}))
                .await
                .0,
        );
        store.advance_clock(1).await;
    }
    let (status, page) = call(
        &store,
        &admin,
        Method::GET,
        "/api/v1/api_token?pagination[offset]=3&pagination[page_size]=3",
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let got: Vec<&str> = page["summaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ids[3..6].iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        page["pagination"],
        json!({"item_count": 7, "item_start": 4, "item_end": 6, "page_count": 3, "page_index": 1, "page_offset": 3,
               "page_size": 3, "next_page_offset": 6, "previous_page_offset": 0})
    );
    let (_, last) = call(
        &store,
        &admin,
        Method::GET,
        "/api/v1/api_token?pagination%5Boffset%5D=6&pagination%5Bpage_size%5D=3",
        None,
    )
    .await;
    assert_eq!(last["summaries"].as_array().unwrap().len(), 1);
    assert_eq!(last["pagination"]["next_page_offset"], Value::Null);

    let (_, desc) = call(
        &store,
        &admin,
        Method::GET,
        "/api/v1/api_token?sorting[field]=inserted_at&sorting[direction]=desc",
        None,
    )
    .await;
    assert_eq!(
        desc["summaries"][0]["id"].as_str(),
        ids.last().map(String::as_str)
    );
    assert_eq!(
        desc["sorting"],
        json!({"field": "inserted_at", "direction": "desc"})
    );

    let (status, body) = call(
        &store,
        &admin,
        Method::GET,
        "/api/v1/api_token?pagination[page_size]=0",
        None,
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (422, Some("invalid_value")));
}

#[tokio::test]
async fn bad_input_is_answered_in_prefactor_shape() {
    let store = Store::start().await;
    let admin = admin_token(&store);
    let response = store
        .request(Method::POST, "/api/v1/api_token")
        .bearer_auth(&admin)
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!(
        (status, body["status"].as_str(), body["code"].as_str()),
        (400, Some("error"), Some("bad_request"))
    );

    let (status, body) = call(
        &store,
        &admin,
        Method::POST,
        "/api/v1/api_token",
        Some(json!({"details": {"token_scope": 7}})),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (422, Some("invalid_value")));

    let (status, body) = call(&store, &admin, Method::GET, "/api/v1/api_token/..%2Fetc", None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));

    let (status, body) = call(&store, &admin, Method::PATCH, "/api/v1/api_token", None).await;
    assert_eq!((status, body["status"].as_str()), (405, Some("error")));
}
