//! Retries, backoff and `Retry-After` against the credential store's fault injection.

use std::time::{Duration, Instant};

use apikey_operator::upstream::trend::ApiKeySettings;
use apikey_operator::upstream::{ErrorClass, UpstreamClient};
use serde_json::json;

use apikey_operator_test_support::credstore::Store;

#[tokio::test]
async fn transient_failures_are_retried_until_success() {
    let store = Store::start().await;
    let client = store.prefactor(&store.file("prefactor.token"));
    store.set_faults(json!({"failNext": 2, "errorStatus": 503})).await;
    let before = client.requests_sent();
    client.probe().await.expect("third attempt succeeds");
    assert_eq!(client.requests_sent() - before, 3);
}

#[tokio::test]
async fn retries_are_bounded_and_the_final_error_says_what_happened() {
    let store = Store::start().await;
    let client = store.prefactor(&store.file("prefactor.token"));
    store
        .set_faults(json!({"failNext": 10, "errorStatus": 502}))
        .await;
    let error = client.probe().await.unwrap_err();
    assert_eq!(
        (error.class(), error.status(), error.attempts()),
        (ErrorClass::Transient, Some(502), 4)
    );
    let message = error.to_string();
    assert!(message.starts_with("prefactor ping: HTTP 502"), "{message}");
    assert!(message.ends_with("(gave up after 4 attempts)"), "{message}");
}

#[tokio::test]
async fn throttling_honours_retry_after() {
    let store = Store::start().await;
    let client = store.prefactor(&store.file("prefactor.token"));
    store
        .set_faults(json!({"throttleNext": 1, "retryAfterSeconds": 1}))
        .await;
    let started = Instant::now();
    client.probe().await.expect("succeeds after waiting");
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited only {:?}",
        started.elapsed()
    );

    // A wait longer than the client will block for goes back to the caller to requeue.
    store
        .set_faults(json!({"throttleNext": 1, "retryAfterSeconds": 60}))
        .await;
    let error = client.probe().await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Transient, "{error}");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(60)));
}

#[tokio::test]
async fn creates_without_idempotency_are_not_repeated_after_a_server_error() {
    let store = Store::start().await;
    let client = store.trend(&store.file("trendmicro.secret-key"));
    let UpstreamClient::TrendMicro(trend) = &client else {
        panic!("not Trend Micro")
    };
    let settings = ApiKeySettings {
        key_name: Some("once".into()),
        role_id: Some(1),
        ..Default::default()
    };
    store.set_faults(json!({"failNext": 1, "errorStatus": 503})).await;
    let before = trend.requests_sent();
    let error = trend.create(&settings).await.unwrap_err();
    assert_eq!((error.class(), error.attempts()), (ErrorClass::Transient, 1));
    assert_eq!(trend.requests_sent() - before, 1);

    // ...but a 429 proves the server did nothing, so even a create is sent again.
    store
        .set_faults(json!({"throttleNext": 1, "retryAfterSeconds": 1}))
        .await;
    trend.create(&settings).await.expect("create after throttling");
}
