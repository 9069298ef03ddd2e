//! The Argo CD health check (`deploy/argocd/health.lua`) judged by a real Lua 5.1 against
//! objects the API server and the operator really produced: each case's object is dumped
//! to a file and the script runs on it as Argo CD would run it.

use std::path::{Path, PathBuf};

use apikey_operator::api::ApiToken;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

use crate::fixtures::{self, is_ready, merge, not_ready_because, wait_for};
use crate::processes;
use crate::support;

#[tokio::test]
async fn health_script_judges_real_objects_like_kstatus() {
    let credstore = processes::credstore();
    processes::operator();
    let client = support::client().await;
    let namespace = support::namespace(&client, "argocd").await;
    fixtures::prefactor_store(&client, &namespace, "prefactor", credstore).await;
    let tokens: Api<ApiToken> = Api::namespaced(client.clone(), &namespace);
    let stores: Api<kube::api::DynamicObject> = support::api_for(
        &client,
        &serde_json::from_value(
            json!({"apiVersion": "apikeys.dev/v1alpha1", "kind": "CredentialStore", "metadata": {}}),
        )
        .unwrap(),
        &namespace,
    )
    .await;
    let token = |name: &str, store: &str| {
        json!({
            "apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiToken",
            "metadata": {"name": name},
            "spec": {"storeRef": {"name": store}, "scope": "account"},
        })
    };
    let mut cases: Vec<(&str, Value, &str, &str)> = Vec::new();

    // Just created: the API server's answer, before the operator saw it.
    let created = tokens
        .create(
            &PostParams::default(),
            &serde_json::from_value(token("fresh", "prefactor")).unwrap(),
        )
        .await
        .unwrap();
    cases.push(("no-status-yet", to_json(&created), "Progressing", "report status"));

    let healthy = wait_for(&tokens, "fresh", "Ready", is_ready).await;
    cases.push((
        "ready-token",
        to_json(&healthy),
        "Healthy",
        "delivered in Secret fresh",
    ));
    let store = wait_for(&stores, "prefactor", "store Ready", |s| {
        fixtures::condition(s, "Ready").is_some_and(|(s, _)| s == "True")
    })
    .await;
    cases.push(("ready-store", to_json(&store), "Healthy", ""));

    // A spec change the operator has not observed yet: caught by a watch on the way.
    let mut changes = watcher(
        tokens.clone(),
        watcher::Config::default().fields("metadata.name=fresh"),
    )
    .applied_objects()
    .boxed();
    merge(
        &tokens,
        "fresh",
        json!({"spec": {"secret": {"labels": {"team": "billing"}}}}),
    )
    .await;
    let behind = loop {
        let seen = changes.try_next().await.unwrap().expect("the watch goes on");
        let observed = seen.status.as_ref().and_then(|s| s.observed_generation);
        if seen.metadata.generation > observed {
            break seen;
        }
    };
    cases.push((
        "generation-not-observed",
        to_json(&behind),
        "Progressing",
        "observe generation 2",
    ));

    fixtures::apply(&client, &namespace, token("orphan", "no-such-store")).await;
    let broken = wait_for(&tokens, "orphan", "StoreNotFound", |t| {
        not_ready_because(t, "StoreNotFound")
    })
    .await;
    cases.push(("missing-store", to_json(&broken), "Degraded", "StoreNotFound: "));

    fixtures::apply(
        &client,
        &namespace,
        json!({
            "apiVersion": "apikeys.dev/v1alpha1", "kind": "CredentialStore",
            "metadata": {"name": "no-secret"},
            "spec": {"prefactor": {"url": credstore.url, "credentialsSecretRef": {"name": "absent"}}},
        }),
    )
    .await;
    let store = wait_for(&stores, "no-secret", "CredentialsSecretMissing", |s| {
        not_ready_because(s, "CredentialsSecretMissing")
    })
    .await;
    cases.push((
        "store-without-secret",
        to_json(&store),
        "Degraded",
        "CredentialsSecretMissing: ",
    ));

    merge(
        &tokens,
        "fresh",
        json!({"metadata": {"annotations": {"apikeys.dev/paused": "true"}}}),
    )
    .await;
    let paused = tokens.get("fresh").await.unwrap();
    cases.push(("paused", to_json(&paused), "Suspended", "apikeys.dev/paused"));

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("argocd-health")
        .join(&namespace);
    std::fs::create_dir_all(&dir).unwrap();
    let files: Vec<PathBuf> = cases
        .iter()
        .map(|(name, object, _, _)| {
            let file = dir.join(format!("{name}.json"));
            std::fs::write(&file, serde_json::to_vec_pretty(object).unwrap()).unwrap();
            file
        })
        .collect();
    let verdicts = run_health_script(&files);
    for ((name, _, status, message), verdict) in cases.iter().zip(&verdicts) {
        assert_eq!(verdict["status"], *status, "{name}: {verdict}");
        assert!(
            verdict["message"]
                .as_str()
                .is_some_and(|m| m.contains(message) && !m.is_empty()),
            "{name}: the message says why ({message}): {verdict}"
        );
    }
}

fn to_json(object: &impl serde::Serialize) -> Value {
    serde_json::to_value(object).unwrap()
}

/// Runs `deploy/argocd/health.lua` on each file with Lua 5.1, one verdict per file.
fn run_health_script(files: &[PathBuf]) -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = std::process::Command::new(lua_python())
        .arg(root.join("tests/argocd/health.py"))
        .arg(root.join("deploy/argocd/health.lua"))
        .args(files)
        .output()
        .expect("the Lua runner starts");
    assert!(
        output.status.success(),
        "the health script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verdicts: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(verdicts.len(), files.len());
    verdicts
}

/// `ARGOCD_LUA_PYTHON` (set by `make test`), or whatever `tests/argocd/venv.sh` installs.
/// Never skips: without a Lua interpreter the test fails with the reason.
fn lua_python() -> PathBuf {
    if let Some(python) = std::env::var_os("ARGOCD_LUA_PYTHON") {
        return PathBuf::from(python);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/argocd/venv.sh");
    let output = std::process::Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} failed: no Lua interpreter for the Argo CD health checks",
        script.display()
    );
    PathBuf::from(
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .last()
            .expect("venv.sh prints the python"),
    )
}
