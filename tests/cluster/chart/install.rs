//! The rendered manifests applied to the real API server, and a helm release installed,
//! upgraded and uninstalled.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use apikey_operator_test_support::envtest;
use apikey_operator_test_support::fixtures::{self, eventually};

use super::{FULLNAME, OPTION_SETS, apply, chart_dir, create_namespace, find, render, run_helm, with_sets};

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

#[tokio::test]
async fn rendered_manifests_are_accepted_by_the_api_server_and_pods_meet_the_restricted_standard() {
    let client = envtest::client().await;
    install_service_monitor_crd(&client).await;
    let priority = json!({
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": {"name": "apikey-operator-test"}, "value": 1000,
    });
    apply(&client, &priority, false).await.unwrap();
    for (index, (name, sets)) in OPTION_SETS.iter().enumerate() {
        // Pods are admitted here only if they meet the `restricted` Pod Security Standard.
        let namespace = envtest::namespace(&client, &format!("chart-{index}")).await;
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
        let objects: Vec<Value> = envtest::parse_documents(&yaml)
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
    let namespace = envtest::namespace(&client, "chart-teeth").await;
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
    let client = envtest::client().await;
    let namespace = envtest::namespace(&client, "helm-release").await;
    let kubeconfig = envtest::control_plane().kubeconfig.display().to_string();
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
