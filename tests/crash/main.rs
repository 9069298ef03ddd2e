//! Crash safety: the operator is aborted (SIGABRT, no cleanup) at every failpoint —
//! right before and after each upstream create, rotate, retire and delete, and between
//! writing the Secret and writing status — then a fresh operator takes over. Each resource
//! must end Ready with exactly one live upstream credential (no orphan, no twin) and a
//! Secret whose key authenticates; a deleted one must leave nothing upstream.
//!
//! Its own test binary: each scenario runs operators scoped to its namespace, and no
//! other operator may touch those objects (the quiet-minute and high-availability tests
//! live here for the same reason).

// Shared with tests/cluster, where every helper is used; this binary needs only some.
#[allow(dead_code)]
#[path = "../cluster/fixtures.rs"]
mod fixtures;
mod ha;
#[allow(dead_code)]
#[path = "../cluster/processes.rs"]
mod processes;
mod quiet;
#[allow(dead_code)]
#[path = "../cluster/support.rs"]
mod support;

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apikey_operator::api::ApiToken;
use apikey_operator::failpoint;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::{Value, json};

use processes::Credstore;

/// One namespace, its own credential store, and operators that come and go.
struct Scenario {
    client: kube::Client,
    namespace: String,
    credstore: Credstore,
    tokens: Api<ApiToken>,
}

impl Scenario {
    async fn new(point: &str) -> Self {
        let client = support::client().await;
        let namespace = support::namespace(&client, &format!("crash-{point}")).await;
        let credstore = processes::start_credstore(
            &support::control_plane()
                .dir
                .join(format!("credstore-{namespace}")),
        );
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "prefactor-admin"}, "stringData": {"token": credstore.prefactor_token},
        }))
        .unwrap();
        Api::<Secret>::namespaced(client.clone(), &namespace)
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
        let store = json!({
            "apiVersion": "apikeys.dev/v1alpha1", "kind": "CredentialStore", "metadata": {"name": "prefactor"},
            "spec": {"prefactor": {"url": credstore.url, "credentialsSecretRef": {"name": "prefactor-admin"}}},
        });
        support::apply(&client, &serde_json::from_value(store).unwrap(), &namespace)
            .await
            .unwrap();
        let tokens = Api::namespaced(client.clone(), &namespace);
        Scenario {
            client,
            namespace,
            credstore,
            tokens,
        }
    }

    /// Starts an operator for this namespace, armed at `failpoint` if given.
    fn operator(&self, failpoint: Option<&str>) -> Child {
        let mut command = Command::new(env!("CARGO_BIN_EXE_apikey-operator"));
        let log = support::control_plane().dir.join(format!(
            "{}-{}.log",
            self.namespace,
            failpoint.unwrap_or("clean")
        ));
        command
            .args(["run", "--listen", "127.0.0.1:0", "--namespace", &self.namespace])
            .env("KUBECONFIG", &support::control_plane().kubeconfig)
            .env("RUST_LOG", "info")
            .env(failpoint::ENV, failpoint.unwrap_or_default())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap());
        processes::spawn_lasting(command)
    }

    async fn create_token(&self) {
        let token = json!({
            "apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiToken", "metadata": {"name": "survivor"},
            "spec": {"storeRef": {"name": "prefactor"}, "scope": "account", "rotation": {"retainPrevious": "0s"}},
        });
        support::apply(
            &self.client,
            &serde_json::from_value(token).unwrap(),
            &self.namespace,
        )
        .await
        .unwrap();
    }

    async fn wait_token(&self, what: &str, check: impl Fn(&ApiToken) -> bool) -> ApiToken {
        let condition = |t: Option<&ApiToken>| t.is_some_and(&check);
        match tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(self.tokens.clone(), "survivor", condition),
        )
        .await
        {
            Ok(Ok(Some(token))) => token,
            _ => panic!(
                "{}: timed out waiting for {what}: {:#?}",
                self.namespace,
                self.tokens.get_opt("survivor").await
            ),
        }
    }

    /// The ids of the tokens that exist upstream, of any state.
    async fn upstream_tokens(&self) -> Vec<String> {
        let listed: Value = reqwest::Client::new()
            .get(format!("{}/api/v1/api_token", self.credstore.url))
            .bearer_auth(&self.credstore.prefactor_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        listed["summaries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect()
    }

    async fn secret_authenticates(&self) -> bool {
        let secret = Api::<Secret>::namespaced(self.client.clone(), &self.namespace)
            .get("survivor")
            .await
            .unwrap();
        let token = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
        let response = reqwest::Client::new()
            .get(format!("{}/api/v1/ping", self.credstore.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        response.status() == 200
    }

    /// Ready, one live token upstream which is the one the status names, and the Secret's
    /// token works.
    async fn assert_single_working_token(&self, rotations: Option<i64>) {
        let token = self
            .wait_token("Ready", |t| {
                let status = t.status.clone().unwrap_or_default();
                status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
                    && status.pending.is_none()
                    && status.retiring.is_empty()
                    && status.rotation_count == rotations
            })
            .await;
        let id = token.status.unwrap().upstream_id.unwrap();
        assert_eq!(
            self.upstream_tokens().await,
            vec![id],
            "{}: exactly one token upstream",
            self.namespace
        );
        assert!(
            self.secret_authenticates().await,
            "{}: the Secret's token works",
            self.namespace
        );
    }
}

/// Waits for an armed operator to reach its failpoint and abort.
fn wait_for_abort(mut operator: Child, point: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = operator.try_wait().unwrap() {
            assert_eq!(
                status.signal(),
                Some(libc::SIGABRT),
                "the operator aborted at {point}: {status}"
            );
            return;
        }
        if Instant::now() > deadline {
            let _ = operator.kill();
            panic!("the operator never reached failpoint {point}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(mut operator: Child) {
    let _ = operator.kill();
    let _ = operator.wait();
}

#[tokio::test]
async fn crashes_around_create_leave_one_working_token() {
    for point in ["before-create", "after-create", "after-secret-write"] {
        let scenario = Scenario::new(point).await;
        let armed = scenario.operator(Some(point));
        scenario.create_token().await;
        wait_for_abort(armed, point);
        let recovering = scenario.operator(None);
        scenario.assert_single_working_token(None).await;
        stop(recovering);
    }
}

#[tokio::test]
async fn crashes_around_rotate_and_retire_leave_one_working_token() {
    for point in ["before-rotate", "after-rotate", "before-retire", "after-retire"] {
        let scenario = Scenario::new(point).await;
        let clean = scenario.operator(None);
        scenario.create_token().await;
        scenario.assert_single_working_token(None).await;
        stop(clean);

        let armed = scenario.operator(Some(point));
        let patch = json!({"metadata": {"annotations": {"apikeys.dev/rotate": "crash"}}});
        scenario
            .tokens
            .patch("survivor", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        wait_for_abort(armed, point);
        let recovering = scenario.operator(None);
        scenario.assert_single_working_token(Some(1)).await;
        stop(recovering);
    }
}

#[tokio::test]
async fn crashes_around_delete_leave_nothing_behind() {
    for point in ["before-delete", "after-delete"] {
        let scenario = Scenario::new(point).await;
        let clean = scenario.operator(None);
        scenario.create_token().await;
        scenario.assert_single_working_token(None).await;
        stop(clean);

        let armed = scenario.operator(Some(point));
        scenario
            .tokens
            .delete("survivor", &Default::default())
            .await
            .unwrap();
        wait_for_abort(armed, point);
        let recovering = scenario.operator(None);
        let gone = await_condition(scenario.tokens.clone(), "survivor", |t: Option<&ApiToken>| {
            t.is_none()
        });
        tokio::time::timeout(Duration::from_secs(60), gone)
            .await
            .expect("the resource is deleted")
            .unwrap();
        assert_eq!(
            scenario.upstream_tokens().await,
            Vec::<String>::new(),
            "{point}: nothing left upstream"
        );
        stop(recovering);
    }
}

#[test]
fn every_failpoint_is_exercised() {
    let exercised = [
        "before-create",
        "after-create",
        "after-secret-write",
        "before-rotate",
        "after-rotate",
        "before-retire",
        "after-retire",
        "before-delete",
        "after-delete",
    ];
    let mut declared = failpoint::POINTS.to_vec();
    declared.sort();
    let mut covered = exercised.to_vec();
    covered.sort();
    assert_eq!(declared, covered);
}
