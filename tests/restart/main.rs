//! kube-apiserver is killed and started again on the same etcd while the operator runs:
//! the operator must recover by itself (no restart) and keep converging — a key created
//! after the restart becomes Ready, a rotation asked for after it happens.
//!
//! Its own test binary with its own control plane: the restart would disturb every other
//! test sharing one.

use std::path::Path;
use std::time::{Duration, Instant};

use apikey_operator::api::ApiToken;
use apikey_operator::localcluster::LocalCluster;
use kube::api::Api;
use serde_json::json;

use apikey_operator_test_support::envtest;
use apikey_operator_test_support::fixtures::{self, is_ready, wait_for};
use apikey_operator_test_support::processes::{self, OperatorCommand};

fn token(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiToken", "metadata": {"name": name},
        "spec": {"storeRef": {"name": "prefactor"}, "scope": "account", "rotation": {"retainPrevious": "0s"}},
    })
}

// The control plane's processes die with the thread that started them (PDEATHSIG): a
// current-thread runtime keeps every start and restart on the test's own thread.
#[tokio::test(flavor = "current_thread")]
async fn operator_recovers_from_an_apiserver_restart() {
    let assets = envtest::assets().unwrap_or_else(|reason| panic!("no control plane binaries: {reason}"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cluster = LocalCluster::start(&assets, &dir).await.unwrap();
    cluster.install_crds(&apikey_operator::api::crds()).await.unwrap();
    let client = cluster.client().await.unwrap();
    let credstore = processes::start_credstore(&dir.join("credstore"));
    let namespace = envtest::namespace(&client, "restart").await;
    fixtures::prefactor_store(&client, &namespace, "prefactor", &credstore).await;
    let mut operator = OperatorCommand::new(cluster.kubeconfig())
        .namespace(&namespace)
        .log(&dir.join("operator.log"))
        .spawn();
    let tokens: Api<ApiToken> = Api::namespaced(client.clone(), &namespace);

    fixtures::apply(&client, &namespace, token("before")).await;
    let before = wait_for(&tokens, "before", "Ready", is_ready).await;
    let first_id = before.status.unwrap().upstream_id.unwrap();

    cluster.restart_apiserver(Duration::from_secs(3)).await.unwrap();
    let back = Instant::now();
    let client = cluster.client().await.unwrap();
    let tokens: Api<ApiToken> = Api::namespaced(client.clone(), &namespace);

    fixtures::apply(&client, &namespace, token("after")).await;
    fixtures::merge(
        &tokens,
        "before",
        json!({"metadata": {"annotations": {"apikeys.dev/rotate": "after-restart"}}}),
    )
    .await;
    wait_for(&tokens, "after", "Ready after the restart", is_ready).await;
    let rotated = wait_for(&tokens, "before", "rotated after the restart", |t| {
        is_ready(t) && t.status.as_ref().and_then(|s| s.rotation_count) == Some(1)
    })
    .await;
    // How long recovery took is reported, not asserted: it measures the machine's load as
    // much as the operator, and a bound on it would make the test flaky.
    eprintln!(
        "converged {:.1} s after kube-apiserver was serving again",
        back.elapsed().as_secs_f64()
    );
    let rotated_id = rotated.status.unwrap().upstream_id.unwrap();
    assert_ne!(rotated_id, first_id, "the rotation minted a new token");
    let token = fixtures::secret_value(&client, &namespace, "before", "token")
        .await
        .expect("the rotated Secret holds a token");
    assert_eq!(
        fixtures::ping(&credstore, &token).await,
        200,
        "the rotated token works"
    );
    assert!(
        operator.try_wait().unwrap().is_none(),
        "the operator kept running through the restart"
    );
    let _ = operator.kill();
}
