//! `maxKeysPerNamespace`: the oldest keys of a namespace win, a newer one is refused until
//! another goes; the store counts its keys and those refused (`status.usage`, and the Keys
//! and Violating columns), and `kubectl apikeys status` shows the refusal.

use std::process::Stdio;

use serde_json::json;

use super::{cluster_store, converged, creates_between, refused_fresh, usage, wait_usage};
use crate::tenancy::{Upstream, World};
use apikey_operator_test_support::envtest;
use apikey_operator_test_support::fixtures::upstream_requests;

/// `kubectl-apikeys` with `args` against the control plane: its stdout, after asserting it
/// succeeded.
async fn plugin(args: &[&str]) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-apikeys"))
        .args(args)
        .env("KUBECONFIG", &envtest::control_plane().kubeconfig)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("the plugin runs");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "kubectl-apikeys {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The cells of the row of `target` (`apitoken/<name>`) in a status table, from the
/// KIND/NAME column on.
fn row<'a>(table: &'a str, namespace: Option<&str>, target: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|cells| match namespace {
            Some(namespace) => cells.len() > 1 && cells[0] == namespace && cells[1] == target,
            None => cells.first() == Some(&target),
        })
        .map(|cells| cells[usize::from(namespace.is_some())..].to_vec())
        .unwrap_or_else(|| panic!("no row for {target}:\n{table}"))
}

#[tokio::test]
async fn a_namespace_quota_refuses_the_newest_key_until_an_older_one_is_deleted() {
    let world = World::new("pol-quota").await;
    let team = world.namespace("pol-quota-team").await;
    let other = world.namespace("pol-quota-other").await;
    let store = format!("prefactor-{team}");
    let policy = json!({"rules": [{"name": "quota", "namespaces": ["*"], "maxKeysPerNamespace": 2}]});
    cluster_store(&world, Upstream::Prefactor, &store, &[&team, &other], policy).await;

    // One after another, so that they are older in this order (names break ties within
    // a second of creationTimestamp in the same order).
    let mut creds = Vec::new();
    for name in ["first", "second"] {
        world
            .declare(&team, Upstream::Prefactor, name, &store, json!({}), json!({}))
            .await;
        creds.push(converged(&world, &team, Upstream::Prefactor, name).await);
    }
    let before = upstream_requests(&world.credstore).await;
    world
        .declare(&team, Upstream::Prefactor, "third", &store, json!({}), json!({}))
        .await;
    let message = refused_fresh(&world, &team, Upstream::Prefactor, "third").await;
    assert_eq!(
        message,
        format!(
            "ClusterCredentialStore {store} policy rule \"quota\": namespace {team} already holds 2 keys through this \
             store (maxKeysPerNamespace); delete one or ask the store's owner for more"
        )
    );
    let after = upstream_requests(&world.credstore).await;
    assert_eq!(
        creates_between(&before, &after, Upstream::Prefactor),
        0,
        "nothing is created for the key over the quota"
    );
    // The quota is per namespace.
    world
        .declare(&other, Upstream::Prefactor, "third", &store, json!({}), json!({}))
        .await;
    creds.push(converged(&world, &other, Upstream::Prefactor, "third").await);
    wait_usage(&world, &store, usage(Upstream::Prefactor, 4, 1)).await;

    let columns = envtest::kubectl()
        .args(["get", "clustercredentialstores.apikeys.dev", &store])
        .output()
        .expect("kubectl runs");
    let table = String::from_utf8(columns.stdout).unwrap();
    assert!(
        columns.status.success(),
        "{}",
        String::from_utf8_lossy(&columns.stderr)
    );
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    let cells: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    let cell = |name: &str| {
        cells[header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("{table}"))]
    };
    assert_eq!((cell("KEYS"), cell("VIOLATING")), ("4", "1"), "{table}");

    let status = plugin(&["status", "-n", &team]).await;
    println!("kubectl apikeys status -n {team}:\n{status}");
    let third = row(&status, None, "apitoken/third");
    assert_eq!(third[1], "False", "{status}");
    assert_eq!(third.last(), Some(&"PolicyViolation"), "{status}");
    for name in ["first", "second"] {
        let cells = row(&status, None, &format!("apitoken/{name}"));
        assert_eq!((cells[1], cells.last().copied()), ("True", Some("-")), "{status}");
    }
    let all = plugin(&["status", "-A"]).await;
    assert_eq!(
        row(&all, Some(&team), "apitoken/third").last(),
        Some(&"PolicyViolation"),
        "{all}"
    );
    assert_eq!(row(&all, Some(&other), "apitoken/third")[1], "True", "{all}");

    // Deleting the oldest lets the third in, at its next look (every 30 s).
    world.delete(&team, Upstream::Prefactor, "first").await;
    assert!(
        !creds[0].works(&world.credstore).await,
        "the deleted key's token is revoked upstream"
    );
    creds.push(converged(&world, &team, Upstream::Prefactor, "third").await);
    wait_usage(&world, &store, usage(Upstream::Prefactor, 3, 0)).await;
    let status = plugin(&["status", "-n", &team]).await;
    assert_eq!(row(&status, None, "apitoken/third")[1], "True", "{status}");

    world.assert_no_leak(&[&team, &other], &creds).await;
}
