//! Which failpoint each kind (and provider path) can reach, and why not where it cannot.
//! Every row lists every point of `failpoint::POINTS` in order (checked by a test), so a
//! point added to the operator fails the suite until someone decides, per kind, whether it
//! is exercised or why it is not.

/// A kind on one provider path: the unit a crash scenario runs for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// ApiToken on Prefactor.
    ApiToken,
    /// ServiceAccountKey on ZenML.
    Zenml,
    /// ServiceAccountKey on Trend Micro without overlap: rotation regenerates the secret.
    TrendRegenerate,
    /// ServiceAccountKey on Trend Micro with `retainPrevious`: rotation creates a second key
    /// and the operator deletes the previous one when the overlap ends.
    TrendOverlap,
    /// ApiClient on Akamai: the managed credential is created, rotated, retired, deleted.
    ApiClient,
}

/// What a crash at a point must lead to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The operator aborts there; a fresh one converges to exactly one working credential
    /// (or, for deletion points, to nothing upstream).
    Recovers,
    /// The kind never passes through the point on this path, for this reason.
    NotApplicable(&'static str),
}

use Expect::{NotApplicable, Recovers};

const ZENML_RETIRES_ITSELF: Expect = NotApplicable(
    "ZenML rotates in place and ends the previous secret itself after retain_period_minutes; \
     the operator never retires a ZenML key",
);
const REGENERATE_RETIRES_NOTHING: Expect = NotApplicable(
    "without retainPrevious Trend Micro's regenerate ends the old secret at once; there is \
     nothing to retire (the retire points run on TrendOverlap)",
);

/// Kind × point.
pub const TABLE: [(Path, [(&str, Expect); 9]); 5] = [
    (
        Path::ApiToken,
        [
            ("before-create", Recovers),
            ("after-create", Recovers),
            ("after-secret-write", Recovers),
            ("before-rotate", Recovers),
            ("after-rotate", Recovers),
            ("before-retire", Recovers),
            ("after-retire", Recovers),
            ("before-delete", Recovers),
            ("after-delete", Recovers),
        ],
    ),
    (
        Path::Zenml,
        [
            ("before-create", Recovers),
            ("after-create", Recovers),
            ("after-secret-write", Recovers),
            ("before-rotate", Recovers),
            ("after-rotate", Recovers),
            ("before-retire", ZENML_RETIRES_ITSELF),
            ("after-retire", ZENML_RETIRES_ITSELF),
            ("before-delete", Recovers),
            ("after-delete", Recovers),
        ],
    ),
    (
        Path::TrendRegenerate,
        [
            ("before-create", Recovers),
            ("after-create", Recovers),
            ("after-secret-write", Recovers),
            ("before-rotate", Recovers),
            ("after-rotate", Recovers),
            ("before-retire", REGENERATE_RETIRES_NOTHING),
            ("after-retire", REGENERATE_RETIRES_NOTHING),
            ("before-delete", Recovers),
            ("after-delete", Recovers),
        ],
    ),
    (
        Path::TrendOverlap,
        [
            ("before-create", Recovers),
            ("after-create", Recovers),
            ("after-secret-write", Recovers),
            ("before-rotate", Recovers),
            ("after-rotate", Recovers),
            ("before-retire", Recovers),
            ("after-retire", Recovers),
            ("before-delete", Recovers),
            ("after-delete", Recovers),
        ],
    ),
    (
        Path::ApiClient,
        [
            ("before-create", Recovers),
            ("after-create", Recovers),
            ("after-secret-write", Recovers),
            ("before-rotate", Recovers),
            ("after-rotate", Recovers),
            ("before-retire", Recovers),
            ("after-retire", Recovers),
            ("before-delete", Recovers),
            ("after-delete", Recovers),
        ],
    ),
];

/// The points `path` is expected to recover from.
pub fn exercised(path: Path) -> Vec<&'static str> {
    let (_, row) = TABLE
        .iter()
        .find(|(p, _)| *p == path)
        .expect("every path has a row");
    row.iter()
        .filter(|(_, expect)| *expect == Recovers)
        .map(|(point, _)| *point)
        .collect()
}

/// What the operator is doing when a point is reached, which decides the scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Issuing the first credential (the crash hits while creating the resource).
    Create,
    /// Rotating on request, and retiring the previous credential afterwards.
    Rotate,
    /// Deleting the resource (policy Delete).
    Delete,
}

pub fn phase(point: &str) -> Phase {
    match point {
        "before-create" | "after-create" | "after-secret-write" => Phase::Create,
        "before-rotate" | "after-rotate" | "before-retire" | "after-retire" => Phase::Rotate,
        "before-delete" | "after-delete" => Phase::Delete,
        other => panic!("failpoint {other} has no phase: add it to table::phase"),
    }
}
