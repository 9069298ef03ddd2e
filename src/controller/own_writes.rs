//! What this process last wrote of each key resource, so a reconciliation can tell a cached
//! object that lags its own writes (read it fresh) from the echo of a reconciliation that
//! finished moments ago (nothing upstream to look at again).
//!
//! Like client-go's controller expectations: a write is expected back through the watch;
//! until it is seen, any other cached version may be older than it. resourceVersions are
//! only compared for equality, never ordered.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the echo of a finished reconciliation may skip the upstream look. The echoes
/// (status and Secret events) arrive within seconds; a later run on the same version, such
/// as the drift resync, must look again.
const ECHO_WINDOW: Duration = Duration::from_secs(60);

/// How a cached object relates to this process's last write of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CachedVersion {
    /// The version a reconciliation wrote as it finished, moments ago.
    SettledEcho,
    /// A version this process wrote mid-reconciliation, or settled long ago.
    Own,
    /// Possibly older than this process's last write, which has not come back yet.
    MayLag,
    /// Nothing known against it: no write of ours, or a later change by someone else.
    Unknown,
}

#[derive(Default)]
pub struct OwnWrites(Mutex<HashMap<String, OwnWrite>>);

struct OwnWrite {
    resource_version: String,
    /// Whether the watch has delivered this version (or a fresh read superseded it).
    seen: bool,
    /// When the reconciliation that wrote it finished, if it did.
    settled_at: Option<Instant>,
}

impl OwnWrites {
    /// Records a write of object `uid` in the middle of a reconciliation: the cache has to
    /// catch up with it, but its echo is not idle (the run may still fail after it).
    pub fn wrote(&self, uid: &str, resource_version: &str) {
        self.lock().insert(
            uid.to_string(),
            OwnWrite {
                resource_version: resource_version.to_string(),
                seen: false,
                settled_at: None,
            },
        );
    }

    /// A reconciliation of `uid` finished with the object at `resource_version`: until
    /// [`ECHO_WINDOW`] passes, that version's echo has nothing new to look at.
    pub fn settled(&self, uid: &str, resource_version: &str) {
        let mut writes = self.lock();
        let settled_at = Some(Instant::now());
        match writes.get_mut(uid) {
            // Its own last write: still expected back through the watch.
            Some(write) if write.resource_version == resource_version => write.settled_at = settled_at,
            // A version it read and had nothing to write to: the cache has it already.
            _ => {
                let write = OwnWrite {
                    resource_version: resource_version.to_string(),
                    seen: true,
                    settled_at,
                };
                writes.insert(uid.to_string(), write);
            }
        }
    }

    /// Records that the cache now shows `resource_version` of `uid` (seeing the last write
    /// marks the cache as caught up) and says what that version is to this process.
    pub fn observe_cached(&self, uid: &str, resource_version: &str) -> CachedVersion {
        let mut writes = self.lock();
        let Some(write) = writes.get_mut(uid) else {
            return CachedVersion::Unknown;
        };
        if write.resource_version == resource_version {
            write.seen = true;
            return match write.settled_at {
                Some(at) if at.elapsed() < ECHO_WINDOW => CachedVersion::SettledEcho,
                _ => CachedVersion::Own,
            };
        }
        match write.seen {
            false => CachedVersion::MayLag,
            true => CachedVersion::Unknown,
        }
    }

    /// `uid` was just read from the API server: nothing older is in question any more.
    pub fn read_fresh(&self, uid: &str) {
        if let Some(write) = self.lock().get_mut(uid) {
            write.seen = true;
        }
    }

    /// A write of `uid` was refused as based on a stale version: the next reconciliation
    /// reads the object fresh instead of trusting the cache.
    pub fn expect_newer(&self, uid: &str) {
        self.lock().insert(
            uid.to_string(),
            OwnWrite {
                resource_version: String::new(),
                seen: false,
                settled_at: None,
            },
        );
    }

    /// Forgets a deleted object.
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, OwnWrite>> {
        self.0.lock().expect("own writes lock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mid_run_write_is_expected_back_but_its_echo_is_not_idle() {
        let writes = OwnWrites::default();
        writes.wrote("uid", "5");
        assert_eq!(writes.observe_cached("uid", "4"), CachedVersion::MayLag);
        assert_eq!(writes.observe_cached("uid", "5"), CachedVersion::Own);
        // Seen: a later version is someone else's change, not a lagging cache.
        assert_eq!(writes.observe_cached("uid", "6"), CachedVersion::Unknown);
    }

    #[test]
    fn the_echo_of_a_finished_run_is_idle() {
        let writes = OwnWrites::default();
        writes.wrote("uid", "5");
        writes.settled("uid", "5");
        assert_eq!(writes.observe_cached("uid", "4"), CachedVersion::MayLag);
        assert_eq!(writes.observe_cached("uid", "5"), CachedVersion::SettledEcho);
        assert_eq!(writes.observe_cached("other", "5"), CachedVersion::Unknown);
    }

    #[test]
    fn a_run_that_wrote_nothing_settles_the_version_it_read() {
        let writes = OwnWrites::default();
        writes.settled("uid", "7");
        assert_eq!(writes.observe_cached("uid", "7"), CachedVersion::SettledEcho);
        assert_eq!(writes.observe_cached("uid", "8"), CachedVersion::Unknown);
    }

    #[test]
    fn a_stale_write_makes_the_next_run_read_fresh() {
        let writes = OwnWrites::default();
        writes.wrote("uid", "5");
        writes.observe_cached("uid", "5");
        writes.expect_newer("uid");
        assert_eq!(writes.observe_cached("uid", "5"), CachedVersion::MayLag);
        writes.read_fresh("uid");
        assert_eq!(writes.observe_cached("uid", "5"), CachedVersion::Unknown);
    }
}
