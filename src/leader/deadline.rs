//! The leader's renew deadline.
//!
//! It runs on this process's monotonic clock, from the moment the process saw its own
//! renewal, as client-go does. The Lease's renewTime is the writer's wall-clock time:
//! measured against the wall clock, a clock stepped back would keep a leader writing after
//! a standby took the lease over, and a clock stepped forward would make it quit for
//! nothing. Here the renewTime only tells a new renewal from the last one seen (it changes
//! with every renewal, whichever way the clock moved).

use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;
use tokio::time::Instant;

use super::elector::Observed;
use super::{Config, Error};

/// Resolves once no renewal of ours has been seen for the renew deadline, counted from
/// `acquired` and then from each renewal the watch delivers.
pub(super) async fn renew_deadline(
    observed: &mut watch::Receiver<Option<Observed>>,
    config: &Config,
    acquired: Instant,
) -> Error {
    let ours = |observed: &Option<Observed>| -> Option<Timestamp> {
        let observed = observed.as_ref()?;
        (observed.holder.as_deref() == Some(config.identity.as_str()))
            .then_some(observed.renewed)
            .flatten()
    };
    // What the watch shows now is the acquisition itself (or older): not a renewal since.
    let mut last_renewal = ours(&observed.borrow_and_update());
    let mut confirmed = acquired;
    let late = || Error::RenewDeadline {
        lease: config.lease_name.clone(),
        waited: config.renew_deadline(),
    };
    loop {
        let deadline = confirmed + config.renew_deadline();
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(deadline) => return late(),
            changed = observed.changed() => {
                if changed.is_err() {
                    // The watch is gone: nothing can confirm a renewal any more.
                    tokio::time::sleep_until(deadline).await;
                    return late();
                }
                let seen = ours(&observed.borrow_and_update());
                if seen.is_some() && seen != last_renewal {
                    confirmed = Instant::now();
                    last_renewal = seen;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::advance;

    use super::*;
    use crate::leader::tests::config;

    fn renewal(holder: &str, renew_second: i64) -> Option<Observed> {
        Some(Observed {
            holder: Some(holder.into()),
            renewed: Some(Timestamp::from_second(renew_second).unwrap()),
        })
    }

    /// Runs the deadline of a lease of 3 s renewed every second (a deadline of 2 s) in a
    /// task, acquired now.
    fn fence(observed: watch::Receiver<Option<Observed>>) -> (Instant, tokio::task::JoinHandle<Error>) {
        let acquired = Instant::now();
        let fence = tokio::spawn(async move {
            let mut observed = observed;
            renew_deadline(&mut observed, &config(3, 1), acquired).await
        });
        (acquired, fence)
    }

    /// Lets the fence task see what was just sent, without moving the clock.
    async fn settle() {
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_leader_gives_up_when_no_renewal_of_its_own_is_seen_in_time() {
        let (tx, rx) = watch::channel(renewal("me", 100));
        let (acquired, fence) = fence(rx);
        settle().await;
        // Renewals by someone else confirm nothing.
        for second in 1..=3 {
            advance(Duration::from_millis(600)).await;
            tx.send_replace(renewal("other", 100 + second));
            settle().await;
        }
        advance(Duration::from_millis(199)).await;
        settle().await;
        assert!(!fence.is_finished(), "gave up before the deadline");
        advance(Duration::from_millis(1)).await;
        settle().await;
        assert!(fence.is_finished(), "went on past the deadline");
        let error = fence.await.unwrap();
        assert!(matches!(error, Error::RenewDeadline { .. }), "{error}");
        assert_eq!(acquired.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn seen_renewals_push_the_deadline_back() {
        let (tx, rx) = watch::channel(renewal("me", 100));
        let (acquired, fence) = fence(rx);
        settle().await;
        for second in 1..=3 {
            advance(Duration::from_secs(1)).await;
            tx.send_replace(renewal("me", 100 + second));
            settle().await;
            assert!(!fence.is_finished(), "gave up {second} s in, just renewed");
        }
        let error = fence.await.unwrap();
        assert!(matches!(error, Error::RenewDeadline { .. }), "{error}");
        assert_eq!(
            acquired.elapsed(),
            Duration::from_secs(5),
            "three renewals a second apart, then the two seconds of the deadline"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_is_a_changed_renew_time_whichever_way_the_wall_clock_moved() {
        let (tx, rx) = watch::channel(renewal("me", 100));
        let (acquired, fence) = fence(rx);
        settle().await;
        // The leader's wall clock stepped back an hour: its next renewal is still one.
        advance(Duration::from_secs(1)).await;
        tx.send_replace(renewal("me", 100 - 3600));
        settle().await;
        // The same renewal delivered again (a watch relist) is not a new one.
        advance(Duration::from_secs(1)).await;
        tx.send_replace(renewal("me", 100 - 3600));
        settle().await;
        let error = fence.await.unwrap();
        assert!(matches!(error, Error::RenewDeadline { .. }), "{error}");
        assert_eq!(
            acquired.elapsed(),
            Duration::from_secs(3),
            "the deadline runs from the renewal seen at 1 s"
        );
    }
}
