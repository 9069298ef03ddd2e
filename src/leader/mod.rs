//! Leader election: of several replicas, only the holder of a `coordination.k8s.io/v1` Lease
//! runs the controllers, so only one replica writes to Kubernetes and to the upstreams.
//!
//! The lock itself is [`kube_lease_manager`], not a lock of our own: it is maintained, its
//! releases follow kube's (0.13 is built on kube 5 and k8s-openapi 0.29, the versions this
//! crate uses, so it shares our client), it takes the lease with server-side apply so two
//! replicas cannot both acquire it, and it has an explicit release. kubert's lease, the other
//! well-known implementation, still requires kube 1.x in its latest release (0.25), so it
//! cannot run on our client.
//!
//! Two things are added around the crate, both driven by a watch on the Lease (`elector`):
//! - A standby campaigns again as soon as the Lease is released. The crate alone sleeps
//!   until the holder's lease would expire, which would make a release on SIGTERM no faster
//!   than a crash.
//! - The leader gives up once it has not seen its own renewal for `duration - renew_period`
//!   (a renew deadline, as in client-go; see `deadline`). The crate only reports a lost
//!   lease when a request gets through; a leader cut off from the API server must stop by
//!   itself, and early enough to be gone before a standby may take the lease over.

mod deadline;
mod elector;

use std::future::Future;
use std::time::Duration;

use kube::Client;
use kube_lease_manager::LeaseManagerError;
use tracing::info;

use crate::health::Readiness;
use crate::metrics::Metrics;

use elector::Elector;

/// Where the lease lives, who we are, and its timing.
#[derive(Clone, Debug)]
pub struct Config {
    /// Name of the Lease object.
    pub lease_name: String,
    /// Namespace of the Lease object.
    pub namespace: String,
    /// This replica's holder identity: unique among the replicas.
    pub identity: String,
    /// How long a lease stays valid after its last renewal.
    pub duration: Duration,
    /// How often the leader renews.
    pub renew_period: Duration,
}

impl Config {
    /// Checks the timing: whole seconds (the Lease counts in seconds), and a renew period
    /// shorter than half the duration, so the leader has time to retry a failed renewal and
    /// still stop (at the renew deadline) a renew period before the lease expires.
    pub fn validate(&self) -> Result<(), Error> {
        let (duration, renew) = (self.duration, self.renew_period);
        let whole = |d: Duration| d.subsec_nanos() == 0 && d.as_secs() > 0;
        if !whole(duration) || !whole(renew) || renew * 2 >= duration {
            return Err(Error::Timing { duration, renew });
        }
        Ok(())
    }

    /// How long the leader goes on without seeing its renewal before it gives up.
    fn renew_deadline(&self) -> Duration {
        self.duration - self.renew_period
    }
}

/// The default holder identity when no instance name is given: `<hostname>-<pid>`.
pub fn default_identity() -> String {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string());
    format!("{hostname}-{}", std::process::id())
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "lease duration {duration:?} and renew period {renew:?}: both must be whole seconds, and the renew period shorter than half the duration"
    )]
    Timing { duration: Duration, renew: Duration },
    #[error("releasing the lease {lease}")]
    Release {
        lease: String,
        #[source]
        source: LeaseManagerError,
    },
    #[error("lost the lease {lease} to another replica")]
    Lost { lease: String },
    #[error(
        "could not renew the lease {lease} for {waited:?}; giving it up before another replica may take it"
    )]
    RenewDeadline { lease: String, waited: Duration },
}

/// Runs `controllers` only while this replica holds the lease, until `shutdown` resolves
/// or the lease is lost.
///
/// A standby is Ready as soon as it has read the Lease (as controller-runtime's standbys
/// are: a rolling update waits for the new pod to be Ready before it stops the old leader,
/// and a standby that could not become Ready would stall it). On `shutdown` the leader's
/// `controllers` finish what they are doing (they watch the same signal), then the lease
/// is released so a standby takes over at once. A leader that loses the lease, or cannot
/// renew it in time, returns an error at once, dropping its controllers mid-flight (the
/// process then exits non-zero and restarts clean, like controller-runtime's): the
/// crash-safe reconcile makes that harmless, while two writers would not be.
pub async fn run_elected(
    client: Client,
    config: Config,
    metrics: &Metrics,
    readiness: &Readiness,
    controllers: impl Future<Output = ()>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    config.validate()?;
    let (lease, identity) = (config.lease_name.clone(), config.identity.clone());
    metrics.set_leader(false);
    let mut elector = Elector::start(client, config);
    let campaign = async {
        elector.wait_observed().await;
        readiness.set_ready();
        info!(%lease, %identity, "standing by for the lease");
        elector.campaign().await
    };
    let mut leadership = tokio::select! {
        leadership = campaign => leadership,
        () = shutdown => {
            elector.stand_down().await;
            info!(%lease, %identity, "stopped before leading");
            return Ok(());
        }
    };
    metrics.set_leader(true);
    info!(%lease, %identity, "acquired the lease; starting the controllers");
    let outcome = tokio::select! {
        () = controllers => None,
        lost = leadership.hold() => Some(lost),
    };
    metrics.set_leader(false);
    if let Some(lost) = outcome {
        tracing::error!(%lease, %identity, error = %lost, "leadership lost; stopping at once");
        return Err(lost);
    }
    leadership.release().await?;
    info!(%lease, %identity, "controllers stopped; lease released");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn config(duration: u64, renew: u64) -> Config {
        Config {
            lease_name: "l".into(),
            namespace: "n".into(),
            identity: "me".into(),
            duration: Duration::from_secs(duration),
            renew_period: Duration::from_secs(renew),
        }
    }

    #[test]
    fn timing_needs_room_to_retry_a_renewal() {
        assert!(config(15, 5).validate().is_ok());
        assert!(config(15, 7).validate().is_ok());
        for (duration, renew) in [(15, 8), (10, 5), (15, 0), (0, 0)] {
            assert!(config(duration, renew).validate().is_err(), "{duration}/{renew}");
        }
        let fractional = Config {
            renew_period: Duration::from_millis(1500),
            ..config(15, 5)
        };
        assert!(fractional.validate().is_err());
    }
}
