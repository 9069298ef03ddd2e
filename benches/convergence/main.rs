//! Convergence benchmark: N key resources of mixed kinds (ApiToken, ServiceAccountKey on
//! ZenML and on Trend Micro, ApiClient) created, then rotated, by a release build of the
//! operator against a real kube-apiserver and the embedded credential store; then the
//! floor — a minimal program doing only the unavoidable work per object (one upstream
//! create, one Secret write, one status write) at the same concurrency against the same
//! servers. Prints figures; asserts nothing about speed.
//!
//! `make bench` (or `cargo bench --bench convergence -- --objects 1000 --kinds api-token`). Under
//! `cargo test --all-targets` (no `--bench` flag) it only says how to run it.

mod floor;
mod kinds;
mod measure;
mod neighbour;
mod processes;
mod waves;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use apikey_operator::localcluster::LocalCluster;
use apikey_operator_test_support::processes::Credstore;
use clap::Parser;
use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use kinds::Kind;
use measure::{percentile, writes};

#[derive(Parser, Debug)]
struct Options {
    /// Number of key resources.
    #[arg(long, default_value_t = 1000)]
    objects: usize,
    /// The kinds created, round robin (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "api-token,zenml-key,trend-key,api-client"
    )]
    kinds: Vec<Kind>,
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
    /// Run only the noisy-neighbour scenario: store B's keys alone, then beside a slow,
    /// throttling store A (see benches/convergence/neighbour.rs).
    #[arg(long)]
    noisy_neighbour: bool,
    /// Keys of each store in the noisy-neighbour scenario.
    #[arg(long, default_value_t = 500)]
    neighbour_keys: usize,
    /// Run only the rotation waves: a fleet's interval rotation (with its jitter), then a
    /// rotation of every key under an enforced upstream rate limit (see
    /// benches/convergence/waves.rs).
    #[arg(long)]
    rotation_waves: bool,
    /// Keys in the rotation waves.
    #[arg(long, default_value_t = 2000)]
    wave_keys: usize,
    /// Requests per second the credential store enforces, and the store promises, in the
    /// rate-limited wave.
    #[arg(long, default_value_t = 50)]
    wave_rate_limit: u32,
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
    writes_by_target: BTreeMap<String, f64>,
    operator_writes: f64,
    upstream_requests: f64,
    cpu_seconds: f64,
    /// Reconciles put back because their store held its share of the workers.
    deferred: f64,
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
    let credstore = Credstore::start(&options.operator, &dir.join("credstore"), None)?;
    let operator =
        processes::Operator::start(&options.operator, cluster.kubeconfig(), &dir.join("operator.log"))?;
    operator.wait_ready().await?;

    println!("machine: {}", measure::machine());
    if options.noisy_neighbour || options.rotation_waves {
        if options.noisy_neighbour {
            let keys = options.neighbour_keys;
            neighbour::run(
                &client,
                &options.operator,
                &dir,
                &credstore,
                &operator,
                keys,
                options.concurrency,
            )
            .await?;
        }
        if options.rotation_waves {
            let (keys, limit) = (options.wave_keys, options.wave_rate_limit);
            waves::run(&client, &credstore, keys, limit, options.concurrency).await?;
        }
        let (cpu, peak) = measure::cpu_and_peak_rss(operator.pid())?;
        println!(
            "operator: {cpu:.1} CPU seconds in all, peak RSS {:.1} MiB",
            peak as f64 / 1048576.0
        );
        return Ok(());
    }
    println!(
        "objects: {} ({:?} round robin), concurrency: {}",
        options.objects, options.kinds, options.concurrency
    );
    let namespace = "bench";
    processes::stores(&client, namespace, &credstore, &options.kinds).await?;

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
        let floor = floor::run(&client, "floor", &options, &credstore).await?;
        println!(
            "floor: {:.1}s for {} objects",
            floor.as_secs_f64(),
            options.objects
        );
        println!("operator/floor: {:.2}", created.seconds / floor.as_secs_f64());
    }
    Ok(())
}

/// The operator's count of reconciles put back by the fair shares of workers.
const DEFERRED: &str = "apikey_operator_reconciliations_deferred_total";

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
    credstore: &Credstore,
    operator: &processes::Operator,
    wave: Wave,
) -> anyhow::Result<Phase> {
    let objects: Vec<(Kind, String)> = (0..options.objects)
        .map(|i| {
            let kind = kinds::kind_of(&options.kinds, i);
            (kind, kind.name(i))
        })
        .collect();
    let apiserver_before = measure::apiserver_requests(client).await?;
    let writes_before = measure::apiserver_writes_by_target(client).await?;
    let operator_before = measure::operator_requests(&operator.probes).await?;
    let upstream_before = measure::upstream_requests(&credstore.url).await?;
    let (cpu_before, _) = measure::cpu_and_peak_rss(operator.pid())?;
    let deferred_before = measure::operator_metric(&operator.probes, DEFERRED).await?;

    let converged = tokio::spawn(watch_until_converged(
        client.clone(),
        namespace.to_string(),
        options.kinds.clone(),
        options.objects,
        wave,
    ));
    let started = Instant::now();
    let submitted: HashMap<String, Instant> = stream::iter(objects)
        .map(|(kind, name)| {
            let api = kind_api(client, namespace, kind);
            async move {
                match wave {
                    Wave::Create => {
                        let object: DynamicObject = serde_json::from_value(kind.manifest(&name))?;
                        api.create(&PostParams::default(), &object).await?;
                    }
                    Wave::Rotate => {
                        let patch = json!({"metadata": {"annotations": {"apikeys.dev/rotate": "wave-1"}}});
                        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
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
    let writes_after = measure::apiserver_writes_by_target(client).await?;
    let operator_after = measure::operator_requests(&operator.probes).await?;
    let upstream_after = measure::upstream_requests(&credstore.url).await?;
    let (cpu_after, _) = measure::cpu_and_peak_rss(operator.pid())?;
    let deferred_after = measure::operator_metric(&operator.probes, DEFERRED).await?;
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
        writes_by_target: measure::delta(&writes_before, &writes_after),
        operator_writes: writes(&operator_after) - writes(&operator_before),
        upstream_requests: upstream_after - upstream_before,
        cpu_seconds: cpu_after - cpu_before,
        deferred: deferred_after - deferred_before,
    })
}

/// The API of `kind`'s resources in `namespace`.
pub fn kind_api(client: &Client, namespace: &str, kind: Kind) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &kind.resource())
}

/// Watches the resources of every kind and returns when each was first seen converged
/// for `wave`.
async fn watch_until_converged(
    client: Client,
    namespace: String,
    kinds: Vec<Kind>,
    expected: usize,
    wave: Wave,
) -> anyhow::Result<HashMap<String, Instant>> {
    let mut resources: Vec<_> = kinds.iter().map(|kind| kind.resource()).collect();
    // ZenML and Trend Micro keys are both ServiceAccountKeys: one watch per resource kind.
    resources.sort_by(|a, b| a.kind.cmp(&b.kind));
    resources.dedup_by(|a, b| a.kind == b.kind);
    let streams = resources.into_iter().map(|resource| {
        let api = Api::<DynamicObject>::namespaced_with(client.clone(), &namespace, &resource);
        watcher(api, watcher::Config::default()).applied_objects().boxed()
    });
    let mut stream = stream::select_all(streams);
    let mut ready_at = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
    while ready_at.len() < expected {
        let next = tokio::time::timeout_at(deadline, stream.try_next()).await;
        let Ok(Ok(Some(object))) = next else {
            bail!("watch ended with {} of {expected} converged", ready_at.len())
        };
        let status = &object.data["status"];
        let ready = status["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
        let done = match wave {
            Wave::Create => ready,
            Wave::Rotate => ready && status["rotationCount"] == 1,
        };
        if done {
            ready_at.entry(object.name_any()).or_insert_with(Instant::now);
        }
    }
    Ok(ready_at)
}

fn report(phase: &Phase, objects: usize) {
    let n = objects as f64;
    println!(
        "{}: {:.1}s to converge {objects} objects; per object p50 {:.2}s p99 {:.2}s; \
         API server {:.2} requests ({:.2} writes) per object, of which the operator wrote {:.2}; \
         upstream {:.2} requests per object; operator {:.1} CPU seconds, {:.0} reconciles deferred",
        phase.name,
        phase.seconds,
        phase.p50.as_secs_f64(),
        phase.p99.as_secs_f64(),
        phase.apiserver_requests / n,
        phase.apiserver_writes / n,
        phase.operator_writes / n,
        phase.upstream_requests / n,
        phase.cpu_seconds,
        phase.deferred,
    );
    let targets: Vec<String> = phase
        .writes_by_target
        .iter()
        .map(|(target, count)| format!("{target} {:.2}", count / n))
        .collect();
    println!("  API server writes per object by target: {}", targets.join(", "));
}
