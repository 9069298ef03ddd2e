//! Thousands of generated bad requests: none may get a 5xx or kill the server,
//! and every 4xx must be in its vendor's error shape.

use apikey_operator::upstream::edgegrid::{ClientCredential, RequestParts, Signer, SigningPolicy};
use reqwest::Method;
use serde_json::{Value, json};

use apikey_operator_test_support::credstore::Store;

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Vendor {
    Akamai,
    Prefactor,
    Trend,
    Zenml,
}

fn odd_ids() -> Vec<String> {
    vec![
        "0".into(),
        "-1".into(),
        "99999999999999999999999".into(),
        "self".into(),
        "current".into(),
        "%00".into(),
        "..%2F..".into(),
        "%F0%9F%92%A5".into(),
        "x".repeat(3000),
        "00000000-0000-0000-0000-000000000000".into(),
        "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ".into(),
        "1.5".into(),
        "%27%20OR%201%3D1--".into(),
        "null".into(),
        "true".into(),
    ]
}

fn bad_bodies() -> Vec<Vec<u8>> {
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    vec![
        b"{".to_vec(),
        b"not json".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        b"42".to_vec(),
        b"\"text\"".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x7b],
        deep.into_bytes(),
        json!({"unknown": true, "also": [1, 2]}).to_string().into_bytes(),
        json!({"details": {"token_scope": 1}, "idempotency_key": ["x"]}).to_string().into_bytes(),
        json!({"details": {"token_scope": "environment", "environment_id": 5}}).to_string().into_bytes(),
        json!({"details": {"token_scope": "account", "expires_at": "yesterday"}}).to_string().into_bytes(),
        json!({"name": 7, "description": {}}).to_string().into_bytes(),
        json!({"name": "x".repeat(300)}).to_string().into_bytes(),
        json!({"retain_period_minutes": -5}).to_string().into_bytes(),
        json!({"retain_period_minutes": "soon"}).to_string().into_bytes(),
        json!({"active": "yes"}).to_string().into_bytes(),
        json!({"keyName": "", "roleID": "admin"}).to_string().into_bytes(),
        json!({"keyName": "k", "roleID": 1, "locale": "xx-XX"}).to_string().into_bytes(),
        json!({"maxItems": -1, "searchCriteria": "all"}).to_string().into_bytes(),
        json!({"searchCriteria": [{"fieldName": "secretKey", "stringTest": "equal", "stringValue": "x"}]}).to_string().into_bytes(),
        json!({"searchCriteria": [{"fieldName": "keyName", "numericTest": "sideways", "numericValue": 1}]}).to_string().into_bytes(),
        json!({"clientType": "SERVICE_ACCOUNT", "apiAccess": {}, "groupAccess": {}, "authorizedUsers": []}).to_string().into_bytes(),
        json!({"clientType": "CLIENT", "apiAccess": {"apis": [{"apiId": "x"}]}, "groupAccess": {"groups": 1}, "authorizedUsers": ["a"], "x": 1}).to_string().into_bytes(),
        json!({"expiresOn": "never", "status": "DELETED"}).to_string().into_bytes(),
        json!({"expiresOn": 5}).to_string().into_bytes(),
        vec![b'a'; 1024 * 1024 + 10],
    ]
}

fn templates() -> Vec<(Vendor, Method, &'static str)> {
    use Method as M;
    use Vendor::*;
    let ak = "/identity-management/v3/api-clients";
    vec![
        (Akamai, M::POST, ak),
        (Akamai, M::GET, ak),
        (Akamai, M::GET, "{ak}/{id}"),
        (Akamai, M::PUT, "{ak}/{id}"),
        (Akamai, M::DELETE, "{ak}/{id}"),
        (Akamai, M::PUT, "{ak}/{id}/lock"),
        (Akamai, M::POST, "{ak}/{id}/credentials"),
        (Akamai, M::PUT, "{ak}/self/credentials/{id}"),
        (Akamai, M::DELETE, "{ak}/self/credentials/{id}"),
        (Akamai, M::PATCH, "{ak}/self"),
        (Akamai, M::POST, "{ak}/self/credentials/{id}/deactivate"),
        (Akamai, M::GET, "/identity-management/v3/{id}"),
        (Prefactor, M::POST, "/api/v1/api_token"),
        (Prefactor, M::GET, "/api/v1/api_token?{query}"),
        (Prefactor, M::GET, "/api/v1/api_token/{id}"),
        (Prefactor, M::POST, "/api/v1/api_token/{id}/suspend"),
        (Prefactor, M::POST, "/api/v1/api_token/{id}/revoke"),
        (Prefactor, M::DELETE, "/api/v1/api_token/{id}"),
        (Prefactor, M::PUT, "/api/v1/api_token"),
        (Prefactor, M::GET, "/api/v1/ping"),
        (Trend, M::POST, "/api/apikeys"),
        (Trend, M::GET, "/api/apikeys/{id}"),
        (Trend, M::POST, "/api/apikeys/{id}"),
        (Trend, M::DELETE, "/api/apikeys/{id}"),
        (Trend, M::POST, "/api/apikeys/{id}/secretkey"),
        (Trend, M::POST, "/api/apikeys/search"),
        (Trend, M::POST, "/api/apikeys/current"),
        (Trend, M::PUT, "/api/apikeys"),
        (Trend, M::GET, "/api/{id}"),
        (Zenml, M::POST, "/api/v1/service_accounts/{sa}/api_keys"),
        (Zenml, M::GET, "/api/v1/service_accounts/{sa}/api_keys?{query}"),
        (Zenml, M::GET, "/api/v1/service_accounts/{id}/api_keys/{id}"),
        (Zenml, M::PUT, "/api/v1/service_accounts/{sa}/api_keys/{id}"),
        (
            Zenml,
            M::PUT,
            "/api/v1/service_accounts/{sa}/api_keys/{id}/rotate",
        ),
        (Zenml, M::DELETE, "/api/v1/service_accounts/{sa}/api_keys/{id}"),
        (Zenml, M::POST, "/api/v1/login"),
        (Zenml, M::POST, "/api/v1/service_accounts"),
        (Zenml, M::GET, "/api/v1/{id}"),
    ]
}

const QUERIES: &[&str] = &[
    "pagination[offset]=18446744073709551615",
    "pagination[page_size]=-1",
    "pagination[offset]=x",
    "sorting[field]=secret",
    "sorting[direction]=sideways",
    "page=0",
    "page=99999999999999999999",
    "size=10001",
    "size=abc",
    "hydrate=maybe",
    "sort_by=desc:nope",
    "logical_operator=xor",
    "name=gt:",
    "active=sometimes",
    "created=lt:yesterday",
    "%ZZ=%ZZ",
    "a[b][c]=d",
];

fn is_vendor_shaped(vendor: Vendor, body: &Value) -> bool {
    match vendor {
        Vendor::Akamai => {
            ["type", "title", "detail", "instance"]
                .iter()
                .all(|f| body[f].is_string())
                && body["statusCode"].is_u64()
        }
        Vendor::Prefactor => {
            body["status"] == "error" && body["code"].is_string() && body["message"].is_string()
        }
        Vendor::Trend => body["message"].is_string() && body.as_object().is_some_and(|o| o.len() == 1),
        // The real server's three shapes: `{"detail": [name, message]}` for its own
        // errors, `{"detail": "text"}` for FastAPI's, a bare `[name, message]` for 422s.
        Vendor::Zenml => {
            body["detail"].is_array()
                || body["detail"].is_string()
                || body
                    .as_array()
                    .is_some_and(|a| a.len() == 2 && a.iter().all(Value::is_string))
        }
    }
}

#[tokio::test]
async fn thousands_of_bad_requests_get_vendor_shaped_client_errors() {
    let store = Store::start().await;
    let prefactor = store.file("prefactor.token");
    let trend = store.file("trendmicro.secret-key");
    let zenml_key = store.file("zenml.api-key");
    let sa = store.ids("zenml")["serviceAccountId"]
        .as_str()
        .unwrap()
        .to_owned();
    let login: Value = store
        .request(Method::POST, "/api/v1/login")
        .form(&[("grant_type", "zenml-api-key"), ("password", &zenml_key)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let zenml = login["access_token"].as_str().unwrap().to_owned();
    let edgerc = store.file("akamai.edgerc");
    let field = |name: &str| {
        edgerc
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} = ")).map(str::to_owned))
            .unwrap()
    };
    let signer = Signer::new(
        ClientCredential {
            client_token: field("client_token"),
            client_secret: field("client_secret"),
            access_token: field("access_token"),
        },
        SigningPolicy::default(),
    );
    let host = field("host");

    let (templates, ids, bodies) = (templates(), odd_ids(), bad_bodies());
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let (mut client_errors, mut total) = (0, 0);
    for round in 0..3000 {
        let (vendor, method, template) = rng.pick(&templates).clone();
        let query: &str = QUERIES[(rng.next() % QUERIES.len() as u64) as usize];
        let path = template
            .replace("{ak}", "/identity-management/v3/api-clients")
            .replacen("{id}", rng.pick(&ids[..]).as_str(), 1)
            .replace("{id}", rng.pick(&ids[..]).as_str())
            .replace(
                "{sa}",
                if rng.next().is_multiple_of(4) {
                    rng.pick(&ids[..]).as_str()
                } else {
                    &sa
                },
            )
            .replace("{query}", query);
        let body = if matches!(method, Method::GET | Method::DELETE) && !rng.next().is_multiple_of(4) {
            Vec::new()
        } else {
            rng.pick(&bodies).clone()
        };
        let authenticated = round % 5 != 0;
        let mut request = store.request(method.clone(), &path).body(body.clone());
        if authenticated {
            request = match vendor {
                Vendor::Prefactor => request.bearer_auth(&prefactor),
                Vendor::Trend => request
                    .header("api-version", "v1")
                    .header("api-secret-key", &trend),
                Vendor::Zenml => request.bearer_auth(&zenml),
                Vendor::Akamai => {
                    let parts = RequestParts {
                        method: method.as_str(),
                        scheme: "http",
                        host: &host,
                        path_and_query: &path,
                        headers: &[],
                        body: &body,
                    };
                    request.header("authorization", signer.sign(&parts))
                }
            };
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|err| panic!("{method} {path}: the server dropped the request: {err}"));
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        assert!(
            status < 500,
            "{method} {path} with {} body bytes got {status}: {}",
            body.len(),
            String::from_utf8_lossy(&bytes)
        );
        if status >= 400 {
            let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            assert!(
                is_vendor_shaped(vendor, &json),
                "{method} {path} got {status} not in its vendor's shape: {json}"
            );
            client_errors += 1;
        }
        total += 1;
    }
    assert_eq!(total, 3000);
    assert!(
        client_errors > 2500,
        "the generator should mostly produce bad requests, got {client_errors} errors"
    );
    let ping = store
        .request(Method::GET, "/api/v1/ping")
        .bearer_auth(&prefactor)
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), 200, "the server is still healthy");
}

#[tokio::test]
async fn oversized_bodies_get_413_in_each_vendors_shape() {
    let store = Store::start().await;
    let huge = vec![b'{'; 2 * 1024 * 1024];
    let sa = store.ids("zenml")["serviceAccountId"]
        .as_str()
        .unwrap()
        .to_owned();
    let cases = [
        (Vendor::Akamai, "/identity-management/v3/api-clients".to_owned()),
        (Vendor::Prefactor, "/api/v1/api_token".to_owned()),
        (Vendor::Trend, "/api/apikeys".to_owned()),
        (Vendor::Zenml, format!("/api/v1/service_accounts/{sa}/api_keys")),
    ];
    for (vendor, path) in cases {
        let response = store
            .request(Method::POST, &path)
            .body(huge.clone())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 413, "{path}");
        assert!(is_vendor_shaped(vendor, &body), "{path}: {body}");
    }
}
