//! The noisy-neighbour scenario (`--noisy-neighbour`): two Prefactor stores served by two
//! credential store processes. Store B's keys are created once alone and once while store A
//! answers every request 2 s late and 30% of them with 429; the figure is how much longer
//! B's keys take beside A.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use apikey_operator::api::{ApiToken, CredentialStore};
use apikey_operator_test_support::processes::Credstore;
use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::kinds::Kind;
use crate::measure::{self, percentile};
use crate::processes::{self, Operator};

const NAMESPACE: &str = "neighbours";
/// What store A's upstream does to every request while B's keys are created beside it.
const NOISY_LATENCY_MS: u64 = 2000;
const NOISY_THROTTLE_RATE: f64 = 0.3;

/// One batch of keys of one store, created together.
struct Batch {
    store: &'static str,
    prefix: &'static str,
    count: usize,
}

pub async fn run(
    client: &Client,
    binary: &Path,
    dir: &Path,
    quiet: &Credstore,
    operator: &Operator,
    keys: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let noisy = Credstore::start(binary, &dir.join("noisy-credstore"), None)?;
    store(client, "quiet", quiet).await?;
    store(client, "noisy", &noisy).await?;

    let alone = Batch {
        store: "quiet",
        prefix: "b-alone",
        count: keys,
    };
    let (alone_seconds, alone_latencies) = create_and_wait(client, &alone, concurrency).await?;

    set_faults(&noisy).await?;
    let deferred_before = deferred(operator).await?;
    let noisy_batch = Batch {
        store: "noisy",
        prefix: "a-noisy",
        count: keys,
    };
    submit(client, &noisy_batch, concurrency).await?;
    let beside = Batch {
        store: "quiet",
        prefix: "b-beside",
        count: keys,
    };
    let (beside_seconds, beside_latencies) = create_and_wait(client, &beside, concurrency).await?;
    let deferred = deferred(operator).await? - deferred_before;
    let noisy_done = count_ready(client, noisy_batch.prefix).await?;

    println!(
        "noisy neighbour: store B's {keys} keys converge in {alone_seconds:.1}s alone (p50 {:.2}s p99 {:.2}s) and \
         {beside_seconds:.1}s beside store A (p50 {:.2}s p99 {:.2}s): {:.2}x; store A ({NOISY_LATENCY_MS} ms latency, \
         {:.0}% 429s, {keys} keys) had {noisy_done} Ready by then; {deferred:.0} reconciles were deferred",
        percentile(&alone_latencies, 50.0).as_secs_f64(),
        percentile(&alone_latencies, 99.0).as_secs_f64(),
        percentile(&beside_latencies, 50.0).as_secs_f64(),
        percentile(&beside_latencies, 99.0).as_secs_f64(),
        beside_seconds / alone_seconds,
        NOISY_THROTTLE_RATE * 100.0,
    );
    Ok(())
}

/// A Prefactor store named `name` in the scenario's namespace, served by `credstore`.
async fn store(client: &Client, name: &str, credstore: &Credstore) -> anyhow::Result<()> {
    let (mut spec, data) = Kind::ApiToken.store_parts(credstore);
    spec["prefactor"]["credentialsSecretRef"]["name"] = json!(format!("{name}-admin"));
    processes::apply_store(client, NAMESPACE, name, spec, data).await?;
    let stores: Api<CredentialStore> = Api::namespaced(client.clone(), NAMESPACE);
    processes::wait_store_ready(&stores, name).await
}

async fn set_faults(noisy: &Credstore) -> anyhow::Result<()> {
    let faults = json!({
        "latencyMs": NOISY_LATENCY_MS, "throttleRate": NOISY_THROTTLE_RATE, "retryAfterSeconds": 1,
    });
    let response = reqwest::Client::new()
        .put(format!("{}/_credstore/faults", noisy.url))
        .json(&faults)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("setting store A's faults: {}", response.status());
    }
    Ok(())
}

async fn deferred(operator: &Operator) -> anyhow::Result<f64> {
    measure::operator_metric(&operator.probes, crate::DEFERRED).await
}

/// Creates the batch and waits until each key is Ready: the seconds from the first
/// submission to the last Ready, and each key's latency from its own submission.
async fn create_and_wait(
    client: &Client,
    batch: &Batch,
    concurrency: usize,
) -> anyhow::Result<(f64, Vec<Duration>)> {
    let ready = tokio::spawn(ready_times(client.clone(), batch.prefix, batch.count));
    let started = Instant::now();
    let submitted = submit(client, batch, concurrency).await?;
    let ready = ready.await??;
    let seconds = started.elapsed().as_secs_f64();
    let mut latencies: Vec<Duration> = submitted
        .iter()
        .filter_map(|(name, at)| Some(ready.get(name)?.saturating_duration_since(*at)))
        .collect();
    latencies.sort();
    Ok((seconds, latencies))
}

async fn submit(
    client: &Client,
    batch: &Batch,
    concurrency: usize,
) -> anyhow::Result<HashMap<String, Instant>> {
    let api: Api<ApiToken> = Api::namespaced(client.clone(), NAMESPACE);
    stream::iter(0..batch.count)
        .map(|i| {
            let api = api.clone();
            let name = format!("{}-{i:05}", batch.prefix);
            async move {
                let token: ApiToken = serde_json::from_value(json!({
                    "apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiToken", "metadata": {"name": name},
                    "spec": {"storeRef": {"name": batch.store}, "scope": "account"},
                }))?;
                api.create(&PostParams::default(), &token).await?;
                Ok::<_, anyhow::Error>((name, Instant::now()))
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await
}

/// When each ApiToken named `prefix-…` was first seen Ready, once `expected` of them were.
async fn ready_times(
    client: Client,
    prefix: &'static str,
    expected: usize,
) -> anyhow::Result<HashMap<String, Instant>> {
    let api: Api<ApiToken> = Api::namespaced(client, NAMESPACE);
    let mut stream = watcher(api, watcher::Config::default()).applied_objects().boxed();
    let mut ready_at = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
    while ready_at.len() < expected {
        let next = tokio::time::timeout_at(deadline, stream.try_next()).await;
        let Ok(Ok(Some(token))) = next else {
            bail!(
                "watch ended with {} of {expected} {prefix} keys Ready",
                ready_at.len()
            )
        };
        if token.name_any().starts_with(prefix) && is_ready(&token) {
            ready_at.entry(token.name_any()).or_insert_with(Instant::now);
        }
    }
    Ok(ready_at)
}

async fn count_ready(client: &Client, prefix: &str) -> anyhow::Result<usize> {
    let tokens = Api::<ApiToken>::namespaced(client.clone(), NAMESPACE)
        .list(&Default::default())
        .await
        .context("listing the scenario's ApiTokens")?;
    Ok(tokens
        .iter()
        .filter(|token| token.name_any().starts_with(prefix) && is_ready(token))
        .count())
}

fn is_ready(token: &ApiToken) -> bool {
    token
        .status
        .iter()
        .flat_map(|status| &status.conditions)
        .any(|c| c.type_ == "Ready" && c.status == "True")
}
