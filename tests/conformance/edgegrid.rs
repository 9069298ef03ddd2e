//! EdgeGrid signing against the official vectors shipped in the `edgegrid-python` wheel.
//!
//! The vectors are read from the installed package, never copied here: the directory comes
//! from `EDGEGRID_PYTHON_DIR`, or else `tests/conformance/venv.sh` installs the package (once,
//! cached) and prints it. A missing package fails the test; it never skips.

use std::path::PathBuf;

use apikey_operator::upstream::edgegrid::{
    self, AuthorizationFields, ClientCredential, RequestParts, SigningPolicy,
};
use apikey_operator_test_support::paths;
use serde::Deserialize;

#[derive(Deserialize)]
struct TestData {
    base_url: String,
    access_token: String,
    client_token: String,
    client_secret: String,
    max_body: usize,
    headers_to_sign: Vec<String>,
    nonce: String,
    timestamp: String,
    jsontest_hash: String,
    sign_key_test: String,
    content_hash_test: String,
    multipart_hash_test: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TestCase {
    test_name: String,
    request: CaseRequest,
    expected_authorization: String,
    /// Absent where the Python client refuses the request before signing it.
    expected_data_to_sign: Option<String>,
}

#[derive(Deserialize)]
struct CaseRequest {
    method: String,
    path: String,
    #[serde(default)]
    data: Option<String>,
    /// A list of one-entry maps, to keep the order and duplicates the vectors specify.
    #[serde(default)]
    headers: Vec<std::collections::BTreeMap<String, String>>,
}

fn vectors_dir() -> PathBuf {
    paths::tool(
        "EDGEGRID_PYTHON_DIR",
        "tests/conformance/venv.sh",
        "EdgeGrid vectors (they come with the edgegrid-python package)",
    )
}

fn read_json<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let path = vectors_dir().join("test").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn test_data() -> TestData {
    read_json("testdata.json")
}

fn credential(data: &TestData) -> ClientCredential {
    ClientCredential {
        client_token: data.client_token.clone(),
        client_secret: data.client_secret.clone(),
        access_token: data.access_token.clone(),
    }
}

fn base_host(data: &TestData) -> &str {
    data.base_url.trim_start_matches("https://").trim_end_matches('/')
}

#[test]
fn signing_key_vector() {
    let data = test_data();
    assert_eq!(
        edgegrid::signing_key(&data.client_secret, &data.timestamp),
        data.sign_key_test
    );
}

#[test]
fn content_hash_vector() {
    let data = test_data();
    assert_eq!(
        edgegrid::content_hash("POST", b"test_body", data.max_body),
        data.content_hash_test
    );
}

#[test]
fn all_official_test_cases() {
    let data = test_data();
    let cases: Vec<TestCase> = read_json("testcases.json");
    assert_eq!(cases.len(), 15, "edgegrid-python 2.0.9 ships 15 cases");
    let policy = SigningPolicy {
        headers_to_sign: data.headers_to_sign.clone(),
        max_body: data.max_body,
    };
    let mut failures = Vec::new();
    for case in &cases {
        let headers: Vec<(&str, &str)> = case
            .request
            .headers
            .iter()
            .flat_map(|entry| entry.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .collect();
        let host = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("host"))
            .map_or(base_host(&data), |(_, value)| value);
        let request = RequestParts {
            method: &case.request.method,
            scheme: "https",
            host,
            path_and_query: &case.request.path,
            headers: &headers,
            body: case.request.data.as_deref().unwrap_or("").as_bytes(),
        };
        // The Python suite computes the expected data to sign with an empty unsigned header.
        if let Some(expected) = &case.expected_data_to_sign {
            let actual = edgegrid::data_to_sign(&request, &policy, "");
            if &actual != expected {
                failures.push(format!(
                    "{}: data to sign {actual:?} != {expected:?}",
                    case.test_name
                ));
            }
        }
        let actual = edgegrid::authorization_header(
            &credential(&data),
            &policy,
            &request,
            &data.timestamp,
            &data.nonce,
        );
        if actual != case.expected_authorization {
            failures.push(format!("{}: authorization {actual:?}", case.test_name));
        }
        // The server-side check accepts the official header for the same request.
        let fields = AuthorizationFields::parse(&case.expected_authorization).unwrap();
        if let Err(error) = fields.verify(&request, &policy, &data.client_secret) {
            failures.push(format!("{}: verify: {error}", case.test_name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 15 cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `requests` serialises `json={"key": "value"}` with Python's default separators.
#[test]
fn json_post_vector() {
    let data = test_data();
    let request = RequestParts {
        method: "POST",
        scheme: "https",
        host: base_host(&data),
        path_and_query: "/testapi/v1/t3?extended=true",
        headers: &[],
        body: br#"{"key": "value"}"#,
    };
    let header = edgegrid::authorization_header(
        &credential(&data),
        &SigningPolicy::default(),
        &request,
        &data.timestamp,
        &data.nonce,
    );
    assert_eq!(header, data.jsontest_hash);
}

/// The body `requests_toolbelt.MultipartEncoder` builds from the suite's fixture fields.
#[test]
fn multipart_post_vector() {
    let data = test_data();
    let file = std::fs::read(vectors_dir().join("test/sample_file.txt")).unwrap();
    let mut body = b"--multipart_boundary\r\nContent-Disposition: form-data; name=\"foo\"\r\n\r\nbar\r\n\
--multipart_boundary\r\nContent-Disposition: form-data; name=\"baz\"; filename=\"sample_file.txt\"\r\n\r\n"
        .to_vec();
    body.extend_from_slice(&file);
    body.extend_from_slice(b"\r\n--multipart_boundary--\r\n");
    let request = RequestParts {
        method: "POST",
        scheme: "https",
        host: base_host(&data),
        path_and_query: "/testapi/v1/t3?extended=true",
        headers: &[],
        body: &body,
    };
    let header = edgegrid::authorization_header(
        &credential(&data),
        &SigningPolicy::default(),
        &request,
        &data.timestamp,
        &data.nonce,
    );
    assert_eq!(header, data.multipart_hash_test);
}
