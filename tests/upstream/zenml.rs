use apikey_operator::upstream::zenml::ApiKeyUpdate;
use apikey_operator::upstream::{ErrorClass, UpstreamClient, ZenmlClient};

use apikey_operator_test_support::credstore::Store;

fn zenml(client: &UpstreamClient) -> &ZenmlClient {
    match client {
        UpstreamClient::Zenml(client) => client,
        other => panic!("not a ZenML client: {other:?}"),
    }
}

/// Whether `key` logs in at `/api/v1/login`.
async fn logs_in(store: &Store, key: &str) -> bool {
    let form = [("grant_type", "zenml-api-key"), ("password", key)];
    let response = store
        .http
        .post(format!("{}/api/v1/login", store.base))
        .form(&form)
        .send()
        .await
        .unwrap();
    response.status().is_success()
}

/// A new `Idempotency-Key`: every create in these tests is a new request.
fn fresh() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn service_account(store: &Store) -> String {
    store.ids("zenml")["serviceAccountId"]
        .as_str()
        .expect("service account id")
        .to_owned()
}

#[tokio::test]
async fn key_lifecycle_create_deactivate_rotate_delete() {
    let store = Store::start().await;
    let client = store.zenml(&store.file("zenml.api-key"));
    client.probe().await.unwrap();
    let zenml = zenml(&client);
    let account = service_account(&store);

    let before = zenml.requests_sent();
    let issued = zenml
        .create(&account, "ci-deployer", Some("CI"), &fresh())
        .await
        .unwrap();
    assert_eq!(
        zenml.requests_sent() - before,
        1,
        "the bearer from probe is reused"
    );
    assert!(issued.secret.expose().starts_with("ZENKEY_"));
    assert!(issued.key.active);
    assert_eq!(issued.key.description.as_deref(), Some("CI"));
    assert!(logs_in(&store, issued.secret.expose()).await);

    let by_name = zenml
        .get(&account, "ci-deployer")
        .await
        .unwrap()
        .expect("found by name");
    assert_eq!(by_name.id, issued.key.id);
    let duplicate = zenml
        .create(&account, "ci-deployer", None, &fresh())
        .await
        .unwrap_err();
    assert_eq!(duplicate.class(), ErrorClass::Conflict, "{duplicate}");

    let inactive = zenml
        .update(
            &account,
            &issued.key.id,
            &ApiKeyUpdate {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!inactive.active);
    assert!(!logs_in(&store, issued.secret.expose()).await);
    zenml
        .update(
            &account,
            &issued.key.id,
            &ApiKeyUpdate {
                active: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(logs_in(&store, issued.secret.expose()).await);

    let before = zenml.requests_sent();
    let rotated = zenml.rotate(&account, &issued.key.id, 10).await.unwrap();
    assert_eq!(zenml.requests_sent() - before, 1, "a rotation costs one request");
    assert_eq!(rotated.key.id, issued.key.id);
    assert!(
        !rotated.key.hydrated,
        "the rotate answer has no metadata, as on the real server"
    );
    let reread = zenml.get(&account, &issued.key.id).await.unwrap().unwrap();
    assert_eq!(reread.retain_period_minutes, Some(10));
    assert!(logs_in(&store, rotated.secret.expose()).await);
    assert!(logs_in(&store, issued.secret.expose()).await, "old key retained");
    store.advance_clock(11 * 60).await;
    assert!(
        !logs_in(&store, issued.secret.expose()).await,
        "old key stops after the retain period"
    );
    assert!(logs_in(&store, rotated.secret.expose()).await);

    zenml.delete(&account, &issued.key.id).await.unwrap();
    assert_eq!(zenml.get(&account, &issued.key.id).await.unwrap(), None);
    zenml
        .delete(&account, &issued.key.id)
        .await
        .expect("already gone is fine");
}

#[tokio::test]
async fn list_follows_pages() {
    let store = Store::start().await;
    let client = store.zenml(&store.file("zenml.api-key"));
    let zenml = zenml(&client);
    let account = service_account(&store);
    for n in 0..103 {
        zenml
            .create(&account, &format!("key-{n:03}"), None, &fresh())
            .await
            .unwrap();
    }
    let before = zenml.requests_sent();
    let keys = zenml.list(&account).await.unwrap();
    assert_eq!(keys.len(), 103);
    assert_eq!(zenml.requests_sent() - before, 2, "two pages of 100");
}

#[tokio::test]
async fn expired_bearer_is_renewed_by_logging_in_again() {
    // Sessions that expire, as a real server configured with a JWT lifetime gives.
    let store = Store::start_with(|config| config.zenml_session_minutes = Some(60)).await;
    let client = store.zenml(&store.file("zenml.api-key"));
    let zenml = zenml(&client);
    let account = service_account(&store);
    zenml.list(&account).await.unwrap();
    // The store's clock jumps past the bearer's lifetime; the client's own clock does not,
    // so the server refuses the cached bearer and the client must log in again.
    store.advance_clock(2 * 3600).await;
    let before = zenml.requests_sent();
    zenml.list(&account).await.expect("renewed");
    assert_eq!(
        zenml.requests_sent() - before,
        3,
        "refused call, login, repeated call"
    );
}

#[tokio::test]
async fn refused_store_key_is_an_authentication_error_without_the_key() {
    let store = Store::start().await;
    let client = store.zenml("ZENKEY_not_a_real_key");
    let error = client.probe().await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Authentication, "{error}");
    assert!(!error.to_string().contains("ZENKEY_not_a_real_key"));
    let error = zenml(&client).list(&service_account(&store)).await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Authentication);
}
