use apikey_operator::upstream::name_index::Lookup;
use apikey_operator::upstream::trend::ApiKeySettings;
use apikey_operator::upstream::{ErrorClass, TrendMicroClient, UpstreamClient};

use apikey_operator_test_support::credstore::Store;

fn trend(client: &UpstreamClient) -> &TrendMicroClient {
    match client {
        UpstreamClient::TrendMicro(client) => client,
        other => panic!("not a Trend Micro client: {other:?}"),
    }
}

/// Whether `secret` authenticates (`GET /api/apikeys/current`).
async fn authenticates(store: &Store, secret: &str) -> bool {
    let response = store
        .http
        .get(format!("{}/api/apikeys/current", store.base))
        .header("api-version", "v1")
        .header("api-secret-key", secret)
        .send()
        .await
        .unwrap();
    response.status().is_success()
}

fn settings(name: &str) -> ApiKeySettings {
    ApiKeySettings {
        key_name: Some(name.into()),
        description: Some("managed by apikey-operator".into()),
        locale: Some("en-US".into()),
        role_id: Some(1),
        time_zone: Some("UTC".into()),
        active: None,
        expiry_date: None,
    }
}

#[tokio::test]
async fn key_lifecycle_create_lock_regenerate_delete() {
    let store = Store::start().await;
    let client = store.trend(&store.file("trendmicro.secret-key"));
    client.probe().await.unwrap();
    let trend = trend(&client);

    let before = trend.requests_sent();
    let issued = trend.create(&settings("ci")).await.unwrap();
    assert_eq!(trend.requests_sent() - before, 1, "a create costs one request");
    assert_eq!(
        (
            issued.key.key_name.as_str(),
            issued.key.role_id,
            issued.key.active
        ),
        ("ci", Some(1), true)
    );
    assert!(authenticates(&store, issued.secret.expose()).await);
    let id = issued.key.id;
    assert_eq!(trend.get(id).await.unwrap().unwrap().key_name, "ci");
    for lookup in [Lookup::Now, Lookup::Recent] {
        let found = trend.find_by_name("ci", lookup).await.unwrap();
        assert_eq!(
            found.iter().map(|key| key.id).collect::<Vec<_>>(),
            vec![id],
            "{lookup:?}"
        );
    }

    let locked = trend
        .modify(
            id,
            &ApiKeySettings {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!locked.active);
    assert_eq!(
        locked.description.as_deref(),
        Some("managed by apikey-operator"),
        "modify is partial"
    );
    assert!(!authenticates(&store, issued.secret.expose()).await);
    trend
        .modify(
            id,
            &ApiKeySettings {
                active: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(authenticates(&store, issued.secret.expose()).await);

    let before = trend.requests_sent();
    let regenerated = trend.regenerate_secret(id).await.unwrap();
    assert_eq!(
        trend.requests_sent() - before,
        1,
        "an in-place rotation costs one request"
    );
    assert!(authenticates(&store, regenerated.secret.expose()).await);
    assert!(
        !authenticates(&store, issued.secret.expose()).await,
        "the old secret dies at once"
    );

    trend.delete(id).await.unwrap();
    assert_eq!(trend.get(id).await.unwrap(), None);
    trend.delete(id).await.expect("already gone is fine");
}

#[tokio::test]
async fn list_pages_by_id() {
    let store = Store::start().await;
    let client = store.trend(&store.file("trendmicro.secret-key"));
    let trend = trend(&client);
    for n in 0..101 {
        trend.create(&settings(&format!("bulk-{n}"))).await.unwrap();
    }
    let before = trend.requests_sent();
    let keys = trend.list().await.unwrap();
    assert_eq!(keys.len(), 102, "the bootstrap admin key and 101 created");
    assert_eq!(trend.requests_sent() - before, 2, "two pages of 100");
    assert!(keys.windows(2).all(|pair| pair[0].id < pair[1].id));
}

#[tokio::test]
async fn refused_secret_is_an_authentication_error_and_bad_settings_invalid() {
    let store = Store::start().await;
    let client = store.trend("2:not-a-real-secret");
    let error = client.probe().await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Authentication, "{error}");
    assert!(!error.to_string().contains("not-a-real-secret"));

    let client = store.trend(&store.file("trendmicro.secret-key"));
    let error = trend(&client)
        .create(&ApiKeySettings {
            role_id: Some(0),
            ..settings("bad")
        })
        .await
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::InvalidRequest, "{error}");
}
