//! The reconcile loop every key kind shares: pause and finalizer glue, the Secret ownership
//! check, store resolution, the summary condition and its events, and deletion per
//! `deletionPolicy`. A kind plugs in by implementing [`KeyKind`]: how to converge against
//! its upstream and how to remove what it created there.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use tracing::{info, instrument};

use super::conditions::{self, reason};
use super::key_run::{Blocked, KeyResource, RESYNC_INTERVAL, Run, Step, Stop, owner_uid, secret_name};
use super::key_status::{self, FINALIZER};
use super::own_writes::CachedVersion;
use super::ownership::ClusterIdentity;
use super::policy;
use super::store_registry::StoreKey;
use super::trigger::Trigger;
use super::{Context, Error, target_secret};
use crate::api::{DeletionPolicy, KeyStatus};
use crate::failpoint;
use crate::upstream::{self, UpstreamClient};

/// A key over its store's quota looks again this soon: another key's deletion lets it in.
const QUOTA_RETRY: Duration = Duration::from_secs(30);

/// What a key kind adds to the shared loop.
pub trait KeyKind: KeyResource {
    /// The APIs of the stores this kind can be created in.
    const PROVIDERS: &'static [upstream::Api];

    /// Drives the upstream object towards the spec once the store is resolved: create or
    /// recover (through [`Run::record_pending`] and [`Run::deliver`]), observe, correct
    /// drift, rotate, retire. `Ok(wait)`: converged, look again after `wait`;
    /// [`Stop::Blocked`]: stopped at a condition the user or time must fix.
    fn converge(
        run: &mut Run<'_, Self>,
        upstream: &UpstreamClient,
    ) -> impl Future<Output = Step<Duration>> + Send;

    /// A rotation the spec asks for that the schedule cannot see (an ApiToken's new
    /// `spec.expiresAt`, which Prefactor cannot change in place); checked before the echo of
    /// the operator's own write is skipped.
    fn spec_rotation(_object: &Self, _status: &KeyStatus) -> Option<Trigger> {
        None
    }

    /// What the resource asks of its store, for the store's policy: the upstream name it
    /// uses, expiry, rotation and the provider's fields. `store_account` is a Prefactor
    /// store's `accountId`.
    fn policy_request<'a>(
        &'a self,
        upstream: &UpstreamClient,
        cluster: &ClusterIdentity,
        store_account: Option<&'a str>,
    ) -> policy::Request<'a>;

    /// Removes every credential this resource created upstream (current and retiring, as
    /// its proven status records them, and a pending one found again by its recorded key and
    /// this resource's mark); returns how many.
    fn delete_upstream(
        object: &Self,
        status: &KeyStatus,
        upstream: &UpstreamClient,
        cluster: &ClusterIdentity,
    ) -> impl Future<Output = Result<usize, Error>> + Send;
}

#[instrument(skip_all, fields(kind = K::KIND, namespace = object.namespace().unwrap_or_default(), name = %object.name_any()))]
pub async fn reconcile<K: KeyKind>(object: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let namespace = object.namespace().unwrap_or_default();
    let store = StoreKey::referenced(&namespace, object.common().store_ref);
    let _permit = match ctx.admission.admit(K::KIND, &store, started) {
        Ok(permit) => permit,
        Err(deferred) => {
            tracing::debug!("the store's share of workers is busy; looking again shortly");
            ctx.metrics.deferred(K::KIND);
            return Ok(Action::requeue(deferred.retry));
        }
    };
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    if key_status::is_paused(&*object) {
        info!("paused; not reconciling");
        report_paused(&api, &*object, &ctx).await?;
        return Ok(Action::await_change());
    }
    // The cache can lag this process's own last write (an operation in flight that has
    // finished since, a credential delivered since): read the object fresh then, so nothing
    // is repeated (harmless, as a repeat carries the same idempotency key, but a wasted
    // upstream call and a conflict).
    let uid = owner_uid(&*object);
    let cached = ctx
        .own_writes
        .observe_cached(&uid, &object.resource_version().unwrap_or_default());
    let in_flight = object.key_status().is_some_and(|s| s.pending.is_some());
    let lagging = cached == CachedVersion::MayLag || (in_flight && cached == CachedVersion::Unknown);
    let object = match lagging {
        true => match api.get_opt(&object.name_any()).await.map_err(Error::Kube)? {
            Some(fresh) => {
                ctx.own_writes.read_fresh(&uid);
                Arc::new(fresh)
            }
            None => return Ok(Action::await_change()),
        },
        false => object,
    };
    let (object, finalizer_added) = key_status::ensure_finalizer(&api, object, &ctx).await?;
    let result = finalizer(&api, FINALIZER, object, |event| async {
        match event {
            Finalizer::Apply(object) => apply(&*object, &ctx, finalizer_added).await,
            Finalizer::Cleanup(object) => cleanup(&*object, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    let label = match &result {
        Ok(_) => "success",
        Err(error) => error.metric_label(),
    };
    ctx.metrics.reconciled(K::KIND, label, started.elapsed());
    result
}

/// A paused resource says so in its conditions (see [`conditions::pause`]); nothing else
/// in its status changes, so its proof stays valid.
async fn report_paused<K: KeyKind>(api: &Api<K>, object: &K, ctx: &Context) -> Result<(), Error> {
    let written = object.key_status().cloned().unwrap_or_default();
    let mut status = written.clone();
    let message = format!(
        "reconciliation is paused by the annotation {}=true: the {} and its Secret stay as they are; remove the \
         annotation to resume",
        key_status::PAUSED_ANNOTATION,
        K::NOUN
    );
    conditions::pause(
        &mut status.conditions,
        message,
        k8s_openapi::jiff::Timestamp::now(),
    );
    if status == written {
        return Ok(());
    }
    let mut version = object.resource_version();
    key_status::patch(api, object, &status, &mut version).await?;
    if let (Some(uid), Some(version)) = (object.uid(), version) {
        ctx.own_writes.wrote(&uid, &version);
    }
    Ok(())
}

pub fn error_policy<K: KeyKind>(object: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let stale_view = match error {
        Error::StaleView => true,
        Error::Finalizer(inner) => matches!(
            **inner,
            kube::runtime::finalizer::Error::ApplyFailed(Error::StaleView)
        ),
        _ => false,
    };
    if stale_view {
        ctx.own_writes.expect_newer(&owner_uid(&*object));
        tracing::debug!("stale cached object; retrying shortly");
        Action::requeue(Duration::from_millis(500))
    } else {
        tracing::warn!(%error, "reconciliation failed");
        Action::requeue(Duration::from_secs(15))
    }
}

async fn apply<K: KeyKind>(object: &K, ctx: &Context, finalizer_added: bool) -> Result<Action, Error> {
    let mut run = Run::new(object, ctx, finalizer_added);
    let previous_ready = conditions::find(&run.written.conditions, conditions::READY).cloned();
    run.status.observed_generation = object.meta().generation;
    run.status.secret_name = Some(run.secret_name());

    let proven = status_is_proven(object, ctx);
    let outcome = match proven {
        true => {
            run.trust();
            converge_checked(&mut run).await
        }
        false => Err(unproven::<K>(&run.written).into()),
    };
    let action = match outcome {
        Ok(wake) => Action::requeue(wake.min(RESYNC_INTERVAL)),
        Err(Stop::Blocked(blocked)) => {
            run.set(blocked.condition, false, blocked.reason, blocked.message);
            Action::requeue(blocked.retry)
        }
        Err(Stop::Failed(error)) => return Err(error),
    };
    run.save().await?;
    run.settle();

    let ready = conditions::find(&run.status.conditions, conditions::READY).cloned();
    let flipped = previous_ready.as_ref().map(|c| (&c.status, &c.reason))
        != ready.as_ref().map(|c| (&c.status, &c.reason));
    // The store counts its keys and those its policy refuses.
    let refused = |c: &Option<Condition>| c.as_ref().is_some_and(|c| c.reason == reason::POLICY_VIOLATION);
    if previous_ready.is_none() || refused(&previous_ready) != refused(&ready) {
        ctx.usage
            .changed(&StoreKey::referenced(&run.namespace, object.common().store_ref));
    }
    // A Created or Rotated event already says the resource is Ready: one event, not two.
    let announced = run.announced() && ready.as_ref().is_some_and(|c| c.status == "True");
    // Waiting for a store this process is still connecting to, or for a create it started,
    // is no failure: nobody is told about it.
    let waiting = ready
        .as_ref()
        .is_some_and(|c| c.reason == reason::WAITING_FOR_STORE || c.reason == reason::CREATING);
    if let (true, false, false, Some(ready)) = (flipped, announced, waiting, ready) {
        let type_ = if ready.status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        run.event(type_, &ready.reason, "Reconcile", ready.message).await;
    }
    Ok(action)
}

/// Whether the upstream ids and the pending record in the stored status were written by
/// the operator: its proof matches (statuses from before proofs were proven once, when the
/// proof key was first used).
fn status_is_proven<K: KeyKind>(object: &K, ctx: &Context) -> bool {
    let none = KeyStatus::default();
    let status = object.key_status().unwrap_or(&none);
    let proven = ctx
        .status_key
        .proves(&owner_uid(object), object.common().store_ref, status);
    if !proven {
        tracing::warn!(
            "status carries upstream ids or a pending record the operator did not write; not acting on them"
        );
    }
    proven
}

fn unproven<K: KeyKind>(status: &KeyStatus) -> Blocked {
    let ids: Vec<&str> = status
        .upstream_id
        .iter()
        .chain(&status.credential_id)
        .chain(status.retiring.iter().map(|r| &r.id))
        .map(String::as_str)
        .collect();
    let message = format!(
        "the upstream ids or pending operation in this {}'s status ({}) were not written by the operator \
         (status.ownerProof does not match them: the status was copied or edited), so the operator does not act \
         on them; delete this {} and apply it anew (deleting it leaves those upstream objects as they are)",
        K::KIND,
        ids.join(", "),
        K::KIND
    );
    Blocked::new(
        conditions::UPSTREAM_SYNCED,
        reason::STATUS_NOT_PROVEN,
        message,
        RESYNC_INTERVAL,
    )
}

/// Checks the target Secret may be written and the store is usable, then hands over.
async fn converge_checked<K: KeyKind>(run: &mut Run<'_, K>) -> Step<Duration> {
    let object = run.object;
    let name = run.secret_name();
    let existing_secret = run.secrets.get_opt(&name).await.map_err(Error::Kube)?;
    if !target_secret::is_ours(existing_secret.as_ref(), &owner_uid(object)) {
        let message = format!(
            "Secret {name} already exists and was not created by this {}; delete it or set spec.secret.name to another name",
            K::KIND
        );
        return Err(Blocked::new(
            conditions::SECRET_SYNCED,
            reason::SECRET_CONFLICT,
            message,
            RESYNC_INTERVAL,
        )
        .into());
    }
    run.observed_secret(existing_secret.as_ref());

    let upstream = run
        .ctx
        .stores
        .resolve(
            &run.ctx.client,
            K::KIND,
            &run.namespace,
            object.common().store_ref,
            K::PROVIDERS,
        )
        .await
        .map_err(|problem| {
            Blocked::new(
                conditions::STORE_READY,
                problem.reason(),
                problem.to_string(),
                problem.retry().unwrap_or(RESYNC_INTERVAL),
            )
        })?;
    run.set(
        conditions::STORE_READY,
        true,
        reason::RECONCILED,
        "the store is ready".into(),
    );
    check_policy(run, &upstream).await?;
    // The echo of this operator's own write: the upstream was observed moments ago.
    if run.is_idle_echo()? && K::spec_rotation(object, &run.status).is_none() {
        return Ok(run.converged());
    }
    K::converge(run, &upstream).await
}

/// A store of an API the kind is not created in got through resolution (its provider block
/// was replaced since): reported like the resolver's refusal.
pub fn wrong_provider<K: KeyKind>(upstream: &UpstreamClient) -> Blocked {
    let wanted: Vec<&str> = K::PROVIDERS.iter().map(|api| api.as_str()).collect();
    let message = format!(
        "the store serves the {} API, but a {} needs a store with a {} block; point spec.storeRef at such a store",
        upstream.api(),
        K::KIND,
        wanted.join(" or ")
    );
    Blocked::new(
        conditions::STORE_READY,
        reason::WRONG_PROVIDER,
        message,
        RESYNC_INTERVAL,
    )
}

/// The store's policy, checked before anything happens upstream: a refusal names the
/// store, the rule and the field. A quota refusal is looked at again soon, as deleting
/// another key lets this one through.
async fn check_policy<K: KeyKind>(run: &Run<'_, K>, upstream: &UpstreamClient) -> Step {
    let object = run.object;
    let store_ref = object.common().store_ref;
    let Some(view) = run.ctx.stores.policy_of(&run.namespace, store_ref) else {
        return Ok(());
    };
    let labels = match policy::needs_labels(&view.policy, &run.namespace) {
        true => Api::<Namespace>::all(run.ctx.client.clone())
            .get(&run.namespace)
            .await
            .map_err(Error::Kube)?
            .metadata
            .labels
            .unwrap_or_default(),
        false => Default::default(),
    };
    let refused = |message: String, retry| {
        Err(Blocked::new(
            conditions::UPSTREAM_SYNCED,
            reason::POLICY_VIOLATION,
            message,
            retry,
        )
        .into())
    };
    let rule = match policy::applies(Some(&view.policy), view.cluster_store, &run.namespace, &labels) {
        policy::Applies::Unrestricted => return Ok(()),
        policy::Applies::NoRule => {
            let message = format!(
                "{} has a policy and none of its rules applies to namespace {}; ask the store's owner to add one",
                view.store, run.namespace
            );
            return refused(message, RESYNC_INTERVAL);
        }
        policy::Applies::Rule(rule) => rule,
    };
    let request = object.policy_request(upstream, &run.ctx.cluster, view.prefactor_account.as_deref());
    if let Err(violation) = policy::check(rule, &request, run.now) {
        let message = format!(
            "{} policy rule {:?}: {} {}; change {} or ask the store's owner to allow it",
            view.store, rule.name, violation.field, violation.detail, violation.field
        );
        return refused(message, RESYNC_INTERVAL);
    }
    if let Some(max) = rule.max_keys_per_namespace {
        let store = StoreKey::referenced(&run.namespace, store_ref);
        let before = run
            .ctx
            .inventory
            .position(&store, &run.namespace, K::KIND, &object.name_any());
        if before >= max as usize {
            let message = format!(
                "{} policy rule {:?}: namespace {} already holds {max} keys through this store \
                 (maxKeysPerNamespace); delete one or ask the store's owner for more",
                view.store, rule.name, run.namespace
            );
            return refused(message, QUOTA_RETRY);
        }
    }
    Ok(())
}

/// Deletion: with `Delete`, everything this resource created upstream is removed and the
/// Secret deleted; with `Orphan`, the upstream is untouched and the Secret is released.
async fn cleanup<K: KeyKind>(object: &K, ctx: &Context) -> Result<Action, Error> {
    let namespace = object.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let name = secret_name(object);
    let status = object.key_status().cloned().unwrap_or_default();
    let common = object.common();
    ctx.own_writes.forget(&owner_uid(object));
    ctx.usage
        .changed(&StoreKey::referenced(&namespace, common.store_ref));
    if common.deletion_policy == DeletionPolicy::Orphan {
        release_secret(&secrets, &name, &owner_uid(object)).await?;
        return Ok(Action::await_change());
    }

    if !status_is_proven(object, ctx) {
        let note = format!(
            "deleted Secret {name} without touching the upstream: the ids in this {}'s status were not written by \
             the operator",
            K::KIND
        );
        target_secret::delete(&secrets, &name, &owner_uid(object)).await?;
        ctx.event(
            &object.object_ref(&()),
            EventType::Warning,
            reason::STATUS_NOT_PROVEN,
            "Delete",
            note,
        )
        .await;
        return Ok(Action::await_change());
    }
    let upstream = match ctx
        .stores
        .resolve(&ctx.client, K::KIND, &namespace, common.store_ref, K::PROVIDERS)
        .await
    {
        Ok(upstream) => upstream,
        Err(problem) if status.upstream_id.is_none() && status.pending.is_none() => {
            info!(%problem, "nothing was created upstream; deleting without the store");
            target_secret::delete(&secrets, &name, &owner_uid(object)).await?;
            return Ok(Action::await_change());
        }
        Err(problem) => {
            let note = format!(
                "cannot delete the {} upstream: {problem}; fix the store, or set spec.deletionPolicy: Orphan to leave it",
                K::NOUN
            );
            ctx.event(
                &object.object_ref(&()),
                EventType::Warning,
                "CleanupBlocked",
                "Delete",
                note,
            )
            .await;
            return Err(Error::CleanupBlocked(problem.to_string()));
        }
    };
    failpoint::hit("before-delete");
    let removed = K::delete_upstream(object, &status, &upstream, &ctx.cluster).await?;
    failpoint::hit("after-delete");
    target_secret::delete(&secrets, &name, &owner_uid(object)).await?;
    let note = format!(
        "deactivated and deleted {removed} {}(s) upstream and deleted Secret {name}",
        K::NOUN
    );
    ctx.event(
        &object.object_ref(&()),
        EventType::Normal,
        "Deleted",
        "Delete",
        note,
    )
    .await;
    Ok(Action::await_change())
}

/// Drops the owner reference so the Secret outlives the resource (Orphan policy).
async fn release_secret(secrets: &Api<Secret>, name: &str, owner_uid: &str) -> Result<(), Error> {
    let Some(secret) = secrets.get_opt(name).await.map_err(Error::Kube)? else {
        return Ok(());
    };
    if target_secret::is_ours(Some(&secret), owner_uid) {
        let patch = serde_json::json!({"metadata": {"ownerReferences": null}});
        secrets
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(Error::Kube)?;
    }
    Ok(())
}
