//! The health checks GitOps tools apply, judged against objects the API server and the
//! operator really produced: the Argo CD script (`deploy/argocd/health.lua`) run by a real
//! Lua 5.1 as Argo CD runs it, and kstatus itself (sigs.k8s.io/cli-utils, what Flux
//! `wait: true` and kpt use; built by `tests/kstatus/build.sh`) on the same objects.

use std::path::{Path, PathBuf};

use apikey_operator::api::{ApiToken, PendingKind};
use futures::{StreamExt, TryStreamExt};
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

use apikey_operator_test_support::envtest;
use apikey_operator_test_support::fixtures::{self, is_ready, merge, not_ready_because, wait_for};
use apikey_operator_test_support::paths;
use apikey_operator_test_support::processes;

#[tokio::test]
async fn argocd_and_kstatus_judge_real_objects_alike() {
    let credstore = processes::credstore();
    processes::operator();
    let client = envtest::client().await;
    let namespace = envtest::namespace(&client, "argocd").await;
    fixtures::prefactor_store(&client, &namespace, "prefactor", credstore).await;
    let tokens: Api<ApiToken> = Api::namespaced(client.clone(), &namespace);
    let stores: Api<kube::api::DynamicObject> = envtest::api_for(
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
    // (case, object, Argo CD health, what its message says, kstatus verdict)
    let mut cases: Vec<(&str, Value, &str, &str, &str)> = Vec::new();
    let mut seen = watcher(tokens.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();

    // Just created: the API server's answer, before the operator saw it. kstatus calls an
    // object without status current (it cannot tell "not yet" from "needs none").
    let created = tokens
        .create(
            &PostParams::default(),
            &serde_json::from_value(token("fresh", "prefactor")).unwrap(),
        )
        .await
        .unwrap();
    cases.push((
        "no-status-yet",
        to_json(&created),
        "Progressing",
        "report status",
        "Current",
    ));
    // The create in flight: recorded before the upstream call, caught by the watch.
    let creating = next_matching(&mut seen, |t| {
        t.status.as_ref().is_some_and(|s| s.pending.is_some())
    })
    .await;
    cases.push((
        "creating",
        to_json(&creating),
        "Progressing",
        "Creating: creating the token upstream",
        "InProgress",
    ));

    let healthy = wait_for(&tokens, "fresh", "Ready", is_ready).await;
    cases.push((
        "ready-token",
        to_json(&healthy),
        "Healthy",
        "delivered in Secret fresh",
        "Current",
    ));
    merge(
        &tokens,
        "fresh",
        json!({"metadata": {"annotations": {"apikeys.dev/rotate": "health"}}}),
    )
    .await;
    let rotating = next_matching(&mut seen, |t| {
        t.status
            .as_ref()
            .and_then(|s| s.pending.as_ref())
            .is_some_and(|p| p.operation == PendingKind::Rotate)
    })
    .await;
    cases.push((
        "rotating",
        to_json(&rotating),
        "Progressing",
        "Rotating: issuing a new token (annotation)",
        "InProgress",
    ));
    wait_for(&tokens, "fresh", "rotated", |t| {
        is_ready(t) && t.status.as_ref().and_then(|s| s.rotation_count) == Some(1)
    })
    .await;
    let store = wait_for(&stores, "prefactor", "store Ready", |s| {
        fixtures::condition(s, "Ready").is_some_and(|(s, _)| s == "True")
    })
    .await;
    cases.push(("ready-store", to_json(&store), "Healthy", "", "Current"));

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
        "InProgress",
    ));

    fixtures::apply(&client, &namespace, token("orphan", "no-such-store")).await;
    let broken = wait_for(&tokens, "orphan", "StoreNotFound", |t| {
        not_ready_because(t, "StoreNotFound")
    })
    .await;
    cases.push((
        "missing-store",
        to_json(&broken),
        "Degraded",
        "StoreNotFound: ",
        "Failed",
    ));

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
        "Failed",
    ));

    // An upstream that does not answer: retried, so in progress, with the reason.
    fixtures::put_secret(
        &client,
        &namespace,
        "unreachable-admin",
        json!({"token": credstore.prefactor_token}),
    )
    .await;
    fixtures::apply(
        &client,
        &namespace,
        json!({
            "apiVersion": "apikeys.dev/v1alpha1", "kind": "CredentialStore",
            "metadata": {"name": "unreachable"},
            "spec": {"prefactor": {"url": "http://127.0.0.1:9", "credentialsSecretRef": {"name": "unreachable-admin"}}},
        }),
    )
    .await;
    let store = wait_for(&stores, "unreachable", "UpstreamUnreachable", |s| {
        not_ready_because(s, "UpstreamUnreachable")
    })
    .await;
    cases.push((
        "store-unreachable",
        to_json(&store),
        "Progressing",
        "UpstreamUnreachable: ",
        "InProgress",
    ));
    fixtures::apply(&client, &namespace, token("waiting", "unreachable")).await;
    let waiting = wait_for(&tokens, "waiting", "StoreNotReady", |t| {
        not_ready_because(t, "StoreNotReady")
    })
    .await;
    cases.push((
        "store-not-ready",
        to_json(&waiting),
        "Progressing",
        "StoreNotReady: ",
        "InProgress",
    ));

    // Being deleted: a finalizer of someone else's holds the object after the operator's
    // cleanup, as a slow cleanup would.
    fixtures::apply(&client, &namespace, token("leaving", "prefactor")).await;
    wait_for(&tokens, "leaving", "Ready", is_ready).await;
    merge(
        &tokens,
        "leaving",
        json!({"metadata": {"finalizers": ["apikeys.dev/cleanup", "tests.apikeys.dev/hold"]}}),
    )
    .await;
    tokens.delete("leaving", &Default::default()).await.unwrap();
    let leaving = wait_for(
        &tokens,
        "leaving",
        "cleaned up, held by the other finalizer",
        |t| t.metadata.deletion_timestamp.is_some() && t.finalizers() == ["tests.apikeys.dev/hold"],
    )
    .await;
    cases.push((
        "deleting",
        to_json(&leaving),
        "Progressing",
        "Being deleted",
        "Terminating",
    ));
    merge(&tokens, "leaving", json!({"metadata": {"finalizers": null}})).await;

    merge(
        &tokens,
        "fresh",
        json!({"metadata": {"annotations": {"apikeys.dev/paused": "true"}}}),
    )
    .await;
    let paused = wait_for(&tokens, "fresh", "Paused in Ready", |t| {
        fixtures::condition(t, "Ready").is_some_and(|(_, reason)| reason == "Paused")
    })
    .await;
    cases.push((
        "paused",
        to_json(&paused),
        "Suspended",
        "apikeys.dev/paused",
        "Current",
    ));

    // The other kinds, current and stalled: the same conditions come from the same code.
    let dynamic = |kind: &str| {
        let client = client.clone();
        let namespace = namespace.clone();
        let kind = kind.to_string();
        async move {
            let probe = json!({"apiVersion": "apikeys.dev/v1alpha1", "kind": kind, "metadata": {}});
            envtest::api_for(&client, &serde_json::from_value(probe).unwrap(), &namespace).await
        }
    };
    fixtures::zenml_store(&client, &namespace, "zenml", credstore).await;
    fixtures::akamai_store(&client, &namespace, "akamai", credstore).await;
    let keys = dynamic("ServiceAccountKey").await;
    let clients = dynamic("ApiClient").await;
    let object = |kind: &str, name: &str, spec: Value| json!({"apiVersion": "apikeys.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec});
    fixtures::apply(
        &client,
        &namespace,
        object(
            "ServiceAccountKey",
            "zenml-key",
            json!({"storeRef": {"name": "zenml"}, "serviceAccount": "apikey-operator"}),
        ),
    )
    .await;
    fixtures::apply(
        &client,
        &namespace,
        object(
            "ServiceAccountKey",
            "no-account",
            json!({"storeRef": {"name": "zenml"}}),
        ),
    )
    .await;
    fixtures::apply(
        &client,
        &namespace,
        object(
            "ApiClient",
            "cdn",
            json!({"storeRef": {"name": "akamai"}, "authorizedUsers": ["platform-bot"],
                   "apiAccess": {"allAccessibleApis": true}, "purgeOptions": {"canPurgeByCacheTag": true, "canPurgeByCpcode": true, "cpcodeAccess": {"allCurrentAndNewCpcodes": true}}, "groupAccess": {"cloneAuthorizedUserGroups": true}}),
        ),
    )
    .await;
    let ready_key = wait_for(&keys, "zenml-key", "Ready", is_ready).await;
    cases.push((
        "ready-zenml-key",
        to_json(&ready_key),
        "Healthy",
        "delivered",
        "Current",
    ));
    let stalled_key = wait_for(&keys, "no-account", "ServiceAccountRequired", |k| {
        not_ready_because(k, "ServiceAccountRequired")
    })
    .await;
    cases.push((
        "key-without-service-account",
        to_json(&stalled_key),
        "Degraded",
        "ServiceAccountRequired: ",
        "Failed",
    ));
    let ready_client = wait_for(&clients, "cdn", "Ready", is_ready).await;
    cases.push((
        "ready-akamai-client",
        to_json(&ready_client),
        "Healthy",
        "delivered",
        "Current",
    ));
    let cluster_stores: Api<kube::api::DynamicObject> = envtest::api_for(
        &client,
        &serde_json::from_value(
            json!({"apiVersion": "apikeys.dev/v1alpha1", "kind": "ClusterCredentialStore", "metadata": {}}),
        )
        .unwrap(),
        &namespace,
    )
    .await;
    let cluster_store = format!("health-{namespace}");
    fixtures::apply(
        &client,
        &namespace,
        json!({
            "apiVersion": "apikeys.dev/v1alpha1", "kind": "ClusterCredentialStore", "metadata": {"name": cluster_store},
            "spec": {
                "prefactor": {"url": credstore.url, "credentialsSecretRef": {"name": "absent", "namespace": namespace}},
                "allowedNamespaces": [namespace],
            },
        }),
    )
    .await;
    let broken_cluster_store = wait_for(&cluster_stores, &cluster_store, "CredentialsSecretMissing", |s| {
        not_ready_because(s, "CredentialsSecretMissing")
    })
    .await;
    cases.push((
        "cluster-store-without-secret",
        to_json(&broken_cluster_store),
        "Degraded",
        "CredentialsSecretMissing: ",
        "Failed",
    ));
    cluster_stores
        .delete(&cluster_store, &Default::default())
        .await
        .unwrap();

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("argocd-health")
        .join(&namespace);
    std::fs::create_dir_all(&dir).unwrap();
    let files: Vec<PathBuf> = cases
        .iter()
        .map(|(name, object, _, _, _)| {
            let file = dir.join(format!("{name}.json"));
            std::fs::write(&file, serde_json::to_vec_pretty(object).unwrap()).unwrap();
            file
        })
        .collect();
    let verdicts = run_health_script(&files);
    let objects: Vec<Value> = cases.iter().map(|(_, object, ..)| object.clone()).collect();
    let kstatus = run_kstatus(&objects);
    let mut table = String::from("case                     Argo CD      kstatus\n");
    for ((name, _, status, message, current), (verdict, judged)) in
        cases.iter().zip(verdicts.iter().zip(&kstatus))
    {
        table.push_str(&format!(
            "{name:<24} {:<12} {}\n",
            verdict["status"], judged["status"]
        ));
        assert_eq!(verdict["status"], *status, "{name}: {verdict}");
        assert!(
            verdict["message"]
                .as_str()
                .is_some_and(|m| m.contains(message) && !m.is_empty()),
            "{name}: the message says why ({message}): {verdict}"
        );
        assert_eq!(judged["status"], *current, "{name}: kstatus says {judged}");
    }
    println!("{table}");
}

/// The next version of a token the watch delivers that satisfies `check`.
async fn next_matching(
    seen: &mut (impl futures::Stream<Item = Result<ApiToken, watcher::Error>> + Unpin),
    check: impl Fn(&ApiToken) -> bool,
) -> ApiToken {
    let deadline = tokio::time::Instant::now() + fixtures::CONVERGE;
    loop {
        let next = tokio::time::timeout_at(deadline, seen.try_next())
            .await
            .expect("the watch delivers the awaited state in time")
            .unwrap()
            .expect("the watch goes on");
        if check(&next) {
            return next;
        }
    }
}

/// kstatus' verdict on each object (`KSTATUS_BIN`, set by `make test`, or whatever
/// `tests/kstatus/build.sh` builds). Never skips: without the tool the test fails.
fn run_kstatus(objects: &[Value]) -> Vec<Value> {
    use std::io::Write;
    let bin = paths::tool("KSTATUS_BIN", "tests/kstatus/build.sh", "kstatus tool");
    let mut child = std::process::Command::new(&bin)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(objects).unwrap())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "kstatus failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verdicts: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(verdicts.len(), objects.len());
    verdicts
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
    paths::tool(
        "ARGOCD_LUA_PYTHON",
        "tests/argocd/venv.sh",
        "Lua interpreter for the Argo CD health checks",
    )
}
