//! ServiceAccountKey: a ZenML service-account API key or a Trend Micro API key, depending
//! on the store's provider, delivered in a Secret under `apiKey`.
//!
//! Crash safety rests on deterministic upstream names rather than idempotency keys (neither
//! upstream has them): the name is recorded in `status.pending` before a create, and a
//! restarted operator finds the key by that name. Its secret cannot be shown again, so it
//! is replaced at once (ZenML: rotate with no retention; Trend Micro: regenerate) instead
//! of minting a twin.
//!
//! Rotation differs by upstream. ZenML rotates in place and itself keeps the previous
//! secret valid for `retain_period_minutes` (`retainPrevious` rounded up to whole
//! minutes). Trend Micro's regenerate ends the old secret at once, so with `retainPrevious`
//! the operator creates a second key with the same settings (`<name>-r<n>`), switches the
//! Secret, and deletes the previous key when the overlap ends; without it, it regenerates.

mod decide;
mod trend;
mod zenml;

use std::time::Duration;

use kube::ResourceExt;

use crate::api::{KeyStatus, ServiceAccountKey};
use crate::controller::Error;
use crate::controller::conditions::{self, reason};
use crate::controller::key_run::{
    Blocked, Common, KeyResource, RESYNC_INTERVAL, Run, Step, default_upstream_name, idempotency_key,
    owner_uid,
};
use crate::controller::ownership::ClusterIdentity;
use crate::controller::policy;
use crate::controller::reconcile_key::{KeyKind, wrong_provider};
use crate::controller::schedule::ROTATE_ANNOTATION;
use crate::controller::trigger::Trigger;
use crate::upstream::{self, UpstreamClient};

/// The Secret key holding the API key.
const SECRET_KEY: &str = "apiKey";

impl KeyResource for ServiceAccountKey {
    const KIND: &'static str = "ServiceAccountKey";
    const NOUN: &'static str = "key";
    const UPSTREAM_NOUN: &'static str = "key";
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

impl KeyKind for ServiceAccountKey {
    const PROVIDERS: &'static [upstream::Api] = &[upstream::Api::Zenml, upstream::Api::TrendMicro];

    async fn converge(run: &mut Run<'_, Self>, upstream: &UpstreamClient) -> Step<Duration> {
        let spec = &run.object.spec;
        if let Some(client) = upstream.zenml() {
            match decide::zenml_service_account(spec) {
                Ok(account) => zenml::converge(run, client, account).await,
                Err((reason_, message)) => Err(Blocked::spec(reason_, message).into()),
            }
        } else if let Some(client) = upstream.trend_micro() {
            match decide::trend_micro_problem(spec) {
                Some((reason_, message)) => Err(Blocked::spec(reason_, message).into()),
                None => trend::converge(run, client).await,
            }
        } else {
            Err(wrong_provider::<Self>(upstream).into())
        }
    }

    fn policy_request<'a>(
        &'a self,
        upstream: &UpstreamClient,
        cluster: &ClusterIdentity,
        _store_account: Option<&'a str>,
    ) -> policy::Request<'a> {
        let provider = match upstream.trend_micro() {
            Some(_) => policy::ProviderRequest::TrendMicro {
                role_id: self.spec.role_id,
            },
            None => policy::ProviderRequest::Zenml {
                service_account: self.spec.service_account.as_deref(),
            },
        };
        policy::Request {
            upstream_name: Some(key_name(self, cluster)),
            expiry: ("spec.expiresAt", self.spec.expires_at.as_ref().map(|t| t.0)),
            rotation_interval: self.spec.rotation.as_ref().and_then(|r| r.interval.as_deref()),
            provider,
        }
    }

    async fn delete_upstream(
        key: &Self,
        status: &KeyStatus,
        upstream: &UpstreamClient,
        cluster: &ClusterIdentity,
    ) -> Result<usize, Error> {
        let mark = cluster.mark(&owner_uid(key));
        if let Some(client) = upstream.zenml() {
            zenml::delete(key, status, client, &mark, &key_name(key, cluster)).await
        } else if let Some(client) = upstream.trend_micro() {
            trend::delete(status, client, &mark).await
        } else {
            // Nothing can have been created in a store of another provider.
            Ok(0)
        }
    }
}

/// Store resolution checks the provider; this guards the dispatch all the same.
/// The key's name upstream: `spec.keyName`, or `<namespace>-<name>-<hash>`.
fn key_name(key: &ServiceAccountKey, cluster: &ClusterIdentity) -> String {
    key.spec
        .key_name
        .clone()
        .unwrap_or_else(|| default_upstream_name(key, cluster))
}

/// The key is gone upstream and nothing asks for a new one: say how to get one.
fn deleted_upstream(run: &Run<'_, ServiceAccountKey>, id: &str) -> Blocked {
    let message = format!(
        "key {id} was deleted outside the operator, so the Secret holds a dead key; to issue a new one run \
         `kubectl annotate serviceaccountkey {} {ROTATE_ANNOTATION}=$(date +%s) --overwrite` (or change \
         spec.rotation.requestedAt)",
        run.object.name_any()
    );
    Blocked::new(
        conditions::UPSTREAM_SYNCED,
        reason::DELETED_UPSTREAM,
        message,
        RESYNC_INTERVAL,
    )
}

/// Records an issuance request (no secret material) in `status.pending` under a fresh
/// nonce (the upstream name it creates or acts on is in the request). The ZenML create's
/// `Idempotency-Key` is derived from the nonce, so a create recorded anew (after the key was
/// deleted upstream) is never answered with the replay of an earlier one.
async fn record_issue<R: serde::Serialize>(
    run: &mut Run<'_, ServiceAccountKey>,
    trigger: Trigger,
    request: &R,
) -> Result<(), Error> {
    let request = serde_json::to_string(request).map_err(Error::CorruptPending)?;
    run.record_pending(trigger, idempotency_key(), Some(request))
        .await
}

fn recorded<R: serde::de::DeserializeOwned>(run: &Run<'_, ServiceAccountKey>) -> Result<R, Error> {
    let pending = run.pending()?;
    serde_json::from_str(pending.request.as_deref().unwrap_or("{}")).map_err(Error::CorruptPending)
}
