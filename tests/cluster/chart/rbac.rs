//! The RBAC proof: the operator, authenticated as the chart's ServiceAccount with exactly
//! the chart's rules, is granted no more than it needs, and enough for a whole ApiToken
//! lifecycle.

use std::path::{Path, PathBuf};

use apikey_operator::api::ApiToken;
use apikey_operator::localcluster::LocalCluster;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;

use apikey_operator_test_support::envtest;
use apikey_operator_test_support::fixtures::{self, eventually};
use apikey_operator_test_support::processes;

use super::lifecycle::api_token_lifecycle;
use super::operator::{leads, scrape, spawn_operator, start_operator};
use super::{FULLNAME, apply, create_namespace, render};

/// A control plane of the test's own: a cluster-wide operator must not reconcile the other
/// tests' objects (the shared operator does that).
async fn own_control_plane(name: &str) -> (LocalCluster, PathBuf) {
    let assets = envtest::control_plane().assets.clone();
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
        ("list", "apps", "deployments", Some("team")),
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
