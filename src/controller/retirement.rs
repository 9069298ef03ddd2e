//! Whether a previous credential may be retired now: its retain period is over, and nothing
//! still holds it — every `rolloutRestart` target has rolled out, and (with
//! `retireWhenUnusedFor`) the upstream reports no recent use. `maxRetain` bounds the wait;
//! a break-glass rotation skips it. Pure, so every rule is unit-tested without a cluster.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::rollout::Progress;
use crate::api::RetiringCredential;

/// While a rollout holds a retirement, it is looked at again this often.
pub const ROLLOUT_RECHECK: Duration = Duration::from_secs(10);

/// Upstreams report a last use to the second at best: a use is taken to last that long, so
/// a credential is never judged quiet early.
const USE_PRECISION: SignedDuration = SignedDuration::from_secs(1);

/// What can hold a retirement back, from the spec.
#[derive(Clone, Copy, Debug)]
pub struct Gates {
    /// Whether the spec names workloads to restart (and so to wait for).
    pub rollout: bool,
    pub unused_for: Option<SignedDuration>,
    pub retain_previous: SignedDuration,
    pub max_retain: SignedDuration,
}

impl Gates {
    fn any(&self) -> bool {
        self.rollout || self.unused_for.is_some()
    }
}

/// What was seen of the holders: each target's rollout, and the previous credential's last
/// use as the upstream reports it.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub rollouts: Vec<Progress>,
    pub last_use: Option<Timestamp>,
}

/// How a retirement came about, for its event and metric.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum How {
    /// At the end of its retain period; nothing to wait for.
    Scheduled,
    /// After the rollouts finished and its use stopped.
    Released,
    /// `maxRetain` passed with these still holding it.
    Forced { held_by: String },
    /// Replaced by a break-glass rotation.
    BreakGlass,
}

impl How {
    pub fn metric_label(&self) -> &'static str {
        match self {
            How::Scheduled => "scheduled",
            How::Released => "released",
            How::Forced { .. } => "forced",
            How::BreakGlass => "break_glass",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Retire(How),
    /// Held by `waiting_for`; look again after `recheck`.
    Hold {
        waiting_for: String,
        recheck: Duration,
    },
}

/// Whether `entry` (past its `retireAt`) is retired now.
pub fn decide(entry: &RetiringCredential, gates: Gates, observed: &Observed, now: Timestamp) -> Decision {
    if entry.break_glass {
        return Decision::Retire(How::BreakGlass);
    }
    if !gates.any() {
        return Decision::Retire(How::Scheduled);
    }
    let mut holds: Vec<String> = Vec::new();
    let mut recheck: Option<Duration> = None;
    let mut sooner = |after: Duration| recheck = Some(recheck.map_or(after, |r| r.min(after)));
    for rollout in observed.rollouts.iter().filter(|r| !r.done) {
        holds.push(rollout.summary.clone());
        sooner(ROLLOUT_RECHECK);
    }
    if let (Some(unused_for), Some(used)) = (gates.unused_for, observed.last_use) {
        let quiet_at = used + USE_PRECISION + unused_for;
        if quiet_at > now {
            holds.push(format!(
                "the previous credential was last used at {used}; it retires once unused for {}",
                friendly(unused_for)
            ));
            sooner(quiet_at.duration_since(now).unsigned_abs());
        }
    }
    if holds.is_empty() {
        return Decision::Retire(How::Released);
    }
    let held_by = holds.join("; ");
    // Counted from the rotation; an entry from before it was recorded: retireAt less the
    // retain period.
    let rotated_at = entry
        .rotated_at
        .as_ref()
        .map_or(entry.retire_at.0 - gates.retain_previous, |t| t.0);
    let forced_at = rotated_at + gates.max_retain.max(gates.retain_previous);
    if forced_at <= now {
        return Decision::Retire(How::Forced { held_by });
    }
    sooner(forced_at.duration_since(now).unsigned_abs());
    Decision::Hold {
        waiting_for: held_by,
        recheck: recheck.unwrap_or(ROLLOUT_RECHECK),
    }
}

fn friendly(duration: SignedDuration) -> String {
    format!("{:#}", duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn entry(retire_at: &str, break_glass: bool) -> RetiringCredential {
        RetiringCredential {
            id: "old".into(),
            retire_at: Time(at(retire_at)),
            break_glass,
            waiting_for: None,
            rotated_at: None,
        }
    }

    fn gates(rollout: bool, unused_for: Option<i64>) -> Gates {
        Gates {
            rollout,
            unused_for: unused_for.map(SignedDuration::from_mins),
            retain_previous: SignedDuration::from_mins(5),
            max_retain: SignedDuration::from_hours(1),
        }
    }

    fn rolling(done: bool) -> Observed {
        Observed {
            rollouts: vec![Progress {
                summary: "Deployment billing-api: 2/3 updated, 2 available".into(),
                done,
                restarted: true,
            }],
            last_use: None,
        }
    }

    #[test]
    fn without_gates_the_retain_period_alone_decides() {
        let decision = decide(
            &entry("2026-01-01T00:05:00Z", false),
            gates(false, None),
            &Observed::default(),
            at("2026-01-01T00:05:00Z"),
        );
        assert_eq!(decision, Decision::Retire(How::Scheduled));
    }

    #[test]
    fn a_rollout_in_progress_holds_until_it_finishes_or_max_retain_passes() {
        let old = entry("2026-01-01T00:05:00Z", false);
        let held = decide(
            &old,
            gates(true, None),
            &rolling(false),
            at("2026-01-01T00:06:00Z"),
        );
        assert_eq!(
            held,
            Decision::Hold {
                waiting_for: "Deployment billing-api: 2/3 updated, 2 available".into(),
                recheck: ROLLOUT_RECHECK
            }
        );
        let released = decide(
            &old,
            gates(true, None),
            &rolling(true),
            at("2026-01-01T00:06:00Z"),
        );
        assert_eq!(released, Decision::Retire(How::Released));
        // Rotated at 00:00; maxRetain 1h.
        let forced = decide(
            &old,
            gates(true, None),
            &rolling(false),
            at("2026-01-01T01:00:00Z"),
        );
        assert_eq!(
            forced,
            Decision::Retire(How::Forced {
                held_by: "Deployment billing-api: 2/3 updated, 2 available".into()
            })
        );
    }

    #[test]
    fn a_recent_use_holds_until_the_credential_has_been_quiet_long_enough() {
        let old = entry("2026-01-01T00:05:00Z", false);
        let used = Observed {
            rollouts: Vec::new(),
            last_use: Some(at("2026-01-01T00:04:00Z")),
        };
        let held = decide(&old, gates(false, Some(10)), &used, at("2026-01-01T00:06:00Z"));
        let Decision::Hold { waiting_for, recheck } = held else {
            panic!("held: {held:?}")
        };
        assert!(
            waiting_for.contains("last used at 2026-01-01T00:04:00Z"),
            "{waiting_for}"
        );
        assert_eq!(
            recheck,
            Duration::from_secs(8 * 60 + 1),
            "looks again when it has been quiet 10m"
        );
        let quiet = decide(&old, gates(false, Some(10)), &used, at("2026-01-01T00:14:01Z"));
        assert_eq!(quiet, Decision::Retire(How::Released));
        let never_used = decide(
            &old,
            gates(false, Some(10)),
            &Observed::default(),
            at("2026-01-01T00:06:00Z"),
        );
        assert_eq!(never_used, Decision::Retire(How::Released));
    }

    #[test]
    fn max_retain_counts_from_the_rotation_and_never_ends_before_the_retain_period() {
        let mut old = entry("2026-01-01T00:05:00Z", false);
        old.rotated_at = Some(Time(at("2026-01-01T00:00:00Z")));
        let long_retain = Gates {
            retain_previous: SignedDuration::from_hours(2),
            ..gates(true, None)
        };
        let held = decide(&old, long_retain, &rolling(false), at("2026-01-01T01:30:00Z"));
        assert!(
            matches!(held, Decision::Hold { .. }),
            "maxRetain 1h < retainPrevious 2h: {held:?}"
        );
        let forced = decide(&old, long_retain, &rolling(false), at("2026-01-01T02:00:00Z"));
        assert!(
            matches!(forced, Decision::Retire(How::Forced { .. })),
            "{forced:?}"
        );
    }

    #[test]
    fn break_glass_ignores_every_gate() {
        let decision = decide(
            &entry("2026-01-01T00:00:00Z", true),
            gates(true, Some(10)),
            &rolling(false),
            at("2026-01-01T00:00:00Z"),
        );
        assert_eq!(decision, Decision::Retire(How::BreakGlass));
    }

    #[test]
    fn the_hold_looks_again_no_later_than_max_retain() {
        let old = entry("2026-01-01T00:05:00Z", false);
        let used = Observed {
            rollouts: Vec::new(),
            last_use: Some(at("2026-01-01T00:59:00Z")),
        };
        let held = decide(&old, gates(false, Some(30)), &used, at("2026-01-01T00:59:30Z"));
        assert!(
            matches!(held, Decision::Hold { recheck, .. } if recheck == Duration::from_secs(30)),
            "{held:?}"
        );
    }
}
