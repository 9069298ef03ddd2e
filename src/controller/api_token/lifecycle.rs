//! Converging one ApiToken: resolve the store, issue (create or rotate) through the
//! durable `pending` record, drive the state, retire previous tokens, report.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use tracing::info;

use super::decide::{self, CreateRequest, StateStep};
use super::{KIND, RESYNC_INTERVAL, owner_uid, secret_name, summarise};
use crate::api::{
    ApiToken, DeletionPolicy, KeyStatus, PendingKind, PendingOperation, RetiringCredential, TokenState,
};
use crate::controller::conditions::{self, reason};
use crate::controller::schedule::{self, Issued, ROTATE_ANNOTATION};
use crate::controller::target_secret::{self, Material};
use crate::controller::{Context, Error, compromised, key_status, rollout};
use crate::upstream::prefactor::{PrefactorClient, TokenAction, TokenStatus};
use crate::upstream::{ErrorClass, UpstreamError};

/// Why converging stopped short, as the condition to report and when to try again.
struct Blocked {
    condition: &'static str,
    reason: &'static str,
    message: String,
    retry: Duration,
}

impl Blocked {
    fn new(condition: &'static str, reason: &'static str, message: String, retry: Duration) -> Self {
        Blocked {
            condition,
            reason,
            message,
            retry,
        }
    }

    /// Classifies an upstream failure into "fix the store", "fix the spec" or "retry later".
    fn upstream(what: &str, error: &UpstreamError) -> Self {
        let (condition, reason, advice, retry) = match error.class() {
            ErrorClass::Authentication => (
                conditions::STORE_READY,
                reason::CREDENTIALS_REFUSED,
                "; fix the store's credential Secret",
                Duration::from_secs(300),
            ),
            ErrorClass::Permission => (
                conditions::STORE_READY,
                reason::PERMISSION_DENIED,
                "; grant the store's credential the permission",
                Duration::from_secs(300),
            ),
            ErrorClass::InvalidRequest => (
                conditions::UPSTREAM_SYNCED,
                reason::INVALID_REQUEST,
                "; fix the spec",
                RESYNC_INTERVAL,
            ),
            ErrorClass::Transient => (
                conditions::UPSTREAM_SYNCED,
                reason::UPSTREAM_UNREACHABLE,
                "; retrying",
                Duration::from_secs(15),
            ),
            _ => (
                conditions::UPSTREAM_SYNCED,
                reason::UPSTREAM_ERROR,
                "; retrying",
                Duration::from_secs(30),
            ),
        };
        Blocked::new(condition, reason, format!("{what}: {error}{advice}"), retry)
    }
}

/// One reconciliation's view: the status being built and the last status written.
struct Run<'a> {
    token: &'a ApiToken,
    ctx: &'a Context,
    api: Api<ApiToken>,
    secrets: Api<Secret>,
    namespace: String,
    status: KeyStatus,
    written: KeyStatus,
    /// The resourceVersion `written` belongs to: the precondition of the next write.
    resource_version: Option<String>,
    now: Timestamp,
}

impl Run<'_> {
    /// Writes the status if it changed since it was last written.
    async fn save(&mut self) -> Result<(), Error> {
        if self.status != self.written {
            key_status::patch(&self.api, self.token, &self.status, &mut self.resource_version).await?;
            self.written = self.status.clone();
        }
        Ok(())
    }

    fn set(&mut self, condition: &str, ok: bool, reason: &str, message: String) {
        let generation = self.token.meta().generation;
        conditions::set(
            &mut self.status.conditions,
            condition,
            ok,
            reason,
            message,
            generation,
            self.now,
        );
    }

    async fn event(&self, type_: EventType, reason: &str, action: &str, note: String) {
        self.ctx
            .event(&self.token.object_ref(&()), type_, reason, action, note)
            .await;
    }
}

pub async fn apply(token: &ApiToken, ctx: &Context) -> Result<Action, Error> {
    let namespace = token.namespace().unwrap_or_default();
    let status = token.status.clone().unwrap_or_default();
    let mut run = Run {
        token,
        ctx,
        api: Api::namespaced(ctx.client.clone(), &namespace),
        secrets: Api::namespaced(ctx.client.clone(), &namespace),
        namespace,
        written: status.clone(),
        status,
        resource_version: token.meta().resource_version.clone(),
        now: Timestamp::now(),
    };
    let previous_ready = conditions::find(&run.written.conditions, conditions::READY).cloned();
    run.status.observed_generation = token.meta().generation;
    run.status.secret_name = Some(secret_name(token));

    let action = match converge(&mut run).await? {
        Ok(wake) => Action::requeue(wake.min(RESYNC_INTERVAL)),
        Err(blocked) => {
            run.set(blocked.condition, false, blocked.reason, blocked.message);
            Action::requeue(blocked.retry)
        }
    };
    summarise(&mut run.status, token.meta().generation, run.now);
    run.save().await?;

    let ready = conditions::find(&run.status.conditions, conditions::READY).cloned();
    let flipped = previous_ready.as_ref().map(|c| (&c.status, &c.reason))
        != ready.as_ref().map(|c| (&c.status, &c.reason));
    if let (true, Some(ready)) = (flipped, ready) {
        let type_ = if ready.status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        run.event(type_, &ready.reason, "Reconcile", ready.message).await;
    }
    Ok(action)
}

/// Drives the token towards its spec. `Ok(Ok(wait))`: converged, look again after `wait`.
/// `Ok(Err(blocked))`: stopped at a condition the user or time must fix.
async fn converge(run: &mut Run<'_>) -> Result<Result<Duration, Blocked>, Error> {
    let token = run.token;
    let name = secret_name(token);
    let existing_secret = run.secrets.get_opt(&name).await.map_err(Error::Kube)?;
    if !target_secret::is_ours(existing_secret.as_ref(), &owner_uid(token)) {
        let message = format!(
            "Secret {name} already exists and was not created by this ApiToken; delete it or set spec.secret.name to another name"
        );
        return Ok(Err(Blocked::new(
            conditions::SECRET_SYNCED,
            reason::SECRET_CONFLICT,
            message,
            RESYNC_INTERVAL,
        )));
    }

    let client = match run
        .ctx
        .stores
        .resolve(
            &run.ctx.client,
            KIND,
            &run.namespace,
            &token.spec.store_ref,
            &["prefactor"],
        )
        .await
    {
        Ok(client) => client,
        Err(problem) => {
            return Ok(Err(Blocked::new(
                conditions::STORE_READY,
                problem.reason(),
                problem.to_string(),
                RESYNC_INTERVAL,
            )));
        }
    };
    let prefactor = client.prefactor().expect("resolve checked the provider");
    run.set(
        conditions::STORE_READY,
        true,
        reason::RECONCILED,
        "the store is ready".into(),
    );

    if run.status.upstream_id.is_none() && run.status.pending.is_none() {
        record_pending(run, PendingKind::Create, "create")?;
        run.save().await?;
    }
    // The Secret read above predates an issuance in this run, so it is judged only when
    // nothing was issued.
    let issued_now = run.status.pending.is_some();
    if issued_now {
        if let Err(blocked) = issue(run, prefactor).await? {
            return Ok(Err(blocked));
        }
    }

    let id = run.status.upstream_id.clone().expect("issued above");
    let observed = match prefactor.get(&id).await {
        Ok(details) => details,
        Err(error) => return Ok(Err(Blocked::upstream(&format!("reading token {id}"), &error))),
    };
    run.status.upstream_state = Some(decide::upstream_state_name(observed.as_ref().map(|d| d.status)).into());
    if let Some(details) = &observed {
        run.status.expires_at = details.expires_at.map(Time);
    }

    // Rotation: scheduled, requested, or forced by lost Secret material.
    let requests = schedule::current_requests(
        token.spec.rotation.as_ref(),
        token.annotations().get(ROTATE_ANNOTATION).map(String::as_str),
    );
    let issued = Issued {
        at: run.status.last_rotation_time.as_ref().map(|t| t.0),
        expires_at: run.status.expires_at.as_ref().map(|t| t.0),
        renewal_extends_expiry: token.spec.expires_at.is_none(),
    };
    let plan = schedule::evaluate(
        token.spec.rotation.as_ref(),
        &requests,
        run.status.handled_rotation_requests.as_ref(),
        issued,
        run.now,
    )?;
    run.status.next_rotation_time = plan.next_rotation.map(Time);
    let secret_lost = !issued_now
        && existing_secret
            .as_ref()
            .and_then(target_secret::recorded_fingerprint)
            != run.status.secret_fingerprint.as_deref();
    let trigger = plan
        .due
        .map(|t| t.as_str())
        .or(secret_lost.then_some("secretLost"))
        .or(
            decide::expiry_changed(&token.spec, run.status.expires_at.as_ref().map(|t| t.0))
                .then_some("expiresAt"),
        );

    let step = decide::state_step(token.spec.state, observed.as_ref().map(|d| d.status));
    let lost_upstream = matches!(
        step,
        StateStep::RevokedBehindOurBack | StateStep::DeletedBehindOurBack
    );
    let usable = token.spec.state == TokenState::Active || lost_upstream;
    if let (Some(trigger), true) = (trigger, usable) {
        if trigger == "secretLost" {
            let note = format!(
                "Secret {name} no longer holds the current token; issuing a new one (the old token cannot be shown again)"
            );
            run.event(EventType::Warning, "SecretLost", "Rotate", note).await;
        }
        record_pending(run, PendingKind::Rotate, trigger)?;
        run.save().await?;
        if let Err(blocked) = issue(run, prefactor).await? {
            return Ok(Err(blocked));
        }
    } else if let Some(blocked) = drive_state(run, prefactor, &id, step).await {
        return Ok(Err(blocked));
    }

    if let Err(blocked) = retire_due(run, prefactor).await {
        return Ok(Err(blocked));
    }
    run.set(
        conditions::SECRET_SYNCED,
        true,
        reason::SECRET_WRITTEN,
        format!("Secret {name} holds the current token"),
    );

    let wake = schedule::wake_after(
        run.now,
        [
            run.status.next_rotation_time.as_ref(),
            run.status.expires_at.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|t| t.0)
        .chain(run.status.retiring.iter().map(|r| r.retire_at.0)),
    );
    Ok(Ok(wake.unwrap_or(RESYNC_INTERVAL)))
}

/// Sends the state action the spec asks for, or reports a token lost upstream.
async fn drive_state(
    run: &mut Run<'_>,
    prefactor: &PrefactorClient,
    id: &str,
    step: StateStep,
) -> Option<Blocked> {
    let token = run.token;
    match step {
        StateStep::InSync => {
            let state = run.status.upstream_state.clone().unwrap_or_default();
            run.set(
                conditions::UPSTREAM_SYNCED,
                true,
                reason::RECONCILED,
                format!("token {id} is {state}"),
            );
            None
        }
        StateStep::Act(action) => {
            let key = idempotency_key();
            match prefactor.change_state(id, action, &key).await {
                Ok(details) => {
                    let was = run.status.upstream_state.clone().unwrap_or_default();
                    let now = decide::upstream_state_name(Some(details.status));
                    run.status.upstream_state = Some(now.into());
                    let drift = run.written.upstream_state.as_deref() == Some(now);
                    let (reason_, note) = if drift {
                        (
                            "DriftCorrected",
                            format!("token {id} was {was} upstream; set back to {now} as spec.state asks"),
                        )
                    } else {
                        (reason::STATE_CHANGED, format!("token {id} is now {now}"))
                    };
                    info!(token_id = %id, from = %was, to = now, "token state changed");
                    run.event(EventType::Normal, reason_, action_name(action), note.clone())
                        .await;
                    run.set(conditions::UPSTREAM_SYNCED, true, reason_, note);
                    None
                }
                Err(error) => Some(Blocked::upstream(
                    &format!("changing the state of token {id}"),
                    &error,
                )),
            }
        }
        StateStep::RevokedBehindOurBack | StateStep::DeletedBehindOurBack => {
            let (reason_, what) = if step == StateStep::RevokedBehindOurBack {
                (reason::REVOKED_UPSTREAM, "was revoked")
            } else {
                (reason::DELETED_UPSTREAM, "was deleted")
            };
            let message = format!(
                "token {id} {what} outside the operator, so the Secret holds a dead token; to issue a new one run \
                 `kubectl annotate apitoken {} {ROTATE_ANNOTATION}=$(date +%s) --overwrite` (or change \
                 spec.rotation.requestedAt); to accept it, set spec.state: Revoked",
                token.name_any()
            );
            Some(Blocked::new(
                conditions::UPSTREAM_SYNCED,
                reason_,
                message,
                RESYNC_INTERVAL,
            ))
        }
    }
}

fn action_name(action: TokenAction) -> &'static str {
    match action {
        TokenAction::Suspend => "Suspend",
        TokenAction::Activate => "Activate",
        TokenAction::Revoke => "Revoke",
    }
}

/// A fresh idempotency key (32 hex characters; Prefactor allows 64).
fn idempotency_key() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Records the intent to mint a token, with the exact request, before anything is sent.
fn record_pending(run: &mut Run<'_>, operation: PendingKind, trigger: &str) -> Result<(), Error> {
    let request =
        serde_json::to_string(&CreateRequest::from_spec(&run.token.spec)).map_err(Error::CorruptPending)?;
    run.status.pending = Some(PendingOperation {
        operation,
        idempotency_key: idempotency_key(),
        started_at: Time(run.now),
        trigger: Some(trigger.into()),
        request: Some(request),
    });
    Ok(())
}

/// Executes `status.pending`: mints (or gets back, on a repeat) the token, writes the
/// Secret, then the status; on rotation restarts consumers and schedules the previous
/// token's retirement.
async fn issue(run: &mut Run<'_>, prefactor: &PrefactorClient) -> Result<Result<(), Blocked>, Error> {
    let token = run.token;
    let pending = run.status.pending.clone().expect("caller checked");
    let request: CreateRequest =
        serde_json::from_str(pending.request.as_deref().unwrap_or("{}")).map_err(Error::CorruptPending)?;
    let issued = match prefactor
        .create(&request.to_upstream(), &pending.idempotency_key)
        .await
    {
        Ok(issued) => issued,
        Err(error) => return Ok(Err(Blocked::upstream("creating the token", &error))),
    };
    let new_id = issued.details.id.clone();
    let material = Material {
        credential_id: new_id.clone(),
        entries: vec![("token", issued.token.expose().to_string())],
    };
    let name = secret_name(token);
    let owner = token
        .controller_owner_ref(&())
        .expect("a stored object has a uid");
    let desired = target_secret::desired(&name, &run.namespace, owner, &token.spec.secret, &material);
    let existing = run.secrets.get_opt(&name).await.map_err(Error::Kube)?;
    if !existing
        .as_ref()
        .is_some_and(|e| target_secret::is_current(e, &desired))
    {
        target_secret::apply(&run.secrets, existing.as_ref(), &owner_uid(token), &desired).await?;
    }

    let previous = run
        .status
        .upstream_id
        .replace(new_id.clone())
        .filter(|old| *old != new_id);
    let rotated = pending.operation == PendingKind::Rotate;
    // Break glass (see controller::compromised): this one rotation keeps no overlap, and
    // every credential still retiring is retired now with the previous one.
    let compromised = rotated
        && compromised::is_compromise_rotation(
            token.annotations(),
            run.status.handled_rotation_requests.as_ref(),
        );
    if compromised {
        run.status
            .retiring
            .iter_mut()
            .for_each(|r| r.retire_at = Time(run.now));
    }
    if let (true, Some(old)) = (rotated, &previous) {
        let retire_at = match compromised {
            true => run.now,
            false => run.now + schedule::retain_previous(token.spec.rotation.as_ref())?,
        };
        run.status.retiring.retain(|r| r.id != *old);
        run.status.retiring.push(RetiringCredential {
            id: old.clone(),
            retire_at: Time(retire_at),
        });
    }
    let fingerprint = material.fingerprint();
    run.status.credential_id = Some(new_id.clone());
    run.status.secret_fingerprint = Some(fingerprint.clone());
    run.status.last_rotation_time = Some(Time(run.now));
    run.status.expires_at = issued.details.expires_at.map(Time);
    run.status.upstream_state = Some(decide::upstream_state_name(Some(issued.details.status)).into());
    run.status.handled_rotation_requests = Some(schedule::current_requests(
        token.spec.rotation.as_ref(),
        token.annotations().get(ROTATE_ANNOTATION).map(String::as_str),
    ));
    if rotated {
        run.status.rotation_count = Some(run.status.rotation_count.unwrap_or_default() + 1);
    }
    run.status.pending = None;
    run.save().await?;

    let trigger = pending.trigger.unwrap_or_else(|| "resumed".into());
    if rotated {
        for failure in rollout::restart(
            &run.ctx.client,
            &run.namespace,
            &token.spec.rollout_restart,
            &fingerprint,
        )
        .await
        {
            run.event(
                EventType::Warning,
                "RolloutRestartFailed",
                "Rotate",
                failure.to_string(),
            )
            .await;
        }
        run.ctx.metrics.rotated(KIND, schedule_trigger_label(&trigger));
        let note = match &previous {
            Some(old) => format!(
                "new token {new_id} written to Secret {name} ({trigger}); token {old} retires after spec.rotation.retainPrevious"
            ),
            None => format!("new token {new_id} written to Secret {name} ({trigger})"),
        };
        info!(token_id = %new_id, %trigger, "token rotated");
        run.event(EventType::Normal, "Rotated", "Rotate", note).await;
    } else {
        info!(token_id = %new_id, "token created");
        run.event(
            EventType::Normal,
            "Created",
            "Create",
            format!("token {new_id} created and written to Secret {name}"),
        )
        .await;
    }
    Ok(Ok(()))
}

/// Maps a recorded trigger to a bounded metric label.
fn schedule_trigger_label(trigger: &str) -> &'static str {
    match trigger {
        "interval" => "interval",
        "expiring" => "expiring",
        "requestedAt" => "requestedAt",
        "annotation" => "annotation",
        "secretLost" => "secretLost",
        "expiresAt" => "expiresAt",
        _ => "resumed",
    }
}

/// Revokes and deletes the previous tokens whose retain period is over.
async fn retire_due(run: &mut Run<'_>, prefactor: &PrefactorClient) -> Result<(), Blocked> {
    let (due, _) = schedule::due_for_retirement(&run.status.retiring, run.now);
    for credential in due {
        if let Err(error) = retire(prefactor, &credential.id).await {
            return Err(Blocked::upstream(
                &format!("retiring previous token {}", credential.id),
                &error,
            ));
        }
        run.status.retiring.retain(|r| r.id != credential.id);
        let note = format!(
            "previous token {} revoked and deleted after its retain period",
            credential.id
        );
        run.event(EventType::Normal, "Retired", "Retire", note).await;
    }
    Ok(())
}

/// Revokes (if needed) and deletes token `id`; a token already gone is fine.
async fn retire(prefactor: &PrefactorClient, id: &str) -> Result<(), UpstreamError> {
    let Some(details) = prefactor.get(id).await? else {
        return Ok(());
    };
    if details.status != TokenStatus::Revoked {
        prefactor
            .change_state(id, TokenAction::Revoke, &idempotency_key())
            .await?;
    }
    match prefactor.delete(id).await {
        Err(error) if error.class() == ErrorClass::NotFound => Ok(()),
        result => result,
    }
}

/// Deletion: with `Delete`, every token this resource minted is revoked and deleted
/// upstream (a pending one is first fetched back by its idempotency key) and the Secret
/// removed; with `Orphan`, the upstream is untouched and the Secret is released.
pub async fn cleanup(token: &ApiToken, ctx: &Context) -> Result<Action, Error> {
    let namespace = token.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let name = secret_name(token);
    let status = token.status.clone().unwrap_or_default();
    if token.spec.deletion_policy == DeletionPolicy::Orphan {
        release_secret(&secrets, &name, &owner_uid(token)).await?;
        return Ok(Action::await_change());
    }

    let client = match ctx
        .stores
        .resolve(
            &ctx.client,
            KIND,
            &namespace,
            &token.spec.store_ref,
            &["prefactor"],
        )
        .await
    {
        Ok(client) => client,
        Err(problem) if status.upstream_id.is_none() && status.pending.is_none() => {
            info!(%problem, "nothing was created upstream; deleting without the store");
            target_secret::delete(&secrets, &name, &owner_uid(token)).await?;
            return Ok(Action::await_change());
        }
        Err(problem) => {
            let note = format!(
                "cannot delete the token upstream: {problem}; fix the store, or set spec.deletionPolicy: Orphan to leave the token"
            );
            ctx.event(
                &token.object_ref(&()),
                EventType::Warning,
                "CleanupBlocked",
                "Delete",
                note,
            )
            .await;
            return Err(Error::CleanupBlocked(problem.to_string()));
        }
    };
    let prefactor = client.prefactor().expect("resolve checked the provider");
    let mut ids: Vec<String> = status.retiring.iter().map(|r| r.id.clone()).collect();
    ids.extend(status.upstream_id.clone());
    if let Some(pending) = &status.pending {
        let request: CreateRequest = serde_json::from_str(pending.request.as_deref().unwrap_or("{}"))
            .map_err(Error::CorruptPending)?;
        let issued = prefactor
            .create(&request.to_upstream(), &pending.idempotency_key)
            .await?;
        ids.push(issued.details.id);
    }
    for id in &ids {
        retire(prefactor, id).await?;
    }
    target_secret::delete(&secrets, &name, &owner_uid(token)).await?;
    let note = format!(
        "revoked and deleted {} token(s) upstream and deleted Secret {name}",
        ids.len()
    );
    ctx.event(
        &token.object_ref(&()),
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
