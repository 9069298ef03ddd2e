//! Convergence benchmark: N ApiTokens created, then rotated, by a release build of the
//! operator against a real kube-apiserver and the embedded credential store; then the
//! floor — a minimal program doing only the unavoidable work per object (one upstream
//! create, one Secret write, one status write) at the same concurrency against the same
//! servers. Prints figures; asserts nothing about speed.
//!
//! `make bench` (or `cargo bench --bench convergence -- --objects 1000`). Under
//! `cargo test --all-targets` (no `--bench` flag) it only says how to run it.

mod floor;
mod measure;
mod processes;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use apikey_operator::api::ApiToken;
use apikey_operator::localcluster::LocalCluster;
use clap::Parser;
use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use measure::{percentile, writes};

#[derive(Parser, Debug)]
struct Options {
    /// Number of ApiTokens.
    #[arg(long, default_value_t = 1000)]
    objects: usize,
    /// Concurrent requests the benchmark (and the floor) sends.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Length of the quiet period measured after convergence.
    #[arg(long, default_value_t = 60)]
    quiet_seconds: u64,
    /// The operator binary (a release build).
    #[arg(long, default_value = "target/release/apikey-operator")]
    operator: PathBuf,
    /// Skip the rotation wave.
    #[arg(long)]
    no_rotation: bool,
    /// Skip the floor.
    #[arg(long)]
    no_floor: bool,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Figures of one convergence phase.
struct Phase {
    name: &'static str,
    seconds: f64,
    p50: Duration,
    p99: Duration,
    apiserver_requests: f64,
    apiserver_writes: f64,
    operator_writes: f64,
    upstream_requests: f64,
    cpu_seconds: f64,
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    if !options.bench {
        println!("convergence benchmark: run it with `make bench` (cargo bench --bench convergence)");
        return Ok(());
    }
    tokio::runtime::Runtime::new()?.block_on(run(options))
}

async fn run(options: Options) -> anyhow::Result<()> {
    let assets =
        PathBuf::from(std::env::var_os("KUBEBUILDER_ASSETS").context("KUBEBUILDER_ASSETS is not set")?);
    let dir = std::env::current_dir()?.join("target/bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let cluster = LocalCluster::start(&assets, &dir.join("cluster")).await?;
    cluster.install_crds(&apikey_operator::api::crds()).await?;
    let client = cluster.client().await?;
    let credstore = processes::Credstore::start(&options.operator, &dir.join("credstore"))?;
    let operator =
        processes::Operator::start(&options.operator, cluster.kubeconfig(), &dir.join("operator.log"))?;
    operator.wait_ready().await?;

    println!("machine: {}", measure::machine());
    println!(
        "objects: {}, concurrency: {}",
        options.objects, options.concurrency
    );
    let namespace = "bench";
    processes::prefactor_store(&client, namespace, &credstore).await?;

    let created = converge(&client, namespace, &options, &credstore, &operator, Wave::Create).await?;
    report(&created, options.objects);
    if !options.no_rotation {
        let rotated = converge(&client, namespace, &options, &credstore, &operator, Wave::Rotate).await?;
        report(&rotated, options.objects);
    }
    let (cpu, peak) = measure::cpu_and_peak_rss(operator.pid())?;
    println!(
        "operator: {cpu:.1} CPU seconds in all, peak RSS {:.1} MiB",
        peak as f64 / 1048576.0
    );

    let before = (
        measure::operator_requests(&operator.probes).await?,
        measure::upstream_requests(&credstore.url).await?,
    );
    tokio::time::sleep(Duration::from_secs(options.quiet_seconds)).await;
    let after = (
        measure::operator_requests(&operator.probes).await?,
        measure::upstream_requests(&credstore.url).await?,
    );
    println!(
        "quiet {}s: {} Kubernetes writes, {} Kubernetes reads, {} upstream requests",
        options.quiet_seconds,
        writes(&after.0) - writes(&before.0),
        after.0.get("GET").unwrap_or(&0.0) - before.0.get("GET").unwrap_or(&0.0),
        after.1 - before.1
    );

    if !options.no_floor {
        operator.stop();
        let floor = floor::run(&client, "floor", options.objects, options.concurrency, &credstore).await?;
        println!(
            "floor: {:.1}s for {} objects",
            floor.as_secs_f64(),
            options.objects
        );
        println!("operator/floor: {:.2}", created.seconds / floor.as_secs_f64());
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Wave {
    Create,
    Rotate,
}

/// Creates (or rotates) every object and waits until each is Ready (with its rotation).
async fn converge(
    client: &Client,
    namespace: &str,
    options: &Options,
    credstore: &processes::Credstore,
    operator: &processes::Operator,
    wave: Wave,
) -> anyhow::Result<Phase> {
    let tokens: Api<ApiToken> = Api::namespaced(client.clone(), namespace);
    let names: Vec<String> = (0..options.objects).map(|i| format!("token-{i:05}")).collect();
    let apiserver_before = measure::apiserver_requests(client).await?;
    let operator_before = measure::operator_requests(&operator.probes).await?;
    let upstream_before = measure::upstream_requests(&credstore.url).await?;
    let (cpu_before, _) = measure::cpu_and_peak_rss(operator.pid())?;

    let converged = tokio::spawn(watch_until_converged(tokens.clone(), options.objects, wave));
    let started = Instant::now();
    let submitted: HashMap<String, Instant> = stream::iter(names.clone())
        .map(|name| {
            let tokens = tokens.clone();
            async move {
                match wave {
                    Wave::Create => {
                        let token: ApiToken = serde_json::from_value(json!({
                            "apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiToken",
                            "metadata": {"name": name},
                            "spec": {"storeRef": {"name": "prefactor"}, "scope": "account"},
                        }))?;
                        tokens.create(&PostParams::default(), &token).await?;
                    }
                    Wave::Rotate => {
                        let patch = json!({"metadata": {"annotations": {"apikeys.dev/rotate": "wave-1"}}});
                        tokens
                            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await?;
                    }
                }
                Ok::<_, anyhow::Error>((name, Instant::now()))
            }
        })
        .buffer_unordered(options.concurrency)
        .try_collect()
        .await?;
    let ready_at = converged.await??;
    let seconds = started.elapsed().as_secs_f64();

    let mut latencies: Vec<Duration> = submitted
        .iter()
        .map(|(name, at)| {
            ready_at
                .get(name)
                .map(|r| r.saturating_duration_since(*at))
                .unwrap_or_default()
        })
        .collect();
    latencies.sort();
    let apiserver_after = measure::apiserver_requests(client).await?;
    let operator_after = measure::operator_requests(&operator.probes).await?;
    let upstream_after = measure::upstream_requests(&credstore.url).await?;
    let (cpu_after, _) = measure::cpu_and_peak_rss(operator.pid())?;
    Ok(Phase {
        name: if wave == Wave::Create {
            "create"
        } else {
            "rotation"
        },
        seconds,
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
        apiserver_requests: measure::total(&apiserver_after) - measure::total(&apiserver_before),
        apiserver_writes: writes(&apiserver_after) - writes(&apiserver_before),
        operator_writes: writes(&operator_after) - writes(&operator_before),
        upstream_requests: upstream_after - upstream_before,
        cpu_seconds: cpu_after - cpu_before,
    })
}

/// Watches the tokens and returns when each was first seen converged for `wave`.
async fn watch_until_converged(
    tokens: Api<ApiToken>,
    expected: usize,
    wave: Wave,
) -> anyhow::Result<HashMap<String, Instant>> {
    let stream = watcher(tokens, watcher::Config::default()).applied_objects();
    let mut stream = std::pin::pin!(stream);
    let mut ready_at = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
    while ready_at.len() < expected {
        let next = tokio::time::timeout_at(deadline, stream.try_next()).await;
        let Ok(Ok(Some(token))) = next else {
            bail!("watch ended with {} of {expected} converged", ready_at.len())
        };
        let status = token.status.clone().unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let done = match wave {
            Wave::Create => ready,
            Wave::Rotate => ready && status.rotation_count == Some(1),
        };
        if done {
            ready_at.entry(token.name_any()).or_insert_with(Instant::now);
        }
    }
    Ok(ready_at)
}

fn report(phase: &Phase, objects: usize) {
    let n = objects as f64;
    println!(
        "{}: {:.1}s to converge {objects} objects; per object p50 {:.2}s p99 {:.2}s; \
         API server {:.2} requests ({:.2} writes) per object, of which the operator wrote {:.2}; \
         upstream {:.2} requests per object; operator {:.1} CPU seconds",
        phase.name,
        phase.seconds,
        phase.p50.as_secs_f64(),
        phase.p99.as_secs_f64(),
        phase.apiserver_requests / n,
        phase.apiserver_writes / n,
        phase.operator_writes / n,
        phase.upstream_requests / n,
        phase.cpu_seconds,
    );
}
