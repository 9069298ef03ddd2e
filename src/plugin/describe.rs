//! `kubectl apikeys describe`: conditions, recent events and the rotation history of one
//! key resource, for a human.

use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use super::PluginError;
use super::kind::Target;
use super::table::{self, Table};
use super::view::KeyView;
use crate::controller::schedule;

/// Event reasons that mark a step in the credential's life.
const HISTORY_REASONS: [&str; 5] = [
    "Created",
    "Rotated",
    "Retired",
    "SecretLost",
    "CompromisedReported",
];

pub async fn describe(client: &Client, namespace: &str, target: &Target) -> Result<String, PluginError> {
    let api = target.kind.namespaced(client, namespace);
    let missing = PluginError::NotFound {
        target: target.to_string(),
        namespace: namespace.to_string(),
    };
    let object = api
        .get(&target.name)
        .await
        .map_err(|e| PluginError::from_kube(e, Some(missing)))?;
    let key = KeyView::new(target.kind, &object)?;
    let uid = object.uid().unwrap_or_default();
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let mut events: Vec<Event> = events
        .list(&ListParams::default())
        .await
        .map_err(|e| PluginError::from_kube(e, None))?
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.uid.as_deref()) == Some(uid.as_str()))
        .collect();
    events.sort_by_key(|e| (first_seen(e), last_seen(e)));
    let store = object.data["spec"]["storeRef"].clone();
    let store = format!(
        "{}/{}",
        store["kind"].as_str().unwrap_or("CredentialStore"),
        store["name"].as_str().unwrap_or("-")
    );
    Ok(render(&key, &store, &events, Timestamp::now()))
}

fn render(key: &KeyView, store: &str, events: &[Event], now: Timestamp) -> String {
    let status = &key.status;
    let or_dash = |v: Option<&str>| v.unwrap_or("-").to_string();
    let time = |t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| match t {
        Some(t) => format!("{} ({})", table::instant(t.0), table::relative(t.0, now)),
        None => "-".into(),
    };
    let mut out = String::new();
    let mut field = |name: &str, value: String| out.push_str(&format!("{:<18}{value}\n", format!("{name}:")));
    field("Name", key.target.name.clone());
    field("Namespace", key.namespace.clone());
    field("Kind", key.target.kind.resource().kind);
    field("Store", store.to_string());
    if key.paused {
        field(
            "Paused",
            "yes (apikeys.dev/paused: \"true\"): the operator is not acting on it".into(),
        );
    }
    field(
        "Upstream",
        format!(
            "{} ({})",
            or_dash(status.upstream_id.as_deref()),
            or_dash(status.upstream_state.as_deref())
        ),
    );
    if let Some(credential) = &status.credential_id {
        field("Credential", credential.clone());
    }
    field(
        "Secret",
        format!(
            "{} ({})",
            or_dash(status.secret_name.as_deref()),
            or_dash(status.secret_fingerprint.as_deref())
        ),
    );
    field("Issued", time(status.last_rotation_time.as_ref()));
    field("Expires", time(status.expires_at.as_ref()));
    field("Next rotation", time(status.next_rotation_time.as_ref()));
    if let Some(spread) = rotation_spread(key) {
        field("Rotation spread", spread);
    }
    field(
        "Last used",
        match &status.last_used_time {
            Some(_) => time(status.last_used_time.as_ref()),
            None => "not since it was issued, or the upstream does not report use".into(),
        },
    );
    field("Rotations", key.rotation_count().to_string());
    field(
        "Generation",
        format!(
            "{} (status describes {})",
            key.generation.map_or("-".into(), |g| g.to_string()),
            status
                .observed_generation
                .map_or("none yet".into(), |g| g.to_string())
        ),
    );
    if let Some(pending) = &status.pending {
        field(
            "In flight",
            format!(
                "{} ({}) since {}",
                match pending.operation {
                    crate::api::PendingKind::Create => "create",
                    crate::api::PendingKind::Rotate => "rotation",
                },
                pending.trigger.as_deref().unwrap_or("-"),
                table::instant(pending.started_at.0)
            ),
        );
    }
    for retiring in &status.retiring {
        let waiting = match &retiring.waiting_for {
            Some(waiting) => format!("; waits for: {waiting}"),
            None => String::new(),
        };
        field(
            "Retiring",
            format!(
                "{} at {} ({}){waiting}",
                retiring.id,
                table::instant(retiring.retire_at.0),
                table::relative(retiring.retire_at.0, now)
            ),
        );
    }

    out.push_str("\nConditions:\n");
    if status.conditions.is_empty() {
        out.push_str("  none yet: the operator has not reported on this resource\n");
    } else {
        let mut conditions = Table::new(&["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"]);
        for c in &status.conditions {
            conditions.push(vec![
                c.type_.clone(),
                c.status.clone(),
                c.reason.clone(),
                table::relative(c.last_transition_time.0, now),
                c.message.clone(),
            ]);
        }
        out.push_str(&indent(&conditions.render()));
    }

    out.push_str("\nRotation history (oldest first, from the events the cluster still keeps):\n");
    let history: Vec<&Event> = events
        .iter()
        .filter(|e| HISTORY_REASONS.contains(&e.reason.as_deref().unwrap_or_default()))
        .collect();
    let mut steps = Table::new(&["WHEN", "WHAT", "DETAIL"]);
    for event in &history {
        steps.push(vec![
            first_seen(event).map_or("-".into(), table::instant),
            event.reason.clone().unwrap_or_default(),
            event.note.clone().unwrap_or_default(),
        ]);
    }
    if let Some(issued) = &status.last_rotation_time {
        steps.push(vec![
            table::instant(issued.0),
            "Current".into(),
            format!(
                "credential {} issued (rotation {}), fingerprint {}",
                or_dash(status.credential_id.as_deref().or(status.upstream_id.as_deref())),
                key.rotation_count(),
                or_dash(status.secret_fingerprint.as_deref())
            ),
        ]);
    }
    if history.is_empty() && status.last_rotation_time.is_none() {
        out.push_str("  nothing issued yet\n");
    } else {
        out.push_str(&indent(&steps.render()));
    }

    out.push_str("\nEvents:\n");
    if events.is_empty() {
        out.push_str("  none in the last hour\n");
    } else {
        let mut table = Table::new(&["LAST SEEN", "TYPE", "REASON", "FROM", "MESSAGE"]);
        for event in events {
            let count = event.series.as_ref().map_or(1, |s| s.count);
            let seen = last_seen(event).map_or("-".into(), |t| table::relative(t, now));
            table.push(vec![
                if count > 1 {
                    format!("{seen} (x{count})")
                } else {
                    seen
                },
                event.type_.clone().unwrap_or_default(),
                event.reason.clone().unwrap_or_default(),
                event.reporting_controller.clone().unwrap_or_default(),
                event.note.clone().unwrap_or_default(),
            ]);
        }
        out.push_str(&indent(&table.render()));
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

fn first_seen(event: &Event) -> Option<Timestamp> {
    event
        .event_time
        .as_ref()
        .map(|t| t.0)
        .or(event.deprecated_first_timestamp.as_ref().map(|t| t.0))
}

fn last_seen(event: &Event) -> Option<Timestamp> {
    event
        .series
        .as_ref()
        .map(|s| s.last_observed_time.0)
        .or(event.deprecated_last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| first_seen(event))
}

/// How early this key rotates within its interval, so an operator can see the fleet spread.
fn rotation_spread(key: &KeyView) -> Option<String> {
    let interval = key.interval.as_deref()?;
    let parsed = schedule::parse_duration("spec.rotation.interval", interval).ok()?;
    let early = parsed.as_secs_f64() * schedule::INTERVAL_JITTER * key.spread;
    let early = k8s_openapi::jiff::SignedDuration::from_secs(early.floor() as i64);
    Some(format!(
        "{early:#} before each {interval} interval ends (keys spread over the last {:.0}% of it, by UID)",
        schedule::INTERVAL_JITTER * 100.0
    ))
}
