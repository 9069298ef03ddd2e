use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;

use crate::support;

#[tokio::test]
async fn every_crd_is_established() {
    let client = support::client().await;
    let api: Api<CustomResourceDefinition> = Api::all(client);
    for crd in apikey_operator::api::crds() {
        let name = crd.metadata.name.unwrap();
        let live = api.get(&name).await.unwrap_or_else(|e| panic!("{name} is not installed: {e}"));
        let conditions = live.status.and_then(|s| s.conditions).unwrap_or_default();
        for wanted in ["Established", "NamesAccepted"] {
            let condition = conditions.iter().find(|c| c.type_ == wanted);
            assert_eq!(condition.map(|c| c.status.as_str()), Some("True"), "{name}: {wanted} is {condition:?}");
        }
    }
}
