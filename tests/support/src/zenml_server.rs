//! The real open-source ZenML server (`zenml[server]` 0.98.0 from PyPI, in the conformance
//! venv), started by `tests/zenml/server.py` on a free loopback port with SQLite in a
//! directory of the test run, and the REST calls tests make to it as its admin user.
//! Never skipped: without the venv the tests that use it fail with the reason.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::processes::spawn_lasting;
use crate::{envtest, paths};

pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// A running real ZenML server.
pub struct ZenmlServer {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// Held, never waited on: the process lives as long as the test binary (PDEATHSIG).
    _process: Child,
}

/// The shared open-source server: no RBAC, so only admin users may manage keys.
pub fn open_source() -> &'static ZenmlServer {
    static SERVER: OnceLock<ZenmlServer> = OnceLock::new();
    SERVER.get_or_init(|| start(&envtest::control_plane().dir.join("zenml-server"), false))
}

/// The shared server with an RBAC implementation loaded (`--rbac`: allow-all, standing
/// in for ZenML Pro's), where a service account's key may manage keys.
pub fn with_rbac() -> &'static ZenmlServer {
    static SERVER: OnceLock<ZenmlServer> = OnceLock::new();
    SERVER.get_or_init(|| start(&envtest::control_plane().dir.join("zenml-server-rbac"), true))
}

fn start(dir: &Path, rbac: bool) -> ZenmlServer {
    let script = paths::repo().join("tests/zenml/server.py");
    let mut command = Command::new(venv().join("bin/python"));
    command
        .arg(&script)
        .arg("--data")
        .arg(dir)
        .args(["--admin-user", ADMIN_USER, "--admin-password", ADMIN_PASSWORD])
        .stdout(Stdio::piped())
        .stderr(
            std::fs::File::create(dir.with_extension("log"))
                .unwrap_or_else(|e| panic!("creating the ZenML server log: {e}")),
        );
    if rbac {
        command.arg("--rbac");
    }
    let mut child = spawn_lasting(command);
    let mut first_line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut first_line)
        .expect("the ZenML server prints its address");
    let url = first_line
        .trim()
        .strip_prefix("zenml listening on ")
        .unwrap_or_else(|| {
            panic!(
                "the real ZenML server did not start (first line {first_line:?}); see {}",
                dir.with_extension("log").display()
            )
        })
        .to_string();
    ZenmlServer { url, _process: child }
}

/// `ZENML_VENV` (set by `make test`), or whatever `tests/credstore/conformance/setup.sh`
/// installs (the venv holding `zenml[server]`).
fn venv() -> PathBuf {
    paths::tool(
        "ZENML_VENV",
        "tests/credstore/conformance/setup.sh",
        "venv with the real ZenML server",
    )
}

impl ZenmlServer {
    fn http() -> reqwest::Client {
        reqwest::Client::new()
    }

    /// HTTP status of a login with `form`, and its bearer when it succeeded.
    async fn login(&self, form: &[(&str, &str)]) -> (u16, Option<String>) {
        let response = Self::http()
            .post(format!("{}/api/v1/login", self.url))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        (status, body["access_token"].as_str().map(str::to_owned))
    }

    /// HTTP status of a login with service-account API key `key`: 200 while it works.
    pub async fn key_login(&self, key: &str) -> u16 {
        self.login(&[("grant_type", "zenml-api-key"), ("password", key)])
            .await
            .0
    }

    /// A bearer of the admin user.
    pub async fn admin_session(&self) -> String {
        let form = [
            ("grant_type", "password"),
            ("username", ADMIN_USER),
            ("password", ADMIN_PASSWORD),
        ];
        match self.login(&form).await {
            (200, Some(bearer)) => bearer,
            (status, _) => panic!("the admin user cannot log in to the real ZenML server: {status}"),
        }
    }

    /// Sends `body` to `path` (below `/api/v1`) as the admin user; the status and JSON answer.
    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = Self::http()
            .request(method, format!("{}/api/v1{path}", self.url))
            .bearer_auth(self.admin_session().await);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Creates service account `name`; returns its id.
    pub async fn create_service_account(&self, name: &str) -> String {
        let body = json!({"name": name, "description": "for apikey-operator tests", "active": true});
        let (status, account) = self
            .admin(reqwest::Method::POST, "/service_accounts", Some(body))
            .await;
        assert_eq!(status, 200, "creating service account {name}: {account}");
        account["id"].as_str().expect("an id").to_string()
    }

    /// Creates key `name` of service account `account` by hand; returns its `ZENKEY_…` value.
    pub async fn create_key(&self, account: &str, name: &str) -> String {
        let (status, key) = self
            .admin(
                reqwest::Method::POST,
                &format!("/service_accounts/{account}/api_keys"),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(status, 200, "creating key {name}: status {status}");
        key["body"]["key"].as_str().expect("the key value").to_string()
    }

    /// Every key of service account `account`, hydrated.
    pub async fn keys(&self, account: &str) -> Vec<Value> {
        let (status, page) = self
            .admin(
                reqwest::Method::GET,
                &format!("/service_accounts/{account}/api_keys?size=1000&hydrate=true"),
                None,
            )
            .await;
        assert_eq!(status, 200, "listing keys: {page}");
        page["items"].as_array().cloned().unwrap_or_default()
    }
}
