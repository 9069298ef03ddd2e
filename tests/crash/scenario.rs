//! One crash scenario: a namespace with its own credential store and store, one resource
//! named `survivor`, and operators scoped to the namespace that come and go.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Child;
use std::time::{Duration, Instant};

use apikey_operator::api::KeyStatus;
use apikey_operator::failpoint;
use futures::FutureExt;
use k8s_openapi::api::core::v1::Secret;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::kinds::Kind;
use crate::table::{self, Path, Phase};
use apikey_operator_test_support::envtest;
use apikey_operator_test_support::fixtures::{self, wait_for};
use apikey_operator_test_support::processes::{self, Credstore, OperatorCommand};

const NAME: &str = "survivor";
/// Bound for an armed operator to reach its point, on a loaded two-core machine.
const ABORT_WITHIN: Duration = Duration::from_secs(90);

/// An operator process, killed when dropped so a failing scenario leaves none behind.
struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Scenario<'k, K: Kind> {
    kind: &'k K,
    client: kube::Client,
    namespace: String,
    credstore: Credstore,
    api: Api<K::Resource>,
}

impl<'k, K: Kind> Scenario<'k, K> {
    async fn new(kind: &'k K, path: Path, point: &str) -> Self {
        let client = envtest::client().await;
        let prefix = format!("crash-{}-{point}", format!("{path:?}").to_lowercase());
        let namespace = envtest::namespace(&client, &prefix).await;
        let credstore = processes::private_credstore(&namespace);
        kind.store(&client, &namespace, &credstore).await;
        Scenario {
            kind,
            api: Api::namespaced(client.clone(), &namespace),
            client,
            namespace,
            credstore,
        }
    }

    /// Starts an operator for this namespace, armed at `point` if given.
    fn operator(&self, point: Option<&str>) -> Operator {
        let log =
            envtest::control_plane()
                .dir
                .join(format!("{}-{}.log", self.namespace, point.unwrap_or("clean")));
        let mut command = OperatorCommand::new(&envtest::control_plane().kubeconfig)
            .namespace(&self.namespace)
            .log(&log);
        if let Some(point) = point {
            command = command.env(failpoint::ENV, point);
        }
        Operator(command.spawn())
    }

    /// Waits for an armed operator to reach its point and abort.
    async fn aborts(&self, mut operator: Operator, point: &str) {
        let deadline = Instant::now() + ABORT_WITHIN;
        loop {
            if let Some(status) = operator.0.try_wait().unwrap() {
                assert_eq!(
                    status.signal(),
                    Some(libc::SIGABRT),
                    "{}: the operator aborted at {point}: {status}",
                    self.namespace
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: the operator never reached failpoint {point}",
                self.namespace
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn create(&self) {
        let kind = K::Resource::kind(&());
        fixtures::apply(
            &self.client,
            &self.namespace,
            json!({"apiVersion": "apikeys.dev/v1alpha1", "kind": kind, "metadata": {"name": NAME}, "spec": self.kind.spec(&self.namespace)}),
        )
        .await;
    }

    async fn request_rotation(&self) {
        let patch = json!({"metadata": {"annotations": {"apikeys.dev/rotate": "crash"}}});
        self.api
            .patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    /// Ready with nothing in flight after `rotations` rotations; exactly one upstream object
    /// and one usable credential, both the ones the status names; and the Secret's key works.
    async fn assert_one_working_credential(&self, rotations: Option<i64>) {
        let settled = wait_for(&self.api, NAME, "settled and Ready", |object| {
            let status = status_of(object);
            fixtures::is_ready(object)
                && status.pending.is_none()
                && status.retiring.is_empty()
                && status.rotation_count == rotations
        })
        .await;
        let status = status_of(&settled);
        let upstream = self.kind.upstream(&self.credstore).await;
        assert_eq!(
            upstream.objects,
            vec![status.upstream_id.clone().unwrap()],
            "{}: one upstream object, the one the status names (no twin, no orphan)",
            self.namespace
        );
        assert_eq!(
            upstream.usable,
            vec![status.credential_id.clone().unwrap()],
            "{}: one usable credential, the one the status names",
            self.namespace
        );
        let secret = Api::<Secret>::namespaced(self.client.clone(), &self.namespace)
            .get(NAME)
            .await
            .unwrap();
        assert!(
            self.kind
                .authenticates(&self.credstore, &text_data(&secret))
                .await,
            "{}: the Secret's key authenticates",
            self.namespace
        );
    }

    async fn assert_gone_everywhere(&self) {
        let api = self.api.clone();
        fixtures::eventually("the resource is deleted", true, || {
            let api = api.clone();
            async move { api.get_opt(NAME).await.unwrap().is_none() }
        })
        .await;
        let upstream = self.kind.upstream(&self.credstore).await;
        assert!(
            upstream.objects.is_empty() && upstream.usable.is_empty(),
            "{}: nothing left upstream: {upstream:?}",
            self.namespace
        );
    }
}

fn status_of<R: serde::Serialize>(object: &R) -> KeyStatus {
    let value = serde_json::to_value(object).unwrap();
    serde_json::from_value(value["status"].clone()).unwrap_or_default()
}

fn text_data(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8(v.0.clone()).unwrap()))
        .collect()
}

/// Aborts the operator at `point` and checks that a fresh one recovers.
async fn crash<K: Kind>(kind: &K, path: Path, point: &'static str) {
    let s = Scenario::new(kind, path, point).await;
    match table::phase(point) {
        Phase::Create => {
            let armed = s.operator(Some(point));
            s.create().await;
            s.aborts(armed, point).await;
            let _recovering = s.operator(None);
            s.assert_one_working_credential(None).await;
        }
        Phase::Rotate => {
            let clean = s.operator(None);
            s.create().await;
            s.assert_one_working_credential(None).await;
            drop(clean);
            let armed = s.operator(Some(point));
            s.request_rotation().await;
            s.aborts(armed, point).await;
            let _recovering = s.operator(None);
            s.assert_one_working_credential(Some(1)).await;
        }
        Phase::Delete => {
            let clean = s.operator(None);
            s.create().await;
            s.assert_one_working_credential(None).await;
            drop(clean);
            let armed = s.operator(Some(point));
            s.api.delete(NAME, &Default::default()).await.unwrap();
            s.aborts(armed, point).await;
            let _recovering = s.operator(None);
            s.assert_gone_everywhere().await;
        }
    }
}

/// Runs every point the table expects `path` to recover from, concurrently, and fails with
/// the list of points that did not recover.
pub async fn every_point<K: Kind>(kind: K, path: Path) {
    envtest::control_plane();
    let started = Instant::now();
    let points = table::exercised(path);
    let outcomes = futures::future::join_all(points.iter().map(|point| {
        std::panic::AssertUnwindSafe(crash(&kind, path, point))
            .catch_unwind()
            .map(move |outcome| (*point, outcome.is_ok()))
    }))
    .await;
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(point, _)| *point)
        .collect();
    eprintln!(
        "{path:?}: {} failpoints exercised in {:.1}s",
        points.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failed.is_empty(), "{path:?} did not recover from {failed:?}");
}
