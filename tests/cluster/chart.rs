//! The Helm chart (`charts/apikey-operator`): `helm lint` and `helm template` with the
//! defaults and every option, the values schema refusing bad values, the rendered manifests
//! accepted by the real API server (pods checked against the `restricted` Pod Security
//! Standard), and the RBAC proof: the operator process, authenticated as the chart's
//! ServiceAccount with exactly the chart's rules, drives an ApiToken through its whole
//! lifecycle — so a missing rule fails a test — and its `/metrics` move as they should.
//!
//! helm comes from `HELM_BIN` or `tests/envtest/helm.sh` (built from the Go module proxy);
//! without it these tests fail, they never skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use apikey_operator::api::{ApiToken, CredentialStore};
use apikey_operator::localcluster::LocalCluster;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::fixtures::{self, condition, eventually, is_ready, merge, ping, upstream_token, wait_for};
use crate::processes::{self, Credstore};
use crate::support;

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
    support::parse_documents(&yaml)
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

#[test]
fn helm_lint_passes_with_the_defaults_and_every_option() {
    let chart = chart_dir();
    for (name, sets) in OPTION_SETS {
        let args = vec!["lint", "--strict", chart.to_str().unwrap()];
        let out = run_helm(&with_sets(args, sets)).unwrap_or_else(|e| panic!("helm lint ({name}): {e}"));
        assert!(out.contains("0 chart(s) failed"), "helm lint ({name}): {out}");
    }
}

#[test]
fn helm_template_renders_what_each_option_asks_for() {
    let ns = "apikey-system";
    let operator_args = |objects: &[Value]| -> Vec<String> {
        serde_json::from_value(
            find(objects, "Deployment", FULLNAME)["spec"]["template"]["spec"]["containers"][0]["args"]
                .clone(),
        )
        .unwrap()
    };

    // Defaults: cluster-wide RBAC, leader election (a Role for the Lease in the release
    // namespace), metrics Service, PDB; no credential store, no monitor.
    let objects = render(ns, &[]);
    assert_eq!(
        kinds(&objects),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
    );
    let args = operator_args(&objects);
    assert_eq!(args[0], "run");
    assert!(args.contains(&"--listen=0.0.0.0:8080".to_string()), "{args:?}");
    assert!(!args.iter().any(|a| a.starts_with("--namespace")), "{args:?}");
    for arg in [
        "--leader-election",
        &format!("--lease-name={FULLNAME}"),
        "--lease-duration-seconds=15",
        "--lease-renew-period-seconds=5",
    ] {
        assert!(args.contains(&arg.to_string()), "{arg}: {args:?}");
    }
    let lease_role = find(&objects, "Role", &format!("{FULLNAME}-leader-election"));
    assert_eq!(lease_role["metadata"]["namespace"], ns);
    assert_eq!(
        lease_role["rules"],
        json!([{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                "verbs": ["get", "list", "watch", "create", "patch"]}])
    );
    let lease_binding = find(&objects, "RoleBinding", &format!("{FULLNAME}-leader-election"));
    assert_eq!(lease_binding["roleRef"]["name"], lease_role["metadata"]["name"]);
    assert_eq!(lease_binding["subjects"][0]["name"], FULLNAME);
    assert!(
        !serde_json::to_string(&find(&objects, "ClusterRole", FULLNAME)["rules"])
            .unwrap()
            .contains("leases"),
        "Leases only in the release namespace"
    );
    let binding = find(&objects, "ClusterRoleBinding", FULLNAME);
    assert_eq!(binding["subjects"][0]["name"], FULLNAME);
    assert_eq!(binding["subjects"][0]["namespace"], ns);
    for object in &objects {
        let labels = &object["metadata"]["labels"];
        for label in [
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/version",
            "app.kubernetes.io/component",
            "app.kubernetes.io/part-of",
            "app.kubernetes.io/managed-by",
            "helm.sh/chart",
        ] {
            assert!(
                labels[label].is_string(),
                "{} lacks label {label}",
                object["metadata"]["name"]
            );
        }
    }
    let deployment = find(&objects, "Deployment", FULLNAME);
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(
        deployment["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}),
        "the new pod stands by until the old one releases the lease"
    );
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(
        container["image"],
        format!(
            "ghcr.io/apikey-operator/apikey-operator:{}",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert_eq!(
        container["env"][0],
        json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    );
    assert_eq!(
        container["env"][1],
        json!({"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}})
    );
    let service = find(&objects, "Service", &format!("{FULLNAME}-metrics"));
    assert_eq!(
        service["spec"]["selector"], deployment["spec"]["selector"]["matchLabels"],
        "the metrics Service selects the operator pod"
    );

    // Several replicas, with the lease timing passed on.
    let objects = render(
        ns,
        &[
            "replicas=3",
            "leaderElection.leaseDurationSeconds=30",
            "leaderElection.renewPeriodSeconds=10",
        ],
    );
    assert_eq!(find(&objects, "Deployment", FULLNAME)["spec"]["replicas"], 3);
    let args = operator_args(&objects);
    assert!(
        args.contains(&"--lease-duration-seconds=30".to_string()),
        "{args:?}"
    );
    assert!(
        args.contains(&"--lease-renew-period-seconds=10".to_string()),
        "{args:?}"
    );

    // Without leader election: no Lease Role, no flag, and never two pods at once.
    let objects = render(ns, &["leaderElection.enabled=false"]);
    assert!(
        !kinds(&objects).contains(&"Role".to_string()),
        "{:?}",
        kinds(&objects)
    );
    assert!(!operator_args(&objects).iter().any(|a| a.contains("lease")));
    assert_eq!(
        find(&objects, "Deployment", FULLNAME)["spec"]["strategy"]["type"],
        "Recreate"
    );

    // Namespaced: a Role and RoleBinding in the watched namespace, nothing cluster-wide.
    for (sets, watched) in [
        (&["watch.namespaced=true"][..], ns),
        (&["watch.namespaced=true", "watch.namespace=team-a"][..], "team-a"),
    ] {
        let objects = render(ns, sets);
        let kinds = kinds(&objects);
        assert!(!kinds.iter().any(|k| k.starts_with("Cluster")), "{kinds:?}");
        let role = find(&objects, "Role", FULLNAME);
        assert_eq!(role["metadata"]["namespace"], watched);
        let binding = find(&objects, "RoleBinding", FULLNAME);
        assert_eq!(binding["metadata"]["namespace"], watched);
        assert_eq!(
            binding["subjects"][0]["namespace"], ns,
            "the ServiceAccount lives in the release namespace"
        );
        let rules = serde_json::to_string(&role["rules"]).unwrap();
        assert!(!rules.contains("clustercredentialstores"), "{rules}");
        assert!(!rules.contains("namespaces"), "{rules}");
        assert!(
            operator_args(&objects).contains(&format!("--namespace={watched}")),
            "{:?}",
            operator_args(&objects)
        );
    }

    // The credential store: PVC + Service + Deployment running `credstore`.
    let objects = render(ns, &["credstore.enabled=true"]);
    let name = format!("{FULLNAME}-credstore");
    find(&objects, "PersistentVolumeClaim", &name);
    let store = find(&objects, "Deployment", &name);
    let args: Vec<String> =
        serde_json::from_value(store["spec"]["template"]["spec"]["containers"][0]["args"].clone()).unwrap();
    assert_eq!(args, ["credstore", "--listen=0.0.0.0:8400", "--data=/data/store"]);
    assert_eq!(
        store["spec"]["template"]["spec"]["automountServiceAccountToken"],
        false
    );
    let service = find(&objects, "Service", &name);
    assert_eq!(service["spec"]["ports"][0]["port"], 8400);
    let objects = render(
        ns,
        &["credstore.enabled=true", "credstore.persistence.enabled=false"],
    );
    assert!(!kinds(&objects).contains(&"PersistentVolumeClaim".to_string()));

    // The ServiceMonitor selects the metrics Service.
    let objects = render(ns, &["metrics.serviceMonitor.enabled=true"]);
    let monitor = find(&objects, "ServiceMonitor", FULLNAME);
    let service_labels = &find(&objects, "Service", &format!("{FULLNAME}-metrics"))["metadata"]["labels"];
    let selector = monitor["spec"]["selector"]["matchLabels"].as_object().unwrap();
    assert!(!selector.is_empty());
    for (key, value) in selector {
        assert_eq!(
            &service_labels[key], value,
            "the ServiceMonitor selects the metrics Service by {key}"
        );
    }
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");

    // CRDs come from the chart's crds/ directory (identical to crds/: tests/generated.rs).
    let chart = chart_dir();
    let with_crds = run_helm(&["template", RELEASE, chart.to_str().unwrap(), "--include-crds"]).unwrap();
    let crds = support::parse_documents(&with_crds)
        .into_iter()
        .filter(|o| o.types.as_ref().unwrap().kind == "CustomResourceDefinition")
        .count();
    assert_eq!(crds, apikey_operator::api::crds().len());
}

#[test]
fn the_values_schema_refuses_bad_values() {
    let bad: &[(&[&str], &str)] = &[
        (&["logFormat=xml"], "logFormat"),
        (&["securityContext.runAsUser=0"], "runAsUser"),
        (&["probePort=70000"], "probePort"),
        (&["watch.namespace=Not_A_Namespace"], "watch/namespace"),
        (&["image.pullPolicy=Sometimes"], "pullPolicy"),
        (&["image.digest=latest"], "digest"),
        (&["image.repository="], "repository"),
        (&["podDisruptionBudget.maxUnavailable=0"], "maxUnavailable"),
        (&["credstore.persistence.size=lots"], "size"),
        (&["metrics.serviceMonitor.interval=often"], "interval"),
        (&["serviceAccount.create=false"], "name"),
        (&["replicaCount=3"], "replicaCount"),
        (&["watch.namespaces[0]=a"], "namespaces"),
        (&["replicas=0"], "replicas"),
        (&["replicas=2", "leaderElection.enabled=false"], "replicas"),
        (&["leaderElection.leaseDurationSeconds=2"], "leaseDurationSeconds"),
    ];
    for (sets, mentions) in bad {
        let error = template("apikey-system", sets).expect_err(&format!("{sets:?} was accepted"));
        assert!(
            error.contains("schema") && error.contains(mentions),
            "{sets:?}: the error should name {mentions}: {error}"
        );
    }
    // Not expressible in the schema: a ServiceMonitor without the Service it selects.
    let error = template(
        "apikey-system",
        &[
            "metrics.serviceMonitor.enabled=true",
            "metrics.service.enabled=false",
        ],
    )
    .expect_err("a ServiceMonitor without a Service was accepted");
    assert!(error.contains("metrics.service.enabled"), "{error}");
    // Nor a renew period too long for the lease (the binary refuses it too).
    let error = template("apikey-system", &["leaderElection.renewPeriodSeconds=8"])
        .expect_err("a renew period of more than half the lease duration was accepted");
    assert!(error.contains("renewPeriodSeconds"), "{error}");
}

#[test]
fn the_default_image_is_the_one_the_dockerfile_builds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let values: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap()).unwrap();
    let chart: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap()).unwrap();
    assert_eq!(
        chart["appVersion"],
        env!("CARGO_PKG_VERSION"),
        "the default tag (appVersion) is the crate's version"
    );
    let label = |name: &str| {
        dockerfile
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}=")))
            .map(|v| v.trim_end_matches('\\').trim().trim_matches('"').to_string())
            .unwrap_or_else(|| panic!("the Dockerfile sets no {name} label"))
    };
    assert_eq!(
        label("org.opencontainers.image.ref.name"),
        values["image"]["repository"].as_str().unwrap(),
        "the chart pulls the image the Dockerfile describes"
    );
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage sets USER");
    let (uid, gid) = user.trim().split_once(':').expect("USER uid:gid");
    assert_eq!(
        uid.parse::<i64>()
            .expect("a numeric USER (runAsNonRoot can check it)"),
        values["securityContext"]["runAsUser"].as_i64().unwrap()
    );
    assert_eq!(
        gid.parse::<i64>().unwrap(),
        values["securityContext"]["runAsGroup"].as_i64().unwrap()
    );
    assert!(
        dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/apikey-operator\"]"),
        "the chart passes subcommands as args to the binary's entrypoint"
    );
}

/// A minimal ServiceMonitor CRD (the real one belongs to prometheus-operator), so the
/// monitor the chart renders can be applied.
async fn install_service_monitor_crd(client: &Client) {
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "names": {"kind": "ServiceMonitor", "plural": "servicemonitors", "singular": "servicemonitor", "listKind": "ServiceMonitorList"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            }],
        },
    }))
    .unwrap();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.patch(
        "servicemonitors.monitoring.coreos.com",
        &PatchParams::apply("tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
    let established = kube::runtime::conditions::is_crd_established();
    tokio::time::timeout(
        fixtures::CONVERGE,
        kube::runtime::wait::await_condition(api, "servicemonitors.monitoring.coreos.com", established),
    )
    .await
    .expect("the ServiceMonitor CRD is established")
    .unwrap();
    // Discovery of the new group can lag behind Established.
    eventually("ServiceMonitor is discoverable", true, || async {
        kube::discovery::pinned_kind(
            client,
            &kube::api::GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor"),
        )
        .await
        .is_ok()
    })
    .await;
}

/// Server-side applies `object` (as field manager `helm-chart-test`), only validated when
/// `dry_run`.
async fn apply(client: &Client, object: &Value, dry_run: bool) -> Result<DynamicObject, kube::Error> {
    let object: DynamicObject = serde_json::from_value(object.clone()).unwrap();
    let namespace = object.namespace().unwrap_or_default();
    let api = support::api_for(client, &object, &namespace).await;
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

#[tokio::test]
async fn rendered_manifests_are_accepted_by_the_api_server_and_pods_meet_the_restricted_standard() {
    let client = support::client().await;
    install_service_monitor_crd(&client).await;
    let priority = json!({
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": {"name": "apikey-operator-test"}, "value": 1000,
    });
    apply(&client, &priority, false).await.unwrap();
    for (index, (name, sets)) in OPTION_SETS.iter().enumerate() {
        // Pods are admitted here only if they meet the `restricted` Pod Security Standard.
        let namespace = support::namespace(&client, &format!("chart-{index}")).await;
        create_namespace(
            &client,
            &namespace,
            json!({
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            }),
        )
        .await;
        create_namespace(&client, "team-a", json!({})).await;
        // One release per namespace; cluster-scoped names get the namespace as release name.
        let chart = chart_dir();
        let yaml = run_helm(&with_sets(
            vec![
                "template",
                &namespace,
                chart.to_str().unwrap(),
                "--namespace",
                &namespace,
            ],
            sets,
        ))
        .unwrap_or_else(|e| panic!("helm template ({name}): {e}"));
        let objects: Vec<Value> = support::parse_documents(&yaml)
            .into_iter()
            .map(|o| serde_json::to_value(o).unwrap())
            .collect();
        assert!(!objects.is_empty());
        for object in &objects {
            let kind = object["kind"].as_str().unwrap();
            // Workloads would need a scheduler and kubelets: validated with a dry run, and
            // their pod template submitted as a Pod (dry run) to the restricted namespace.
            let dry_run = kind == "Deployment";
            apply(&client, object, dry_run)
                .await
                .unwrap_or_else(|e| panic!("({name}) {kind} {} refused: {e}", object["metadata"]["name"]));
            if kind == "Deployment" {
                let template = &object["spec"]["template"];
                let pod = json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {
                        "name": format!("{}-pod", object["metadata"]["name"].as_str().unwrap()),
                        "namespace": namespace,
                        "labels": template["metadata"]["labels"],
                    },
                    "spec": template["spec"],
                });
                apply(&client, &pod, true).await.unwrap_or_else(|e| {
                    panic!(
                        "({name}) the pod of {} breaks the restricted Pod Security Standard: {e}",
                        object["metadata"]["name"]
                    )
                });
            }
        }
    }

    // The check has teeth: a privileged variant of the same pod is refused.
    let objects = render("apikey-system", &[]);
    let namespace = support::namespace(&client, "chart-teeth").await;
    create_namespace(
        &client,
        &namespace,
        json!({"pod-security.kubernetes.io/enforce": "restricted"}),
    )
    .await;
    let mut spec = find(&objects, "Deployment", FULLNAME)["spec"]["template"]["spec"].clone();
    spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = json!(true);
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "escalating", "namespace": namespace}, "spec": spec});
    let refused = apply(&client, &pod, true)
        .await
        .expect_err("a pod allowing privilege escalation was admitted");
    assert!(
        refused.to_string().contains("restricted"),
        "refused by Pod Security: {refused}"
    );
}

#[tokio::test]
async fn helm_installs_upgrades_and_uninstalls_a_release() {
    let client = support::client().await;
    let namespace = support::namespace(&client, "helm-release").await;
    let kubeconfig = support::control_plane().kubeconfig.display().to_string();
    let chart = chart_dir();
    let chart = chart.to_str().unwrap();
    let release = namespace.as_str();
    let fullname = format!("{release}-apikey-operator");
    let helm = |args: &[&str]| {
        let mut args = args.to_vec();
        args.extend(["--kubeconfig", &kubeconfig, "--namespace", &namespace]);
        run_helm(&args).unwrap_or_else(|e| panic!("helm {args:?}: {e}"))
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let args_of = |deployment: Deployment| -> Vec<String> {
        deployment.spec.unwrap().template.spec.unwrap().containers[0]
            .args
            .clone()
            .unwrap()
    };

    let installed = helm(&[
        "install",
        release,
        chart,
        "--set",
        "watch.namespaced=true",
        "--set",
        "credstore.enabled=true",
    ]);
    assert!(
        installed.contains(&format!("rollout status deployment/{fullname}")),
        "the notes say how to check the install:\n{installed}"
    );
    assert!(installed.contains("STATUS: deployed"), "{installed}");
    let args = args_of(deployments.get(&fullname).await.unwrap());
    assert!(args.contains(&format!("--namespace={namespace}")), "{args:?}");
    assert!(args.contains(&"--log-format=json".to_string()), "{args:?}");
    deployments
        .get(&format!("{fullname}-credstore"))
        .await
        .expect("the credential store is deployed");

    helm(&[
        "upgrade",
        release,
        chart,
        "--reuse-values",
        "--set",
        "logFormat=text",
    ]);
    let args = args_of(deployments.get(&fullname).await.unwrap());
    assert!(args.contains(&"--log-format=text".to_string()), "{args:?}");
    assert!(
        args.contains(&format!("--namespace={namespace}")),
        "values reused: {args:?}"
    );
    let history = helm(&["history", release, "--output", "json"]);
    let history: Vec<Value> = serde_json::from_str(&history).unwrap();
    assert_eq!(history.len(), 2, "{history:?}");

    helm(&["uninstall", release, "--wait"]);
    assert!(deployments.get_opt(&fullname).await.unwrap().is_none());
    let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::namespaced(client.clone(), &namespace);
    assert!(roles.get_opt(&fullname).await.unwrap().is_none());
    let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(client.clone(), &namespace);
    assert!(
        claims
            .get_opt(&format!("{fullname}-credstore"))
            .await
            .unwrap()
            .is_some(),
        "the credential store's data outlives an uninstall (helm.sh/resource-policy: keep)"
    );
}

// ---------------------------------------------------------------------------------------
// The RBAC proof.

/// A control plane of the test's own: a cluster-wide operator must not reconcile the other
/// tests' objects (the shared operator does that).
async fn own_control_plane(name: &str) -> (LocalCluster, PathBuf) {
    let assets = support::control_plane().assets.clone();
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chart");
    // Earlier runs' directories whose test binary is gone.
    for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let pid = file_name.rsplit('-').next().unwrap_or_default();
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = base.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // With the admission plugin that makes owner references need `update` on the owner's
    // finalizers (on in OpenShift and some hardened clusters), so the chart is proven there too.
    let cluster = LocalCluster::start_with_apiserver_args(
        &assets,
        &dir.join("control-plane"),
        &["--enable-admission-plugins=OwnerReferencesPermissionEnforcement"],
    )
    .await
    .unwrap_or_else(|e| panic!("starting a control plane: {e}"));
    cluster.install_crds(&apikey_operator::api::crds()).await.unwrap();
    (cluster, dir)
}

/// Applies the chart's ServiceAccount and RBAC objects, rendered with `sets` for release
/// namespace `namespace`, and returns a kubeconfig authenticated as that ServiceAccount
/// (a token from the TokenRequest API).
async fn install_rbac_and_log_in(
    cluster: &LocalCluster,
    admin: &Client,
    dir: &Path,
    namespace: &str,
    sets: &[&str],
) -> PathBuf {
    let objects = render(namespace, sets);
    let mut applied = Vec::new();
    for object in &objects {
        let kind = object["kind"].as_str().unwrap();
        if [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
        ]
        .contains(&kind)
        {
            apply(admin, object, false)
                .await
                .unwrap_or_else(|e| panic!("{kind} refused: {e}"));
            applied.push(kind.to_string());
        }
    }
    assert!(applied.contains(&"ServiceAccount".to_string()), "{applied:?}");

    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let issued = Api::<ServiceAccount>::namespaced(admin.clone(), namespace)
        .create_token_request(FULLNAME, &PostParams::default(), &request)
        .await
        .expect("the TokenRequest API issues a token");
    let token = issued.status.expect("a token").token;
    let kubeconfig = dir.join("operator.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: {FULLNAME}
  user:
    token: {token}
contexts:
- name: operator
  context:
    cluster: local
    user: {FULLNAME}
    namespace: {namespace}
current-context: operator
",
            server = cluster.server_url(),
            ca = dir.join("control-plane/certs/ca.crt").display(),
        ),
    )
    .unwrap();
    kubeconfig
}

async fn client_from(kubeconfig: &Path) -> Client {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    Client::try_from(config).unwrap()
}

/// Whether the client's identity may do `verb` on `resource` (in `namespace`).
async fn can(client: &Client, verb: &str, group: &str, resource: &str, namespace: Option<&str>) -> bool {
    let (resource, subresource) = match resource.split_once('/') {
        Some((resource, sub)) => (resource, Some(sub.to_string())),
        None => (resource, None),
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource,
                namespace: namespace.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    answer.status.unwrap().allowed
}

/// The operator process, authenticated by `kubeconfig`; killed on drop.
struct OperatorProcess {
    child: Child,
    probes: String,
    log: PathBuf,
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the operator as the chart runs it: with leader election on the chart's Lease in
/// `release_namespace` (POD_NAMESPACE, as the downward API sets it).
fn spawn_operator(
    kubeconfig: &Path,
    log: PathBuf,
    release_namespace: &str,
    lease: &str,
    namespace: Option<&str>,
) -> OperatorProcess {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_apikey-operator"));
    command
        .args(["run", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--leader-election", "--lease-name", lease])
        .env("KUBECONFIG", kubeconfig)
        .env("POD_NAME", "apikey-operator-test")
        .env("POD_NAMESPACE", release_namespace)
        .env("RUST_LOG", "info,apikey_operator=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    if let Some(namespace) = namespace {
        command.args(["--namespace", namespace]);
    }
    OperatorProcess {
        child: processes::spawn_lasting(command),
        probes: format!("http://127.0.0.1:{port}"),
        log,
    }
}

/// The operator, once it leads (which needs the chart's Lease rules) and its caches synced.
async fn start_operator(
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
async fn leads(operator: &OperatorProcess) -> bool {
    let Ok(response) = reqwest::get(format!("{}/metrics", operator.probes)).await else {
        return false;
    };
    response
        .text()
        .await
        .is_ok_and(|text| text.lines().any(|line| line == "apikey_operator_leader 1"))
}

/// The samples of `/metrics`, keyed by series (`name{labels}`).
async fn scrape(operator: &OperatorProcess) -> BTreeMap<String, f64> {
    let text = reqwest::get(format!("{}/metrics", operator.probes))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn sample(metrics: &BTreeMap<String, f64>, series: &str) -> f64 {
    metrics
        .get(series)
        .copied()
        .unwrap_or_else(|| panic!("no sample {series} in /metrics:\n{}", series_names(metrics)))
}

fn series_names(metrics: &BTreeMap<String, f64>) -> String {
    metrics
        .iter()
        .filter(|(k, _)| k.starts_with("apikey_operator_") && !k.contains("_bucket"))
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn upstream(operation: &str, class: &str) -> String {
    format!(
        "apikey_operator_upstream_requests_total{{store_kind=\"CredentialStore\",api=\"prefactor\",operation=\"{operation}\",status_class=\"{class}\"}}"
    )
}

/// create → Ready → suspend → activate → rotate (restarting a consumer) → delete, as the
/// chart's ServiceAccount; every step checked upstream and through the token itself, then
/// the operator's metrics checked against what happened.
async fn api_token_lifecycle(
    admin: &Client,
    namespace: &str,
    credstore: &Credstore,
    operator: &OperatorProcess,
) {
    fixtures::prefactor_store(admin, namespace, "prefactor", credstore).await;
    let stores: Api<CredentialStore> = Api::namespaced(admin.clone(), namespace);
    wait_for(&stores, "prefactor", "store Ready", |s: &CredentialStore| {
        condition(s, "Ready").is_some_and(|(status, _)| status == "True")
    })
    .await;

    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), namespace);
    let consumer: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "consumer"},
        "spec": {
            "selector": {"matchLabels": {"app": "consumer"}},
            "template": {"metadata": {"labels": {"app": "consumer"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
        },
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &consumer)
        .await
        .unwrap();

    let expires = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24 * 30))
        .unwrap()
        .round(jiff::Unit::Second)
        .unwrap();
    let tokens: Api<ApiToken> = Api::namespaced(admin.clone(), namespace);
    fixtures::apply(
        admin,
        namespace,
        json!({
            "apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiToken", "metadata": {"name": "charted"},
            "spec": {
                "storeRef": {"name": "prefactor"}, "scope": "account",
                "expiresAt": expires.to_string(),
                "rotation": {"retainPrevious": "0s"},
                "rolloutRestart": [{"kind": "Deployment", "name": "consumer"}],
                "deletionPolicy": "Delete",
            },
        }),
    )
    .await;
    let token = wait_for(&tokens, "charted", "Ready", is_ready).await;
    let first_id = token.status.as_ref().unwrap().upstream_id.clone().unwrap();
    let first = fixtures::secret_value(admin, namespace, "charted", "token")
        .await
        .expect("the Secret holds the token");
    assert_eq!(ping(credstore, &first).await, 200, "the issued token works");

    for (state, upstream_state, works) in [("Suspended", "suspended", false), ("Active", "active", true)] {
        merge(&tokens, "charted", json!({"spec": {"state": state}})).await;
        wait_for(&tokens, "charted", state, |t: &ApiToken| {
            is_ready(t) && t.status.as_ref().and_then(|s| s.upstream_state.as_deref()) == Some(upstream_state)
        })
        .await;
        let code = ping(credstore, &first).await;
        assert_eq!(code == 200, works, "{state}: ping answered {code}");
    }

    merge(
        &tokens,
        "charted",
        json!({"metadata": {"annotations": {"apikeys.dev/rotate": "chart"}}}),
    )
    .await;
    let token = wait_for(&tokens, "charted", "rotated, previous retired", |t: &ApiToken| {
        is_ready(t)
            && t.status
                .as_ref()
                .is_some_and(|s| s.rotation_count == Some(1) && s.retiring.is_empty())
    })
    .await;
    let second = fixtures::secret_value(admin, namespace, "charted", "token")
        .await
        .unwrap();
    assert_ne!(second, first);
    assert_eq!(ping(credstore, &second).await, 200, "the rotated token works");
    assert_eq!(
        upstream_token(credstore, &first_id).await,
        None,
        "the previous token is deleted upstream"
    );
    let status = token.status.clone().unwrap();
    let restarted = deployments.get("consumer").await.unwrap();
    assert_eq!(
        restarted
            .spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap_or_default()
            .get("apikeys.dev/restarted-for"),
        status.secret_fingerprint.as_ref(),
        "the consumer was restarted for the new token (patch on deployments)"
    );

    // Events are best effort in the operator (a refused one is only logged): check them here.
    let events = Api::<Event>::namespaced(admin.clone(), namespace)
        .list(&ListParams::default())
        .await
        .unwrap();
    let ours = events
        .items
        .iter()
        .filter(|e| e.reporting_controller.as_deref() == Some("apikey-operator"))
        .count();
    assert!(
        ours >= 2,
        "the operator recorded events: {ours} of {}",
        events.items.len()
    );

    // Metrics while the token exists.
    let metrics = scrape(operator).await;
    assert!(
        sample(
            &metrics,
            "apikey_operator_reconciliations_total{kind=\"ApiToken\",result=\"success\"}"
        ) >= 4.0
    );
    assert!(
        sample(
            &metrics,
            "apikey_operator_reconcile_duration_seconds_count{kind=\"ApiToken\"}"
        ) >= 4.0
    );
    assert_eq!(
        sample(
            &metrics,
            "apikey_operator_rotations_total{kind=\"ApiToken\",trigger=\"annotation\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(&metrics, &upstream("create_token", "2xx")),
        2.0,
        "one create, one rotation"
    );
    assert_eq!(sample(&metrics, &upstream("suspend_token", "2xx")), 1.0);
    assert_eq!(sample(&metrics, &upstream("activate_token", "2xx")), 1.0);
    assert!(
        sample(&metrics, &upstream("ping", "2xx")) >= 1.0,
        "the store probe"
    );
    assert!(
        sample(
            &metrics,
            "apikey_operator_upstream_request_duration_seconds_count{api=\"prefactor\",operation=\"create_token\"}"
        ) >= 2.0
    );
    assert_eq!(
        sample(
            &metrics,
            "apikey_operator_resources{kind=\"ApiToken\",ready=\"True\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            "apikey_operator_resources{kind=\"CredentialStore\",ready=\"True\"}"
        ),
        1.0
    );
    let expiry = status.expires_at.expect("status.expiresAt").0.as_second();
    assert_eq!(expiry, expires.as_second(), "the declared expiry is upstream");
    assert_eq!(
        sample(
            &metrics,
            "apikey_operator_credential_expiry_earliest_timestamp_seconds{kind=\"ApiToken\"}"
        ),
        expiry as f64
    );
    assert!(
        !metrics
            .keys()
            .any(|k| k.contains("charted") || k.contains(namespace)),
        "no object names in labels"
    );

    // Deletion: upstream and Secret gone, and the gauges follow.
    tokens.delete("charted", &Default::default()).await.unwrap();
    eventually("the ApiToken is gone", true, || async {
        tokens.get_opt("charted").await.unwrap().is_none()
    })
    .await;
    assert_eq!(
        upstream_token(credstore, &status.upstream_id.clone().unwrap()).await,
        None
    );
    assert!(
        Api::<Secret>::namespaced(admin.clone(), namespace)
            .get_opt("charted")
            .await
            .unwrap()
            .is_none(),
        "the Secret is deleted"
    );
    let metrics = scrape(operator).await;
    assert_eq!(
        sample(
            &metrics,
            "apikey_operator_resources{kind=\"ApiToken\",ready=\"True\"}"
        ),
        0.0
    );
    assert!(
        sample(&metrics, &upstream("delete_token", "2xx")) >= 2.0,
        "the rotated-out and the deleted token"
    );
    assert!(
        !metrics.keys().any(|k| k
            .starts_with("apikey_operator_credential_expiry_earliest_timestamp_seconds{kind=\"ApiToken\"")),
        "no expiry once no token has one"
    );

    let log = std::fs::read_to_string(&operator.log).unwrap();
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "a request of the operator was forbidden by the chart's RBAC:\n{}",
        log.lines()
            .filter(|l| l.to_lowercase().contains("forbidden"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn the_cluster_wide_chart_rbac_is_enough_for_a_whole_api_token_lifecycle() {
    let credstore = processes::credstore();
    let (cluster, dir) = own_control_plane("rbac-cluster").await;
    let admin = cluster.client().await.unwrap();
    let release_namespace = "apikey-system";
    create_namespace(&admin, release_namespace, json!({})).await;
    let kubeconfig = install_rbac_and_log_in(&cluster, &admin, &dir, release_namespace, &[]).await;
    let operator_client = client_from(&kubeconfig).await;

    // Least privilege, in the API server's own words.
    for (verb, group, resource, namespace) in [
        ("update", "apikeys.dev", "apitokens", Some("team")),
        ("delete", "apikeys.dev", "apitokens", Some("team")),
        ("create", "apikeys.dev", "credentialstores", Some("team")),
        ("patch", "apikeys.dev", "credentialstores", Some("team")),
        ("update", "", "secrets", Some("team")),
        ("get", "", "configmaps", Some("team")),
        ("delete", "apps", "deployments", Some("team")),
        ("get", "apps", "deployments", Some("team")),
        ("list", "", "namespaces", None),
        ("create", "rbac.authorization.k8s.io", "clusterroles", None),
        ("create", "", "pods", Some("team")),
    ] {
        assert!(
            !can(&operator_client, verb, group, resource, namespace).await,
            "the chart grants {verb} {group}/{resource}, which the operator never needs"
        );
    }
    // The Lease only in the release namespace, and no more than leader election needs.
    for verb in ["get", "list", "watch", "create", "patch"] {
        assert!(
            can(
                &operator_client,
                verb,
                "coordination.k8s.io",
                "leases",
                Some(release_namespace)
            )
            .await,
            "{verb} leases in the release namespace"
        );
    }
    for (verb, namespace) in [
        ("update", release_namespace),
        ("delete", release_namespace),
        ("get", "team"),
    ] {
        assert!(
            !can(
                &operator_client,
                verb,
                "coordination.k8s.io",
                "leases",
                Some(namespace)
            )
            .await,
            "the chart grants {verb} on leases in {namespace}"
        );
    }
    for (verb, group, resource) in [
        ("watch", "apikeys.dev", "clustercredentialstores"),
        ("patch", "apikeys.dev", "clustercredentialstores/status"),
        ("get", "", "namespaces"),
        ("list", "", "secrets"),
    ] {
        assert!(
            can(&operator_client, verb, group, resource, None).await,
            "{verb} {group}/{resource} cluster-wide"
        );
    }

    // The admission plugin is really on: an owner reference that blocks deletion of an
    // ApiToken needs `update` on apitokens/finalizers, which the chart does not grant (the
    // operator sets no such reference).
    let namespace = "team";
    create_namespace(&admin, namespace, json!({})).await;
    fixtures::apply(
        &admin,
        namespace,
        json!({"apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiToken", "metadata": {"name": "owner"},
               "spec": {"storeRef": {"name": "none"}, "scope": "account"}}),
    )
    .await;
    let tokens: Api<ApiToken> = Api::namespaced(admin.clone(), namespace);
    let owner = tokens.get("owner").await.unwrap();
    let blocking: Secret = serde_json::from_value(json!({
        "metadata": {"name": "blocking", "ownerReferences": [{
            "apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiToken", "name": "owner",
            "uid": owner.metadata.uid, "controller": true, "blockOwnerDeletion": true,
        }]},
    }))
    .unwrap();
    let refused = Api::<Secret>::namespaced(operator_client.clone(), namespace)
        .create(&PostParams::default(), &blocking)
        .await
        .expect_err("blockOwnerDeletion without update on apitokens/finalizers was admitted");
    assert!(refused.to_string().contains("blockOwnerDeletion"), "{refused}");
    tokens.delete("owner", &Default::default()).await.unwrap();

    let operator = start_operator(&kubeconfig, &dir, release_namespace, None).await;
    api_token_lifecycle(&admin, namespace, credstore, &operator).await;
    let metrics = scrape(&operator).await;
    assert!(
        metrics.contains_key("apikey_operator_resources{kind=\"ClusterCredentialStore\",ready=\"True\"}"),
        "a cluster-wide operator tracks ClusterCredentialStores"
    );
    drop(operator);
    drop(cluster);
}

#[tokio::test]
async fn the_namespaced_chart_rbac_is_enough_for_a_whole_api_token_lifecycle() {
    let credstore = processes::credstore();
    let (cluster, dir) = own_control_plane("rbac-namespaced").await;
    let admin = cluster.client().await.unwrap();
    // The operator runs in its own namespace and watches another one.
    let (release_namespace, watched) = ("apikey-system", "team");
    for namespace in [release_namespace, watched, "elsewhere"] {
        create_namespace(&admin, namespace, json!({})).await;
    }
    let sets = ["watch.namespaced=true", "watch.namespace=team"];
    let kubeconfig = install_rbac_and_log_in(&cluster, &admin, &dir, release_namespace, &sets).await;
    let operator_client = client_from(&kubeconfig).await;
    for (verb, group, resource, namespace) in [
        ("list", "", "secrets", None),
        ("list", "", "secrets", Some("elsewhere")),
        ("get", "", "secrets", Some(release_namespace)),
        ("list", "apikeys.dev", "apitokens", Some("elsewhere")),
        ("list", "apikeys.dev", "clustercredentialstores", None),
        ("get", "", "namespaces", None),
    ] {
        assert!(
            !can(&operator_client, verb, group, resource, namespace).await,
            "a namespaced install grants {verb} {group}/{resource} in {namespace:?}"
        );
    }
    assert!(can(&operator_client, "list", "", "secrets", Some(watched)).await);

    let operator = start_operator(&kubeconfig, &dir, release_namespace, Some(watched)).await;
    api_token_lifecycle(&admin, watched, credstore, &operator).await;
    let metrics = scrape(&operator).await;
    assert!(
        !metrics.keys().any(|k| k.contains("ClusterCredentialStore")),
        "a namespaced operator serves no ClusterCredentialStores"
    );
    drop(operator);

    // Without the Lease rule the operator never leads: the rule is needed.
    let lease_role = format!("{FULLNAME}-leader-election");
    Api::<k8s_openapi::api::rbac::v1::Role>::namespaced(admin.clone(), release_namespace)
        .delete(&lease_role, &Default::default())
        .await
        .unwrap();
    let refused = spawn_operator(
        &kubeconfig,
        dir.join("operator-without-lease-rule.log"),
        release_namespace,
        "another-lease",
        Some(watched),
    );
    eventually("the Lease requests are forbidden", true, || async {
        std::fs::read_to_string(&refused.log)
            .unwrap_or_default()
            .lines()
            .any(|line| line.contains("lease") && line.contains("forbidden"))
    })
    .await;
    assert!(
        !leads(&refused).await,
        "the operator leads without the Lease rule"
    );
    drop(refused);
    drop(cluster);
}
