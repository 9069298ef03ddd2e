//! The real binary: printed address, kill -9, restart on the same data.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use reqwest::Method;
use serde_json::json;

use apikey_operator_test_support::credstore::read_data_file;

fn spawn(data: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_apikey-operator"))
        .args(["credstore", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning the credstore");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("reading the address line");
    let addr = line
        .trim()
        .strip_prefix("credstore listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (child, format!("http://{addr}"))
}

#[tokio::test]
async fn state_survives_kill_9_and_bootstrap_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let http = reqwest::Client::new();

    let (mut first, base) = spawn(&data);
    let admin = read_data_file(&data, "prefactor.token");
    let ids_before = read_data_file(&data, "bootstrap.json");
    let created: serde_json::Value = http
        .request(Method::POST, format!("{base}/api/v1/api_token"))
        .bearer_auth(&admin)
        .json(&json!({"details": {"token_scope": "account"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().expect("token issued").to_owned();
    first.kill().unwrap();
    first.wait().unwrap();

    let (mut second, base) = spawn(&data);
    assert_eq!(
        read_data_file(&data, "prefactor.token"),
        admin,
        "bootstrap credentials are reused"
    );
    assert_eq!(read_data_file(&data, "bootstrap.json"), ids_before);
    let edgerc = read_data_file(&data, "akamai.edgerc");
    assert!(
        edgerc.contains(&format!("host = {}\n", base.trim_start_matches("http://"))),
        ".edgerc follows the new address: {edgerc:.40}"
    );
    for bearer in [&admin, &token] {
        let status = http
            .get(format!("{base}/api/v1/ping"))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    second.kill().unwrap();
    second.wait().unwrap();

    let database = std::fs::read(data.join("credstore.sqlite3")).unwrap();
    let wal = std::fs::read(data.join("credstore.sqlite3-wal")).unwrap_or_default();
    let edgerc = read_data_file(&data, "akamai.edgerc");
    let client_secret = edgerc
        .lines()
        .find_map(|l| l.strip_prefix("client_secret = "))
        .expect("client_secret")
        .to_owned();
    let secrets = [
        token,
        admin,
        read_data_file(&data, "trendmicro.secret-key"),
        read_data_file(&data, "zenml.api-key"),
        client_secret,
    ];
    for bytes in [&database, &wal] {
        for secret in &secrets {
            assert!(
                !contains(bytes, secret.as_bytes()),
                "issued secrets never reach the database in the clear"
            );
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
