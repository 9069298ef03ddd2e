//! The store's notion of "now": wall-clock time plus an offset that tests move
//! forward (through the admin API) instead of sleeping through expiry and
//! retain periods.

use std::sync::atomic::{AtomicI64, Ordering};

use jiff::{SignedDuration, Timestamp};

#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub fn with_offset_seconds(offset_seconds: i64) -> Self {
        Self {
            offset_ms: AtomicI64::new(offset_seconds.saturating_mul(1000)),
        }
    }

    pub fn now(&self) -> Timestamp {
        let offset = SignedDuration::from_millis(self.offset_ms.load(Ordering::Relaxed));
        Timestamp::now().saturating_add(offset).unwrap_or(Timestamp::MAX)
    }

    pub fn now_ms(&self) -> i64 {
        self.now().as_millisecond()
    }

    pub fn offset_seconds(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed) / 1000
    }

    pub fn set_offset_seconds(&self, seconds: i64) {
        self.offset_ms
            .store(seconds.saturating_mul(1000), Ordering::Relaxed);
    }

    pub fn advance_seconds(&self, seconds: i64) {
        let delta = seconds.saturating_mul(1000);
        let _ = self
            .offset_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |ms| {
                Some(ms.saturating_add(delta))
            });
    }
}

/// RFC 3339 in UTC with second precision, as the JSON APIs print timestamps.
pub fn rfc3339(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// RFC 3339 in UTC with milliseconds, as Akamai prints credential dates.
pub fn rfc3339_millis(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// ISO 8601 without zone suffix and with microseconds, as ZenML (Python
/// `datetime.isoformat()` on naive UTC values) prints timestamps.
pub fn python_isoformat(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}
