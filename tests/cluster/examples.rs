//! Every manifest in `examples/` is accepted by server-side apply, and the API server keeps
//! what was applied (no field of the applied spec is rewritten).

use std::path::Path;

use apikey_operator_test_support::envtest;

#[tokio::test]
async fn every_example_is_accepted_by_server_side_apply() {
    let client = envtest::client().await;
    let namespace = envtest::namespace(&client, "examples").await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut kinds_seen = std::collections::BTreeSet::new();
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
    {
        let yaml = std::fs::read_to_string(file).unwrap();
        let objects = envtest::parse_documents(&yaml);
        assert!(!objects.is_empty(), "{} holds no object", file.display());
        for object in objects {
            let kind = object.types.as_ref().unwrap().kind.clone();
            let name = object.metadata.name.clone().unwrap();
            let live = envtest::apply(&client, &object, &namespace)
                .await
                .unwrap_or_else(|e| panic!("{}: {kind}/{name} was refused: {e}", file.display()));
            assert_spec_kept(
                &object.data["spec"],
                &live.data["spec"],
                &format!("{kind}/{name}.spec"),
            );
            if object
                .types
                .as_ref()
                .unwrap()
                .api_version
                .starts_with("apikeys.dev/")
            {
                kinds_seen.insert(kind);
            }
        }
    }
    let expected = [
        "ApiClient",
        "ApiToken",
        "ClusterCredentialStore",
        "CredentialStore",
        "ServiceAccountKey",
    ];
    assert_eq!(
        kinds_seen.into_iter().collect::<Vec<_>>(),
        expected,
        "examples/ covers every apikeys.dev kind"
    );
}

/// Every field of `applied` is present in `live` with the same value (the API server may
/// add defaults, but must not change what the user wrote).
fn assert_spec_kept(applied: &serde_json::Value, live: &serde_json::Value, path: &str) {
    match (applied, live) {
        (serde_json::Value::Object(applied), serde_json::Value::Object(live)) => {
            for (key, value) in applied {
                let live_value = live
                    .get(key)
                    .unwrap_or_else(|| panic!("{path}.{key} was dropped"));
                assert_spec_kept(value, live_value, &format!("{path}.{key}"));
            }
        }
        (serde_json::Value::Array(applied), serde_json::Value::Array(live)) => {
            assert_eq!(applied.len(), live.len(), "{path} has another length");
            for (i, (applied, live)) in applied.iter().zip(live).enumerate() {
                assert_spec_kept(applied, live, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(applied, live, "{path} was changed"),
    }
}
