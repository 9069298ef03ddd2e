//! Requests per second of the embedded credential store on loopback: a
//! create + get mix of Prefactor API tokens and Trend Micro API keys, next to
//! authenticated pings (the floor every request pays) measured in the same run.
//!
//! `cargo bench --bench credstore [-- SECONDS [CONCURRENCY]]`. Without cargo bench's
//! `--bench` flag (as under `cargo test --all-targets`) it only checks that it starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use apikey_operator_test_support::credstore::Store;
use serde_json::{Value, json};

struct Target {
    base: String,
    http: reqwest::Client,
    prefactor: String,
    trend: String,
}

impl Target {
    async fn ping(&self) -> anyhow::Result<u64> {
        let status = self
            .http
            .get(format!("{}/api/v1/ping", self.base))
            .bearer_auth(&self.prefactor)
            .send()
            .await?
            .status();
        ensure!(status == 200, "ping: {status}");
        Ok(1)
    }

    async fn prefactor_create_get(&self) -> anyhow::Result<u64> {
        let created: Value = self
            .http
            .post(format!("{}/api/v1/api_token", self.base))
            .bearer_auth(&self.prefactor)
            .json(&json!({"details": {"token_scope": "account"}}))
            .send()
            .await?
            .json()
            .await?;
        let id = created["details"]["id"].as_str().context("created token id")?;
        let status = self
            .http
            .get(format!("{}/api/v1/api_token/{id}", self.base))
            .bearer_auth(&self.prefactor)
            .send()
            .await?
            .status();
        ensure!(status == 200, "get token: {status}");
        Ok(2)
    }

    async fn trend_create_get(&self) -> anyhow::Result<u64> {
        let created: Value = self
            .http
            .post(format!("{}/api/apikeys", self.base))
            .header("api-version", "v1")
            .header("api-secret-key", &self.trend)
            .json(&json!({"keyName": "bench", "roleID": 1}))
            .send()
            .await?
            .json()
            .await?;
        let id = created["ID"].as_i64().context("created key id")?;
        let status = self
            .http
            .get(format!("{}/api/apikeys/{id}", self.base))
            .header("api-version", "v1")
            .header("api-secret-key", &self.trend)
            .send()
            .await?
            .status();
        ensure!(status == 200, "get key: {status}");
        Ok(2)
    }
}

#[derive(Clone, Copy)]
enum Workload {
    Ping,
    CreateGet,
}

async fn measure(
    target: &Arc<Target>,
    workload: Workload,
    seconds: u64,
    concurrency: usize,
) -> anyhow::Result<f64> {
    let requests = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let (target, requests) = (target.clone(), requests.clone());
        workers.push(tokio::spawn(async move {
            let mut round = worker;
            while Instant::now() < deadline {
                let done = match workload {
                    Workload::Ping => target.ping().await?,
                    Workload::CreateGet if round % 2 == 0 => target.prefactor_create_get().await?,
                    Workload::CreateGet => target.trend_create_get().await?,
                };
                requests.fetch_add(done, Ordering::Relaxed);
                round += 1;
            }
            anyhow::Ok(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    Ok(requests.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("credstore benchmark: run it with `cargo bench --bench credstore`");
        return Ok(());
    }
    let mut numbers = args.iter().filter(|a| !a.starts_with('-'));
    let seconds: u64 = numbers.next().map(|s| s.parse()).transpose()?.unwrap_or(5);
    let concurrency: usize = numbers.next().map(|s| s.parse()).transpose()?.unwrap_or(16);
    // As the store is deployed: without the test-only admin API.
    let store = Store::start_with(|config| config.admin_api = false).await;
    let target = Arc::new(Target {
        base: store.base.clone(),
        http: reqwest::Client::new(),
        prefactor: store.file("prefactor.token"),
        trend: store.file("trendmicro.secret-key"),
    });

    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "credstore loopback benchmark: {seconds}s per workload, {concurrency} concurrent clients, {cores} cores, client and server in one process"
    );
    let floor = measure(&target, Workload::Ping, seconds, concurrency).await?;
    println!("floor (authenticated ping):        {floor:>9.0} requests/s");
    let mix = measure(&target, Workload::CreateGet, seconds, concurrency).await?;
    println!(
        "create+get (Prefactor, Trend Micro): {mix:>7.0} requests/s ({:.0}% of the floor)",
        100.0 * mix / floor
    );
    Ok(())
}
