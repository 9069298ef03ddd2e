//! `helm lint`, `helm template` with every option, and the values schema.

use std::path::Path;

use serde_json::{Value, json};

use apikey_operator_test_support::envtest;

use super::{FULLNAME, OPTION_SETS, RELEASE, chart_dir, find, kinds, render, run_helm, template, with_sets};

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
    // namespace), metrics Service, PDB, the view/edit/admin roles for people (user_roles.rs);
    // no credential store, no monitor.
    let objects = render(ns, &[]);
    assert_eq!(
        kinds(&objects),
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
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
    let crds = envtest::parse_documents(&with_crds)
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

/// The chart conventions: `commonLabels` on every object, `podLabels`/`podAnnotations`,
/// `extraArgs`, `extraEnv` and `topologySpreadConstraints` on the operator pod.
const CONVENTIONS: &[&str] = &[
    "commonLabels.team=payments",
    "commonLabels.example\\.com/cost-center=cc-42",
    "podLabels.tier=control",
    "podAnnotations.example\\.com/owner=platform",
    "extraArgs[0]=--concurrency=4",
    "extraEnv[0].name=APIKEY_OPERATOR_UNUSED_AFTER",
    "extraEnv[0].value=168h",
    "extraEnv[1].name=HTTPS_PROXY",
    "extraEnv[1].valueFrom.configMapKeyRef.name=proxy",
    "extraEnv[1].valueFrom.configMapKeyRef.key=https",
    "topologySpreadConstraints[0].maxSkew=1",
    "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
    "topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
    "topologySpreadConstraints[1].maxSkew=1",
    "topologySpreadConstraints[1].topologyKey=kubernetes.io/hostname",
    "topologySpreadConstraints[1].whenUnsatisfiable=DoNotSchedule",
    "topologySpreadConstraints[1].labelSelector.matchLabels.app\\.kubernetes\\.io/component=operator",
    "replicas=2",
    "credstore.enabled=true",
    "metrics.serviceMonitor.enabled=true",
];

#[test]
fn common_labels_extra_args_env_and_spread_constraints_land_where_they_belong() {
    let objects = render("apikey-system", CONVENTIONS);
    // Every object, and both pod templates, carry the common labels next to the chart's.
    for object in &objects {
        let name = format!(
            "{}/{}",
            object["kind"].as_str().unwrap(),
            object["metadata"]["name"]
        );
        let mut label_sets = vec![("metadata", &object["metadata"]["labels"])];
        if object["kind"] == "Deployment" {
            label_sets.push(("pod template", &object["spec"]["template"]["metadata"]["labels"]));
        }
        for (what, labels) in label_sets {
            assert_eq!(labels["team"], "payments", "{name} ({what}): {labels}");
            assert_eq!(
                labels["example.com/cost-center"], "cc-42",
                "{name} ({what}): {labels}"
            );
            assert!(
                labels["app.kubernetes.io/name"].is_string(),
                "{name} ({what}): {labels}"
            );
        }
    }
    assert!(
        kinds(&objects).len() >= 14,
        "every template rendered: {:?}",
        kinds(&objects)
    );
    let deployment = find(&objects, "Deployment", FULLNAME);
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    assert_eq!(
        selector,
        &json!({"app.kubernetes.io/name": "apikey-operator", "app.kubernetes.io/instance": RELEASE,
                "app.kubernetes.io/component": "operator"}),
        "selectors (immutable) never get the common labels"
    );
    let store = find(&objects, "Deployment", &format!("{FULLNAME}-credstore"));
    assert!(store["spec"]["selector"]["matchLabels"].get("team").is_none());

    let pod = &deployment["spec"]["template"];
    assert_eq!(pod["metadata"]["labels"]["tier"], "control");
    assert_eq!(pod["metadata"]["annotations"]["example.com/owner"], "platform");
    assert_eq!(
        pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"],
        "operator"
    );
    let container = &pod["spec"]["containers"][0];
    let args: Vec<String> = serde_json::from_value(container["args"].clone()).unwrap();
    assert_eq!(
        args.last().unwrap(),
        "--concurrency=4",
        "appended after the chart's: {args:?}"
    );
    assert_eq!(args[0], "run");
    let env = container["env"].as_array().unwrap();
    let names: Vec<&str> = env.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "POD_NAME",
            "POD_NAMESPACE",
            "RUST_LOG",
            "APIKEY_OPERATOR_UNUSED_AFTER",
            "HTTPS_PROXY"
        ],
        "the chart's variables, then extraEnv"
    );
    assert_eq!(
        env[3],
        json!({"name": "APIKEY_OPERATOR_UNUSED_AFTER", "value": "168h"})
    );
    assert_eq!(
        env[4],
        json!({"name": "HTTPS_PROXY", "valueFrom": {"configMapKeyRef": {"name": "proxy", "key": "https"}}})
    );
    let spread = pod["spec"]["topologySpreadConstraints"].as_array().unwrap();
    assert_eq!(spread.len(), 2);
    assert_eq!(
        spread[0],
        json!({"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
               "labelSelector": {"matchLabels": selector}}),
        "a constraint without a selector spreads the operator's own pods"
    );
    assert_eq!(
        spread[1]["labelSelector"],
        json!({"matchLabels": {"app.kubernetes.io/component": "operator"}}),
        "a constraint's own selector is kept"
    );
    // Options the operator pod only has.
    let store_pod = &store["spec"]["template"];
    assert!(store_pod["spec"].get("topologySpreadConstraints").is_none());
    assert!(store_pod["metadata"]["labels"].get("tier").is_none());
    assert_eq!(store_pod["spec"]["containers"][0]["args"][0], "credstore");

    // Defaults: none of it.
    let objects = render("apikey-system", &[]);
    let pod = &find(&objects, "Deployment", FULLNAME)["spec"]["template"];
    assert!(pod["spec"].get("topologySpreadConstraints").is_none());
    assert_eq!(
        pod["spec"]["containers"][0]["env"].as_array().unwrap().len(),
        3,
        "POD_NAME, POD_NAMESPACE, RUST_LOG"
    );
    assert!(
        objects
            .iter()
            .all(|o| o["metadata"]["labels"].get("team").is_none())
    );

    // podLabels over commonLabels on the pod (one key once), the selector's labels over both.
    let objects = render(
        "apikey-system",
        &[
            "commonLabels.team=payments",
            "podLabels.team=checkout",
            "podLabels.app\\.kubernetes\\.io/component=not-the-operator",
        ],
    );
    let deployment = find(&objects, "Deployment", FULLNAME);
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_eq!(pod_labels["team"], "checkout");
    assert_eq!(pod_labels["app.kubernetes.io/component"], "operator");
    assert_eq!(deployment["metadata"]["labels"]["team"], "payments");
    let yaml = template(
        "apikey-system",
        &["commonLabels.team=payments", "podLabels.team=checkout"],
    )
    .unwrap();
    let pod_template = yaml.split("template:").nth(1).unwrap();
    assert_eq!(
        pod_template
            .split("spec:")
            .next()
            .unwrap()
            .matches("team:")
            .count(),
        1,
        "no duplicate key in the pod's labels"
    );
}

#[test]
fn the_values_schema_refuses_bad_conventions() {
    let bad: &[(&[&str], &str)] = &[
        (&["commonLabels.app\\.kubernetes\\.io/name=mine"], "propertyName"),
        (&["commonLabels.helm\\.sh/chart=mine"], "propertyName"),
        (&["commonLabels.team=not a label value"], "commonLabels"),
        (&["extraArgs[0]="], "extraArgs"),
        (&["extraEnv[0].value=x"], "name"),
        (
            &["extraEnv[0].name=RUST_LOG", "extraEnv[0].value=debug"],
            "extraEnv/0/name",
        ),
        (
            &["extraEnv[0].name=POD_NAME", "extraEnv[0].value=x"],
            "extraEnv/0/name",
        ),
        (&["extraEnv[0].name=A", "extraEnv[0].values=x"], "values"),
        (&["topologySpreadConstraints[0].maxSkew=1"], "topologyKey"),
        (
            &[
                "topologySpreadConstraints[0].maxSkew=0",
                "topologySpreadConstraints[0].topologyKey=zone",
                "topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
            ],
            "maxSkew",
        ),
        (
            &[
                "topologySpreadConstraints[0].maxSkew=1",
                "topologySpreadConstraints[0].topologyKey=zone",
                "topologySpreadConstraints[0].whenUnsatisfiable=Sometimes",
            ],
            "whenUnsatisfiable",
        ),
        (&["rbac.aggregateToUserRoles=yes"], "aggregateToUserRoles"),
    ];
    for (sets, mentions) in bad {
        let error = template("apikey-system", sets).expect_err(&format!("{sets:?} was accepted"));
        assert!(
            error.contains("schema") && error.contains(mentions),
            "{sets:?}: the error should name {mentions}: {error}"
        );
    }
}

#[tokio::test]
async fn the_conventions_render_is_accepted_by_the_api_server() {
    // The rendered EnvVars, spread constraints and labels are what the API server accepts
    // (a dry run: nothing is created; the ServiceMonitor needs its CRD, install.rs has it).
    let client = envtest::client().await;
    let namespace = envtest::namespace(&client, "chart-conventions").await;
    let mut sets: Vec<String> = CONVENTIONS
        .iter()
        .filter(|s| !s.starts_with("metrics.serviceMonitor"))
        .map(|s| s.to_string())
        .collect();
    sets.push(format!("fullnameOverride={namespace}"));
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    for object in render(&namespace, &sets) {
        super::apply(&client, &object, true)
            .await
            .unwrap_or_else(|e| panic!("{} {} refused: {e}", object["kind"], object["metadata"]["name"]));
    }
}
