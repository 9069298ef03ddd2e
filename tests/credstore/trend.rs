use reqwest::Method;
use serde_json::{Value, json};

use apikey_operator_test_support::credstore::{Store, status_json};

async fn call(store: &Store, secret: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = store
        .request(method, path)
        .header("api-version", "v1")
        .header("api-secret-key", secret);
    if let Some(body) = body {
        request = request.json(&body);
    }
    status_json(request.send().await.unwrap()).await
}

fn admin(store: &Store) -> String {
    store.file("trendmicro.secret-key")
}

async fn create(store: &Store, name: &str) -> (i64, String) {
    let (status, body) = call(
        store,
        &admin(store),
        Method::POST,
        "/api/apikeys",
        Some(json!({"keyName": name, "roleID": 1})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    (
        body["ID"].as_i64().unwrap(),
        body["secretKey"].as_str().unwrap().to_owned(),
    )
}

async fn whoami(store: &Store, secret: &str) -> (u16, Value) {
    call(store, secret, Method::GET, "/api/apikeys/current", None).await
}

#[tokio::test]
async fn headers_and_both_authentication_forms() {
    let store = Store::start().await;
    let secret = admin(&store);
    let (status, body) = status_json(
        store
            .request(Method::GET, "/api/apikeys")
            .header("api-secret-key", &secret)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["message"].is_string()),
        (400, true),
        "api-version is required"
    );
    let (status, body) = status_json(
        store
            .request(Method::GET, "/api/apikeys/current")
            .header("api-version", "v1")
            .header("authorization", format!("ApiKey {secret}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["keyName"], "credstore-admin");
    for field in ["roleURN", "tenantID", "tenantGUID", "cloudOneAccountID"] {
        assert!(!body[field].is_null(), "{field}");
    }
    assert!(body.get("secretKey").is_none());
    let (status, body) = whoami(&store, "nope").await;
    assert_eq!(status, 401);
    assert_eq!(body.as_object().unwrap().keys().collect::<Vec<_>>(), ["message"]);
}

#[tokio::test]
async fn lifecycle_modify_regenerate_expire_delete() {
    let store = Store::start().await;
    let (id, secret) = create(&store, "svc").await;
    assert_eq!(
        whoami(&store, &secret).await.0,
        200,
        "an issued key authenticates"
    );

    let (status, modified) = call(
        &store,
        &admin(&store),
        Method::POST,
        &format!("/api/apikeys/{id}"),
        Some(json!({"description": "changed"})),
    )
    .await;
    assert_eq!(
        (
            status,
            modified["description"].as_str(),
            modified["keyName"].as_str()
        ),
        (200, Some("changed"), Some("svc")),
        "partial modify"
    );

    call(
        &store,
        &admin(&store),
        Method::POST,
        &format!("/api/apikeys/{id}"),
        Some(json!({"active": false})),
    )
    .await;
    assert_eq!(
        whoami(&store, &secret).await.0,
        401,
        "active=false locks the key out"
    );
    call(
        &store,
        &admin(&store),
        Method::POST,
        &format!("/api/apikeys/{id}"),
        Some(json!({"active": true})),
    )
    .await;
    assert_eq!(whoami(&store, &secret).await.0, 200);

    let (status, regenerated) = call(
        &store,
        &admin(&store),
        Method::POST,
        &format!("/api/apikeys/{id}/secretkey"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let new_secret = regenerated["secretKey"].as_str().unwrap().to_owned();
    assert_eq!(
        whoami(&store, &secret).await.0,
        401,
        "the old secret dies at once"
    );
    assert_eq!(whoami(&store, &new_secret).await.0, 200);

    let (status, current) = call(
        &store,
        &new_secret,
        Method::POST,
        "/api/apikeys/current/secretkey",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let newest = current["secretKey"].as_str().unwrap().to_owned();
    assert_eq!(whoami(&store, &new_secret).await.0, 401);

    let (status, renamed) = call(
        &store,
        &newest,
        Method::POST,
        "/api/apikeys/current",
        Some(json!({"keyName": "renamed", "roleID": 9})),
    )
    .await;
    assert_eq!(
        (status, renamed["keyName"].as_str(), renamed["roleID"].as_i64()),
        (200, Some("renamed"), Some(1)),
        "current modifies name fields only"
    );

    let expiry = jiff::Timestamp::now().as_millisecond() + 3_600_000;
    call(
        &store,
        &admin(&store),
        Method::POST,
        &format!("/api/apikeys/{id}"),
        Some(json!({"expiryDate": expiry})),
    )
    .await;
    assert_eq!(whoami(&store, &newest).await.0, 200);
    store.advance_clock(3601).await;
    assert_eq!(whoami(&store, &newest).await.0, 401, "expired keys stop working");

    let response = store
        .request(Method::DELETE, &format!("/api/apikeys/{id}"))
        .header("api-version", "v1")
        .header("api-secret-key", admin(&store))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (status, body) = call(
        &store,
        &admin(&store),
        Method::GET,
        &format!("/api/apikeys/{id}"),
        None,
    )
    .await;
    assert_eq!((status, body["message"].is_string()), (404, true));
}

#[tokio::test]
async fn search_criteria_and_id_paging() {
    let store = Store::start().await;
    let mut ids = Vec::new();
    for name in ["web-1", "web-2", "db-1", "web-3"] {
        ids.push(create(&store, name).await.0);
    }
    let secret = admin(&store);
    let search = |body: Value| call(&store, &secret, Method::POST, "/api/apikeys/search", Some(body));
    let names = |body: &Value| {
        body["apiKeys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["keyName"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };

    let (status, found) = search(json!({"searchCriteria": [{"fieldName": "keyName", "stringTest": "equal", "stringValue": "web-%", "stringWildcards": true}]})).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(names(&found), ["web-1", "web-2", "web-3"]);

    let (_, page) = search(json!({"maxItems": 2, "sortByObjectID": true, "searchCriteria": [{"idTest": "greater-than", "idValue": ids[0]}]})).await;
    assert_eq!(names(&page), ["web-2", "db-1"]);
    let last_id = page["apiKeys"][1]["ID"].as_i64().unwrap();
    let (_, next) = search(json!({"maxItems": 2, "sortByObjectID": true, "searchCriteria": [{"idTest": "greater-than", "idValue": last_id}]})).await;
    assert_eq!(names(&next), ["web-3"]);

    let (_, anded) = search(json!({"searchCriteria": [
        {"fieldName": "keyName", "stringTest": "not-equal", "stringValue": "web-2"},
        {"fieldName": "active", "booleanTest": true},
        {"fieldName": "expiryDate", "nullTest": true},
        {"fieldName": "roleID", "numericTest": "equal", "numericValue": 1}
    ]}))
    .await;
    assert_eq!(names(&anded), ["credstore-admin", "web-1", "db-1", "web-3"]);

    let (status, body) =
        search(json!({"searchCriteria": [{"fieldName": "secretKey", "nullTest": true}]})).await;
    assert_eq!((status, body["message"].is_string()), (400, true));
    let (status, _) = search(json!({"searchCriteria": [{"fieldName": "keyName", "stringTest": "equal", "stringValue": "%%%%%%%%%%%%%%%%%%%%%%%%%%x", "stringWildcards": true}]})).await;
    assert_eq!(status, 200, "hostile wildcard patterns stay cheap");
}
