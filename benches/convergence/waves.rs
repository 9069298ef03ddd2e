//! Rotation waves (`--rotation-waves`): a fleet of ApiTokens created within seconds with a
//! short `rotation.interval`, then
//! 1. the interval rotation: when each key rotated (a histogram) and the upstream's peak
//!    requests per second, against the same fleet without the jitter — each key exactly one
//!    interval after its issue, so the create wave's own histogram replayed;
//! 2. a rotation of every key at once (`apikeys.dev/rotate`) with the credential store
//!    enforcing a limit of R requests/s and the store's `rateLimit` set to R: how long it
//!    takes against the (requests needed / R) the limit allows, and how many 429s it got.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use apikey_operator::api::{ApiToken, CredentialStore};
use apikey_operator_test_support::processes::Credstore;
use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::kinds::Kind;
use crate::measure;
use crate::processes;

const NAMESPACE: &str = "waves";
const STORE: &str = "waves";
/// Short, so the wave comes within the benchmark; its tenth (the jitter window) is 24 s.
const INTERVAL: Duration = Duration::from_secs(240);
/// The width of one histogram bar.
const BUCKET: Duration = Duration::from_secs(5);

/// When each key was first seen Ready at each rotation count (0: issued by the create).
type Seen = Arc<Mutex<HashMap<String, Vec<Option<Instant>>>>>;

pub async fn run(
    client: &Client,
    credstore: &Credstore,
    keys: usize,
    rate_limit: u32,
    concurrency: usize,
) -> anyhow::Result<()> {
    store(client, credstore).await?;
    let seen: Seen = Arc::default();
    let watch = tokio::spawn(watch(client.clone(), seen.clone()));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = tokio::spawn(sample_upstream(credstore.url.clone(), samples.clone()));

    let started = Instant::now();
    create(client, keys, concurrency).await?;
    wait_for(&seen, keys, 0, INTERVAL * 3).await?;
    let issued = times(&seen, 0);
    let create_peak = peak_rate(&samples.lock().unwrap(), started, Instant::now());
    print_wave("create", &issued, create_peak);

    let rotation_started = Instant::now();
    wait_for(&seen, keys, 1, INTERVAL * 3).await?;
    let rotated = times(&seen, 1);
    let rotation_peak = peak_rate(&samples.lock().unwrap(), rotation_started, Instant::now());
    let unjittered: Vec<Instant> = issued.iter().map(|at| *at + INTERVAL).collect();
    print_wave("interval rotation with jitter", &rotated, rotation_peak);
    print_wave(
        "interval rotation without jitter (computed: issue + interval)",
        &unjittered,
        None,
    );

    let before = (
        measure::upstream_requests(&credstore.url).await?,
        measure::upstream_throttles(&credstore.url).await?,
    );
    limit(client, credstore, rate_limit).await?;
    let wave_started = Instant::now();
    annotate(client, keys, concurrency).await?;
    wait_for(&seen, keys, 2, INTERVAL).await?;
    let seconds = wave_started.elapsed().as_secs_f64();
    let after = (
        measure::upstream_requests(&credstore.url).await?,
        measure::upstream_throttles(&credstore.url).await?,
    );
    let refused = after.1 - before.1;
    let needed = after.0 - before.0 - refused;
    let ideal = needed / f64::from(rate_limit);
    println!(
        "rate-limited wave: {keys} rotations at {rate_limit} requests/s took {seconds:.1}s for {needed:.0} upstream \
         requests (the limit allows {ideal:.1}s): {:.2}x, {refused:.0} answered 429",
        seconds / ideal
    );
    watch.abort();
    sampler.abort();
    Ok(())
}

async fn store(client: &Client, credstore: &Credstore) -> anyhow::Result<()> {
    let (spec, data) = Kind::ApiToken.store_parts(credstore);
    processes::apply_store(client, NAMESPACE, STORE, spec, data).await?;
    let stores: Api<CredentialStore> = Api::namespaced(client.clone(), NAMESPACE);
    processes::wait_store_ready(&stores, STORE).await
}

/// The credential store enforces `per_second`, and the store promises it.
async fn limit(client: &Client, credstore: &Credstore, per_second: u32) -> anyhow::Result<()> {
    let response = reqwest::Client::new()
        .put(format!("{}/_credstore/faults", credstore.url))
        .json(&json!({"rateLimit": per_second}))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("setting the credential store's rate limit: {}", response.status());
    }
    let (mut spec, data) = Kind::ApiToken.store_parts(credstore);
    spec["rateLimit"] = json!({"requestsPerSecond": per_second});
    processes::apply_store(client, NAMESPACE, STORE, spec, data).await?;
    let stores: Api<CredentialStore> = Api::namespaced(client.clone(), NAMESPACE);
    // The new limit is in force once the store controller has observed the change.
    for _ in 0..600 {
        let store = stores.get(STORE).await?;
        let generation = store.metadata.generation;
        if store.status.as_ref().and_then(|s| s.observed_generation) == generation {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the store controller did not observe the new rateLimit")
}

fn name(i: usize) -> String {
    format!("wave-{i:05}")
}

async fn create(client: &Client, keys: usize, concurrency: usize) -> anyhow::Result<()> {
    let api: Api<ApiToken> = Api::namespaced(client.clone(), NAMESPACE);
    let interval = format!("{}m", INTERVAL.as_secs() / 60);
    stream::iter(0..keys)
        .map(|i| {
            let (api, interval) = (api.clone(), interval.clone());
            async move {
                let token: ApiToken = serde_json::from_value(json!({
                    "apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiToken", "metadata": {"name": name(i)},
                    "spec": {"storeRef": {"name": STORE}, "scope": "account", "rotation": {"interval": interval}},
                }))?;
                api.create(&PostParams::default(), &token).await?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await
}

async fn annotate(client: &Client, keys: usize, concurrency: usize) -> anyhow::Result<()> {
    let api: Api<ApiToken> = Api::namespaced(client.clone(), NAMESPACE);
    let patch = json!({"metadata": {"annotations": {"apikeys.dev/rotate": "rate-limited-wave"}}});
    stream::iter(0..keys)
        .map(|i| {
            let (api, patch) = (api.clone(), &patch);
            async move {
                api.patch(&name(i), &PatchParams::default(), &Patch::Merge(patch))
                    .await?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await
}

/// Records when each key is first seen Ready at each rotation count.
async fn watch(client: Client, seen: Seen) -> anyhow::Result<()> {
    let api: Api<ApiToken> = Api::namespaced(client, NAMESPACE);
    let mut tokens = watcher(api, watcher::Config::default()).applied_objects().boxed();
    while let Some(token) = tokens.try_next().await? {
        let Some(status) = &token.status else { continue };
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if !ready {
            continue;
        }
        let count = status.rotation_count.unwrap_or(0).max(0) as usize;
        let mut seen = seen.lock().unwrap();
        let times = seen.entry(token.name_any()).or_default();
        if times.len() <= count {
            times.resize(count + 1, None);
        }
        times[count].get_or_insert_with(Instant::now);
    }
    Ok(())
}

async fn wait_for(seen: &Seen, keys: usize, count: usize, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let done = seen
            .lock()
            .unwrap()
            .values()
            .filter(|times| times.get(count).is_some_and(Option::is_some))
            .count();
        if done >= keys {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{done} of {keys} keys reached rotation count {count} in {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn times(seen: &Seen, count: usize) -> Vec<Instant> {
    let mut times: Vec<Instant> = seen
        .lock()
        .unwrap()
        .values()
        .filter_map(|times| times.get(count).copied().flatten())
        .collect();
    times.sort();
    times
}

/// The credential store's request total, once a second.
async fn sample_upstream(url: String, samples: Arc<Mutex<Vec<(Instant, f64)>>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Ok(total) = measure::upstream_requests(&url).await {
            samples.lock().unwrap().push((Instant::now(), total));
        }
    }
}

/// The most upstream requests answered in one second between `from` and `to`.
fn peak_rate(samples: &[(Instant, f64)], from: Instant, to: Instant) -> Option<f64> {
    samples
        .windows(2)
        .filter(|pair| pair[0].0 >= from && pair[1].0 <= to)
        .map(|pair| (pair[1].1 - pair[0].1) / (pair[1].0 - pair[0].0).as_secs_f64())
        .reduce(f64::max)
}

/// The wave's span and its histogram in [`BUCKET`]s from its first key.
fn print_wave(name: &str, times: &[Instant], peak: Option<f64>) {
    let (Some(first), Some(last)) = (times.iter().min(), times.iter().max()) else {
        return;
    };
    let mut bars = vec![0usize; (last.duration_since(*first).as_secs() / BUCKET.as_secs()) as usize + 1];
    for at in times {
        bars[(at.duration_since(*first).as_secs() / BUCKET.as_secs()) as usize] += 1;
    }
    let bars: Vec<String> = bars
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{}s {n}", i as u64 * BUCKET.as_secs()))
        .collect();
    let peak = peak.map_or(String::new(), |p| format!("; upstream peak {p:.0} requests/s"));
    println!(
        "{name}: {} keys over {:.1}s{peak}; per {}s: {}",
        times.len(),
        last.duration_since(*first).as_secs_f64(),
        BUCKET.as_secs(),
        bars.join(", ")
    );
}
