use reqwest::Method;
use serde_json::{Value, json};

use apikey_operator_test_support::credstore::{Store, status_json};

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
    let (status, body) = login(store, &store.file("zenml.api-key")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "bearer");
    body["access_token"].as_str().unwrap().to_owned()
}

fn keys_path(store: &Store) -> String {
    format!(
        "/api/v1/service_accounts/{}/api_keys",
        store.ids("zenml")["serviceAccountId"].as_str().unwrap()
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
        store.ids("zenml")["serviceAccountId"]
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
    assert_eq!(
        rotated["metadata"],
        Value::Null,
        "the rotate answer is not hydrated"
    );
    let (_, shown) = call(&store, &session, Method::GET, &format!("{path}/rotating"), None).await;
    assert_eq!(shown["metadata"]["retain_period_minutes"], 60);
    assert!(shown["metadata"]["last_rotated"].is_string());
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
async fn sessions_do_not_expire_but_die_with_their_key_generation() {
    let store = Store::start().await;
    let session = admin_session(&store).await;
    let path = keys_path(&store);
    let (_, created) = call(
        &store,
        &session,
        Method::POST,
        &path,
        Some(json!({"name": "gen"})),
    )
    .await;
    let (status, login_body) = login(&store, created["body"]["key"].as_str().unwrap()).await;
    assert_eq!((status, &login_body["expires_in"]), (200, &Value::Null));
    let key_session = login_body["access_token"].as_str().unwrap().to_owned();

    store.advance_clock(30 * 24 * 3600).await;
    assert_eq!(
        call(&store, &key_session, Method::GET, &path, None).await.0,
        200,
        "like the real server's default JWTs, sessions do not expire"
    );

    let rotate = format!("{path}/gen/rotate");
    call(
        &store,
        &session,
        Method::PUT,
        &rotate,
        Some(json!({"retain_period_minutes": 5})),
    )
    .await;
    assert_eq!(
        call(&store, &key_session, Method::GET, &path, None).await.0,
        200,
        "the previous generation's sessions live while it is retained"
    );
    store.advance_clock(6 * 60).await;
    let (status, body) = call(&store, &key_session, Method::GET, &path, None).await;
    assert_eq!(
        (status, body["detail"][0].as_str()),
        (401, Some("CredentialsNotValid"))
    );
    assert_eq!(
        body["detail"][1],
        "Authentication error: access token for API key gen was issued for an API key generation that is no longer valid"
    );

    let (_, rotated) = call(&store, &session, Method::PUT, &rotate, Some(json!({}))).await;
    let newest = login(&store, rotated["body"]["key"].as_str().unwrap()).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    call(&store, &session, Method::PUT, &rotate, Some(json!({}))).await;
    assert_eq!(
        call(&store, &newest, Method::GET, &path, None).await.0,
        401,
        "a rotation without retention ends the old generation's sessions at once"
    );
}

/// A login form, and the status and body it gets.
type LoginCase<'a> = (&'a [(&'a str, &'a str)], u16, Value);

#[tokio::test]
async fn the_admin_user_logs_in_with_a_password_and_the_grant_is_inferred() {
    let store = Store::start().await;
    let user = store.file("zenml.admin-user");
    let password = store.file("zenml.admin-password");
    let form = |fields: &[(&str, &str)]| {
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        store.request(Method::POST, "/api/v1/login").form(&fields)
    };
    let (status, body) = status_json(
        form(&[
            ("grant_type", "password"),
            ("username", &user),
            ("password", &password),
        ])
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, &body["token_type"], &body["expires_in"]),
        (200, &json!("bearer"), &Value::Null)
    );
    let session = body["access_token"].as_str().unwrap().to_owned();
    let (status, me) = call(&store, &session, Method::GET, "/api/v1/current-user", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (&me["name"], &me["body"]["is_admin"]),
        (&json!(user), &json!(true))
    );

    let inferred = form(&[("username", &user), ("password", &password)])
        .send()
        .await
        .unwrap();
    assert_eq!(inferred.status(), 200, "username given: the password grant");
    let cases: &[LoginCase<'_>] = &[
        (
            &[
                ("grant_type", "password"),
                ("username", &user),
                ("password", "wrong"),
            ],
            401,
            json!({"detail": ["CredentialsNotValid", "Authentication error: invalid username or password"]}),
        ),
        (
            &[("grant_type", "password"), ("username", &user), ("password", "")],
            401,
            json!({"detail": ["CredentialsNotValid", "Authentication error: invalid username or password"]}),
        ),
        (
            &[],
            400,
            json!({"detail": "Invalid request: username is required."}),
        ),
        (
            &[("grant_type", "zenml-api-key"), ("password", "")],
            400,
            json!({"detail": "API key is required."}),
        ),
        (
            &[("grant_type", "bogus")],
            400,
            json!({"detail": "Unsupported grant type: bogus"}),
        ),
        (
            &[("password", "not-a-key")],
            401,
            json!({"detail": ["CredentialsNotValid", "Authentication error: error decoding API key"]}),
        ),
    ];
    for (fields, want_status, want_body) in cases {
        let (status, body) = status_json(form(fields).send().await.unwrap()).await;
        assert_eq!((status, &body), (*want_status, want_body), "{fields:?}");
    }
    let (status, body) = status_json(
        store
            .request(Method::GET, "/api/v1/current-user")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), (401, json!({"detail": "Not authenticated"})));
}

#[tokio::test]
async fn password_login_sets_a_session_cookie_that_wins_over_the_bearer() {
    let store = Store::start().await;
    let response = store
        .request(Method::POST, "/api/v1/login")
        .form(&[
            ("grant_type", "password"),
            ("username", &store.file("zenml.admin-user")),
            ("password", &store.file("zenml.admin-password")),
        ])
        .send()
        .await
        .unwrap();
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("zenml-server-") && cookie.ends_with("; HttpOnly; Path=/; SameSite=lax"));
    let pair = cookie.split(';').next().unwrap().to_owned();
    let (status, me) = status_json(
        store
            .request(Method::GET, "/api/v1/current-user")
            .header("cookie", pair)
            .bearer_auth("not.a.token")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, me["body"]["is_admin"].as_bool()), (200, Some(true)));
}

#[tokio::test]
async fn idempotency_key_replays_a_create_for_five_minutes() {
    let store = Store::start().await;
    let session = admin_session(&store).await;
    let path = keys_path(&store);
    let post = |name: &str, key: &str, session: &str| {
        store
            .request(Method::POST, &path)
            .bearer_auth(session)
            .header("Idempotency-Key", key)
            .json(&json!({"name": name}))
    };
    let key = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9";
    let (status, first) = status_json(post("idem", key, &session).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let (status, replay) = status_json(post("another-name", key, &session).send().await.unwrap()).await;
    assert_eq!(
        (status, &replay),
        (200, &first),
        "the same response, its secret included, whatever the body"
    );

    let other = login(&store, first["body"]["key"].as_str().unwrap()).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, by_other) = status_json(post("by-other", key, &other).send().await.unwrap()).await;
    assert_eq!(
        (status, by_other["name"].as_str()),
        (200, Some("by-other")),
        "another principal's request runs"
    );

    let failing = "1b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9";
    let (status, _) = status_json(post("idem", failing, &session).send().await.unwrap()).await;
    assert_eq!(status, 409);
    let (status, retried) = status_json(post("retried", failing, &session).send().await.unwrap()).await;
    assert_eq!(
        (status, retried["name"].as_str()),
        (200, Some("retried")),
        "errors are not recorded"
    );

    store.advance_clock(301).await;
    let (status, expired) = status_json(post("after-expiry", key, &session).send().await.unwrap()).await;
    assert_eq!(
        (status, expired["name"].as_str()),
        (200, Some("after-expiry")),
        "records last 300 s"
    );

    let response = post("bad", "not-a-uuid", &session).send().await.unwrap();
    assert_eq!(
        response.status(),
        500,
        "the real server fails a non-UUID key before routing"
    );
    assert_eq!(response.text().await.unwrap(), "Internal Server Error");
}

#[tokio::test]
async fn service_accounts_are_listed_shown_and_updated() {
    let store = Store::start().await;
    let session = admin_session(&store).await;
    let (status, page) = call(
        &store,
        &session,
        Method::GET,
        "/api/v1/service_accounts?sort_by=name",
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["apikey-operator", "credstore-admin"]);
    assert_eq!(
        page["items"][0]["metadata"],
        Value::Null,
        "lists are not hydrated by default"
    );

    let id = store.ids("zenml")["serviceAccountId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, shown) = call(
        &store,
        &session,
        Method::GET,
        "/api/v1/service_accounts/apikey-operator?hydrate=false",
        None,
    )
    .await;
    assert_eq!((&shown["id"], &shown["metadata"]), (&json!(id), &Value::Null));
    let (status, updated) = call(
        &store,
        &session,
        Method::PUT,
        &format!("/api/v1/service_accounts/{id}"),
        Some(json!({"description": "changed"})),
    )
    .await;
    assert_eq!(
        (status, &updated["metadata"]["description"]),
        (200, &json!("changed"))
    );
    let (status, body) = call(
        &store,
        &session,
        Method::GET,
        "/api/v1/service_accounts?sort_by=zzz",
        None,
    )
    .await;
    assert_eq!((status, body["detail"][0].as_str()), (422, Some("ValueError")));
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
    assert_eq!(
        body[0], "ValueError",
        "a bare array, as the real server answers validation errors"
    );
    assert!(body[1].as_str().unwrap().contains("'loc': ('query', 'size')"));
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
    assert_eq!(status, 422);
    assert!(body[1].as_str().unwrap().contains(
        "'loc': ('path', 'service_account_id'), 'msg': 'Input should be a valid UUID, invalid character"
    ));
}
