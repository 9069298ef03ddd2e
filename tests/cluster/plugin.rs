//! `kubectl apikeys` end to end: the plugin binary against the real API server, the
//! operator process and the credential store, with KUBECONFIG as a user would have it.

use std::path::Path;
use std::process::Stdio;

use apikey_operator::api::ApiToken;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::Api;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use apikey_operator_test_support::envtest;
use apikey_operator_test_support::fixtures::{TokenSetup, is_ready, merge, ping, wait_for};

/// What one run of the plugin printed.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts a failure reported as exactly one line on stderr that contains `needle`.
    fn assert_one_line_error(&self, needle: &str) {
        assert!(!self.success, "expected a failure, got: {}", self.stdout);
        assert_eq!(
            self.stderr.lines().count(),
            1,
            "one line on stderr: {:?}",
            self.stderr
        );
        assert!(
            self.stderr.starts_with("error: ") && self.stderr.contains(needle),
            "stderr names the problem ({needle}): {:?}",
            self.stderr
        );
    }
}

/// Runs `kubectl-apikeys` with `args` against `kubeconfig`, feeding `stdin`.
async fn plugin_with(kubeconfig: &Path, args: &[&str], stdin: &str) -> Run {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-apikeys"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the plugin starts");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let output = child.wait_with_output().await.unwrap();
    Run {
        success: output.status.success(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

async fn plugin(args: &[&str]) -> Run {
    plugin_with(&envtest::control_plane().kubeconfig, args, "").await
}

#[tokio::test]
async fn status_rotate_and_describe_an_api_token() {
    let s = TokenSetup::new("plugin").await;
    s.ready_token(
        "billing",
        json!({"rotation": {"retainPrevious": "1h", "interval": "720h"}}),
    )
    .await;
    let old = s.secret_token("billing").await;

    let status = plugin(&["status", "-n", &s.namespace]).await;
    assert!(status.success, "{}", status.stderr);
    let header = status.stdout.lines().next().unwrap();
    for column in [
        "KIND/NAME",
        "READY",
        "UPSTREAM",
        "SECRET",
        "EXPIRES",
        "NEXT ROTATION",
        "LAST USED",
        "REASON",
    ] {
        assert!(header.contains(column), "{header}");
    }
    let row = status
        .stdout
        .lines()
        .find(|l| l.starts_with("apitoken/billing "))
        .unwrap_or_else(|| panic!("no row for the token:\n{}", status.stdout));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[1..4], ["True", "active", "billing"], "{row}");

    let all = plugin(&["status", "-A"]).await;
    assert!(all.success, "{}", all.stderr);
    assert!(all.stdout.starts_with("NAMESPACE"), "{}", all.stdout);
    assert!(
        all.stdout
            .lines()
            .any(|l| l.starts_with(&s.namespace) && l.contains("apitoken/billing")),
        "{}",
        all.stdout
    );

    let rotated = plugin(&["rotate", "apitoken/billing", "-n", &s.namespace]).await;
    assert!(rotated.success, "{}", rotated.stderr);
    assert!(
        rotated
            .stdout
            .starts_with("apitoken/billing rotated (rotation 1): Secret billing now holds"),
        "{}",
        rotated.stdout
    );
    assert!(
        rotated.stdout.contains("stays valid until"),
        "the overlap is reported: {}",
        rotated.stdout
    );
    let token = s.tokens.get("billing").await.unwrap();
    assert_eq!(
        token.status.as_ref().unwrap().rotation_count,
        Some(1),
        "the plugin waited for the rotation"
    );
    let new = s.secret_token("billing").await;
    assert_ne!(new, old);
    assert_eq!(
        ping(s.credstore, &old).await,
        200,
        "retainPrevious still applies to a plain rotate"
    );

    let described = plugin(&["describe", "apitokens/billing", "-n", &s.namespace]).await;
    assert!(described.success, "{}", described.stderr);
    let text = &described.stdout;
    for needle in [
        "Conditions:",
        "StoreReady",
        "Rotation history",
        "Events:",
        "\nRotations:        1\n",
        "before each 720h interval ends (keys spread over the last 10% of it, by UID)",
    ] {
        assert!(text.contains(needle), "describe shows {needle}:\n{text}");
    }
    let history = &text[text.find("Rotation history").unwrap()..text.find("\nEvents:").unwrap()];
    let created = history.find("Created").expect("creation in the history");
    let rotated_at = history.find("Rotated").expect("rotation in the history");
    assert!(created < rotated_at, "the history is in order:\n{history}");
    for output in [&status.stdout, &rotated.stdout, text] {
        assert!(
            !output.contains(&old) && !output.contains(&new),
            "the plugin never prints a secret"
        );
    }

    let no_wait = plugin(&["rotate", "apitoken/billing", "-n", &s.namespace, "--no-wait"]).await;
    assert!(no_wait.success, "{}", no_wait.stderr);
    assert!(
        no_wait.stdout.contains("rotation requested"),
        "{}",
        no_wait.stdout
    );
    wait_for(&s.tokens, "billing", "the second rotation", |t: &ApiToken| {
        is_ready(t) && t.status.as_ref().and_then(|s| s.rotation_count) == Some(2)
    })
    .await;
}

#[tokio::test]
async fn compromised_rotates_without_overlap_restarts_consumers_and_records_the_report() {
    let s = TokenSetup::new("plugin-breakglass").await;
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "consumer"},
        "spec": {
            "selector": {"matchLabels": {"app": "consumer"}},
            "template": {"metadata": {"labels": {"app": "consumer"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
        },
    }))
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(s.client.clone(), &s.namespace);
    deployments
        .create(&Default::default(), &deployment)
        .await
        .unwrap();
    let before = s
        .ready_token(
            "leaked",
            json!({
                "rotation": {"retainPrevious": "1h"},
                "rolloutRestart": [{"kind": "Deployment", "name": "consumer"}],
            }),
        )
        .await;
    let old = s.secret_token("leaked").await;
    let kubeconfig = &envtest::control_plane().kubeconfig;

    let refused = plugin_with(
        kubeconfig,
        &["compromised", "apitoken/leaked", "-n", &s.namespace],
        "yes\n",
    )
    .await;
    assert!(!refused.success);
    let (prompt, error) = refused
        .stderr
        .trim_end()
        .rsplit_once('\n')
        .expect("a prompt, then the error");
    assert!(
        prompt.contains("WITHOUT overlap"),
        "the prompt says what happens: {prompt}"
    );
    assert_eq!(error, "error: not confirmed; nothing was changed");
    let untouched = s.tokens.get("leaked").await.unwrap();
    assert_eq!(
        untouched.metadata.annotations, before.metadata.annotations,
        "nothing changed"
    );

    let confirmed = plugin_with(
        kubeconfig,
        &["compromised", "apitoken/leaked", "-n", &s.namespace],
        "leaked\n",
    )
    .await;
    assert!(confirmed.success, "{}", confirmed.stderr);
    assert!(
        confirmed.stdout.contains("retired immediately"),
        "{}",
        confirmed.stdout
    );
    assert_eq!(
        ping(s.credstore, &old).await,
        401,
        "the compromised token is dead when the command returns"
    );
    let new = s.secret_token("leaked").await;
    assert_eq!(ping(s.credstore, &new).await, 200);
    let token = s.tokens.get("leaked").await.unwrap();
    let status = token.status.as_ref().unwrap();
    assert!(status.retiring.is_empty());
    let template = deployments
        .get("consumer")
        .await
        .unwrap()
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap();
    assert_eq!(
        template
            .annotations
            .unwrap_or_default()
            .get("apikeys.dev/restarted-for"),
        status.secret_fingerprint.as_ref(),
        "the consumer restarts with the new credential"
    );
    let events: Vec<Event> = Api::<Event>::namespaced(s.client.clone(), &s.namespace)
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("CompromisedReported")
                && e.type_.as_deref() == Some("Warning")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("leaked")),
        "the report is recorded as an event"
    );

    // A later ordinary rotation keeps its overlap: the report was one-shot.
    let rotated = plugin(&["rotate", "apitoken/leaked", "-n", &s.namespace]).await;
    assert!(rotated.success, "{}", rotated.stderr);
    assert_eq!(
        ping(s.credstore, &new).await,
        200,
        "the previous credential stays valid for retainPrevious again"
    );
}

#[tokio::test]
async fn errors_are_one_line_with_a_non_zero_exit() {
    let s = TokenSetup::new("plugin-errors").await;
    s.ready_token("present", json!({})).await;

    plugin(&["describe", "apitoken/absent", "-n", &s.namespace])
        .await
        .assert_one_line_error(&format!("apitoken/absent not found in namespace {}", s.namespace));
    plugin(&["rotate", "sakey/absent", "-n", &s.namespace])
        .await
        .assert_one_line_error("serviceaccountkey/absent not found");
    plugin(&["rotate", "secret/present", "-n", &s.namespace])
        .await
        .assert_one_line_error("unknown kind \"secret\"");
    plugin(&["describe", "present", "-n", &s.namespace])
        .await
        .assert_one_line_error("expected KIND/NAME");

    merge(
        &s.tokens,
        "present",
        json!({"metadata": {"annotations": {"apikeys.dev/paused": "true"}}}),
    )
    .await;
    plugin(&["rotate", "apitoken/present", "-n", &s.namespace])
        .await
        .assert_one_line_error("is paused");
    let paused = plugin(&["status", "-n", &s.namespace]).await;
    assert!(
        paused
            .stdout
            .lines()
            .any(|l| l.starts_with("apitoken/present") && l.contains("Paused")),
        "{}",
        paused.stdout
    );

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&envtest::control_plane().kubeconfig).unwrap())
            .unwrap();

    // No permission: the same credentials, impersonating a user without any RBAC binding.
    let mut nobody = kubeconfig.clone();
    for user in nobody["users"].as_sequence_mut().unwrap() {
        user["user"]["as"] = "nobody@example.com".into();
    }
    let nobody_path = dir.path().join("nobody");
    std::fs::write(&nobody_path, serde_yaml::to_string(&nobody).unwrap()).unwrap();
    plugin_with(&nobody_path, &["status", "-n", &s.namespace], "")
        .await
        .assert_one_line_error("forbidden: ");

    // No cluster: nothing listens where the kubeconfig points.
    let mut unreachable = kubeconfig;
    for cluster in unreachable["clusters"].as_sequence_mut().unwrap() {
        cluster["cluster"]["server"] = "https://127.0.0.1:1".into();
    }
    let unreachable_path = dir.path().join("unreachable");
    std::fs::write(&unreachable_path, serde_yaml::to_string(&unreachable).unwrap()).unwrap();
    plugin_with(&unreachable_path, &["status"], "")
        .await
        .assert_one_line_error("cannot reach the Kubernetes API");
    plugin_with(&dir.path().join("missing"), &["status"], "")
        .await
        .assert_one_line_error("no usable kubeconfig");
}

#[tokio::test]
async fn rotate_waits_for_the_previous_credential_to_retire_when_asked() {
    let s = TokenSetup::new("plugin-retired").await;
    s.ready_token("waited", json!({"rotation": {"retainPrevious": "3s"}}))
        .await;
    let old = s.secret_token("waited").await;
    let started = std::time::Instant::now();
    let rotated = plugin(&[
        "rotate",
        "apitoken/waited",
        "-n",
        &s.namespace,
        "--wait-retired",
        "--timeout",
        "60",
    ])
    .await;
    assert!(rotated.success, "{}", rotated.stderr);
    assert!(
        rotated.stdout.contains("the previous credential is retired"),
        "{}",
        rotated.stdout
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "it waited for retainPrevious (3s, of which status times keep whole seconds)"
    );
    assert_eq!(
        ping(s.credstore, &old).await,
        401,
        "retired when the command returns"
    );
}
