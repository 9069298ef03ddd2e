//! Crash points for the crash-safety tests.
//!
//! `APIKEY_OPERATOR_FAILPOINT=<name>` makes the process abort (no unwinding, no cleanup:
//! the closest thing to `kill -9` at an exact spot) when execution reaches the point with
//! that name. Unset — always, outside those tests — a point costs one comparison.

use std::sync::OnceLock;

/// The environment variable naming the point to abort at.
pub const ENV: &str = "APIKEY_OPERATOR_FAILPOINT";

/// Points the controllers pass through, in the order a credential's life visits them.
pub const POINTS: [&str; 9] = [
    "before-create",
    "after-create",
    "after-secret-write",
    "before-rotate",
    "after-rotate",
    "before-retire",
    "after-retire",
    "before-delete",
    "after-delete",
];

fn armed() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED
        .get_or_init(|| std::env::var(ENV).ok().filter(|name| !name.is_empty()))
        .as_deref()
}

/// Aborts the process if `name` is the armed point.
pub fn hit(name: &'static str) {
    debug_assert!(POINTS.contains(&name), "unknown failpoint {name}");
    if armed() == Some(name) {
        eprintln!("failpoint {name} reached: aborting");
        std::process::abort();
    }
}
