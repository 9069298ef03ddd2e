//! `helm lint`, `helm template` with every option, and the values schema.

use std::path::Path;

use serde_json::{Value, json};

use crate::support;

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
