use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Store, ids, status_json};

async fn login(store: &Store, key: &str) -> (u16, Value) {
    let form = [("grant_type", "zenml-api-key"), ("password", key)];
    status_json(
        store
            .request(Method::POST, "/api/v1/login")
            .form(&form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn admin_session(store: &Store) -> String {
    let (status, body) = login(store, &store.read_file("zenml.api-key")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "bearer");
    body["access_token"].as_str().unwrap().to_owned()
}

fn keys_path(store: &Store) -> String {
    format!(
        "/api/v1/service_accounts/{}/api_keys",
        ids(store)["zenml"]["serviceAccountId"].as_str().unwrap()
    )
}

async fn call(store: &Store, session: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = store.request(method, path).bearer_auth(session);
    if let Some(body) = body {
        request = request.json(&body);
    }
    status_json(request.send().await.unwrap()).await
}

#[tokio::test]
async fn keys_are_created_and_authenticate_until_deactivated_or_deleted() {
    let store = Store::start().await;
    let session = admin_session(&store).await;
    let path = keys_path(&store);
    let (status, created) = call(
        &store,
        &session,
        Method::POST,
        &path,
        Some(json!({"name": "ci", "description": "for CI"})),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let key = created["body"]["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("ZENKEY_"));
    let decoded: Value = serde_json::from_slice(&base64_decode(&key["ZENKEY_".len()..])).unwrap();
    assert_eq!(decoded["id"], created["id"]);
    assert_eq!(decoded["key"].as_str().unwrap().len(), 64);
    assert_eq!(created["body"]["active"], true);
    assert_eq!(
        created["body"]["service_account"]["id"],
        ids(&store)["zenml"]["serviceAccountId"]
    );
    assert_eq!(created["metadata"]["description"], "for CI");

    let (status, clash) = call(&store, &session, Method::POST, &path, Some(json!({"name": "ci"}))).await;
    assert_eq!(
        (status, clash["detail"][0].as_str()),
        (409, Some("EntityExistsError"))
    );

    let (status, login_body) = login(&store, &key).await;
    assert_eq!(status, 200);
    let key_session = login_body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(key_session.split('.').count(), 3, "JWT-shaped");
    let (status, _) = call(&store, &key_session, Method::GET, &path, None).await;
    assert_eq!(status, 200, "a key's session token works as a bearer token");

    let (status, shown) = call(&store, &session, Method::GET, &format!("{path}/ci"), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        shown["body"]["key"],
        Value::Null,
        "the key is shown only at creation and rotation"
    );
    assert!(shown["metadata"]["last_login"].is_string());

    let (status, updated) = call(
        &store,
        &session,
        Method::PUT,
        &format!("{path}/ci"),
        Some(json!({"active": false, "name": null})),
    )
    .await;
    assert_eq!(
        (status, &updated["body"]["active"], updated["name"].as_str()),
        (200, &json!(false), Some("ci"))
    );
    assert_eq!(
        login(&store, &key).await.0,
        401,
        "an inactive key never authenticates"
    );
    assert_eq!(
        call(&store, &key_session, Method::GET, &path, None).await.0,
        401,
        "nor do its sessions"
    );

    call(
        &store,
        &session,
        Method::PUT,
        &format!("{path}/ci"),
        Some(json!({"active": true})),
    )
    .await;
    assert_eq!(login(&store, &key).await.0, 200);

    let id = created["id"].as_str().unwrap();
    let (status, body) = call(&store, &session, Method::DELETE, &format!("{path}/{id}"), None).await;
    assert_eq!((status, body), (200, Value::Null));
    assert_eq!(login(&store, &key).await.0, 401);
    let (status, body) = call(&store, &session, Method::GET, &format!("{path}/{id}"), None).await;
    assert_eq!((status, body["detail"][0].as_str()), (404, Some("KeyError")));
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).unwrap()
}

#[tokio::test]
async fn rotation_retains_the_previous_key_for_the_retain_period_only() {
    let store = Store::start().await;
    let session = admin_session(&store).await;
    let path = keys_path(&store);
    let (_, created) = call(
        &store,
        &session,
        Method::POST,
        &path,
        Some(json!({"name": "rotating"})),
    )
    .await;
    let first = created["body"]["key"].as_str().unwrap().to_owned();

    let (status, rotated) = call(
        &store,
        &session,
        Method::PUT,
        &format!("{path}/rotating/rotate"),
        Some(json!({"retain_period_minutes": 60})),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let second = rotated["body"]["key"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    assert_eq!(rotated["metadata"]["retain_period_minutes"], 60);
    assert!(rotated["metadata"]["last_rotated"].is_string());
    assert_eq!(login(&store, &first).await.0, 200, "within the retain period");
    assert_eq!(login(&store, &second).await.0, 200);

    store.advance_clock(59 * 60).await;
    assert_eq!(login(&store, &first).await.0, 200);
    store.advance_clock(2 * 60).await;
    assert_eq!(login(&store, &first).await.0, 401, "past the retain period");
    let session = admin_session(&store).await;

    let (_, third) = call(
        &store,
        &session,
        Method::PUT,
        &format!("{path}/rotating/rotate"),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        login(&store, &second).await.0,
        401,
        "retain_period_minutes defaults to 0"
    );
    assert_eq!(login(&store, third["body"]["key"].as_str().unwrap()).await.0, 200);
}

#[tokio::test]
async fn sessions_expire_after_an_hour_of_store_time() {
    let store = Store::start().await;
    let session = admin_session(&store).await;
    assert_eq!(
        call(&store, &session, Method::GET, &keys_path(&store), None)
            .await
            .0,
        200
    );
    store.advance_clock(3601).await;
    let (status, body) = call(&store, &session, Method::GET, &keys_path(&store), None).await;
    assert_eq!(
        (status, body["detail"][0].as_str()),
        (401, Some("AuthorizationException"))
    );
}

#[tokio::test]
async fn list_pages_filters_and_sorts() {
    let store = Store::start().await;
    let session = admin_session(&store).await;
    let path = keys_path(&store);
    for name in ["alpha", "beta", "gamma", "delta", "epsilon"] {
        call(&store, &session, Method::POST, &path, Some(json!({"name": name}))).await;
        store.advance_clock(1).await;
    }
    let session = admin_session(&store).await;
    let (status, page) = call(
        &store,
        &session,
        Method::GET,
        &format!("{path}?page=2&size=2"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        (
            page["index"].as_u64(),
            page["max_size"].as_u64(),
            page["total_pages"].as_u64(),
            page["total"].as_u64()
        ),
        (Some(2), Some(2), Some(3), Some(5))
    );
    let names = |page: &Value| {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&page), ["gamma", "delta"]);
    assert_eq!(
        page["items"][0]["metadata"],
        Value::Null,
        "lists are not hydrated by default"
    );

    let (_, filtered) = call(
        &store,
        &session,
        Method::GET,
        &format!("{path}?name=contains:ta&sort_by=desc:name"),
        None,
    )
    .await;
    assert_eq!(names(&filtered), ["delta", "beta"]);
    let (_, either) = call(
        &store,
        &session,
        Method::GET,
        &format!("{path}?name=startswith:al&description=x&logical_operator=or&hydrate=true"),
        None,
    )
    .await;
    assert_eq!(names(&either), ["alpha"]);
    assert!(either["items"][0]["metadata"].is_object());

    let (status, body) = call(&store, &session, Method::GET, &format!("{path}?size=0"), None).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["detail"][0]["loc"].is_array());
    let (status, _) = call(&store, &session, Method::GET, &format!("{path}?page=9"), None).await;
    assert_eq!(status, 400);
    let (status, body) = call(
        &store,
        &session,
        Method::GET,
        "/api/v1/service_accounts/not-a-uuid/api_keys",
        None,
    )
    .await;
    assert_eq!(
        (status, &body["detail"][0]["loc"]),
        (422, &json!(["path", "service_account_id"]))
    );
}
