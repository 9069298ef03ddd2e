//! The Helm chart (`charts/apikey-operator`): `helm lint` and `helm template` with the
//! defaults and every option, the values schema refusing bad values, the rendered manifests
//! accepted by the real API server (pods checked against the `restricted` Pod Security
//! Standard), and the RBAC proof: the operator process, authenticated as the chart's
//! ServiceAccount with exactly the chart's rules, drives an ApiToken through its whole
//! lifecycle — so a missing rule fails a test — and its `/metrics` move as they should.
//!
//! helm comes from `HELM_BIN` or `tests/envtest/helm.sh` (built from the Go module proxy);
//! without it these tests fail, they never skip.
//!
//! `render`: what `helm lint` and `helm template` make of every option, and the values
//! schema. `install`: the manifests applied to the API server, and a helm release's life.
//! `rbac`: the least-privilege checks and, with `operator` and `lifecycle`, the proof that
//! the chart's rules are enough.

mod install;
mod lifecycle;
mod monitoring;
mod operator;
mod rbac;
mod render;
mod user_roles;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use apikey_operator_test_support::envtest;

const RELEASE: &str = "apikeys";
/// What the chart names its objects for release [`RELEASE`].
const FULLNAME: &str = "apikeys-apikey-operator";

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/apikey-operator")
}

/// The helm binary: `HELM_BIN`, or whatever `tests/envtest/helm.sh` builds or finds.
fn helm() -> &'static Path {
    static HELM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = HELM.get_or_init(|| {
        if let Some(path) = std::env::var_os("HELM_BIN") {
            let path = PathBuf::from(path);
            return if path.is_file() {
                Ok(path)
            } else {
                Err(format!("HELM_BIN={} is not a file", path.display()))
            };
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/envtest/helm.sh");
        let output = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !output.status.success() {
            return Err(format!("{} failed ({})", script.display(), output.status));
        }
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .map(PathBuf::from)
            .ok_or_else(|| format!("{} printed nothing", script.display()))
    });
    match found {
        Ok(path) => path,
        Err(reason) => panic!("helm is unavailable: {reason}"),
    }
}

/// Runs helm; `Ok(stdout)` on success, `Err(stderr)` otherwise.
fn run_helm(args: &[&str]) -> Result<String, String> {
    let output = Command::new(helm())
        .args(args)
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("apikey-operator-helm-cache"),
        )
        .env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("apikey-operator-helm-config"),
        )
        .env(
            "HELM_DATA_HOME",
            std::env::temp_dir().join("apikey-operator-helm-data"),
        )
        .output()
        .expect("helm runs");
    if output.status.success() {
        Ok(String::from_utf8(output.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn with_sets<'a>(mut args: Vec<&'a str>, sets: &[&'a str]) -> Vec<&'a str> {
    for set in sets {
        args.extend(["--set", set]);
    }
    args
}

/// `helm template` of the chart as release [`RELEASE`] in `namespace`.
fn template(namespace: &str, sets: &[&str]) -> Result<String, String> {
    let chart = chart_dir();
    let args = vec![
        "template",
        RELEASE,
        chart.to_str().unwrap(),
        "--namespace",
        namespace,
    ];
    run_helm(&with_sets(args, sets))
}

/// The rendered objects as JSON.
fn render(namespace: &str, sets: &[&str]) -> Vec<Value> {
    let yaml = template(namespace, sets).unwrap_or_else(|e| panic!("helm template {sets:?}: {e}"));
    envtest::parse_documents(&yaml)
        .into_iter()
        .map(|object| serde_json::to_value(object).unwrap())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} among {}", summary(objects)))
}

fn kinds(objects: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_string())
        .collect();
    kinds.sort();
    kinds
}

fn summary(objects: &[Value]) -> String {
    objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every option set the chart has, each rendered, linted and applied by the tests.
const OPTION_SETS: &[(&str, &[&str])] = &[
    ("defaults", &[]),
    ("namespaced", &["watch.namespaced=true"]),
    (
        "namespaced-elsewhere",
        &["watch.namespaced=true", "watch.namespace=team-a"],
    ),
    (
        "credstore",
        &["credstore.enabled=true", "credstore.adminApi=true"],
    ),
    (
        "credstore-ephemeral",
        &[
            "credstore.enabled=true",
            "credstore.persistence.enabled=false",
            "credstore.image.repository=registry.example/credstore",
            "credstore.image.tag=v9",
        ],
    ),
    (
        "service-monitor",
        &[
            "metrics.serviceMonitor.enabled=true",
            "metrics.serviceMonitor.labels.release=prometheus",
        ],
    ),
    (
        "bring-your-own-rbac",
        &[
            "rbac.create=false",
            "serviceAccount.create=false",
            "serviceAccount.name=existing",
        ],
    ),
    (
        "high-availability",
        &[
            "replicas=3",
            "leaderElection.leaseDurationSeconds=30",
            "leaderElection.renewPeriodSeconds=10",
        ],
    ),
    ("without-leader-election", &["leaderElection.enabled=false"]),
    (
        "minimal",
        &[
            "metrics.service.enabled=false",
            "podDisruptionBudget.enabled=false",
            "logFormat=text",
            "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "imagePullSecrets[0].name=regcred",
            "priorityClassName=apikey-operator-test",
            "nodeSelector.kubernetes\\.io/os=linux",
        ],
    ),
];

/// Server-side applies `object` (as field manager `helm-chart-test`), only validated when
/// `dry_run`.
async fn apply(client: &Client, object: &Value, dry_run: bool) -> Result<DynamicObject, kube::Error> {
    let object: DynamicObject = serde_json::from_value(object.clone()).unwrap();
    let namespace = object.namespace().unwrap_or_default();
    let api = envtest::api_for(client, &object, &namespace).await;
    let mut params = PatchParams::apply("helm-chart-test").force();
    params.dry_run = dry_run;
    api.patch(&object.name_any(), &params, &Patch::Apply(&object))
        .await
}

async fn create_namespace(client: &Client, name: &str, labels: Value) {
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .patch(
            name,
            &PatchParams::apply("tests").force(),
            &Patch::Apply(&namespace),
        )
        .await
        .unwrap();
}
