//! `kubectl apikeys rotate`: asks for one rotation with the `apikeys.dev/rotate` annotation
//! and waits for its outcome.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::wait::await_condition;

use super::PluginError;
use super::kind::Target;
use super::view::KeyView;
use crate::controller::conditions::reason;
use crate::controller::schedule::ROTATE_ANNOTATION;

/// Field manager of the plugin's writes (annotations only).
pub const FIELD_MANAGER: &str = "kubectl-apikeys";

/// Ready=False reasons that belong to a rotation in progress, not to its failure.
const IN_PROGRESS_REASONS: [&str; 2] = [reason::CREATING, reason::ROTATING];

/// Reads the resource, refusing a paused one: the operator would ignore the request.
pub async fn current(
    api: &Api<DynamicObject>,
    target: &Target,
    namespace: &str,
) -> Result<KeyView, PluginError> {
    let missing = PluginError::NotFound {
        target: target.to_string(),
        namespace: namespace.to_string(),
    };
    let object = api
        .get(&target.name)
        .await
        .map_err(|e| PluginError::from_kube(e, Some(missing)))?;
    let view = KeyView::new(target.kind, &object)?;
    if view.paused {
        return Err(PluginError::Paused(target.to_string()));
    }
    Ok(view)
}

/// A fresh request value: the time, for humans reading the annotation, plus randomness so
/// two requests in the same second still differ.
pub fn request_value() -> String {
    let mut bytes = [0u8; 3];
    getrandom::fill(&mut bytes).expect("the OS provides randomness");
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{suffix}", Timestamp::now().strftime("%Y%m%dT%H%M%SZ"))
}

/// Sets annotations on the resource with a merge patch (only those keys change).
pub async fn annotate(
    api: &Api<DynamicObject>,
    target: &Target,
    annotations: &[(&str, &str)],
) -> Result<(), PluginError> {
    let annotations: serde_json::Map<String, serde_json::Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    let patch = serde_json::json!({"metadata": {"annotations": annotations}});
    api.patch(
        &target.name,
        &PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        },
        &Patch::Merge(&patch),
    )
    .await
    .map_err(|e| PluginError::from_kube(e, None))?;
    Ok(())
}

/// What a rotation request came to.
#[derive(Debug)]
pub enum Verdict {
    Waiting,
    Rotated,
    Failed { reason: String, message: String },
}

/// Judges `now` against the resource as it was `before` the request: rotated once the
/// count went up and the resource is Ready for its current spec with nothing in flight;
/// failed once Ready turned False for a reason other than the rotation itself.
pub fn judge(before: &KeyView, now: &KeyView) -> Verdict {
    if now.rotation_count() > before.rotation_count() && now.is_ready() && now.status.pending.is_none() {
        return Verdict::Rotated;
    }
    match now.ready() {
        Some(ready)
            if ready.status == "False"
                && now.observed_current()
                && !IN_PROGRESS_REASONS.contains(&ready.reason.as_str())
                && before.ready() != Some(ready) =>
        {
            Verdict::Failed {
                reason: ready.reason.clone(),
                message: ready.message.clone(),
            }
        }
        _ => Verdict::Waiting,
    }
}

/// Waits until `accept` says the resource reached its outcome, or fails on a rotation
/// failure, deletion or timeout.
pub async fn await_outcome(
    api: &Api<DynamicObject>,
    before: &KeyView,
    what: &'static str,
    timeout: Duration,
    accept: impl Fn(&KeyView) -> bool + Send + 'static,
) -> Result<KeyView, PluginError> {
    let target = before.target.clone();
    let decided = {
        let before = before.clone();
        let target = target.clone();
        move |object: Option<&DynamicObject>| match object {
            None => true,
            Some(object) => {
                KeyView::new(target.kind, object).map_or(true, |now| match judge(&before, &now) {
                    Verdict::Rotated => accept(&now),
                    Verdict::Failed { .. } => true,
                    Verdict::Waiting => false,
                })
            }
        }
    };
    let timed_out = || PluginError::Timeout {
        target: target.to_string(),
        what,
        after: timeout,
    };
    let object = tokio::time::timeout(timeout, await_condition(api.clone(), &target.name, decided))
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| PluginError::Unreachable(super::error::one_line(&e)))?
        .ok_or_else(|| PluginError::Deleted(target.to_string()))?;
    let now = KeyView::new(target.kind, &object)?;
    match judge(before, &now) {
        Verdict::Failed { reason, message } => Err(PluginError::RotationFailed {
            target: target.to_string(),
            reason,
            message,
        }),
        _ => Ok(now),
    }
}

/// Requests a rotation; with `wait`, waits at most that long for the outcome, and with
/// `wait_retired` also for the retirement of the credential it replaced.
pub async fn rotate(
    client: &Client,
    namespace: &str,
    target: &Target,
    wait: Option<Duration>,
    wait_retired: bool,
) -> Result<String, PluginError> {
    let api = target.kind.namespaced(client, namespace);
    let before = current(&api, target, namespace).await?;
    let value = request_value();
    annotate(&api, target, &[(ROTATE_ANNOTATION, &value)]).await?;
    let Some(timeout) = wait else {
        return Ok(format!(
            "{target}: rotation requested ({ROTATE_ANNOTATION}={value}); follow it with `kubectl apikeys describe {target}`"
        ));
    };
    let started = tokio::time::Instant::now();
    let after = await_outcome(&api, &before, "the rotation", timeout, |_| true).await?;
    let summary = rotated_summary(&after);
    let retiring: Vec<String> = after.status.retiring.iter().map(|r| r.id.clone()).collect();
    if !wait_retired || retiring.is_empty() {
        return Ok(summary);
    }
    let left = timeout.saturating_sub(started.elapsed());
    let retired = {
        let kind = target.kind;
        move |object: Option<&DynamicObject>| {
            object.is_none_or(|object| {
                KeyView::new(kind, object)
                    .is_ok_and(|now| !now.status.retiring.iter().any(|r| retiring.contains(&r.id)))
            })
        }
    };
    let timed_out = || PluginError::Timeout {
        target: target.to_string(),
        what: "the retirement of the previous credential",
        after: timeout,
    };
    tokio::time::timeout(left, await_condition(api.clone(), &target.name, retired))
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| PluginError::Unreachable(super::error::one_line(&e)))?
        .ok_or_else(|| PluginError::Deleted(target.to_string()))?;
    Ok(format!("{summary}\n  the previous credential is retired"))
}

/// One line (plus the retiring credentials) saying what the rotation produced.
pub fn rotated_summary(after: &KeyView) -> String {
    let status = &after.status;
    let mut out = format!(
        "{} rotated (rotation {}): Secret {} now holds credential {} ({})",
        after.target,
        after.rotation_count(),
        status.secret_name.as_deref().unwrap_or("-"),
        status
            .credential_id
            .as_deref()
            .or(status.upstream_id.as_deref())
            .unwrap_or("-"),
        status.secret_fingerprint.as_deref().unwrap_or("no fingerprint"),
    );
    for retiring in &status.retiring {
        out.push_str(&format!(
            "\n  previous credential {} stays valid until {}",
            retiring.id,
            super::table::instant(retiring.retire_at.0)
        ));
        if let Some(waiting) = &retiring.waiting_for {
            out.push_str(&format!(", and while it waits for: {waiting}"));
        }
    }
    out
}
