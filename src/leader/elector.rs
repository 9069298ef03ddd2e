//! The campaign for the lease and holding it, around [`kube_lease_manager`], with a watch on
//! the Lease that wakes a standby on a release and confirms the leader's renewals.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::watch_object;
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::deadline::renew_deadline;
use super::{Config, Error};

/// What the watch last saw of the Lease.
#[derive(Clone, Debug)]
pub(super) struct Observed {
    pub(super) holder: Option<String>,
    /// The holder's last renewal, as written by the holder's wall clock: only ever compared
    /// with another renewTime, to tell a new renewal from the last one.
    pub(super) renewed: Option<Timestamp>,
}

impl Observed {
    fn of(lease: Option<&Lease>) -> Self {
        let spec = lease.and_then(|l| l.spec.as_ref());
        Observed {
            holder: spec.and_then(|s| s.holder_identity.clone()),
            renewed: spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0),
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
                            acquired: Instant::now(),
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
    /// When this process saw the lease acquired, on its monotonic clock.
    acquired: Instant,
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
