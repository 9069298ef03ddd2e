//! The generated files in the repository match what the code generates.

use std::path::Path;

#[test]
fn crds_directory_matches_the_rust_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let crds = apikey_operator::api::crds();
    for crd in &crds {
        let file = dir.join(apikey_operator::api::crd_file_name(crd));
        let on_disk = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e}; run `make crds`", file.display()));
        let generated = apikey_operator::api::crd_yaml(crd).unwrap();
        assert!(
            on_disk == generated,
            "{} is out of date; run `make crds`",
            file.display()
        );
    }
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(
        files,
        crds.len(),
        "crds/ holds files for kinds that no longer exist"
    );
}

#[test]
fn crd_subcommand_prints_every_crd_as_one_stream() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_apikey-operator"))
        .arg("crd")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout, apikey_operator::api::crds_yaml().unwrap());
    let names: Vec<String> = serde_yaml::Deserializer::from_str(&stdout)
        .map(|doc| {
            let value = <serde_yaml::Value as serde::Deserialize>::deserialize(doc).unwrap();
            value["metadata"]["name"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        names,
        [
            "credentialstores.apikeys.dev",
            "clustercredentialstores.apikeys.dev",
            "apiclients.apikeys.dev",
            "apitokens.apikeys.dev",
            "serviceaccountkeys.apikeys.dev",
        ]
    );
}

#[test]
fn the_helm_chart_ships_the_same_crds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chart = root.join("charts/apikey-operator/crds");
    let names = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}; run `make crds`", dir.display()))
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(&chart),
        names(&root.join("crds")),
        "charts/apikey-operator/crds/ holds other files than crds/; run `make crds`"
    );
    for crd in apikey_operator::api::crds() {
        let file = chart.join(apikey_operator::api::crd_file_name(&crd));
        let in_chart = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e}; run `make crds`", file.display()));
        assert!(
            in_chart == apikey_operator::api::crd_yaml(&crd).unwrap(),
            "{} differs from the generated CRD; run `make crds`",
            file.display()
        );
    }
}

#[test]
fn argocd_cm_snippet_carries_the_health_script_for_every_kind() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/argocd");
    let script = std::fs::read_to_string(dir.join("health.lua")).unwrap();
    let snippet: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("argocd-cm.yaml")).unwrap()).unwrap();
    for crd in apikey_operator::api::crds() {
        let key = format!(
            "resource.customizations.health.{}_{}",
            crd.spec.group, crd.spec.names.kind
        );
        assert_eq!(
            snippet["data"][key.as_str()].as_str(),
            Some(script.as_str()),
            "deploy/argocd/argocd-cm.yaml: {key} must be deploy/argocd/health.lua verbatim"
        );
    }
}

#[test]
fn reference_pages_match_the_crd_schema() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reference");
    let crds = apikey_operator::api::crds();
    for crd in &crds {
        let file = dir.join(apikey_operator::api::reference::file_name(crd));
        let on_disk = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e}; run `make docs`", file.display()));
        assert!(
            on_disk == apikey_operator::api::reference::markdown(crd),
            "{} is out of date; run `make docs`",
            file.display()
        );
    }
    let pages = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(
        pages,
        crds.len(),
        "docs/reference/ holds pages for kinds that no longer exist"
    );
}
