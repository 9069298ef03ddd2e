use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use apikey_operator::credstore::FaultSettings;
use reqwest::Method;
use serde_json::json;

use apikey_operator_test_support::credstore::{Store, status_json};

async fn ping(store: &Store) -> reqwest::Response {
    store
        .request(Method::GET, "/api/v1/ping")
        .bearer_auth(store.file("prefactor.token"))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn deterministic_failures_and_throttling_are_vendor_shaped() {
    let store = Store::start().await;
    let response = store.put_faults(json!({"failNext": 2, "errorStatus": 502})).await;
    assert_eq!(response.status(), 200);
    for _ in 0..2 {
        let (status, body) = status_json(ping(&store).await).await;
        assert_eq!((status, body["status"].as_str()), (502, Some("error")), "{body}");
    }
    assert_eq!(ping(&store).await.status(), 200);

    store
        .put_faults(json!({"throttleNext": 1, "retryAfterSeconds": 7}))
        .await;
    let response = ping(&store).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(ping(&store).await.status(), 200);

    let (status, _) = status_json(store.put_faults(json!({"errorRate": 3.0})).await).await;
    assert_eq!(status, 400, "rates outside 0..1 are refused");
}

/// `GET /_credstore/faults/injected`: its status and body.
async fn injected(store: &Store) -> (u16, serde_json::Value) {
    status_json(
        store
            .request(Method::GET, "/_credstore/faults/injected")
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn injected_faults_are_counted_per_operation() {
    let store = Store::start().await;
    store
        .put_faults(json!({"failNext": 2, "throttleNext": 1, "latencyMs": 1}))
        .await;
    for _ in 0..4 {
        ping(&store).await;
    }
    let (status, injected) = injected(&store).await;
    assert_eq!(status, 200);
    assert_eq!(
        injected,
        json!({"prefactor": {"GET /api/v1/ping": {"errors": 2, "throttles": 1, "delayed": 4}}}),
        "the admin API's own requests are never counted as faulted"
    );
}

#[tokio::test]
async fn a_rate_limit_answers_what_exceeds_it_with_429_and_retry_after() {
    let store = Store::start().await;
    store.set_faults(json!({"rateLimit": 2})).await;
    let started = Instant::now();
    let answers = futures::future::join_all((0..10).map(|_| ping(&store))).await;
    let elapsed = started.elapsed().as_secs_f64();
    let ok = answers.iter().filter(|a| a.status() == 200).count();
    let throttled: Vec<_> = answers.iter().filter(|a| a.status() == 429).collect();
    assert_eq!(ok + throttled.len(), 10, "only 200s and 429s");
    // A burst of one second's worth (2), then 2 a second.
    let allowed = 2 + (elapsed * 2.0).ceil() as usize;
    assert!(ok >= 2 && ok <= allowed, "{ok} answered in {elapsed:.2}s");
    assert!(!throttled.is_empty(), "10 requests at once exceed 2 a second");
    assert!(throttled.iter().all(|a| a.headers()["retry-after"] == "1"));
    let (_, injected) = injected(&store).await;
    assert_eq!(
        injected["prefactor"]["GET /api/v1/ping"]["throttles"],
        json!(throttled.len()),
        "what the limit refused is counted as injected"
    );

    store.set_faults(json!({})).await;
    assert_eq!(ping(&store).await.status(), 200, "no limit once it is unset");
}

#[tokio::test]
async fn rates_and_latency_from_start_flags() {
    let store = Store::start_with(|config| {
        config.faults = FaultSettings {
            error_rate: 1.0,
            error_status: 500,
            ..FaultSettings::default()
        }
    })
    .await;
    assert_eq!(ping(&store).await.status(), 500);
    store.put_faults(json!({"throttleRate": 1.0})).await;
    assert_eq!(ping(&store).await.status(), 429);
    store.put_faults(json!({"latencyMs": 300})).await;
    let started = Instant::now();
    assert_eq!(ping(&store).await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let admin_started = Instant::now();
    store
        .request(Method::GET, "/_credstore/faults")
        .send()
        .await
        .unwrap();
    assert!(
        admin_started.elapsed() < Duration::from_millis(300),
        "the admin API is never slowed down"
    );
}

#[tokio::test]
async fn clock_moves_on_request() {
    let store = Store::start().await;
    let (_, before) = status_json(
        store
            .request(Method::GET, "/_credstore/clock")
            .send()
            .await
            .unwrap(),
    )
    .await;
    store.advance_clock(86_400).await;
    let (_, after) = status_json(
        store
            .request(Method::GET, "/_credstore/clock")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(before["offsetSeconds"], 0);
    assert_eq!(after["offsetSeconds"], 86_400);
    let (status, _) = status_json(
        store
            .request(Method::POST, "/_credstore/clock")
            .json(&json!({"advanceSeconds": 1, "offsetSeconds": 1}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn requests_are_counted_per_api_and_operation() {
    let store = Store::start().await;
    for _ in 0..3 {
        ping(&store).await;
    }
    store
        .request(Method::GET, "/api/v1/api_token/nope")
        .send()
        .await
        .unwrap();
    let counts = store.request_counts().await;
    assert_eq!(counts["prefactor"]["GET /api/v1/ping"], 3, "{counts}");
    assert_eq!(counts["prefactor"]["GET /api/v1/api_token/{id}"], 1, "{counts}");
    let reset = store
        .request(Method::DELETE, "/_credstore/requests")
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 204);
    assert!(store.request_counts().await.get("prefactor").is_none());
}

#[tokio::test]
async fn bootstrap_files_are_owner_only() {
    let store = Store::start().await;
    let dir = store.data_dir();
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.starts_with("credstore.sqlite3") {
            continue;
        }
        assert_eq!(
            entry.metadata().unwrap().permissions().mode() & 0o777,
            0o600,
            "{name}"
        );
    }
    for name in ["prefactor.token", "bootstrap.json", "master.key"] {
        assert!(dir.join(name).exists(), "{name}");
    }
}

#[tokio::test]
async fn admin_api_is_absent_unless_enabled() {
    let store = Store::start_with(|config| config.admin_api = false).await;
    let base = &store.base;
    for path in ["/_credstore/clock", "/_credstore/faults", "/_credstore/requests"] {
        let status = reqwest::get(format!("{base}{path}")).await.unwrap().status();
        assert_eq!(status, 404, "{path}");
    }
    assert_eq!(
        reqwest::get(format!("{base}/_credstore/healthz"))
            .await
            .unwrap()
            .status(),
        200,
        "the probe is always served"
    );
}
