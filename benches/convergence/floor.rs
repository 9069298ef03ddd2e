//! The floor: only the work no implementation can avoid — per object one upstream create,
//! one Secret write and one status write — at the benchmark's concurrency, against the
//! same API server and credential store, with the same object creation in front.

use std::time::{Duration, Instant};

use apikey_operator::api::ApiToken;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::processes::Credstore;

pub async fn run(
    client: &Client,
    namespace: &str,
    objects: usize,
    concurrency: usize,
    credstore: &Credstore,
) -> anyhow::Result<Duration> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let tokens: Api<ApiToken> = Api::namespaced(client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let http = reqwest::Client::new();
    let started = Instant::now();
    stream::iter(0..objects)
        .map(|i| {
            let (tokens, secrets, http) = (tokens.clone(), secrets.clone(), http.clone());
            async move {
                let name = format!("floor-{i:05}");
                let token: ApiToken = serde_json::from_value(json!({
                    "apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiToken", "metadata": {"name": name},
                    "spec": {"storeRef": {"name": "prefactor"}, "scope": "account"},
                }))?;
                tokens.create(&PostParams::default(), &token).await?;
                let created: Value = http
                    .post(format!("{}/api/v1/api_token", credstore.url))
                    .bearer_auth(&credstore.prefactor_token)
                    .json(&json!({"details": {"token_scope": "account"}, "idempotency_key": format!("floor-{i}")}))
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                let secret = json!({
                    "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                    "stringData": {"token": created["token"]},
                });
                secrets.patch(&name, &PatchParams::apply("floor").force(), &Patch::Apply(&secret)).await?;
                let status = json!({
                    "apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiToken",
                    "status": {"upstreamId": created["details"]["id"], "conditions": [{
                        "type": "Ready", "status": "True", "reason": "Reconciled", "message": "floor",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }]},
                });
                tokens.patch_status(&name, &PatchParams::apply("floor").force(), &Patch::Apply(&status)).await?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(started.elapsed())
}
