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
//! Two things are added around the crate, both driven by a watch on the Lease:
//! - A standby campaigns again as soon as the Lease is released. The crate alone sleeps
//!   until the holder's lease would expire, which would make a release on SIGTERM no faster
//!   than a crash.
//! - The leader gives up once it has not seen its own renewal for `duration - renew_period`
//!   (a renew deadline, as in client-go). The crate only reports a lost lease when a request
//!   gets through; a leader cut off from the API server must stop by itself, and early
//!   enough to be gone before a standby may take the lease over.

use std::time::{Duration, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::watch_object;
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

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

/// What the watch last saw of the Lease.
#[derive(Clone, Debug)]
struct Observed {
    holder: Option<String>,
    renewed: Option<SystemTime>,
}

impl Observed {
    fn of(lease: Option<&Lease>) -> Self {
        let spec = lease.and_then(|l| l.spec.as_ref());
        Observed {
            holder: spec.and_then(|s| s.holder_identity.clone()),
            renewed: spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0.into()),
        }
    }
}

/// A replica campaigning for the lease.
pub struct Elector {
    client: Client,
    config: Config,
    /// `None` until the watch has read the Lease (or found it missing) once.
    observed: watch::Receiver<Option<Observed>>,
    watching: JoinHandle<()>,
    /// The manager of the current campaign, kept so that [`Elector::stand_down`] can give
    /// back a lease acquired just as the campaign was abandoned.
    manager: Option<LeaseManager>,
}

impl Drop for Elector {
    fn drop(&mut self) {
        self.watching.abort();
    }
}

impl Elector {
    /// Starts watching the Lease.
    pub fn start(client: Client, config: Config) -> Self {
        let (tx, observed) = watch::channel::<Option<Observed>>(None);
        let api: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
        let lease = config.lease_name.clone();
        let watching = tokio::spawn(async move {
            let mut changes = std::pin::pin!(watch_object(api, &lease).backoff(EverySecond));
            while let Some(change) = changes.next().await {
                match change {
                    Ok(found) => {
                        let now = Observed::of(found.as_ref());
                        let before = tx.borrow().as_ref().and_then(|o| o.holder.clone());
                        if before != now.holder {
                            info!(lease = %lease, holder = ?now.holder, "lease holder changed");
                        }
                        tx.send_replace(Some(now));
                    }
                    Err(error) => warn!(lease = %lease, %error, "watching the lease failed; retrying"),
                }
            }
        });
        Elector {
            client,
            config,
            observed,
            watching,
            manager: None,
        }
    }

    /// Resolves once the Lease has been read: the API server is reachable and the replica
    /// may read the Lease.
    pub async fn wait_observed(&mut self) {
        if self.observed.wait_for(Option::is_some).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Campaigns until this replica holds the lease. Errors (the API server unreachable,
    /// permissions missing) are logged and retried: a standby has nothing better to do.
    pub async fn campaign(&mut self) -> Leadership {
        let lease = self.config.lease_name.clone();
        let mut backoff = Duration::from_millis(500);
        loop {
            // Only releases from now on wake the campaign up again.
            self.observed.borrow_and_update();
            let manager = match self.build().await {
                Ok(manager) => self.manager.insert(manager),
                Err(source) => {
                    warn!(lease = %lease, error = %source, "cannot campaign for the lease; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.config.renew_period);
                    continue;
                }
            };
            tokio::select! {
                acquired = manager.changed() => match acquired {
                    Ok(true) => {
                        let manager = self.manager.take().expect("the campaign's manager");
                        return Leadership {
                            manager,
                            config: self.config.clone(),
                            observed: self.observed.clone(),
                            acquired: SystemTime::now(),
                        };
                    }
                    // A fresh manager starts as a non-holder and reports changes only.
                    Ok(false) => {}
                    Err(source) => {
                        warn!(lease = %lease, error = %source, "campaigning for the lease failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(self.config.renew_period);
                    }
                },
                () = released(&mut self.observed) => {
                    // A fresh manager reads the Lease again instead of sleeping until the
                    // previous holder's lease would have expired.
                    debug!(lease = %lease, "the lease was released; campaigning again");
                }
            }
        }
    }

    /// Gives back the lease if the abandoned campaign acquired it at the last moment.
    pub async fn stand_down(&mut self) {
        if let Some(manager) = self.manager.take()
            && let Err(error) = manager.release().await
        {
            warn!(lease = %self.config.lease_name, %error, "releasing the lease failed");
        }
    }

    async fn build(&self) -> Result<LeaseManager, LeaseManagerError> {
        let grace = self.config.duration - self.config.renew_period;
        LeaseManagerBuilder::new(self.client.clone(), &self.config.lease_name)
            .with_namespace(&self.config.namespace)
            .with_identity(&self.config.identity)
            .with_duration(self.config.duration.as_secs())
            // The crate renews `grace` before expiry: every `renew_period`.
            .with_grace(grace.as_secs())
            .build()
            .await
    }
}

/// Retries the Lease watch every second: kube's default backoff grows to 30 s, and a leader
/// whose watch is still backing off after a short API server outage would miss seeing its
/// renewals and give up the lease needlessly.
struct EverySecond;

impl Iterator for EverySecond {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(Duration::from_secs(1))
    }
}

impl kube::runtime::utils::Backoff for EverySecond {
    fn reset(&mut self) {}
}

/// Resolves when the watch sees the Lease without a holder (released).
async fn released(observed: &mut watch::Receiver<Option<Observed>>) {
    loop {
        if observed.changed().await.is_err() {
            return std::future::pending().await;
        }
        if observed
            .borrow_and_update()
            .as_ref()
            .is_some_and(|o| o.holder.is_none())
        {
            return;
        }
    }
}

/// This replica holds the lease.
pub struct Leadership {
    manager: LeaseManager,
    config: Config,
    observed: watch::Receiver<Option<Observed>>,
    acquired: SystemTime,
}

impl Leadership {
    /// Keeps the lease renewed. Resolves only when the lease is lost, or when its renewal
    /// could not be confirmed before the renew deadline; the caller must then stop at once.
    pub async fn hold(&mut self) -> Error {
        let lease = self.config.lease_name.clone();
        let renewing = async {
            loop {
                match self.manager.changed().await {
                    Ok(true) => {}
                    Ok(false) => return Error::Lost { lease: lease.clone() },
                    Err(source) => {
                        // Retried until the renew deadline (below) says it is too late.
                        warn!(lease = %lease, error = %source, "renewing the lease failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        };
        let fence = renew_deadline(&mut self.observed, &self.config, self.acquired);
        tokio::select! {
            lost = renewing => lost,
            late = fence => late,
        }
    }

    /// Gives the lease up, so a standby takes over now instead of after expiry.
    pub async fn release(self) -> Result<(), Error> {
        self.manager.release().await.map_err(|source| Error::Release {
            lease: self.config.lease_name.clone(),
            source,
        })
    }
}

/// Resolves when no renewal of ours has been seen for the renew deadline.
async fn renew_deadline(
    observed: &mut watch::Receiver<Option<Observed>>,
    config: &Config,
    acquired: SystemTime,
) -> Error {
    let mut confirmed = acquired;
    loop {
        if let Some(Observed {
            holder: Some(holder),
            renewed: Some(renewed),
        }) = observed.borrow_and_update().clone()
            && holder == config.identity
        {
            confirmed = confirmed.max(renewed);
        }
        let deadline = confirmed + config.renew_deadline();
        let left = deadline.duration_since(SystemTime::now()).unwrap_or_default();
        if left.is_zero() {
            return Error::RenewDeadline {
                lease: config.lease_name.clone(),
                waited: config.renew_deadline(),
            };
        }
        tokio::select! {
            changed = observed.changed() => {
                if changed.is_err() {
                    // The watch is gone: nothing can confirm a renewal any more.
                    tokio::time::sleep(left).await;
                }
            }
            () = tokio::time::sleep(left) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(duration: u64, renew: u64) -> Config {
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

    #[tokio::test]
    async fn the_leader_gives_up_when_no_renewal_is_seen_in_time() {
        let config = config(3, 1);
        let (tx, mut rx) = watch::channel(None);
        let started = SystemTime::now();
        // Renewals by someone else confirm nothing.
        tx.send_replace(Some(Observed {
            holder: Some("other".into()),
            renewed: Some(SystemTime::now()),
        }));
        let error = renew_deadline(&mut rx, &config, started).await;
        assert!(matches!(error, Error::RenewDeadline { .. }), "{error}");
        let waited = started.elapsed().unwrap();
        assert!(waited >= Duration::from_secs(2), "{waited:?}");
    }

    #[tokio::test]
    async fn seen_renewals_push_the_deadline_back() {
        let config = config(3, 1);
        let (tx, mut rx) = watch::channel(None);
        let started = SystemTime::now();
        let renewals = tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                tx.send_replace(Some(Observed {
                    holder: Some("me".into()),
                    renewed: Some(SystemTime::now()),
                }));
            }
            tx
        });
        let error = renew_deadline(&mut rx, &config, started).await;
        let waited = started.elapsed().unwrap();
        assert!(matches!(error, Error::RenewDeadline { .. }), "{error}");
        assert!(
            waited >= Duration::from_secs(5),
            "three renewals a second apart, then two seconds: {waited:?}"
        );
        drop(renewals.await);
    }
}
