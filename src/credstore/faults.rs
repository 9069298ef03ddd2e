//! Fault injection for resilience tests: added latency, a rate of failures with a
//! chosen status, and 429s carrying `Retry-After`. Off by default; set by flags at
//! start and replaceable at runtime through the admin API.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::http::{ApiError, Vendor};
use super::secrets::random_unit;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct FaultSettings {
    /// Delay added before every API request is handled, in milliseconds.
    #[arg(long = "fault-latency-ms", default_value_t = 0)]
    pub latency_ms: u64,
    /// Fraction (0.0–1.0) of API requests answered with `--fault-error-status`.
    #[arg(long = "fault-error-rate", default_value_t = 0.0)]
    pub error_rate: f64,
    /// Status of injected failures.
    #[arg(long = "fault-error-status", default_value_t = 503)]
    pub error_status: u16,
    /// Fraction (0.0–1.0) of API requests answered with 429 Too Many Requests.
    #[arg(long = "fault-throttle-rate", default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// `Retry-After` seconds sent with injected 429s.
    #[arg(long = "fault-retry-after-seconds", default_value_t = 1)]
    pub retry_after_seconds: u64,
    /// API requests per second answered (any burst up to one second's worth); beyond it a
    /// request gets 429 with `Retry-After: 1`, as from a vendor's enforced limit. 0: none.
    #[arg(long = "fault-rate-limit", default_value_t = 0)]
    pub rate_limit: u32,
    /// The next this-many API requests fail with `error_status` (runtime only;
    /// deterministic, unlike the rates).
    #[arg(skip)]
    pub fail_next: u64,
    /// The next this-many API requests get a 429 (runtime only).
    #[arg(skip)]
    pub throttle_next: u64,
}

impl Default for FaultSettings {
    /// No faults; what a runtime `PUT` leaves unset falls back to these.
    fn default() -> Self {
        Self {
            latency_ms: 0,
            error_rate: 0.0,
            error_status: 503,
            throttle_rate: 0.0,
            retry_after_seconds: 1,
            rate_limit: 0,
            fail_next: 0,
            throttle_next: 0,
        }
    }
}

impl FaultSettings {
    pub fn validate(&self) -> Result<(), String> {
        let rate_ok = |r: f64| (0.0..=1.0).contains(&r);
        if !rate_ok(self.error_rate) || !rate_ok(self.throttle_rate) {
            return Err("rates must lie between 0.0 and 1.0".into());
        }
        if !(400..=599).contains(&self.error_status) {
            return Err("errorStatus must be a 4xx or 5xx status".into());
        }
        Ok(())
    }
}

enum Injected {
    Nothing,
    Fail(StatusCode),
    Throttle(u64),
}

/// What was injected into one operation's requests (`GET /_credstore/faults/injected`),
/// so a resilience test can tell the faults it caused from the requests a client made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InjectedCounts {
    /// Answered with the configured error status.
    pub errors: u64,
    /// Answered with 429 and `Retry-After`.
    pub throttles: u64,
    /// Held for the configured latency (whatever the answer).
    pub delayed: u64,
}

/// Injected faults per API and operation, keyed like the request counters.
pub type InjectedByOperation = BTreeMap<String, BTreeMap<String, InjectedCounts>>;

#[derive(Debug, Default)]
pub struct Faults {
    settings: Mutex<FaultSettings>,
    /// The bucket behind `rate_limit`, with the limit it was made for.
    limiter: Mutex<Option<(u32, DefaultDirectRateLimiter)>>,
    injected: Mutex<InjectedByOperation>,
}

impl Faults {
    pub fn new(settings: FaultSettings) -> Self {
        Self {
            settings: Mutex::new(settings),
            limiter: Mutex::default(),
            injected: Mutex::default(),
        }
    }

    pub fn injected(&self) -> InjectedByOperation {
        self.injected
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn count(&self, api: &str, operation: String, latency: bool, injected: &Injected) {
        if !latency && matches!(injected, Injected::Nothing) {
            return;
        }
        let mut all = self
            .injected
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let counts = all
            .entry(api.to_owned())
            .or_default()
            .entry(operation)
            .or_default();
        counts.delayed += u64::from(latency);
        match injected {
            Injected::Nothing => {}
            Injected::Fail(_) => counts.errors += 1,
            Injected::Throttle(_) => counts.throttles += 1,
        }
    }

    pub fn get(&self) -> FaultSettings {
        self.lock().clone()
    }

    pub fn set(&self, settings: FaultSettings) {
        *self.lock() = settings;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultSettings> {
        self.settings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn decide(&self) -> (Duration, Injected) {
        let mut s = self.lock();
        let latency = Duration::from_millis(s.latency_ms);
        let status = StatusCode::from_u16(s.error_status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let injected = if s.fail_next > 0 {
            s.fail_next -= 1;
            Injected::Fail(status)
        } else if s.throttle_next > 0 {
            s.throttle_next -= 1;
            Injected::Throttle(s.retry_after_seconds)
        } else if s.error_rate > 0.0 && random_unit() < s.error_rate {
            Injected::Fail(status)
        } else if s.throttle_rate > 0.0 && random_unit() < s.throttle_rate {
            Injected::Throttle(s.retry_after_seconds)
        } else if s.rate_limit > 0 && !self.within_rate_limit(s.rate_limit) {
            Injected::Throttle(1)
        } else {
            Injected::Nothing
        };
        (latency, injected)
    }
}

impl Faults {
    /// Takes one request from the `rate_limit` bucket: false when it is empty.
    fn within_rate_limit(&self, per_second: u32) -> bool {
        let mut limiter = self
            .limiter
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        match &*limiter {
            Some((limit, _)) if *limit == per_second => {}
            _ => *limiter = Some((per_second, RateLimiter::direct(Quota::per_second(rate)))),
        }
        limiter.as_ref().is_some_and(|(_, bucket)| bucket.check().is_ok())
    }
}

pub async fn inject(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(vendor) = Vendor::for_path(req.uri().path()) else {
        return next.run(req).await;
    };
    let (latency, injected) = state.faults.decide();
    let route = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    let operation = format!("{} {}", req.method(), route.unwrap_or("<unmatched>"));
    state
        .faults
        .count(vendor.name(), operation, !latency.is_zero(), &injected);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match injected {
        Injected::Nothing => next.run(req).await,
        Injected::Fail(status) => ApiError::status(status, "injected failure").into_response(),
        Injected::Throttle(retry_after) => {
            let mut response =
                ApiError::status(StatusCode::TOO_MANY_REQUESTS, "Too many API requests").into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            response
        }
    }
}
