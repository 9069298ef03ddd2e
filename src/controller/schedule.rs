//! When a credential rotates and when retained credentials retire: pure functions of the
//! spec, the status and the clock, so every rule is unit-tested without a cluster.

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::trigger::Trigger;
use crate::api::{RetiringCredential, Rotation, RotationRequests};

/// The annotation that asks for one rotation from kubectl (any new value).
pub const ROTATE_ANNOTATION: &str = "apikeys.dev/rotate";

/// The largest part of `rotation.interval` an interval rotation comes early by. Each object
/// rotates `interval × (1 − INTERVAL_JITTER × spread)` after issue, its spread fixed by its
/// UID, so a fleet created together does not rotate (and load the upstream) together. Only
/// ever earlier: a credential never lives longer than the interval, and expiry-driven
/// renewal (`renewBefore`) is not moved.
pub const INTERVAL_JITTER: f64 = 0.1;

/// An object's stable place in `[0, 1)` for [`INTERVAL_JITTER`]: FNV-1a of its UID, mixed
/// by MurmurHash3's finaliser so similar UIDs land far apart; stable across releases and
/// processes, unlike std's hasher.
pub fn spread_of(uid: &str) -> f64 {
    let mut hash = uid.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^= hash >> 33;
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// The credential's rotation history the schedule depends on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Issued {
    /// When the current credential was issued.
    pub at: Option<Timestamp>,
    /// When it expires upstream.
    pub expires_at: Option<Timestamp>,
    /// Whether a fresh credential would expire later than the current one. False when the
    /// spec pins an absolute expiry: renewing would not help and would loop.
    pub renewal_extends_expiry: bool,
    /// The object's [`spread_of`]: how early in the jitter window its interval ends.
    pub spread: f64,
}

/// What the schedule says now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// A rotation is due now, and why.
    pub due: Option<Trigger>,
    /// When the next scheduled rotation falls due (interval or renewal), if any.
    pub next_rotation: Option<Timestamp>,
}

/// A malformed duration in the spec (the CRD schema normally refuses these).
#[derive(Debug, thiserror::Error)]
#[error("{field} is not a duration such as 720h or 1h30m: {value:?}")]
pub struct InvalidDuration {
    pub field: &'static str,
    pub value: String,
}

/// Parses a Go-style duration (`720h`, `1h30m`, `1.5h`) from field `field`.
pub fn parse_duration(field: &'static str, value: &str) -> Result<SignedDuration, InvalidDuration> {
    value
        .parse::<SignedDuration>()
        .ok()
        .filter(|d| !d.is_negative())
        .ok_or_else(|| InvalidDuration {
            field,
            value: value.to_string(),
        })
}

/// The rotation requests currently present on the resource.
pub fn current_requests(rotation: Option<&Rotation>, annotation: Option<&str>) -> RotationRequests {
    RotationRequests {
        requested_at: rotation.and_then(|r| r.requested_at.clone()),
        annotation: annotation.map(str::to_string),
    }
}

/// Decides whether a rotation is due at `now`.
///
/// A request counts only when its value differs from the one handled last; a resource
/// that has never been issued a credential has nothing to rotate.
pub fn evaluate(
    rotation: Option<&Rotation>,
    requests: &RotationRequests,
    handled: Option<&RotationRequests>,
    issued: Issued,
    now: Timestamp,
) -> Result<Schedule, InvalidDuration> {
    let Some(issued_at) = issued.at else {
        return Ok(Schedule {
            due: None,
            next_rotation: None,
        });
    };
    let handled = handled.cloned().unwrap_or_default();
    let interval_due = rotation
        .and_then(|r| r.interval.as_deref())
        .map(|v| parse_duration("spec.rotation.interval", v).map(|d| issued_at + jittered(d, issued.spread)))
        .transpose()?;
    let renewal_due = match (
        rotation.and_then(|r| r.renew_before.as_deref()),
        issued.expires_at,
    ) {
        (Some(v), Some(expires)) if issued.renewal_extends_expiry => {
            Some(expires - parse_duration("spec.rotation.renewBefore", v)?)
        }
        _ => None,
    };
    let next_rotation = [interval_due, renewal_due].into_iter().flatten().min();

    let due = if requests.requested_at.is_some() && requests.requested_at != handled.requested_at {
        Some(Trigger::RequestedAt)
    } else if requests.annotation.is_some() && requests.annotation != handled.annotation {
        Some(Trigger::Annotation)
    } else if renewal_due.is_some_and(|t| t <= now) {
        Some(Trigger::Expiring)
    } else if interval_due.is_some_and(|t| t <= now) {
        Some(Trigger::Interval)
    } else {
        None
    };
    Ok(Schedule { due, next_rotation })
}

/// `interval` shortened by the object's part of the jitter window, in whole seconds so the
/// scheduled time written to status is stable.
fn jittered(interval: SignedDuration, spread: f64) -> SignedDuration {
    let early = interval.as_secs_f64() * INTERVAL_JITTER * spread.clamp(0.0, 1.0);
    interval - SignedDuration::from_secs(early.floor() as i64)
}

/// How long the previous credential stays valid after a rotation.
pub fn retain_previous(rotation: Option<&Rotation>) -> Result<SignedDuration, InvalidDuration> {
    match rotation.and_then(|r| r.retain_previous.as_deref()) {
        Some(value) => parse_duration("spec.rotation.retainPrevious", value),
        None => Ok(SignedDuration::ZERO),
    }
}

/// How long a retirement may be held by a rollout or a recent use (`maxRetain`, default
/// one day), counted from the rotation.
pub fn max_retain(rotation: Option<&Rotation>) -> Result<SignedDuration, InvalidDuration> {
    match rotation.and_then(|r| r.max_retain.as_deref()) {
        Some(value) => parse_duration("spec.rotation.maxRetain", value),
        None => Ok(SignedDuration::from_hours(24)),
    }
}

/// `retireWhenUnusedFor`, if set.
pub fn unused_for(rotation: Option<&Rotation>) -> Result<Option<SignedDuration>, InvalidDuration> {
    rotation
        .and_then(|r| r.retire_when_unused_for.as_deref())
        .map(|value| parse_duration("spec.rotation.retireWhenUnusedFor", value))
        .transpose()
}

/// Splits retained credentials into those due for retirement at `now` and the rest.
pub fn due_for_retirement(
    retiring: &[RetiringCredential],
    now: Timestamp,
) -> (Vec<RetiringCredential>, Vec<RetiringCredential>) {
    retiring.iter().cloned().partition(|r| r.retire_at.0 <= now)
}

/// The earliest of the given instants that lies after `now`, as a wait from `now`: the
/// controller requeues then instead of polling.
pub fn wake_after(
    now: Timestamp,
    instants: impl IntoIterator<Item = Timestamp>,
) -> Option<std::time::Duration> {
    instants
        .into_iter()
        .filter(|t| *t > now)
        .min()
        .map(|t| t.duration_since(now).unsigned_abs())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn rotation(interval: Option<&str>, renew_before: Option<&str>, requested_at: Option<&str>) -> Rotation {
        Rotation {
            interval: interval.map(Into::into),
            renew_before: renew_before.map(Into::into),
            requested_at: requested_at.map(Into::into),
            ..Rotation::default()
        }
    }

    fn issued(at_: &str, expires: Option<&str>) -> Issued {
        Issued {
            at: Some(at(at_)),
            expires_at: expires.map(at),
            renewal_extends_expiry: true,
            spread: 0.0,
        }
    }

    #[test]
    fn interval_rotations_spread_over_a_tenth_of_the_interval_and_only_earlier() {
        let r = rotation(Some("240h"), Some("48h"), None);
        let requests = current_requests(Some(&r), None);
        let next = |uid: &str| {
            let issued = Issued {
                spread: spread_of(uid),
                ..issued("2026-01-01T00:00:00Z", Some("2027-01-01T00:00:00Z"))
            };
            evaluate(Some(&r), &requests, None, issued, at("2026-01-01T00:00:00Z"))
                .unwrap()
                .next_rotation
                .unwrap()
        };
        let plain = at("2026-01-11T00:00:00Z");
        let window = at("2026-01-10T00:00:00Z");
        let times: Vec<Timestamp> = (0..200).map(|n| next(&format!("uid-{n}"))).collect();
        assert!(
            times.iter().all(|t| *t <= plain && *t >= window),
            "within [interval − 10%, interval]"
        );
        assert_eq!(next("uid-7"), next("uid-7"), "stable per object");
        let mut distinct = times.clone();
        distinct.sort();
        distinct.dedup();
        assert!(
            distinct.len() > 190,
            "spread, not bunched: {} distinct of 200",
            distinct.len()
        );
        let early_half = times.iter().filter(|t| **t < at("2026-01-10T12:00:00Z")).count();
        assert!(
            (60..140).contains(&early_half),
            "about half in each half: {early_half}"
        );
        // Renewal before expiry is not moved by the spread.
        let expiring = Issued {
            spread: 0.99,
            ..issued("2026-01-01T00:00:00Z", Some("2026-01-05T00:00:00Z"))
        };
        let s = evaluate(Some(&r), &requests, None, expiring, at("2026-01-01T00:00:00Z")).unwrap();
        assert_eq!(s.next_rotation, Some(at("2026-01-03T00:00:00Z")));
    }

    #[test]
    fn interval_is_due_once_elapsed_and_scheduled_before() {
        let r = rotation(Some("24h"), None, None);
        let requests = current_requests(Some(&r), None);
        let before = evaluate(
            Some(&r),
            &requests,
            None,
            issued("2026-01-01T00:00:00Z", None),
            at("2026-01-01T23:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            before,
            Schedule {
                due: None,
                next_rotation: Some(at("2026-01-02T00:00:00Z"))
            }
        );
        let after = evaluate(
            Some(&r),
            &requests,
            None,
            issued("2026-01-01T00:00:00Z", None),
            at("2026-01-02T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(after.due, Some(Trigger::Interval));
    }

    #[test]
    fn renewal_before_expiry_wins_over_a_later_interval() {
        let r = rotation(Some("720h"), Some("168h"), None);
        let requests = current_requests(Some(&r), None);
        let i = issued("2026-01-01T00:00:00Z", Some("2026-01-10T00:00:00Z"));
        let s = evaluate(Some(&r), &requests, None, i, at("2026-01-02T00:00:00Z")).unwrap();
        assert_eq!(s.next_rotation, Some(at("2026-01-03T00:00:00Z")));
        assert_eq!(s.due, None);
        let s = evaluate(Some(&r), &requests, None, i, at("2026-01-03T00:00:00Z")).unwrap();
        assert_eq!(s.due, Some(Trigger::Expiring));
    }

    #[test]
    fn renewal_is_ignored_when_a_new_credential_would_expire_just_the_same() {
        let r = rotation(None, Some("168h"), None);
        let mut i = issued("2026-01-01T00:00:00Z", Some("2026-01-02T00:00:00Z"));
        i.renewal_extends_expiry = false;
        let s = evaluate(
            Some(&r),
            &current_requests(Some(&r), None),
            None,
            i,
            at("2026-01-01T12:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            s,
            Schedule {
                due: None,
                next_rotation: None
            }
        );
    }

    #[test]
    fn each_new_request_value_rotates_exactly_once() {
        let r = rotation(None, None, Some("2026-11-01"));
        let requests = current_requests(Some(&r), Some("a"));
        let i = issued("2026-01-01T00:00:00Z", None);
        let now = at("2026-01-01T01:00:00Z");
        let s = evaluate(Some(&r), &requests, None, i, now).unwrap();
        assert_eq!(s.due, Some(Trigger::RequestedAt));
        let handled = RotationRequests {
            requested_at: Some("2026-11-01".into()),
            annotation: None,
        };
        let s = evaluate(Some(&r), &requests, Some(&handled), i, now).unwrap();
        assert_eq!(s.due, Some(Trigger::Annotation));
        let s = evaluate(Some(&r), &requests, Some(&requests), i, now).unwrap();
        assert_eq!(s.due, None);
    }

    #[test]
    fn nothing_rotates_before_the_first_credential_exists() {
        let r = rotation(Some("1m"), None, Some("x"));
        let s = evaluate(
            Some(&r),
            &current_requests(Some(&r), None),
            None,
            Issued::default(),
            at("2030-01-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            s,
            Schedule {
                due: None,
                next_rotation: None
            }
        );
    }

    #[test]
    fn durations_parse_the_go_format_and_refuse_garbage() {
        assert_eq!(
            parse_duration("f", "1h30m").unwrap(),
            SignedDuration::from_mins(90)
        );
        assert_eq!(
            parse_duration("f", "1.5h").unwrap(),
            SignedDuration::from_mins(90)
        );
        assert_eq!(retain_previous(None).unwrap(), SignedDuration::ZERO);
        let error = parse_duration("spec.rotation.interval", "a week").unwrap_err();
        assert!(error.to_string().contains("spec.rotation.interval"));
    }

    #[test]
    fn retirement_splits_on_the_clock_and_wakes_at_the_next_instant() {
        let now = at("2026-01-01T12:00:00Z");
        let retiring = vec![
            RetiringCredential {
                id: "old".into(),
                retire_at: Time(at("2026-01-01T11:00:00Z")),
                break_glass: false,
                waiting_for: None,
                rotated_at: None,
            },
            RetiringCredential {
                id: "newer".into(),
                retire_at: Time(at("2026-01-01T13:00:00Z")),
                break_glass: false,
                waiting_for: None,
                rotated_at: None,
            },
        ];
        let (due, kept) = due_for_retirement(&retiring, now);
        assert_eq!(due[0].id, "old");
        assert_eq!(kept[0].id, "newer");
        let wait = wake_after(
            now,
            [
                at("2026-01-01T13:00:00Z"),
                at("2026-01-01T12:30:00Z"),
                at("2026-01-01T11:00:00Z"),
            ],
        );
        assert_eq!(wait, Some(std::time::Duration::from_secs(1800)));
    }
}
