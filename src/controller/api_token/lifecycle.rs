//! Converging one ApiToken against Prefactor: issue (create or rotate) through the durable
//! `pending` record, drive the state, retire previous tokens; and deletion upstream.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use tracing::info;

use super::SECRET_KEY;
use super::decide::{self, CreateRequest, StateStep};
use crate::api::{ApiToken, KeyStatus, TokenState};
use crate::controller::Error;
use crate::controller::conditions::{self, reason};
use crate::controller::key_run::{Blocked, Delivery, RESYNC_INTERVAL, Run, Step, idempotency_key, owner_uid};
use crate::controller::ownership::ClusterIdentity;
use crate::controller::policy;
use crate::controller::reconcile_key::{KeyKind, wrong_provider};
use crate::controller::schedule::ROTATE_ANNOTATION;
use crate::controller::trigger::Trigger;
use crate::failpoint;
use crate::upstream::prefactor::{ApiTokenDetails, PrefactorClient, TokenAction, TokenStatus};
use crate::upstream::{self, ErrorClass, UpstreamClient, UpstreamError};

impl KeyKind for ApiToken {
    const PROVIDERS: &'static [upstream::Api] = &[upstream::Api::Prefactor];

    async fn converge(run: &mut Run<'_, Self>, upstream: &UpstreamClient) -> Step<Duration> {
        let Some(prefactor) = upstream.prefactor() else {
            return Err(wrong_provider::<Self>(upstream).into());
        };
        converge(run, prefactor).await
    }

    fn spec_rotation(token: &Self, status: &KeyStatus) -> Option<Trigger> {
        let expires_at = status.expires_at.as_ref().map(|t| t.0);
        decide::expiry_changed(&token.spec, expires_at).then_some(Trigger::ExpiresAt)
    }

    fn policy_request<'a>(
        &'a self,
        _upstream: &UpstreamClient,
        _cluster: &ClusterIdentity,
        store_account: Option<&'a str>,
    ) -> policy::Request<'a> {
        policy::Request {
            upstream_name: None,
            expiry: ("spec.expiresAt", self.spec.expires_at.as_ref().map(|t| t.0)),
            rotation_interval: self.spec.rotation.as_ref().and_then(|r| r.interval.as_deref()),
            provider: policy::ProviderRequest::Prefactor {
                scope: self.spec.scope,
                environment_id: self.spec.environment_id.as_deref(),
                account_id: self.spec.account_id.as_deref().or(store_account),
            },
        }
    }

    async fn delete_upstream(
        token: &Self,
        status: &KeyStatus,
        upstream: &UpstreamClient,
        cluster: &ClusterIdentity,
    ) -> Result<usize, Error> {
        let Some(prefactor) = upstream.prefactor() else {
            return Err(Error::CleanupBlocked(wrong_provider::<Self>(upstream).message));
        };
        let mut ids: Vec<String> = status.retiring.iter().map(|r| r.id.clone()).collect();
        ids.extend(status.upstream_id.clone());
        if let Some(pending) = &status.pending {
            let request = recorded_request(pending.request.as_deref())?;
            // Bound to this resource's UID: a record copied from another resource gets a
            // token of its own (then deleted), never the other resource's.
            let key = cluster.idempotency_key(&owner_uid(token), &pending.idempotency_key);
            let issued = prefactor.create(&request.to_upstream(), &key).await?;
            ids.push(issued.details.id);
        }
        for id in &ids {
            retire(prefactor, id).await?;
        }
        Ok(ids.len())
    }
}

async fn converge(run: &mut Run<'_, ApiToken>, prefactor: &PrefactorClient) -> Step<Duration> {
    let token = run.object;
    match run.adoption() {
        // A Prefactor token has no field to carry an owner mark, so the operator cannot
        // tell another resource's token from a hand-made one: adopting could retire a
        // token another namespace relies on.
        Some(Ok(wanted)) => {
            let why = "Prefactor tokens carry no owner mark, so the operator cannot tell whether another resource \
                       relies on it; remove the annotation to have a new token issued, and revoke the old token by \
                       hand once its consumers use the new one";
            return Err(run.adoption_refused(&wanted, why).into());
        }
        Some(Err(refused)) => return Err(refused.into()),
        None if run.status.upstream_id.is_none() && run.status.pending.is_none() => {
            record_issue(run, Trigger::Create).await?;
        }
        None => {}
    }
    // A token issued in this run was observed by its create response.
    let mut issued_now = None;
    if run.status.pending.is_some() {
        let details = issue(run, prefactor).await?;
        issued_now = Some(details);
    }

    // Rotation: scheduled, requested, forced by lost Secret material, or a new expiry
    // (the upstream cannot change a token's expiry in place).
    let trigger = run
        .rotation_due()?
        .or(ApiToken::spec_rotation(token, &run.status));

    let id = run.upstream_id()?;
    let observed = match issued_now {
        Some(details) => Some(details),
        None => match prefactor.get(&id).await {
            Ok(details) => details,
            Err(error) => return Err(Blocked::upstream(&format!("reading token {id}"), &error).into()),
        },
    };
    run.status.upstream_state = Some(decide::upstream_state_name(observed.as_ref().map(|d| d.status)).into());
    if let Some(details) = &observed {
        run.status.expires_at = details.expires_at.map(Time);
        run.observed_use(details.last_used_at);
    }

    let step = decide::state_step(token.spec.state, observed.as_ref().map(|d| d.status));
    let lost_upstream = matches!(
        step,
        StateStep::RevokedBehindOurBack | StateStep::DeletedBehindOurBack
    );
    let usable = token.spec.state == TokenState::Active || lost_upstream;
    if let (Some(trigger), true) = (trigger, usable) {
        record_issue(run, trigger).await?;
        let details = issue(run, prefactor).await?;
        let state = decide::upstream_state_name(Some(details.status));
        run.upstream_in_sync(&details.id, state);
    } else if let Some(blocked) = drive_state(run, prefactor, &id, step).await {
        return Err(blocked.into());
    }

    for credential in run.due_for_retirement() {
        let last_use = match run.waits_for_use(&credential) {
            true => match prefactor.get(&credential.id).await {
                Ok(previous) => previous.and_then(|p| p.last_used_at),
                Err(error) => {
                    let what = format!("reading the last use of previous token {}", credential.id);
                    return Err(Blocked::upstream(&what, &error).into());
                }
            },
            false => None,
        };
        let Some(how) = run.may_retire(&credential, last_use).await? else {
            continue;
        };
        failpoint::hit("before-retire");
        if let Err(error) = retire(prefactor, &credential.id).await {
            return Err(
                Blocked::upstream(&format!("retiring previous token {}", credential.id), &error).into(),
            );
        }
        run.retired(&credential.id, how).await;
    }
    Ok(run.converged())
}

/// Sends the state action the spec asks for, or reports a token lost upstream.
async fn drive_state(
    run: &mut Run<'_, ApiToken>,
    prefactor: &PrefactorClient,
    id: &str,
    step: StateStep,
) -> Option<Blocked> {
    let token = run.object;
    match step {
        StateStep::InSync => {
            let state = run.status.upstream_state.clone().unwrap_or_default();
            run.upstream_in_sync(id, &state);
            None
        }
        StateStep::Act(action) => match prefactor.change_state(id, action, &idempotency_key()).await {
            Ok(details) => {
                let was = run.status.upstream_state.clone().unwrap_or_default();
                let now = decide::upstream_state_name(Some(details.status));
                run.status.upstream_state = Some(now.into());
                let drift = run.written.upstream_state.as_deref() == Some(now);
                let (reason_, note) = if drift {
                    (
                        reason::DRIFT_CORRECTED,
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
        },
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

/// Records the intent to mint a token, with the exact request and a fresh nonce (the
/// idempotency key sent is derived from it and the UID), before anything is sent.
async fn record_issue(run: &mut Run<'_, ApiToken>, trigger: Trigger) -> Result<(), Error> {
    let request =
        serde_json::to_string(&CreateRequest::from_spec(&run.object.spec)).map_err(Error::CorruptPending)?;
    run.record_pending(trigger, idempotency_key(), Some(request))
        .await
}

fn recorded_request(request: Option<&str>) -> Result<CreateRequest, Error> {
    serde_json::from_str(request.unwrap_or("{}")).map_err(Error::CorruptPending)
}

/// Executes `status.pending`: mints (or gets back, on a repeat) the token and delivers it;
/// on rotation the previous token retires after `retainPrevious`.
async fn issue(run: &mut Run<'_, ApiToken>, prefactor: &PrefactorClient) -> Step<ApiTokenDetails> {
    let pending = run.pending()?;
    let request = recorded_request(pending.request.as_deref())?;
    let key = run.idempotency_key(&pending.idempotency_key);
    let issued = match prefactor.create(&request.to_upstream(), &key).await {
        Ok(issued) => issued,
        Err(error) => return Err(Blocked::upstream("creating the token", &error).into()),
    };
    let new_id = issued.details.id.clone();
    let replaces = run.status.upstream_id.clone().filter(|old| *old != new_id);
    run.deliver(Delivery {
        upstream_id: new_id.clone(),
        credential_id: new_id,
        entries: vec![(SECRET_KEY, issued.token.expose().to_string())],
        expires_at: issued.details.expires_at,
        upstream_state: decide::upstream_state_name(Some(issued.details.status)).into(),
        replaces,
    })
    .await?;
    Ok(issued.details)
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
