//! The roles for people (`templates/user-roles.yaml`, `rbac.aggregateToUserRoles`):
//! ClusterRoles `<fullname>-view`, `-edit` and `-admin`, labelled for aggregation into the
//! built-in `view`, `edit` and `admin` roles.
//!
//! The test control plane runs no kube-controller-manager, so nothing aggregates them.
//! Each role holds all of its rules itself, so binding a rendered role directly to a user
//! grants exactly what aggregation adds to the built-in role: each is bound to its own user
//! with a RoleBinding in a test namespace (how `view`/`edit`/`admin` are granted to teams)
//! and with a ClusterRoleBinding (the only way cluster-scoped rules take effect). The API
//! server's authorizer answers a SubjectAccessReview for every cell of the table verb ×
//! resource × subject, which is asserted against the table below, and real requests made as
//! those users (impersonation) show that the answers hold.

use apikey_operator::api::{ApiToken, ClusterCredentialStore, CredentialStore};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use apikey_operator_test_support::envtest;
use apikey_operator_test_support::fixtures::eventually;

use super::{apply, find, render};

/// The verbs of the table, with the letters the expectations below use for them.
const VERBS: [(char, &str); 8] = [
    ('g', "get"),
    ('l', "list"),
    ('w', "watch"),
    ('c', "create"),
    ('u', "update"),
    ('p', "patch"),
    ('d', "delete"),
    ('D', "deletecollection"),
];

/// The subjects (columns): user `<namespace>-<column>` bound to the role, or nobody.
#[derive(Clone, Copy)]
struct Subject {
    column: &'static str,
    role: Option<&'static str>,
    cluster_wide: bool,
}

const fn subject(column: &'static str, role: Option<&'static str>, cluster_wide: bool) -> Subject {
    Subject {
        column,
        role,
        cluster_wide,
    }
}

const SUBJECTS: [Subject; 7] = [
    subject("view", Some("view"), false),
    subject("edit", Some("edit"), false),
    subject("admin", Some("admin"), false),
    subject("view@cluster", Some("view"), true),
    subject("edit@cluster", Some("edit"), true),
    subject("admin@cluster", Some("admin"), true),
    subject("nobody", None, false),
];

/// Where a row's request is made.
#[derive(Clone, Copy, PartialEq)]
enum Scope {
    /// The test namespace, where the RoleBindings are.
    Here,
    /// Another namespace.
    Elsewhere,
    /// Cluster-scoped.
    Cluster,
}

/// The expected table: per row (API group, resource, scope), the verbs each subject of
/// [`SUBJECTS`] may use, in [`VERBS`] letters; every verb not listed is denied.
/// - Everyone bound reads the key kinds and the stores; edit and admin write the key kinds;
///   only admin writes CredentialStores.
/// - Nobody touches a status subresource, writes ClusterCredentialStores or reads Secrets.
/// - A RoleBinding grants nothing in other namespaces and nothing cluster-scoped: reading
///   ClusterCredentialStores takes a ClusterRoleBinding.
#[rustfmt::skip]
const EXPECTED: &[(&str, &str, Scope, [&str; 7])] = &[
    //                                                      view   edit        admin       view@cluster edit@cluster admin@cluster nobody
    ("apikeys.dev", "apitokens",                      Scope::Here,      ["glw", "glwcupdD", "glwcupdD", "glw", "glwcupdD", "glwcupdD", ""]),
    ("apikeys.dev", "apiclients",                     Scope::Here,      ["glw", "glwcupdD", "glwcupdD", "glw", "glwcupdD", "glwcupdD", ""]),
    ("apikeys.dev", "serviceaccountkeys",             Scope::Here,      ["glw", "glwcupdD", "glwcupdD", "glw", "glwcupdD", "glwcupdD", ""]),
    ("apikeys.dev", "credentialstores",               Scope::Here,      ["glw", "glw",      "glwcupdD", "glw", "glw",      "glwcupdD", ""]),
    ("apikeys.dev", "apitokens/status",               Scope::Here,      ["",    "",         "",         "",    "",         "",         ""]),
    ("apikeys.dev", "apiclients/status",              Scope::Here,      ["",    "",         "",         "",    "",         "",         ""]),
    ("apikeys.dev", "serviceaccountkeys/status",      Scope::Here,      ["",    "",         "",         "",    "",         "",         ""]),
    ("apikeys.dev", "credentialstores/status",        Scope::Here,      ["",    "",         "",         "",    "",         "",         ""]),
    ("apikeys.dev", "apitokens",                      Scope::Elsewhere, ["",    "",         "",         "glw", "glwcupdD", "glwcupdD", ""]),
    ("apikeys.dev", "credentialstores",               Scope::Elsewhere, ["",    "",         "",         "glw", "glw",      "glwcupdD", ""]),
    ("apikeys.dev", "clustercredentialstores",        Scope::Cluster,   ["",    "",         "",         "glw", "glw",      "glw",      ""]),
    ("apikeys.dev", "clustercredentialstores/status", Scope::Cluster,   ["",    "",         "",         "",    "",         "",         ""]),
    ("",            "secrets",                        Scope::Here,      ["",    "",         "",         "",    "",         "",         ""]),
];

/// A namespace no RoleBinding of the test is in (it need not exist for an access review).
const ELSEWHERE: &str = "user-roles-elsewhere";

fn user(namespace: &str, subject: &Subject) -> String {
    format!("{namespace}-{}", subject.column)
}

/// One measured row of the table: resource, where, verb, and per subject of [`SUBJECTS`]
/// (allowed, expected).
type Measured = (&'static str, Scope, &'static str, Vec<(bool, bool)>);

/// The API server's answer to whether `user` may `verb` `resource` (`group`, optionally
/// `resource/subresource`) in `namespace`.
async fn allowed(
    admin: &Client,
    user: &str,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> bool {
    let (resource, subresource) = match resource.split_once('/') {
        Some((resource, sub)) => (resource, Some(sub.to_string())),
        None => (resource, None),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            // What every authenticated (and every impersonated) user has.
            groups: Some(vec!["system:authenticated".into()]),
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
    let answer = Api::<SubjectAccessReview>::all(admin.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("the SubjectAccessReview is answered");
    answer.status.expect("a review status").allowed
}

/// A client acting as `user` (the test's admin may impersonate anyone).
async fn client_as(user: String) -> Client {
    let mut config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&envtest::control_plane().kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    config.auth_info.impersonate = Some(user);
    Client::try_from(config).unwrap()
}

/// Fails unless `result` is a 403 Forbidden.
fn assert_forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

fn object<K: DeserializeOwned>(manifest: Value) -> K {
    serde_json::from_value(manifest).unwrap()
}

fn api_token(name: &str) -> ApiToken {
    object(json!({
        "apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiToken", "metadata": {"name": name},
        "spec": {"storeRef": {"name": "none"}, "scope": "account"},
    }))
}

fn credential_store(name: &str) -> CredentialStore {
    object(json!({
        "apiVersion": "apikeys.dev/v1alpha1", "kind": "CredentialStore", "metadata": {"name": name},
        "spec": {"prefactor": {"url": "http://127.0.0.1:9", "credentialsSecretRef": {"name": "none"}}},
    }))
}

fn cluster_store(name: &str, namespace: &str) -> ClusterCredentialStore {
    object(json!({
        "apiVersion": "apikeys.dev/v1alpha1", "kind": "ClusterCredentialStore", "metadata": {"name": name},
        "spec": {
            "prefactor": {"url": "http://127.0.0.1:9", "credentialsSecretRef": {"name": "none", "namespace": namespace}},
            "allowedNamespaces": [namespace],
        },
    }))
}

fn rules_of(role: &Value) -> Vec<Value> {
    role["rules"].as_array().cloned().unwrap_or_default()
}

fn strings(value: &Value) -> Vec<String> {
    serde_json::from_value(value.clone()).unwrap()
}

#[test]
fn the_user_roles_carry_the_aggregation_labels_and_no_status_or_wildcard_rule() {
    let objects = render("apikey-system", &[]);
    let fullname = super::FULLNAME;
    for role in ["view", "edit", "admin"] {
        let cluster_role = find(&objects, "ClusterRole", &format!("{fullname}-{role}"));
        let labels = cluster_role["metadata"]["labels"].as_object().unwrap();
        let aggregation: Vec<(&String, &Value)> = labels
            .iter()
            .filter(|(key, _)| key.starts_with("rbac.authorization.k8s.io/aggregate-to-"))
            .collect();
        assert_eq!(
            aggregation,
            [(
                &format!("rbac.authorization.k8s.io/aggregate-to-{role}"),
                &json!("true")
            )],
            "{role}: exactly its own aggregation label"
        );
        assert!(cluster_role.get("aggregationRule").is_none());
        for rule in rules_of(cluster_role) {
            assert_eq!(strings(&rule["apiGroups"]), ["apikeys.dev"], "{role}: {rule}");
            for resource in strings(&rule["resources"]) {
                assert!(
                    !resource.contains('*') && !resource.contains('/'),
                    "{role} grants {resource}: no wildcard, no subresource"
                );
            }
            for verb in strings(&rule["verbs"]) {
                assert!(
                    VERBS.iter().any(|(_, known)| *known == verb),
                    "{role} grants verb {verb}"
                );
            }
            assert!(rule.get("resourceNames").is_none() && rule.get("nonResourceURLs").is_none());
            if strings(&rule["resources"]).contains(&"clustercredentialstores".to_string()) {
                assert_eq!(
                    strings(&rule["verbs"]),
                    ["get", "list", "watch"],
                    "{role}: ClusterCredentialStores are read-only"
                );
            }
        }
    }
    let names = |objects: &[Value]| -> Vec<String> {
        objects
            .iter()
            .filter(|o| o["kind"] == "ClusterRole")
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&objects).len(), 4, "the operator's and three for people");
    // Off when asked, without chart RBAC, and in a namespaced install (nothing cluster-wide).
    for sets in [
        &["rbac.aggregateToUserRoles=false"][..],
        &["rbac.create=false"][..],
        &["watch.namespaced=true"][..],
    ] {
        let objects = render("apikey-system", sets);
        assert!(
            !names(&objects)
                .iter()
                .any(|n| n.ends_with("-view") || n.ends_with("-edit") || n.ends_with("-admin")),
            "{sets:?}: {:?}",
            names(&objects)
        );
    }
}

#[tokio::test]
async fn the_user_roles_grant_people_the_key_kinds_but_never_status_or_cluster_stores() {
    let admin = envtest::client().await;
    let namespace = envtest::namespace(&admin, "user-roles").await;
    // Cluster-scoped names of this test's own (the namespace is unique).
    let fullname = namespace.clone();
    let objects = render(&namespace, &[&format!("fullnameOverride={fullname}")]);
    for role in ["view", "edit", "admin"] {
        apply(
            &admin,
            find(&objects, "ClusterRole", &format!("{fullname}-{role}")),
            false,
        )
        .await
        .unwrap_or_else(|e| panic!("ClusterRole {role} refused: {e}"));
    }
    for subject in SUBJECTS.iter() {
        let Some(role) = subject.role else { continue };
        let user = user(&namespace, subject);
        let binding = json!({
            "metadata": {"name": user},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": format!("{fullname}-{role}")},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        });
        if subject.cluster_wide {
            Api::<ClusterRoleBinding>::all(admin.clone())
                .create(&PostParams::default(), &object(binding))
                .await
                .unwrap();
        } else {
            Api::<RoleBinding>::namespaced(admin.clone(), &namespace)
                .create(&PostParams::default(), &object(binding))
                .await
                .unwrap();
        }
        // The authorizer sees bindings through a cache: wait for this one.
        eventually(&format!("{user} is bound"), true, || {
            allowed(&admin, &user, "get", "apikeys.dev", "apitokens", Some(&namespace))
        })
        .await;
    }

    // The whole table, measured.
    let mut measured = Vec::new();
    let mut mismatches = Vec::new();
    for (group, resource, scope, expected) in EXPECTED {
        let at = match scope {
            Scope::Here => Some(namespace.as_str()),
            Scope::Elsewhere => Some(ELSEWHERE),
            Scope::Cluster => None,
        };
        for (letter, verb) in VERBS {
            let mut row = Vec::new();
            for (subject, expected) in SUBJECTS.iter().zip(expected) {
                let got = allowed(&admin, &user(&namespace, subject), verb, group, resource, at).await;
                let want = expected.contains(letter);
                if got != want {
                    mismatches.push(format!(
                        "{} {verb} {resource} ({}): {} but expected {}",
                        subject.column,
                        at.unwrap_or("cluster"),
                        if got { "allowed" } else { "denied" },
                        if want { "allowed" } else { "denied" },
                    ));
                }
                row.push((got, want));
            }
            measured.push((*resource, *scope, verb, row));
        }
    }
    print_table(&measured);
    assert!(
        mismatches.is_empty(),
        "{} cells differ from the expected table:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );

    // Real requests, as those users.
    let as_user = |column: &str| {
        let subject = SUBJECTS.iter().find(|s| s.column == column).unwrap();
        client_as(user(&namespace, subject))
    };
    let (view, edit, admin_user) = (
        as_user("view").await,
        as_user("edit").await,
        as_user("admin").await,
    );
    let edit_cluster = as_user("edit@cluster").await;
    let post = PostParams::default();

    // view reads, and writes nothing.
    let tokens_as_view: Api<ApiToken> = Api::namespaced(view.clone(), &namespace);
    tokens_as_view
        .list(&ListParams::default())
        .await
        .expect("view lists ApiTokens");
    assert_forbidden(
        tokens_as_view.create(&post, &api_token("by-view")).await,
        "view creates an ApiToken",
    );
    assert_forbidden(
        Api::<ClusterCredentialStore>::all(view.clone())
            .list(&ListParams::default())
            .await,
        "view (RoleBinding) lists ClusterCredentialStores",
    );

    // edit creates and changes keys, but not their status, and no store.
    let tokens_as_edit: Api<ApiToken> = Api::namespaced(edit.clone(), &namespace);
    tokens_as_edit
        .create(&post, &api_token("by-edit"))
        .await
        .expect("edit creates an ApiToken");
    tokens_as_edit
        .patch(
            "by-edit",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"state": "Suspended"}})),
        )
        .await
        .expect("edit patches an ApiToken's spec");
    assert_forbidden(
        tokens_as_edit
            .patch_status(
                "by-edit",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"observedGeneration": 1}})),
            )
            .await,
        "edit patches an ApiToken's status",
    );
    assert_forbidden(
        Api::<CredentialStore>::namespaced(edit.clone(), &namespace)
            .create(&post, &credential_store("by-edit"))
            .await,
        "edit creates a CredentialStore",
    );

    // admin manages the namespace's CredentialStores, but not their status.
    let stores_as_admin: Api<CredentialStore> = Api::namespaced(admin_user.clone(), &namespace);
    stores_as_admin
        .create(&post, &credential_store("by-admin"))
        .await
        .expect("admin creates a CredentialStore");
    assert_forbidden(
        stores_as_admin
            .patch_status(
                "by-admin",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"observedGeneration": 1}})),
            )
            .await,
        "admin patches a CredentialStore's status",
    );
    stores_as_admin
        .delete("by-admin", &Default::default())
        .await
        .expect("admin deletes a CredentialStore");

    // ClusterCredentialStores: edit bound cluster-wide reads them, and nobody writes one —
    // though the object is valid (the cluster admin's dry run is accepted).
    Api::<ClusterCredentialStore>::all(edit_cluster.clone())
        .list(&ListParams::default())
        .await
        .expect("edit@cluster lists ClusterCredentialStores");
    let store = cluster_store(&format!("{namespace}-by-people"), &namespace);
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    Api::<ClusterCredentialStore>::all(admin.clone())
        .create(&dry_run, &store)
        .await
        .expect("the ClusterCredentialStore is valid");
    for subject in SUBJECTS.iter() {
        let client = client_as(user(&namespace, subject)).await;
        assert_forbidden(
            Api::<ClusterCredentialStore>::all(client)
                .create(&post, &store)
                .await,
            &format!("{} creates a ClusterCredentialStore", subject.column),
        );
    }

    tokens_as_edit
        .delete("by-edit", &Default::default())
        .await
        .expect("edit deletes an ApiToken");
    for subject in SUBJECTS.iter().filter(|s| s.cluster_wide) {
        let _ = Api::<ClusterRoleBinding>::all(admin.clone())
            .delete(&user(&namespace, subject), &Default::default())
            .await;
    }
}

/// Prints the measured table: one row per resource and verb, one column per subject;
/// `allow`/`-`, and `!` where the cell differs from the expectation.
fn print_table(measured: &[Measured]) {
    let mut out = format!("{:<58}", "resource (where) verb");
    for subject in SUBJECTS.iter() {
        out.push_str(&format!(" {:>13}", subject.column));
    }
    out.push('\n');
    for (resource, scope, verb, row) in measured {
        let where_ = match scope {
            Scope::Here => "",
            Scope::Elsewhere => " (other ns)",
            Scope::Cluster => " (cluster)",
        };
        out.push_str(&format!("{:<58}", format!("{resource}{where_} {verb}")));
        for (got, want) in row {
            let cell = match (got, got == want) {
                (true, true) => "allow",
                (false, true) => "-",
                (true, false) => "allow!",
                (false, false) => "deny!",
            };
            out.push_str(&format!(" {cell:>13}"));
        }
        out.push('\n');
    }
    println!("{out}");
}
