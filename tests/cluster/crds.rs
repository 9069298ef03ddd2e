use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;

use apikey_operator_test_support::envtest;

#[tokio::test]
async fn every_crd_is_established() {
    let client = envtest::client().await;
    let api: Api<CustomResourceDefinition> = Api::all(client);
    for crd in apikey_operator::api::crds() {
        let name = crd.metadata.name.unwrap();
        let live = api
            .get(&name)
            .await
            .unwrap_or_else(|e| panic!("{name} is not installed: {e}"));
        let conditions = live.status.and_then(|s| s.conditions).unwrap_or_default();
        for wanted in ["Established", "NamesAccepted"] {
            let condition = conditions.iter().find(|c| c.type_ == wanted);
            assert_eq!(
                condition.map(|c| c.status.as_str()),
                Some("True"),
                "{name}: {wanted} is {condition:?}"
            );
        }
    }
}

#[tokio::test]
async fn short_names_and_the_apikeys_category_are_served() {
    let client = envtest::client().await;
    let namespace = envtest::namespace(&client, "category").await;
    for manifest in [
        "apiVersion: apikeys.dev/v1alpha1\nkind: ApiToken\nmetadata: {name: cat-token}\nspec: {storeRef: {name: s}, scope: account}",
        "apiVersion: apikeys.dev/v1alpha1\nkind: ServiceAccountKey\nmetadata: {name: cat-key}\nspec: {storeRef: {name: s}, serviceAccount: sa}",
        "apiVersion: apikeys.dev/v1alpha1\nkind: ApiClient\nmetadata: {name: cat-client}\nspec: {storeRef: {name: s}, authorizedUsers: [u], apiAccess: {allAccessibleApis: true}, purgeOptions: {canPurgeByCacheTag: true, canPurgeByCpcode: true, cpcodeAccess: {allCurrentAndNewCpcodes: true}}, groupAccess: {cloneAuthorizedUserGroups: true}}",
    ] {
        let object = envtest::parse_documents(manifest).remove(0);
        envtest::apply(&client, &object, &namespace).await.unwrap();
    }

    let output = envtest::kubectl()
        .args(["get", "apikeys", "-A"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "kubectl get apikeys -A failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "apitoken.apikeys.dev/cat-token",
        "serviceaccountkey.apikeys.dev/cat-key",
        "apiclient.apikeys.dev/cat-client",
    ] {
        assert!(
            stdout.contains(expected),
            "`kubectl get apikeys -A` lacks {expected}:\n{stdout}"
        );
    }
    for column in ["READY", "UPSTREAM", "SECRET", "ROTATED", "AGE"] {
        assert!(
            stdout.contains(column),
            "`kubectl get apikeys -A` lacks column {column}:\n{stdout}"
        );
    }

    for short_name in ["apitoken", "sakey", "apiclient", "cstore", "ccstore"] {
        let output = envtest::kubectl()
            .args(["get", short_name, "-A"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "kubectl get {short_name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test]
async fn kubectl_explain_prints_the_doc_comments() {
    envtest::control_plane();
    let output = envtest::kubectl()
        .args(["explain", "apitoken.spec.state"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "kubectl explain failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("Revoked` is terminal"),
        "doc text missing:\n{stdout}"
    );
    assert!(stdout.contains("Suspended"), "enum values missing:\n{stdout}");

    let output = envtest::kubectl()
        .args(["explain", "serviceaccountkey.spec.rotation.retainPrevious"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("How long the previous credential stays valid upstream"),
        "doc text missing:\n{stdout}"
    );
}
