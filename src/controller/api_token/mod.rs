//! ApiToken: a Prefactor API token, created, driven to its state, rotated with overlap and
//! delivered in a Secret.
//!
//! Crash safety: before any call that mints a token, the exact request and a fresh
//! idempotency key are written to `status.pending`. The call, the Secret write and the
//! status update that clears `pending` may be interrupted anywhere: the next reconciliation
//! repeats the call with the same key, the upstream answers with the same token, and the
//! Secret and status are written again. No twin is minted and none is lost.

mod decide;
mod lifecycle;

use crate::api::{ApiToken, KeyStatus};
use crate::controller::key_run::{Common, KeyResource};

/// The Secret key the token is delivered under (before `spec.secret.keys` renames it).
const SECRET_KEY: &str = "token";

pub use decide::{StateStep, state_step};

impl KeyResource for ApiToken {
    const KIND: &'static str = "ApiToken";
    const NOUN: &'static str = "token";
    const UPSTREAM_NOUN: &'static str = "token";
    const SECRET_KEYS: &'static [&'static str] = &[SECRET_KEY];

    fn key_status(&self) -> Option<&KeyStatus> {
        self.status.as_ref()
    }

    fn renewal_extends_expiry(&self) -> bool {
        self.spec.expires_at.is_none()
    }

    fn common(&self) -> Common<'_> {
        Common {
            store_ref: &self.spec.store_ref,
            secret: &self.spec.secret,
            rotation: self.spec.rotation.as_ref(),
            rollout_restart: &self.spec.rollout_restart,
            deletion_policy: self.spec.deletion_policy,
        }
    }
}
