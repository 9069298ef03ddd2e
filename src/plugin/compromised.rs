//! `kubectl apikeys compromised`: the break-glass path. Rotates now with no overlap, so the
//! compromised credential stops working as soon as the new one is in the Secret (and the
//! `rolloutRestart` consumers restart with it), and records who reported it.
//!
//! The plugin writes `apikeys.dev/rotate` and `apikeys.dev/compromised` with one fresh
//! value; the controller's side of the contract is in `controller::compromised`.

use std::io::BufRead;
use std::time::Duration;

use kube::api::DynamicObject;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};

use super::PluginError;
use super::kind::Target;
use super::rotate::{self, FIELD_MANAGER};
use crate::controller::compromised::COMPROMISED_ANNOTATION;
use crate::controller::schedule::ROTATE_ANNOTATION;

/// The question asked before anything changes; the answer must be the resource's name.
pub fn confirmation_prompt(target: &Target, namespace: &str) -> String {
    format!(
        "{target} in namespace {namespace} will be rotated now WITHOUT overlap: its current credential is retired \
         immediately, so consumers that have not restarted with the new Secret lose access.\n\
         Type the name ({}) to continue: ",
        target.name
    )
}

/// Reads one line from `input` and accepts it only if it is the resource's name.
pub fn confirmed(target: &Target, input: &mut impl BufRead) -> Result<(), PluginError> {
    let mut answer = String::new();
    input.read_line(&mut answer).map_err(PluginError::Stdin)?;
    if answer.trim() == target.name {
        Ok(())
    } else {
        Err(PluginError::NotConfirmed)
    }
}

pub async fn compromised(
    client: &Client,
    namespace: &str,
    target: &Target,
    wait: Option<Duration>,
) -> Result<String, PluginError> {
    let api = target.kind.namespaced(client, namespace);
    let before = rotate::current(&api, target, namespace).await?;
    let object = api
        .get(&target.name)
        .await
        .map_err(|e| PluginError::from_kube(e, None))?;
    record_report(client, &object, target).await?;
    let value = rotate::request_value();
    rotate::annotate(
        &api,
        target,
        &[(ROTATE_ANNOTATION, &value), (COMPROMISED_ANNOTATION, &value)],
    )
    .await?;
    let Some(timeout) = wait else {
        return Ok(format!(
            "{target}: break-glass rotation requested ({COMPROMISED_ANNOTATION}={value}); follow it with `kubectl apikeys describe {target}`"
        ));
    };
    let previous = before.status.upstream_id.clone();
    let after = rotate::await_outcome(
        &api,
        &before,
        "the break-glass rotation and the retirement of the previous credential",
        timeout,
        // The report is answered only when no credential older than the new one is valid.
        |now| now.status.retiring.is_empty(),
    )
    .await?;
    Ok(format!(
        "{}\n  previous credential {} retired immediately; rolloutRestart targets restarted",
        rotate::rotated_summary(&after),
        previous.as_deref().unwrap_or("-"),
    ))
}

/// Records the report as a Warning event on the resource, before anything changes, so the
/// audit trail shows it even if the rotation then fails.
async fn record_report(client: &Client, object: &DynamicObject, target: &Target) -> Result<(), PluginError> {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: FIELD_MANAGER.into(),
            instance: std::env::var("USER")
                .ok()
                .map(|user| format!("{FIELD_MANAGER}-{user}")),
        },
    );
    let event = Event {
        type_: EventType::Warning,
        reason: "CompromisedReported".into(),
        note: Some(format!(
            "{target} reported compromised with kubectl apikeys: rotating with no overlap and retiring the current credential"
        )),
        action: "Rotate".into(),
        secondary: None,
    };
    recorder
        .publish(&event, &object.object_ref(&target.kind.resource()))
        .await
        .map_err(|e| PluginError::from_kube(e, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_name_confirms() {
        let target: Target = "apitoken/billing-api".parse().unwrap();
        assert!(confirmed(&target, &mut "billing-api\n".as_bytes()).is_ok());
        for answer in ["y\n", "yes\n", "\n", ""] {
            assert!(matches!(
                confirmed(&target, &mut answer.as_bytes()),
                Err(PluginError::NotConfirmed)
            ));
        }
    }
}
