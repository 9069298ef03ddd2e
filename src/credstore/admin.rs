//! `/_credstore/...`: test controls (clock, faults) and request counters. Mounted
//! only with `--admin-api`; it is unauthenticated, so never enable it on a store
//! reachable by anything but tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::clock::rfc3339;
use super::faults::FaultSettings;
use super::http::json_response;

/// Requests seen per API and operation (`METHOD /route/template`).
#[derive(Debug, Default)]
pub struct Counters {
    counts: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
}

impl Counters {
    pub fn increment(&self, api: &str, operation: &str) {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *counts
            .entry(api.to_owned())
            .or_default()
            .entry(operation.to_owned())
            .or_default() += 1;
    }

    fn snapshot(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn reset(&self) {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/_credstore/clock", get(get_clock).post(set_clock))
        .route("/_credstore/faults", get(get_faults).put(set_faults))
        .route("/_credstore/faults/injected", get(get_injected))
        .route("/_credstore/requests", get(get_requests).delete(reset_requests))
}

fn clock_body(state: &AppState) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"now": rfc3339(state.clock.now()), "offsetSeconds": state.clock.offset_seconds()}),
    )
}

async fn get_clock(State(state): State<AppState>) -> Response {
    clock_body(&state)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClockChange {
    advance_seconds: Option<i64>,
    offset_seconds: Option<i64>,
}

async fn set_clock(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<ClockChange>(&body) {
        Ok(ClockChange {
            advance_seconds: Some(s),
            offset_seconds: None,
        }) => state.clock.advance_seconds(s),
        Ok(ClockChange {
            advance_seconds: None,
            offset_seconds: Some(s),
        }) => state.clock.set_offset_seconds(s),
        _ => return bad_request("expected exactly one of advanceSeconds or offsetSeconds"),
    }
    clock_body(&state)
}

async fn get_faults(State(state): State<AppState>) -> Response {
    json_response(StatusCode::OK, &json!(state.faults.get()))
}

async fn set_faults(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    let settings: FaultSettings = match serde_json::from_slice(&body) {
        Ok(settings) => settings,
        Err(err) => return bad_request(&format!("invalid fault settings: {err}")),
    };
    if let Err(message) = settings.validate() {
        return bad_request(&message);
    }
    state.faults.set(settings);
    json_response(StatusCode::OK, &json!(state.faults.get()))
}

async fn get_injected(State(state): State<AppState>) -> Response {
    json_response(StatusCode::OK, &json!(state.faults.injected()))
}

async fn get_requests(State(state): State<AppState>) -> Response {
    json_response(StatusCode::OK, &json!(state.counters.snapshot()))
}

async fn reset_requests(State(state): State<AppState>) -> Response {
    state.counters.reset();
    StatusCode::NO_CONTENT.into_response()
}

fn bad_request(message: &str) -> Response {
    json_response(StatusCode::BAD_REQUEST, &json!({"message": message}))
}
