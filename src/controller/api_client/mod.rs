//! ApiClient: an Akamai IAM API client and the one credential the operator manages for it,
//! delivered in a Secret as `host`, `client_token`, `client_secret`, `access_token` and a
//! rendered `.edgerc` (section `[default]`).
//!
//! The API has no idempotency keys. The client carries no secret, so it is simply found
//! again by its deterministic name (`spec.clientName` or `<namespace>-<name>`). A
//! credential's secret is shown once: before one is created, the credentials that exist
//! are recorded in `status.pending`; a restarted operator that finds a credential not in
//! that record knows its secret is lost, deactivates and deletes it, and creates another.
//!
//! Rotation: new credential → Secret → consumers restarted → the previous credential is
//! deactivated and deleted after `retainPrevious`. `renewBefore` counts back from the
//! credential's `expiresOn`. Description and expiry are set on a credential only after its
//! secret is safely in the Secret.

mod decide;
mod lifecycle;

use crate::api::{ApiClient, KeyStatus};
use crate::controller::key_run::{Common, KeyResource};

impl KeyResource for ApiClient {
    const KIND: &'static str = "ApiClient";
    const NOUN: &'static str = "credential";
    const UPSTREAM_NOUN: &'static str = "client";
    const SECRET_KEYS: &'static [&'static str] = &decide::SECRET_KEYS;

    fn key_status(&self) -> Option<&KeyStatus> {
        self.status.as_ref()
    }

    fn renewal_extends_expiry(&self) -> bool {
        self.spec.credential.expires_at.is_none()
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
