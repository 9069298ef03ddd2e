//! The operator process as the chart runs it, and its metrics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use super::FULLNAME;
use apikey_operator_test_support::fixtures;
use apikey_operator_test_support::processes::{self, OperatorCommand};

/// The operator process, authenticated by `kubeconfig`; killed on drop.
pub(super) struct OperatorProcess {
    child: Child,
    probes: String,
    pub(super) log: PathBuf,
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the operator as the chart runs it: with leader election on the chart's Lease in
/// `release_namespace` (POD_NAMESPACE, as the downward API sets it).
pub(super) fn spawn_operator(
    kubeconfig: &Path,
    log: PathBuf,
    release_namespace: &str,
    lease: &str,
    namespace: Option<&str>,
) -> OperatorProcess {
    let mut command = OperatorCommand::new(kubeconfig)
        .leader_election()
        .lease_name(lease)
        .env("POD_NAME", "apikey-operator-test")
        .env("POD_NAMESPACE", release_namespace)
        .env("RUST_LOG", "info,apikey_operator=debug")
        .log(&log)
        .with_probes();
    if let Some(namespace) = namespace {
        // A namespaced install cannot read kube-system: the chart passes the identity Helm
        // looked up at install (a test with its own control plane stands in one).
        command = command
            .namespace(namespace)
            .env("APIKEY_OPERATOR_CLUSTER_ID", "chart-test-cluster");
    }
    OperatorProcess {
        probes: command.probes(),
        child: command.spawn(),
        log,
    }
}

/// The operator, once it leads (which needs the chart's Lease rules) and its caches synced.
pub(super) async fn start_operator(
    kubeconfig: &Path,
    dir: &Path,
    release_namespace: &str,
    namespace: Option<&str>,
) -> OperatorProcess {
    let operator = spawn_operator(
        kubeconfig,
        dir.join("operator.log"),
        release_namespace,
        FULLNAME,
        namespace,
    );
    let deadline = tokio::time::Instant::now() + fixtures::CONVERGE;
    loop {
        let ready = reqwest::get(format!("{}/readyz", operator.probes))
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready && leads(&operator).await {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the operator did not become ready and leader with the chart's RBAC; its log:\n{}",
            std::fs::read_to_string(&operator.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    operator
}

/// Whether the operator reports itself leader (false while its probes are not up yet).
pub(super) async fn leads(operator: &OperatorProcess) -> bool {
    processes::scrape(&operator.probes)
        .await
        .is_some_and(|metrics| metrics.get("apikey_operator_leader") == Some(&1.0))
}

/// The samples of `/metrics`, keyed by series (`name{labels}`).
pub(super) async fn scrape(operator: &OperatorProcess) -> BTreeMap<String, f64> {
    processes::scrape(&operator.probes)
        .await
        .expect("the operator serves /metrics")
}

pub(super) fn sample(metrics: &BTreeMap<String, f64>, series: &str) -> f64 {
    metrics
        .get(series)
        .copied()
        .unwrap_or_else(|| panic!("no sample {series} in /metrics:\n{}", series_names(metrics)))
}

pub(super) fn series_names(metrics: &BTreeMap<String, f64>) -> String {
    metrics
        .iter()
        .filter(|(k, _)| k.starts_with("apikey_operator_") && !k.contains("_bucket"))
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub(super) fn upstream(operation: &str, class: &str) -> String {
    format!(
        "apikey_operator_upstream_requests_total{{store_kind=\"CredentialStore\",api=\"prefactor\",operation=\"{operation}\",status_class=\"{class}\"}}"
    )
}
