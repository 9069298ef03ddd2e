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

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};
use tracing::{info, instrument};

use super::conditions::{self, reason};
use super::key_status::{self, FINALIZER};
use super::{Context, Error};
use crate::api::ApiToken;

pub use decide::{StateStep, state_step};

/// Used in messages, events and metrics.
pub const KIND: &str = "ApiToken";
/// A token with nothing scheduled is still looked at this often, to notice drift upstream.
const RESYNC_INTERVAL: Duration = Duration::from_secs(10 * 60);

#[instrument(skip_all, fields(namespace = token.namespace().unwrap_or_default(), name = %token.name_any()))]
pub async fn reconcile(token: Arc<ApiToken>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let namespace = token.namespace().unwrap_or_default();
    let api: Api<ApiToken> = Api::namespaced(ctx.client.clone(), &namespace);
    if key_status::is_paused(&*token) {
        info!("paused; not reconciling");
        return Ok(Action::await_change());
    }
    let result = finalizer(&api, FINALIZER, token, |event| async {
        match event {
            Finalizer::Apply(token) => lifecycle::apply(&token, &ctx).await,
            Finalizer::Cleanup(token) => lifecycle::cleanup(&token, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    let label = match &result {
        Ok(_) => "success",
        Err(error) => error.metric_label(),
    };
    ctx.metrics.reconciled(KIND, label, started.elapsed());
    result
}

pub fn error_policy(_token: Arc<ApiToken>, error: &Error, _ctx: Arc<Context>) -> Action {
    match error {
        Error::Finalizer(inner)
            if matches!(
                **inner,
                kube::runtime::finalizer::Error::ApplyFailed(Error::StaleView)
            ) =>
        {
            tracing::debug!("stale cached object; retrying shortly");
            Action::requeue(Duration::from_millis(500))
        }
        _ => {
            tracing::warn!(%error, "reconciliation failed");
            Action::requeue(Duration::from_secs(15))
        }
    }
}

/// The summary condition from the detail conditions.
fn summarise(status: &mut crate::api::KeyStatus, generation: Option<i64>, now: Timestamp) {
    let first_unhappy = [
        conditions::STORE_READY,
        conditions::UPSTREAM_SYNCED,
        conditions::SECRET_SYNCED,
    ]
    .into_iter()
    .filter_map(|t| conditions::find(&status.conditions, t).cloned())
    .find(|c| c.status != "True");
    match first_unhappy {
        Some(c) => conditions::set(
            &mut status.conditions,
            conditions::READY,
            false,
            &c.reason,
            c.message,
            generation,
            now,
        ),
        None => {
            let message = format!(
                "token {} is {} upstream and delivered in Secret {}",
                status.upstream_id.as_deref().unwrap_or_default(),
                status.upstream_state.as_deref().unwrap_or_default(),
                status.secret_name.as_deref().unwrap_or_default(),
            );
            conditions::set(
                &mut status.conditions,
                conditions::READY,
                true,
                reason::RECONCILED,
                message,
                generation,
                now,
            )
        }
    }
}

/// Where the operator writes this token's secret.
fn secret_name(token: &ApiToken) -> String {
    token.spec.secret.name.clone().unwrap_or_else(|| token.name_any())
}

fn owner_uid(token: &ApiToken) -> String {
    token.meta().uid.clone().unwrap_or_default()
}
