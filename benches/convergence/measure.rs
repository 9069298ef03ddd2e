//! What the benchmark reads off the processes it runs: CPU time and peak memory from
//! /proc, request counters from the API server, the operator and the credential store.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use kube::Client;
use serde_json::Value;

/// CPU seconds (user + system) and peak resident set of a process.
pub fn cpu_and_peak_rss(pid: u32) -> anyhow::Result<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc/PID/stat")?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc/PID/status")?;
    let peak_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or_default();
    Ok((ticks / ticks_per_second, peak_kib * 1024))
}

/// `apiserver_request_total` summed by verb (the API server's own count of requests).
pub async fn apiserver_requests(client: &Client) -> anyhow::Result<BTreeMap<String, f64>> {
    Ok(sum_by(&apiserver_counters(client).await?, |labels| {
        label(labels, "verb")
    }))
}

/// The API server's write requests by verb, resource and subresource (e.g.
/// `PATCH apitokens/status`): where the writes per object go.
pub async fn apiserver_writes_by_target(client: &Client) -> anyhow::Result<BTreeMap<String, f64>> {
    let counters = apiserver_counters(client).await?;
    let writes: Vec<_> = counters
        .into_iter()
        .filter(|(labels, _)| WRITE_VERBS.contains(&label(labels, "verb").as_str()))
        .collect();
    Ok(sum_by(&writes, |labels| {
        let subresource = label(labels, "subresource");
        let slash = if subresource.is_empty() { "" } else { "/" };
        format!(
            "{} {}{slash}{subresource}",
            label(labels, "verb"),
            label(labels, "resource")
        )
    }))
}

/// Every `apiserver_request_total` sample: its label set and value.
async fn apiserver_counters(client: &Client) -> anyhow::Result<Vec<(String, f64)>> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(request).await?;
    Ok(text
        .lines()
        .filter_map(|line| line.strip_prefix("apiserver_request_total{"))
        .filter_map(|rest| {
            let (labels, value) = rest.rsplit_once(' ')?;
            Some((labels.to_string(), value.parse().ok()?))
        })
        .collect())
}

fn label(labels: &str, name: &str) -> String {
    labels
        .split(&format!("{name}=\""))
        .nth(1)
        .and_then(|v| v.split('"').next())
        .unwrap_or_default()
        .to_string()
}

fn sum_by(counters: &[(String, f64)], key: impl Fn(&str) -> String) -> BTreeMap<String, f64> {
    let mut sums = BTreeMap::new();
    for (labels, value) in counters {
        *sums.entry(key(labels)).or_insert(0.0) += value;
    }
    sums
}

/// Per-key difference `after - before`, without the keys that did not change.
pub fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(key, value)| (key.clone(), value - before.get(key).unwrap_or(&0.0)))
        .filter(|(_, change)| *change != 0.0)
        .collect()
}

/// Verbs that change state.
pub const WRITE_VERBS: [&str; 6] = ["POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"];

/// Sum of the write verbs' counts.
pub fn writes(by_verb: &BTreeMap<String, f64>) -> f64 {
    WRITE_VERBS.iter().filter_map(|v| by_verb.get(*v)).sum()
}

/// Sum of all counts.
pub fn total(by_verb: &BTreeMap<String, f64>) -> f64 {
    by_verb.values().sum()
}

/// The operator's own Kubernetes request counter, by method.
pub async fn operator_requests(probes: &str) -> anyhow::Result<BTreeMap<String, f64>> {
    let text = reqwest::get(format!("{probes}/metrics")).await?.text().await?;
    Ok(text
        .lines()
        .filter_map(|line| line.strip_prefix("apikey_operator_kubernetes_requests_total{method=\""))
        .filter_map(|rest| {
            let (method, value) = rest.split_once("\"} ")?;
            Some((method.to_string(), value.parse().ok()?))
        })
        .collect())
}

/// Every upstream request the credential store has answered, summed over operations.
pub async fn upstream_requests(credstore: &str) -> anyhow::Result<f64> {
    let counts = credstore_counters(credstore, "requests").await?;
    Ok(per_operation(&counts)
        .filter(|(api, _)| *api != "admin")
        .filter_map(|(_, n)| n.as_f64())
        .sum())
}

/// The 429s the credential store answered (its rate limit and its injected throttles).
pub async fn upstream_throttles(credstore: &str) -> anyhow::Result<f64> {
    let injected = credstore_counters(credstore, "faults/injected").await?;
    Ok(per_operation(&injected)
        .filter_map(|(_, counts)| counts["throttles"].as_f64())
        .sum())
}

/// A counter document of the credential store: `{api: {operation: count(s)}}`.
async fn credstore_counters(credstore: &str, path: &str) -> anyhow::Result<Value> {
    Ok(reqwest::get(format!("{credstore}/_credstore/{path}"))
        .await?
        .json()
        .await?)
}

/// Each operation's count(s), with the API it belongs to.
fn per_operation(counters: &Value) -> impl Iterator<Item = (&str, &Value)> {
    counters
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(api, operations)| {
            let operations = operations.as_object().into_iter().flatten();
            operations.map(move |(_, counts)| (api.as_str(), counts))
        })
}

/// p-th percentile (0..=100) of durations, by nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The machine the figures were taken on.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), {memory} memory")
}

/// The sum over every label set of one of the operator's metrics (e.g.
/// `apikey_operator_reconciliations_deferred_total`).
pub async fn operator_metric(probes: &str, name: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(format!("{probes}/metrics")).await?.text().await?;
    Ok(text
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum())
}
