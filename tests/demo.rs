//! The README's demo command works: `apikey-operator demo --exit-after-ready` starts the
//! control plane, the credential store and the operator, applies `examples/`, and every
//! example becomes Ready.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn demo_converges_every_example() {
    let assets = std::env::var_os("KUBEBUILDER_ASSETS")
        .map(PathBuf::from)
        .expect("KUBEBUILDER_ASSETS is set (make test sets it): the demo needs a control plane");
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_apikey-operator"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["demo", "--exit-after-ready", "--timeout", "120s", "--dir"])
        .arg(dir.path().join("demo"))
        .arg("--assets")
        .arg(&assets)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the demo did not converge:\n{stdout}\n{stderr}"
    );
    for expected in [
        "apitoken.apikeys.dev/billing-api",
        "serviceaccountkey.apikeys.dev/training-pipeline",
        "serviceaccountkey.apikeys.dev/siem-export",
        "apiclient.apikeys.dev/cdn-purge",
        "billing-api-prefactor",
        "Warning events: none",
        "export KUBECONFIG=",
    ] {
        assert!(
            stdout.contains(expected),
            "the demo output lacks {expected}:\n{stdout}"
        );
    }
}
