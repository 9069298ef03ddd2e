//! CredentialStore and ClusterCredentialStore: read the admin credential, probe the
//! upstream with it, and register the connected client for the key controllers.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use super::conditions::{self, reason};
use super::context::Context;
use super::store_registry::{Connected, StoreKey, provider_name};
use super::{Error, FIELD_MANAGER};
use crate::api::{
    ClusterCredentialStore, Connection, CredentialStore, Provider, SecretRef, StoreKind, StoreStatus,
};
use crate::upstream::{
    self, ConnectError, CredentialError, ErrorClass, StoreSpec, UpstreamError, credentials,
};

/// A healthy store is probed again this often, to notice a credential revoked upstream.
const REPROBE_INTERVAL: Duration = Duration::from_secs(30 * 60);
/// An unreachable upstream is probed again after this long.
const UNREACHABLE_RETRY: Duration = Duration::from_secs(15);

/// What the store controller needs from either store kind.
pub trait StoreObject:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug + Send + Sync + 'static
{
    const KIND: StoreKind;
    fn provider(&self) -> &Provider;
    fn connection(&self) -> &Connection;
    fn store_status(&self) -> Option<&StoreStatus>;
    /// Namespace the credentials Secret is read from.
    fn secret_namespace(&self) -> Option<String>;
    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self>;

    fn key(&self) -> StoreKey {
        StoreKey {
            kind: Self::KIND,
            namespace: self.namespace(),
            name: self.name_any(),
        }
    }

    fn secret_ref(&self) -> Option<&SecretRef> {
        let p = self.provider();
        p.akamai
            .as_ref()
            .map(|a| &a.credentials_secret_ref)
            .or(p.prefactor.as_ref().map(|a| &a.credentials_secret_ref))
            .or(p.trend_micro.as_ref().map(|a| &a.credentials_secret_ref))
            .or(p.zenml.as_ref().map(|a| &a.credentials_secret_ref))
    }
}

impl StoreObject for CredentialStore {
    const KIND: StoreKind = StoreKind::CredentialStore;
    fn provider(&self) -> &Provider {
        &self.spec.provider
    }
    fn connection(&self) -> &Connection {
        &self.spec.connection
    }
    fn store_status(&self) -> Option<&StoreStatus> {
        self.status.as_ref()
    }
    fn secret_namespace(&self) -> Option<String> {
        self.namespace()
    }
    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self> {
        Api::namespaced(client, namespace.unwrap_or_default())
    }
}

impl StoreObject for ClusterCredentialStore {
    const KIND: StoreKind = StoreKind::ClusterCredentialStore;
    fn provider(&self) -> &Provider {
        &self.spec.provider
    }
    fn connection(&self) -> &Connection {
        &self.spec.connection
    }
    fn store_status(&self) -> Option<&StoreStatus> {
        self.status.as_ref()
    }
    fn secret_namespace(&self) -> Option<String> {
        self.secret_ref().and_then(|r| r.namespace.clone())
    }
    fn api(client: kube::Client, _: Option<&str>) -> Api<Self> {
        Api::all(client)
    }
}

/// The outcome of checking a store: a condition and how soon to look again.
struct Verdict {
    ready: bool,
    reason: &'static str,
    message: String,
    retry: Duration,
}

impl Verdict {
    fn failed(reason: &'static str, message: String, retry: Duration) -> Self {
        Verdict {
            ready: false,
            reason,
            message,
            retry,
        }
    }
}

pub async fn reconcile<S: StoreObject>(store: Arc<S>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = store.key();
    let generation = store.meta().generation;
    let secret = read_credentials(&*store, &ctx).await?;
    let secret_version = secret.as_ref().and_then(|s| s.metadata.resource_version.clone());
    let old_status = store.store_status().cloned().unwrap_or_default();

    let unchanged = conditions::is_true(&old_status.conditions, conditions::READY)
        && old_status.observed_generation == generation
        && ctx.stores.is_current(
            &key,
            store.uid().as_deref(),
            generation,
            secret_version.as_deref(),
        );
    let usage = Some(ctx.inventory.usage(&key));
    if unchanged {
        if old_status.usage != usage {
            let status = StoreStatus { usage, ..old_status };
            patch_status(&*store, &ctx, &status).await?;
        }
        return Ok(Action::requeue(REPROBE_INTERVAL));
    }

    let verdict = match secret {
        None => {
            ctx.stores.disconnect(&key);
            let secret = secret_display(&*store);
            Verdict::failed(
                reason::CREDENTIALS_SECRET_MISSING,
                format!(
                    "Secret {secret} does not exist; create it with the {} credential",
                    provider_name(store.provider())
                ),
                REPROBE_INTERVAL,
            )
        }
        Some(secret) => connect_and_probe(&*store, &ctx, &key, secret, generation, secret_version).await,
    };

    let now = Timestamp::now();
    let mut status = old_status.clone();
    status.provider = Some(provider_name(store.provider()).to_string());
    status.observed_generation = generation;
    status.usage = usage;
    let was_ready = conditions::is_true(&old_status.conditions, conditions::READY);
    conditions::set(
        &mut status.conditions,
        conditions::READY,
        verdict.ready,
        verdict.reason,
        &verdict.message,
        generation,
        now,
    );
    conditions::set_progress(&mut status.conditions, None, generation, now);
    let changed_reason = conditions::find(&old_status.conditions, conditions::READY)
        .map(|c| c.reason.as_str())
        != Some(verdict.reason);
    if changed_reason {
        status.last_probe_time = Some(Time(now));
    }
    if status != old_status {
        patch_status(&*store, &ctx, &status).await?;
    }
    if was_ready != verdict.ready || changed_reason {
        let type_ = if verdict.ready {
            EventType::Normal
        } else {
            EventType::Warning
        };
        ctx.event(
            &store.object_ref(&()),
            type_,
            verdict.reason,
            "Probe",
            verdict.message.clone(),
        )
        .await;
        info!(store = %key.display(), ready = verdict.ready, reason = verdict.reason, "store checked");
    }
    Ok(Action::requeue(verdict.retry))
}

async fn connect_and_probe<S: StoreObject>(
    store: &S,
    ctx: &Context,
    key: &StoreKey,
    secret: Secret,
    generation: Option<i64>,
    secret_version: Option<String>,
) -> Verdict {
    let identity = key.display();
    let spec = StoreSpec {
        identity: &identity,
        kind: key.kind(),
        provider: store.provider(),
        connection: store.connection(),
    };
    let secret_type = secret.type_.clone();
    let data = secret.data.unwrap_or_default();
    let secret_name = secret_display(store);
    let client = match upstream::connect(spec, &data, &ctx.limiters, &ctx.client_options) {
        Ok(client) => client,
        Err(ConnectError::Credential(error)) => {
            ctx.stores.disconnect(key);
            return Verdict::failed(
                reason::CREDENTIALS_INVALID,
                credential_problem(store.provider(), &secret_name, secret_type.as_deref(), &error),
                REPROBE_INTERVAL,
            );
        }
        Err(error) => {
            ctx.stores.disconnect(key);
            return Verdict::failed(reason::CONFIGURATION_INVALID, error.to_string(), REPROBE_INTERVAL);
        }
    };
    match client.probe().await {
        Ok(principal) => {
            let uid = store.uid();
            ctx.stores.register(
                key.clone(),
                Connected {
                    client: Arc::new(client),
                    uid,
                    generation,
                    secret_version,
                },
            );
            Verdict {
                ready: true,
                reason: reason::PROBE_SUCCEEDED,
                message: match principal {
                    Some(principal) => format!(
                        "authenticated to the {} API with Secret {secret_name} as {principal}",
                        provider_name(store.provider())
                    ),
                    None => format!(
                        "authenticated to the {} API with Secret {secret_name}",
                        provider_name(store.provider())
                    ),
                },
                retry: REPROBE_INTERVAL,
            }
        }
        Err(error) => {
            ctx.stores.disconnect(key);
            warn!(store = %identity, class = error.class().as_str(), "store probe failed");
            probe_failure(&error, &secret_name, &credentials::keys::wanted(store.provider()))
        }
    }
}

/// What is wrong with a credential Secret's content and how to fix it; names keys, never
/// values.
fn credential_problem(
    provider: &Provider,
    secret_name: &str,
    secret_type: Option<&str>,
    error: &CredentialError,
) -> String {
    let wanted = credentials::keys::wanted(provider);
    let mut message = format!(
        "Secret {secret_name}: {error}; the {} credential is read from {wanted}",
        provider_name(provider)
    );
    // A typed Secret (basic-auth, tls, ...) holds the keys its type prescribes, rarely ours.
    if let (CredentialError::MissingKey { .. }, Some(type_)) = (error, secret_type)
        && type_ != "Opaque"
    {
        message.push_str(&format!(
            " (the Secret is of type {type_}; use an Opaque Secret with those keys)"
        ));
    }
    message
}

fn probe_failure(error: &UpstreamError, secret_name: &str, wanted: &str) -> Verdict {
    match error.class() {
        ErrorClass::Authentication => Verdict::failed(
            reason::CREDENTIALS_REFUSED,
            format!(
                "the upstream refused the credential in Secret {secret_name} ({wanted}): {error}; put a valid credential there"
            ),
            REPROBE_INTERVAL,
        ),
        ErrorClass::Permission => Verdict::failed(
            reason::PERMISSION_DENIED,
            format!("the credential in Secret {secret_name} lacks permissions: {error}"),
            REPROBE_INTERVAL,
        ),
        ErrorClass::Transient => Verdict::failed(
            reason::UPSTREAM_UNREACHABLE,
            format!("cannot reach the upstream: {error}; check spec url and network, retrying"),
            UNREACHABLE_RETRY,
        ),
        _ => Verdict::failed(reason::UPSTREAM_ERROR, error.to_string(), UNREACHABLE_RETRY),
    }
}

fn secret_display<S: StoreObject>(store: &S) -> String {
    let name = store.secret_ref().map(|r| r.name.as_str()).unwrap_or_default();
    format!("{}/{name}", store.secret_namespace().unwrap_or_default())
}

async fn read_credentials<S: StoreObject>(store: &S, ctx: &Context) -> Result<Option<Secret>, Error> {
    let (Some(namespace), Some(secret_ref)) = (store.secret_namespace(), store.secret_ref()) else {
        return Ok(None);
    };
    Api::<Secret>::namespaced(ctx.client.clone(), &namespace)
        .get_opt(&secret_ref.name)
        .await
        .map_err(Error::Kube)
}

async fn patch_status<S: StoreObject>(store: &S, ctx: &Context, status: &StoreStatus) -> Result<(), Error> {
    let api = S::api(ctx.client.clone(), store.namespace().as_deref());
    let patch = serde_json::json!({
        "apiVersion": S::api_version(&()),
        "kind": S::kind(&()),
        "status": status,
    });
    api.patch_status(
        &store.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await
    .map_err(Error::Kube)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(block: serde_json::Value) -> Provider {
        serde_json::from_value(block).unwrap()
    }

    #[test]
    fn credential_problems_name_the_keys_and_a_wrong_secret_type() {
        let akamai = provider(serde_json::json!({"akamai": {"credentialsSecretRef": {"name": "a"}}}));
        let missing = CredentialError::MissingKey { key: "host" };
        assert_eq!(
            credential_problem(&akamai, "ns/a", Some("kubernetes.io/basic-auth"), &missing),
            "Secret ns/a: credential Secret has no key `host`; the akamai credential is read from keys \
             `host`, `client_token`, `client_secret`, `access_token` (the Secret is of type \
             kubernetes.io/basic-auth; use an Opaque Secret with those keys)"
        );
        let prefactor = provider(
            serde_json::json!({"prefactor": {"url": "http://p", "credentialsSecretRef": {"name": "p"}}}),
        );
        let empty = CredentialError::EmptyKey { key: "token" };
        assert_eq!(
            credential_problem(&prefactor, "ns/p", Some("Opaque"), &empty),
            "Secret ns/p: credential Secret key `token` is empty; the prefactor credential is read from key `token`"
        );
    }
}
