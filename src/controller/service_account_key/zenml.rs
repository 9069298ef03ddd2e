//! ServiceAccountKey on a ZenML store: a key of `spec.serviceAccount`, rotated in place.

use std::time::Duration;

use kube::runtime::events::EventType;
use tracing::info;

use super::decide::{self, ZenmlIssue};
use super::{SECRET_KEY, deleted_upstream, key_name, record_issue, recorded};
use crate::api::{KeyStatus, ServiceAccountKey};
use crate::controller::Error;
use crate::controller::conditions::{self, reason};
use crate::controller::key_run::{Blocked, Delivery, Run, Step};
use crate::controller::ownership::{OwnerMark, Ownership, user_description};
use crate::controller::schedule;
use crate::controller::trigger::Trigger;
use crate::upstream::zenml::{ApiKey, ApiKeyUpdate, IssuedApiKey, ZenmlClient};
use crate::upstream::{ErrorClass, UpstreamError};

pub async fn converge(
    run: &mut Run<'_, ServiceAccountKey>,
    zenml: &ZenmlClient,
    named: &str,
) -> Step<Duration> {
    let key = run.object;
    let account = match zenml.service_account_id(named).await {
        Ok(Some(id)) => id,
        Ok(None) => {
            let message = format!(
                "ZenML has no service account {named:?}: create it, or set spec.serviceAccount to an existing one"
            );
            return Err(Blocked::spec(reason::SERVICE_ACCOUNT_NOT_FOUND, message).into());
        }
        Err(error) => {
            let what = format!("looking up service account {named}");
            return Err(Blocked::upstream(&what, &error).into());
        }
    };
    let name = key_name(key, &run.ctx.cluster);
    match run.adoption() {
        Some(Ok(wanted)) => {
            adopt(run, zenml, &account, &wanted).await?;
        }
        Some(Err(refused)) => return Err(refused.into()),
        None if run.status.upstream_id.is_none() && run.status.pending.is_none() => {
            let request = ZenmlIssue::Create { name: name.clone() };
            record_issue(run, Trigger::Create, &request).await?;
        }
        None => {}
    }
    // A create answers with the whole key, so it is this run's observation too.
    let mut issued_now = None;
    if run.status.pending.is_some() {
        let issued = issue(run, zenml, &account).await?;
        issued_now = Some(issued).filter(|key| key.hydrated);
    }

    let id = run.upstream_id()?;
    let observed = match issued_now {
        Some(key) => Some(key),
        None => match zenml.get(&account, &id).await {
            Ok(observed) => observed,
            Err(error) => return Err(Blocked::upstream(&format!("reading key {id}"), &error).into()),
        },
    };
    if let Some(observed) = &observed
        && run.mark.judge(observed.description.as_deref()) == Ownership::Others
    {
        return Err(Blocked::owned_by_other::<ServiceAccountKey>(&id).into());
    }
    run.status.upstream_state = Some(decide::state_name(observed.as_ref().map(|k| k.active)).into());

    // ZenML keys do not expire, so only the interval, a request or a lost Secret rotates.
    let trigger = run.rotation_due()?;
    match (trigger, observed) {
        (Some(trigger), Some(_)) => {
            let retain = schedule::retain_previous(key.spec.rotation.as_ref())?;
            let request = ZenmlIssue::Rotate {
                id: id.clone(),
                retain_minutes: decide::retain_minutes(retain),
            };
            record_issue(run, trigger, &request).await?;
            issue(run, zenml, &account).await?;
        }
        (Some(trigger), None) => {
            let request = ZenmlIssue::Create { name: name.clone() };
            record_issue(run, trigger, &request).await?;
            issue(run, zenml, &account).await?;
        }
        (None, None) => return Err(deleted_upstream(run, &id).into()),
        (None, Some(observed)) => {
            drive(run, zenml, &account, &observed).await?;
        }
    }
    Ok(run.converged())
}

/// Records the adoption of key `wanted` (name or id) as a rotation with no retention: its
/// secret cannot be shown, so a new one replaces it. Another resource's key is refused.
async fn adopt(
    run: &mut Run<'_, ServiceAccountKey>,
    zenml: &ZenmlClient,
    account: &str,
    wanted: &str,
) -> Step {
    let existing = match zenml.get(account, wanted).await {
        Ok(Some(existing)) => existing,
        Ok(None) => {
            return Err(run
                .adoption_refused(wanted, "the service account has no such key")
                .into());
        }
        Err(error) => return Err(Blocked::upstream(&format!("reading key {wanted}"), &error).into()),
    };
    if run.mark.judge(existing.description.as_deref()) == Ownership::Others {
        return Err(run
            .adoption_refused(wanted, "it belongs to another resource")
            .into());
    }
    let request = ZenmlIssue::Rotate {
        id: existing.id.clone(),
        retain_minutes: 0,
    };
    record_issue(run, Trigger::Adopt, &request).await?;
    Ok(())
}

/// Executes `status.pending` and delivers the secret; returns the key as the answer
/// described it. The previous secret of a rotation is retired by ZenML itself at the end of
/// the retain period, so nothing is scheduled here.
async fn issue(run: &mut Run<'_, ServiceAccountKey>, zenml: &ZenmlClient, account: &str) -> Step<ApiKey> {
    let issued = match recorded::<ZenmlIssue>(run)? {
        ZenmlIssue::Create { name } => create_or_recover(run, zenml, account, &name).await,
        // The record is the operator's own: status proofs cover it (see status_proof).
        ZenmlIssue::Rotate { id, retain_minutes } => zenml
            .rotate(account, &id, retain_minutes)
            .await
            .map_err(|e| Blocked::upstream(&format!("rotating key {id}"), &e)),
    };
    let issued = issued?;
    run.deliver(Delivery {
        upstream_id: issued.key.id.clone(),
        credential_id: issued.key.id.clone(),
        entries: vec![(SECRET_KEY, issued.secret.expose().to_string())],
        expires_at: None,
        upstream_state: decide::state_name(Some(issued.key.active)).into(),
        replaces: None,
    })
    .await?;
    Ok(issued.key)
}

/// Creates key `name`, marked as this resource's; if it exists already and carries this
/// resource's mark (created before a crash, its secret lost), rotates it with no retention
/// so the unknown secret dies and a known one replaces it. A key of that name without the
/// mark is someone else's and stays untouched.
async fn create_or_recover(
    run: &Run<'_, ServiceAccountKey>,
    zenml: &ZenmlClient,
    account: &str,
    name: &str,
) -> Result<IssuedApiKey, Blocked> {
    let description = run.mark.describe(run.object.spec.description.as_deref());
    let nonce = run.status.pending.as_ref().map(|p| p.idempotency_key.as_str());
    let replay = run
        .idempotency_uuid(nonce.unwrap_or_default())
        .hyphenated()
        .to_string();
    match zenml.create(account, name, Some(&description), &replay).await {
        Err(error) if error.class() == ErrorClass::Conflict => {}
        Err(error) if error.class() == ErrorClass::NotFound => {
            if let Some(named) = run.object.spec.service_account.as_deref() {
                zenml.forget_service_account(named);
            }
            return Err(Blocked::upstream(&format!("creating key {name}"), &error));
        }
        result => return result.map_err(|e| Blocked::upstream(&format!("creating key {name}"), &e)),
    }
    let recovering = |e: UpstreamError| Blocked::upstream(&format!("recovering key {name}"), &e);
    let existing = zenml.get(account, name).await.map_err(recovering)?;
    let Some(existing) = existing else {
        return Err(Blocked::new(
            conditions::UPSTREAM_SYNCED,
            reason::UPSTREAM_ERROR,
            format!("creating key {name}: the name is taken but no key by that name can be read; retrying"),
            Duration::from_secs(30),
        ));
    };
    match run.mark.judge(existing.description.as_deref()) {
        Ownership::Ours => {}
        whose => {
            return Err(Blocked::name_taken::<ServiceAccountKey>(
                name,
                whose,
                "spec.keyName",
            ));
        }
    }
    info!(key_id = %existing.id, "key found by name after an interrupted create; replacing its secret");
    zenml.rotate(account, &existing.id, 0).await.map_err(recovering)
}

/// Brings `active` and the description to the spec.
async fn drive(
    run: &mut Run<'_, ServiceAccountKey>,
    zenml: &ZenmlClient,
    account: &str,
    observed: &ApiKey,
) -> Result<(), Blocked> {
    let spec = &run.object.spec;
    // The spec's description, else the one upstream, with this resource's mark (stamped
    // here on a key created before marks existed).
    let user = spec
        .description
        .as_deref()
        .or(observed.description.as_deref().and_then(user_description));
    let description = run.mark.describe(user);
    let update = ApiKeyUpdate {
        name: None,
        description: Some(description).filter(|d| observed.description.as_ref() != Some(d)),
        active: Some(spec.active).filter(|a| *a != observed.active),
    };
    let id = &observed.id;
    run.observed_use(observed.last_login_at());
    if update == ApiKeyUpdate::default() {
        let state = decide::state_name(Some(observed.active));
        run.upstream_in_sync(id, state);
        return Ok(());
    }
    let updated = zenml
        .update(account, id, &update)
        .await
        .map_err(|e| Blocked::upstream(&format!("updating key {id}"), &e))?;
    let now = decide::state_name(Some(updated.active));
    run.status.upstream_state = Some(now.into());
    let note = format!("key {id} is now {now} upstream, as the spec asks");
    info!(key_id = %id, state = now, "key updated");
    run.event(EventType::Normal, reason::STATE_CHANGED, "Update", note.clone())
        .await;
    run.set(conditions::UPSTREAM_SYNCED, true, reason::STATE_CHANGED, note);
    Ok(())
}

/// Deletes the key (and one created before a crash, found by its recorded name and this
/// resource's mark).
pub async fn delete(
    key: &ServiceAccountKey,
    status: &KeyStatus,
    zenml: &ZenmlClient,
    mark: &OwnerMark,
    name: &str,
) -> Result<usize, Error> {
    let Some(named) = key.spec.service_account.as_deref() else {
        return Ok(0);
    };
    let Some(account) = zenml.service_account_id(named).await? else {
        // Its keys went with it.
        return Ok(0);
    };
    let account = account.as_str();
    // The proven status records the key's id; a key left by a crash is found by name and mark.
    let mut ids: Vec<String> = status.upstream_id.iter().cloned().collect();
    if status.pending.is_some()
        && let Some(found) = zenml.get(account, name).await?
        && mark.judge(found.description.as_deref()) == Ownership::Ours
    {
        ids.push(found.id);
    }
    ids.dedup();
    for id in &ids {
        zenml.delete(account, id).await?;
    }
    Ok(ids.len())
}
