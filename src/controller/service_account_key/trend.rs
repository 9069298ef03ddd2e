//! ServiceAccountKey on a Trend Micro store: a key with `roleID`, `locale`, `timeZone`,
//! `description` and `expiryDate` from the spec; `active: false` locks it out.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;
use tracing::info;

use super::decide::{self, TrendIssue, TrendRotation};
use super::{SECRET_KEY, deleted_upstream, key_name, record_issue, recorded};
use crate::api::{KeyStatus, ServiceAccountKey};
use crate::controller::Error;
use crate::controller::conditions::{self, reason};
use crate::controller::key_run::{Blocked, Delivery, Run, Step};
use crate::controller::ownership::{OwnerMark, Ownership};
use crate::controller::schedule;
use crate::controller::trigger::Trigger;
use crate::upstream::name_index::Lookup;
use crate::upstream::trend::{ApiKey, IssuedApiKey, TrendMicroClient};

pub async fn converge(run: &mut Run<'_, ServiceAccountKey>, trend: &TrendMicroClient) -> Step<Duration> {
    let key = run.object;
    let base = key_name(key, &run.ctx.cluster);
    match run.adoption() {
        Some(Ok(wanted)) => {
            adopt(run, trend, &wanted).await?;
        }
        Some(Err(refused)) => return Err(refused.into()),
        None if run.status.upstream_id.is_none() && run.status.pending.is_none() => {
            let request = TrendIssue::Create {
                key_name: base.clone(),
                replaces: None,
            };
            record_issue(run, Trigger::Create, &request).await?;
        }
        None => {}
    }
    // A create or regenerate answers with the whole key: this run's observation too.
    let mut issued_now = None;
    if run.status.pending.is_some() {
        let issued = issue(run, trend).await?;
        issued_now = Some(issued);
    }

    let id = run.upstream_id()?;
    let observed = match issued_now {
        Some(key) => Some(key),
        None => match trend.get(parse_id(&id)?).await {
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
    if let Some(observed) = &observed {
        run.status.expires_at = observed.expiry_date.and_then(from_millis).map(Time);
    }

    // A new key gets the same expiryDate, so renewing before it would not help.
    let trigger = run.rotation_due()?;
    let retain = schedule::retain_previous(key.spec.rotation.as_ref())?;
    let rotation_count = run.status.rotation_count.unwrap_or_default();
    match (trigger, observed) {
        (Some(trigger), observed) => {
            let current = parse_id(&id)?;
            let request = match (decide::trend_rotation(retain), &observed) {
                (TrendRotation::Regenerate, Some(_)) => TrendIssue::Regenerate { id: current },
                (_, observed) => TrendIssue::Create {
                    key_name: decide::rotated_key_name(&base, rotation_count),
                    replaces: observed.as_ref().map(|k| k.id),
                },
            };
            record_issue(run, trigger, &request).await?;
            issue(run, trend).await?;
        }
        (None, None) => return Err(deleted_upstream(run, &id).into()),
        (None, Some(observed)) => {
            drive(run, trend, &observed).await?;
        }
    }

    for credential in run.due_for_retirement() {
        let id = parse_id(&credential.id)?;
        let last_use = match run.waits_for_use(&credential) {
            true => match trend.get(id).await {
                Ok(previous) => previous.and_then(|p| p.last_sign_in).and_then(from_millis),
                Err(error) => {
                    let what = format!("reading the last use of previous key {id}");
                    return Err(Blocked::upstream(&what, &error).into());
                }
            },
            false => None,
        };
        let Some(how) = run.may_retire(&credential, last_use).await? else {
            continue;
        };
        crate::failpoint::hit("before-retire");
        if let Err(error) = trend.delete(id).await {
            return Err(
                Blocked::upstream(&format!("deleting previous key {}", credential.id), &error).into(),
            );
        }
        run.retired(&credential.id, how).await;
    }
    Ok(run.converged())
}

/// Records the adoption of key `wanted` (its numeric id) as a regeneration: its secret
/// cannot be shown, so a new one replaces it. Another resource's key is refused.
async fn adopt(run: &mut Run<'_, ServiceAccountKey>, trend: &TrendMicroClient, wanted: &str) -> Step {
    let Ok(id) = wanted.parse::<i64>() else {
        return Err(run
            .adoption_refused(wanted, "Trend Micro keys are adopted by their numeric ID")
            .into());
    };
    let existing = match trend.get(id).await {
        Ok(Some(existing)) => existing,
        Ok(None) => return Err(run.adoption_refused(wanted, "the manager has no such key").into()),
        Err(error) => return Err(Blocked::upstream(&format!("reading key {id}"), &error).into()),
    };
    if run.mark.judge(existing.description.as_deref()) == Ownership::Others {
        return Err(run
            .adoption_refused(wanted, "it belongs to another resource")
            .into());
    }
    let request = TrendIssue::Regenerate { id };
    record_issue(run, Trigger::Adopt, &request).await?;
    Ok(())
}

/// Executes `status.pending` and delivers the secret; returns the key as the answer
/// described it. A key replaced by a second key is retired after `retainPrevious`.
async fn issue(run: &mut Run<'_, ServiceAccountKey>, trend: &TrendMicroClient) -> Step<ApiKey> {
    let request = recorded::<TrendIssue>(run)?;
    let (issued, replaces) = match &request {
        TrendIssue::Create { key_name, replaces } => {
            (create_or_recover(run, trend, key_name).await, *replaces)
        }
        // The record is the operator's own: status proofs cover it (see status_proof).
        TrendIssue::Regenerate { id } => (
            trend
                .regenerate_secret(*id)
                .await
                .map_err(|e| Blocked::upstream(&format!("regenerating the secret of key {id}"), &e)),
            None,
        ),
    };
    let issued = issued?;
    let id = issued.key.id.to_string();
    run.deliver(Delivery {
        upstream_id: id.clone(),
        credential_id: id,
        entries: vec![(SECRET_KEY, issued.secret.expose().to_string())],
        expires_at: issued.key.expiry_date.and_then(from_millis),
        upstream_state: decide::state_name(Some(issued.key.active)).into(),
        replaces: replaces.map(|r| r.to_string()),
    })
    .await?;
    Ok(issued.key)
}

/// Creates key `name` with the spec's settings, marked as this resource's; if it exists
/// already and carries this resource's mark (created before a crash, its secret lost),
/// regenerates its secret instead of creating a twin. A key of that name without the mark
/// is someone else's and stays untouched.
async fn create_or_recover(
    run: &Run<'_, ServiceAccountKey>,
    trend: &TrendMicroClient,
    name: &str,
) -> Result<IssuedApiKey, Blocked> {
    let found = trend
        .find_by_name(name, run.name_lookup())
        .await
        .map_err(|e| Blocked::upstream(&format!("looking for key {name}"), &e))?;
    let whose = |k: &ApiKey| run.mark.judge(k.description.as_deref());
    if let Some(existing) = found.iter().find(|k| whose(k) == Ownership::Ours) {
        info!(
            key_id = existing.id,
            "key found by name after an interrupted create; replacing its secret"
        );
        return trend
            .regenerate_secret(existing.id)
            .await
            .map_err(|e| Blocked::upstream(&format!("recovering key {name}"), &e));
    }
    if let Some(other) = found.first() {
        return Err(Blocked::name_taken::<ServiceAccountKey>(
            name,
            whose(other),
            "spec.keyName",
        ));
    }
    trend
        .create(&decide::trend_settings(&run.object.spec, name, &run.mark))
        .await
        .map_err(|e| Blocked::upstream(&format!("creating key {name}"), &e))
}

/// Brings the key's settings and `active` to the spec.
async fn drive(
    run: &mut Run<'_, ServiceAccountKey>,
    trend: &TrendMicroClient,
    observed: &ApiKey,
) -> Result<(), Blocked> {
    let id = observed.id;
    run.observed_use(observed.last_sign_in.and_then(from_millis));
    let Some(changes) = decide::trend_changes(&run.object.spec, observed, &run.mark) else {
        let state = decide::state_name(Some(observed.active));
        run.upstream_in_sync(&id.to_string(), state);
        return Ok(());
    };
    let updated = trend
        .modify(id, &changes)
        .await
        .map_err(|e| Blocked::upstream(&format!("updating key {id}"), &e))?;
    let now = decide::state_name(Some(updated.active));
    run.status.upstream_state = Some(now.into());
    run.status.expires_at = updated.expiry_date.and_then(from_millis).map(Time);
    let note = format!("key {id} updated upstream to match the spec; it is {now}");
    info!(key_id = id, state = now, "key updated");
    run.event(EventType::Normal, reason::STATE_CHANGED, "Update", note.clone())
        .await;
    run.set(conditions::UPSTREAM_SYNCED, true, reason::STATE_CHANGED, note);
    Ok(())
}

/// Deletes the current and retiring keys, whose ids the proven status records, and one
/// created before a crash, found by its recorded name and this resource's mark.
pub async fn delete(status: &KeyStatus, trend: &TrendMicroClient, mark: &OwnerMark) -> Result<usize, Error> {
    let mut ids: Vec<i64> = status
        .retiring
        .iter()
        .map(|r| r.id.as_str())
        .chain(status.upstream_id.as_deref())
        .map(parse_id)
        .collect::<Result<_, _>>()?;
    if let Some(pending) = &status.pending
        && let Ok(TrendIssue::Create { key_name, .. }) =
            serde_json::from_str(pending.request.as_deref().unwrap_or("{}"))
    {
        let found = trend.find_by_name(&key_name, Lookup::Now).await?;
        ids.extend(
            found
                .iter()
                .filter(|k| mark.judge(k.description.as_deref()) == Ownership::Ours)
                .map(|k| k.id),
        );
    }
    ids.sort_unstable();
    ids.dedup();
    for id in &ids {
        trend.delete(*id).await?;
    }
    Ok(ids.len())
}

/// Trend Micro ids are integers; the status stores them as strings like every kind.
fn parse_id(id: &str) -> Result<i64, Error> {
    id.parse()
        .map_err(|_| Error::CorruptStatus(format!("{id:?} is not a Trend Micro key id")))
}

fn from_millis(ms: i64) -> Option<Timestamp> {
    Timestamp::from_millisecond(ms).ok()
}
