//! Crash safety: the operator is aborted (SIGABRT, no cleanup) at every failpoint —
//! right before and after each upstream create, rotate, retire and delete, and between
//! writing the Secret and writing status — for every kind on every provider path, then a
//! fresh operator takes over. Each resource must end Ready with exactly one live upstream
//! credential, the one its status names (no orphan, no twin), and a Secret whose key
//! authenticates; a deleted one must leave nothing upstream. `table` says which point
//! each kind can reach, and why not where it cannot.
//!
//! Its own test binary: each scenario runs operators scoped to its namespace, and no
//! other operator may touch those objects (the quiet-minute and high-availability tests
//! live here for the same reason). Scenarios of one kind run concurrently, each with its own
//! credential store.

mod ha;
mod kinds;
mod quiet;
mod scenario;
mod table;

use apikey_operator::failpoint;

use kinds::{Akamai, Prefactor, RealZenml, Trend, Zenml};
use table::{Expect, Path, TABLE};

#[tokio::test]
async fn api_token_recovers_from_every_failpoint() {
    scenario::every_point(Prefactor, Path::ApiToken).await;
}

#[tokio::test]
async fn zenml_key_recovers_from_every_failpoint() {
    scenario::every_point(Zenml, Path::Zenml).await;
}

/// The same crashes against the real open-source ZenML server: its `Idempotency-Key`
/// replay and its rotation, not our emulation of them.
#[tokio::test]
async fn zenml_key_on_the_real_server_recovers_from_every_failpoint() {
    scenario::every_point(RealZenml::default(), Path::Zenml).await;
}

#[tokio::test]
async fn trend_key_rotated_by_regenerating_recovers_from_every_failpoint() {
    let kind = Trend {
        retain_previous: "0s",
    };
    scenario::every_point(kind, Path::TrendRegenerate).await;
}

#[tokio::test]
async fn trend_key_rotated_with_overlap_recovers_from_every_failpoint() {
    let kind = Trend {
        retain_previous: "3s",
    };
    scenario::every_point(kind, Path::TrendOverlap).await;
}

#[tokio::test]
async fn api_client_recovers_from_every_failpoint() {
    scenario::every_point(Akamai, Path::ApiClient).await;
}

#[test]
fn the_table_covers_every_failpoint_for_every_kind() {
    for (path, row) in TABLE {
        let points: Vec<&str> = row.iter().map(|(point, _)| *point).collect();
        assert_eq!(points, failpoint::POINTS, "{path:?} lists every point, in order");
        for (point, expect) in row {
            table::phase(point);
            if let Expect::NotApplicable(reason) = expect {
                assert!(!reason.is_empty(), "{path:?} {point}: say why");
            }
        }
    }
    let paths: Vec<Path> = TABLE.iter().map(|(path, _)| *path).collect();
    assert_eq!(
        paths,
        [
            Path::ApiToken,
            Path::Zenml,
            Path::TrendRegenerate,
            Path::TrendOverlap,
            Path::ApiClient
        ]
    );
}
