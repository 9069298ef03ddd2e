//! `kubectl apikeys status`: every key resource of the three kinds in one table.

use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};

use super::PluginError;
use super::kind::Kind;
use super::table::{self, Table};
use super::view::KeyView;

/// Which namespaces to list.
pub enum Scope {
    Namespace(String),
    AllNamespaces,
}

/// The table, or the "nothing found" line kubectl prints to stderr instead.
pub enum Listing {
    Table(String),
    Empty(String),
}

pub async fn status(client: &Client, scope: &Scope) -> Result<Listing, PluginError> {
    let mut keys = Vec::new();
    for kind in Kind::ALL {
        let api: Api<DynamicObject> = match scope {
            Scope::Namespace(namespace) => kind.namespaced(client, namespace),
            Scope::AllNamespaces => Api::all_with(client.clone(), &kind.resource()),
        };
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| PluginError::from_kube(e, None))?;
        for object in &list.items {
            keys.push(KeyView::new(kind, object)?);
        }
    }
    if keys.is_empty() {
        return Ok(Listing::Empty(match scope {
            Scope::Namespace(namespace) => format!("No API keys found in namespace {namespace}."),
            Scope::AllNamespaces => "No API keys found.".into(),
        }));
    }
    keys.sort_by(|a, b| {
        (&a.namespace, a.target.kind, &a.target.name).cmp(&(&b.namespace, b.target.kind, &b.target.name))
    });

    let all = matches!(scope, Scope::AllNamespaces);
    let mut header = vec![
        "KIND/NAME",
        "READY",
        "UPSTREAM",
        "SECRET",
        "EXPIRES",
        "NEXT ROTATION",
        "LAST USED",
        "REASON",
    ];
    if all {
        header.insert(0, "NAMESPACE");
    }
    let mut out = Table::new(&header);
    let now = Timestamp::now();
    for key in &keys {
        let mut row = vec![
            key.target.to_string(),
            ready_cell(key),
            key.status.upstream_state.clone().unwrap_or_else(|| "-".into()),
            key.status.secret_name.clone().unwrap_or_else(|| "-".into()),
            table::cell(key.status.expires_at.as_ref().map(|t| t.0), now),
            table::cell(key.status.next_rotation_time.as_ref().map(|t| t.0), now),
            table::cell(key.status.last_used_time.as_ref().map(|t| t.0), now),
            reason_cell(key),
        ];
        if all {
            row.insert(0, key.namespace.clone());
        }
        out.push(row);
    }
    Ok(Listing::Table(out.render()))
}

/// `True`/`False`/`Unknown` from the Ready condition; `Paused` or `Pending` when the
/// operator is not acting on, or has not yet seen, the current spec.
fn ready_cell(key: &KeyView) -> String {
    if key.paused {
        return "Paused".into();
    }
    match key.ready() {
        Some(_) if !key.observed_current() => "Pending".into(),
        Some(ready) => ready.status.clone(),
        None => "Pending".into(),
    }
}

/// The reason of an unhappy Ready condition: what the user has to look at.
fn reason_cell(key: &KeyView) -> String {
    match key.ready() {
        Some(ready) if ready.status != "True" => ready.reason.clone(),
        _ => "-".into(),
    }
}
