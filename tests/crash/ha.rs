//! High availability: two operator processes with `--leader-election` on one namespace and
//! one credential store. Exactly one leads and only it writes; a leader killed with SIGKILL
//! while creates are in flight is replaced within the lease duration and no token is
//! created twice; a leader stopped with SIGTERM releases the lease and the standby takes
//! over at once; a leader that finds the lease taken exits non-zero. The handover times are
//! printed.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use apikey_operator::api::ApiToken;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use serde_json::{Value, json};

use apikey_operator_test_support::envtest;
use apikey_operator_test_support::fixtures::{self, is_ready, wait_for};
use apikey_operator_test_support::processes::{self, Credstore, OperatorCommand};

/// The binary's defaults, which the replicas run with.
const LEASE: &str = "apikey-operator";
const LEASE_DURATION: Duration = Duration::from_secs(15);
const RENEW_PERIOD: Duration = Duration::from_secs(5);

/// One operator process.
struct Replica {
    name: &'static str,
    child: Child,
    probes: String,
    log: PathBuf,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    /// The samples of `/metrics`, keyed by series (`name{labels}`).
    async fn metrics(&self) -> BTreeMap<String, f64> {
        processes::scrape(&self.probes)
            .await
            .unwrap_or_else(|| panic!("{} serves no /metrics", self.name))
    }

    /// `apikey_operator_leader`, or `None` while the probes are not up yet.
    async fn leads(&self) -> Option<bool> {
        let metrics = processes::scrape(&self.probes).await?;
        metrics.get("apikey_operator_leader").map(|value| *value == 1.0)
    }

    async fn ready(&self) -> bool {
        reqwest::get(format!("{}/readyz", self.probes))
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// Sends `signal` and waits for the process to end.
    fn stop(&mut self, signal: i32) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
        self.child.wait().unwrap()
    }
}

/// A namespace with its own credential store and Prefactor store, and two replicas.
struct Ha {
    client: kube::Client,
    namespace: String,
    credstore: Credstore,
    tokens: Api<ApiToken>,
    leases: Api<Lease>,
}

impl Ha {
    async fn new(prefix: &str) -> Self {
        let client = envtest::client().await;
        let namespace = envtest::namespace(&client, prefix).await;
        let credstore = processes::start_credstore(
            &envtest::control_plane()
                .dir
                .join(format!("credstore-{namespace}")),
        );
        fixtures::prefactor_store(&client, &namespace, "prefactor", &credstore).await;
        Ha {
            tokens: Api::namespaced(client.clone(), &namespace),
            leases: Api::namespaced(client.clone(), &namespace),
            client,
            namespace,
            credstore,
        }
    }

    fn replica(&self, name: &'static str) -> Replica {
        let log = envtest::control_plane()
            .dir
            .join(format!("{}-{name}.log", self.namespace));
        let command = OperatorCommand::new(&envtest::control_plane().kubeconfig)
            .leader_election()
            // The replica's holder identity, named as the chart names it (downward API).
            .env("POD_NAME", name)
            .namespace(&self.namespace)
            .env(
                "RUST_LOG",
                "info,apikey_operator::leader=debug,kube_lease_manager=debug",
            )
            .log(&log)
            .with_probes();
        Replica {
            name,
            probes: command.probes(),
            child: command.spawn(),
            log,
        }
    }

    /// Starts two replicas and returns them as (leader, standby), once exactly one leads
    /// and the Lease names it.
    async fn elect(&self) -> (Replica, Replica) {
        let (a, b) = (self.replica("replica-a"), self.replica("replica-b"));
        let deadline = Instant::now() + fixtures::CONVERGE;
        loop {
            match (a.leads().await, b.leads().await) {
                (Some(true), Some(false)) => break self.confirm_holder(a, b).await,
                (Some(false), Some(true)) => break self.confirm_holder(b, a).await,
                (Some(true), Some(true)) => panic!("{}: both replicas lead", self.namespace),
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "{}: no replica became leader",
                self.namespace
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn confirm_holder(&self, leader: Replica, standby: Replica) -> (Replica, Replica) {
        assert_eq!(self.holder().await.as_deref(), Some(leader.name));
        (leader, standby)
    }

    async fn holder(&self) -> Option<String> {
        self.leases.get(LEASE).await.unwrap().spec?.holder_identity
    }

    /// Waits until `replica` reports itself leader; how long that took from `since`.
    async fn wait_leads(&self, replica: &Replica, since: Instant) -> Duration {
        let deadline = since + fixtures::CONVERGE;
        while replica.leads().await != Some(true) {
            assert!(Instant::now() < deadline, "{} never took over", replica.name);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        since.elapsed()
    }

    async fn create_tokens(&self, prefix: &str, count: usize) -> Vec<String> {
        let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
        for name in &names {
            fixtures::apply(
                &self.client,
                &self.namespace,
                json!({
                    "apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiToken", "metadata": {"name": name},
                    "spec": {"storeRef": {"name": "prefactor"}, "scope": "account"},
                }),
            )
            .await;
        }
        names
    }

    /// Every token Ready, and upstream exactly one token per resource: the one it names.
    async fn assert_one_upstream_token_each(&self, names: &[String]) {
        let mut named = Vec::new();
        for name in names {
            let token = wait_for(&self.tokens, name, "Ready", |t: &ApiToken| {
                is_ready(t) && t.status.as_ref().is_some_and(|s| s.pending.is_none())
            })
            .await;
            named.push(token.status.unwrap().upstream_id.unwrap());
        }
        let listed: Value = reqwest::Client::new()
            .get(format!("{}/api/v1/api_token", self.credstore.url))
            .bearer_auth(&self.credstore.prefactor_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut upstream: Vec<String> = listed["summaries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect();
        upstream.sort();
        named.sort();
        assert_eq!(
            upstream, named,
            "{}: exactly one upstream token per resource, no twin",
            self.namespace
        );
    }

    async fn set_upstream_latency(&self, millis: u64) {
        let response = reqwest::Client::new()
            .put(format!("{}/_credstore/faults", self.credstore.url))
            .json(&json!({"latencyMs": millis}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{response:?}");
    }
}

/// Sum of the samples of `family` whose labels contain `label`.
fn sum(metrics: &BTreeMap<String, f64>, family: &str, label: &str) -> f64 {
    metrics
        .iter()
        .filter(|(series, _)| series.starts_with(&format!("{family}{{")) && series.contains(label))
        .map(|(_, value)| value)
        .sum()
}

#[tokio::test]
async fn one_of_two_replicas_leads_and_only_it_writes() {
    let ha = Ha::new("ha-elect").await;
    let (leader, standby) = ha.elect().await;
    // A standby is Ready (see operator::run): a rolling update must not stall on it.
    assert!(leader.ready().await && standby.ready().await);

    // Before the election each replica reads its start-up state (the cluster identity, the
    // key of status proofs); from then on a standby sends nothing but Lease requests.
    let not_for_the_lease = |metrics: &BTreeMap<String, f64>, label: &str| {
        sum(metrics, "apikey_operator_kubernetes_requests_total", label)
            - sum(metrics, "apikey_operator_lease_requests_total", label)
    };
    let at_election = standby.metrics().await;
    let names = ha.create_tokens("elect", 5).await;
    ha.assert_one_upstream_token_each(&names).await;

    let standby_metrics = standby.metrics().await;
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        let label = format!("method=\"{method}\"");
        assert_eq!(
            not_for_the_lease(&standby_metrics, &label),
            not_for_the_lease(&at_election, &label),
            "while the leader worked, the standby sent {method} requests other than for the Lease"
        );
    }
    assert!(
        sum(&standby_metrics, "apikey_operator_lease_requests_total", "") > 0.0,
        "the standby campaigns"
    );
    assert_eq!(
        sum(&standby_metrics, "apikey_operator_upstream_requests_total", ""),
        0.0,
        "the standby called no upstream"
    );
    let leader_metrics = leader.metrics().await;
    let label = "method=\"PATCH\"";
    assert!(
        sum(
            &leader_metrics,
            "apikey_operator_kubernetes_requests_total",
            label
        ) > sum(&leader_metrics, "apikey_operator_lease_requests_total", label),
        "the leader writes (the counters count)"
    );
    assert!(sum(&leader_metrics, "apikey_operator_upstream_requests_total", "") > 0.0);
    assert_eq!(ha.holder().await.as_deref(), Some(leader.name));
}

#[tokio::test]
async fn a_killed_leader_is_replaced_within_the_lease_duration_without_a_twin() {
    let ha = Ha::new("ha-kill").await;
    let (mut leader, standby) = ha.elect().await;
    // Slow upstream calls, so the kill lands while creates are in flight.
    ha.set_upstream_latency(300).await;
    let names = ha.create_tokens("inflight", 10).await;
    let in_flight = |tokens: &[ApiToken]| {
        tokens
            .iter()
            .filter(|t| t.status.as_ref().is_some_and(|s| s.pending.is_some()))
            .count()
    };
    let deadline = Instant::now() + fixtures::CONVERGE;
    loop {
        let tokens = ha.tokens.list(&Default::default()).await.unwrap().items;
        if in_flight(&tokens) > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the leader never started a create");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let killed = Instant::now();
    let status = leader.stop(libc::SIGKILL);
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the leader ran until the kill: {status}"
    );
    let tokens = ha.tokens.list(&Default::default()).await.unwrap().items;
    let created = tokens
        .iter()
        .filter(|t| t.status.as_ref().is_some_and(|s| s.upstream_id.is_some()))
        .count();
    ha.set_upstream_latency(0).await;

    let handover = ha.wait_leads(&standby, killed).await;
    // The promise: the lease, last renewed before the kill, expires within a lease duration
    // of it, and the standby then takes it; a renew period of slack covers the standby's
    // wake-up, kube-lease-manager's random wait (up to 1 s) before it locks, and the round
    // trips. A standby that waited for more than one expiry would break the bound.
    let bound = LEASE_DURATION + RENEW_PERIOD;
    println!(
        "SIGKILL handover: {handover:?} (bound {bound:?}: lease duration {LEASE_DURATION:?} + renew period {RENEW_PERIOD:?}); at the kill {} of 10 creates were in flight and {created} done",
        in_flight(&tokens)
    );
    assert!(
        handover <= bound,
        "the standby took over within the lease duration plus a renew period: {handover:?} > {bound:?}"
    );
    assert_eq!(ha.holder().await.as_deref(), Some(standby.name));
    ha.assert_one_upstream_token_each(&names).await;
}

#[tokio::test]
async fn a_leader_stopped_with_sigterm_releases_the_lease_at_once() {
    let ha = Ha::new("ha-term").await;
    let (mut leader, standby) = ha.elect().await;
    let before = ha.create_tokens("before", 3).await;
    ha.assert_one_upstream_token_each(&before).await;
    let held = ha.leases.get(LEASE).await.unwrap().spec.unwrap();
    // Left to expire, the lease would last until a lease duration after this renewal (or a
    // later one): a standby may take an unreleased lease only then.
    let renewed = held.renew_time.expect("the leader renews").0;

    let terminated = Instant::now();
    let status = leader.stop(libc::SIGTERM);
    let exited = terminated.elapsed();
    assert!(status.success(), "a clean stop on SIGTERM: {status}");
    // Released, not left to expire: the exited leader is no longer the holder.
    let holder = ha.holder().await;
    assert_ne!(holder.as_deref(), Some(leader.name), "the lease was released");

    let handover = ha.wait_leads(&standby, terminated).await;
    let lease = ha.leases.get(LEASE).await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some(standby.name));
    assert!(lease.lease_transitions > held.lease_transitions, "{lease:?}");
    let taken = lease.acquire_time.expect("the standby's acquisition").0;
    let expiry = renewed.checked_add(LEASE_DURATION).unwrap();
    let early = taken.duration_until(expiry);
    println!(
        "SIGTERM handover: {handover:?} (the leader exited after {exited:?}); the standby took the lease {early:#} before the released lease would have expired (lease duration {LEASE_DURATION:?})"
    );
    // Both times are written by processes of this host, on its clock.
    assert!(
        taken < expiry,
        "the standby took the lease at {taken}, not before the old lease's expiry at {expiry}: the release handed nothing over"
    );
    // The standby's lease manager, left alone, sleeps until the lease it last read expires:
    // the watch on the Lease saw the release and woke the campaign.
    let log = std::fs::read_to_string(&standby.log).unwrap();
    assert!(
        log.contains("the lease was released; campaigning again"),
        "the standby's campaign was woken by the release; its log:\n{log}"
    );

    let after = ha.create_tokens("after", 3).await;
    ha.assert_one_upstream_token_each(&[before, after].concat()).await;
}

#[tokio::test]
async fn a_leader_that_loses_the_lease_stops_at_once() {
    let ha = Ha::new("ha-lost").await;
    let mut leader = ha.replica("replica-a");
    ha.wait_leads(&leader, Instant::now()).await;

    // Another holder appears (as after a partition healed): the leader must not go on writing.
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(k8s_openapi::jiff::Timestamp::now());
    let taken = json!({"spec": {"holderIdentity": "intruder", "renewTime": now, "leaseDurationSeconds": 15}});
    let taken_at = Instant::now();
    ha.leases
        .patch(
            LEASE,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&taken),
        )
        .await
        .unwrap();
    let deadline = taken_at + fixtures::CONVERGE;
    let status = loop {
        if let Some(status) = leader.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the leader went on after losing the lease"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "lost lease: the leader stopped {:?} after the takeover",
        taken_at.elapsed()
    );
    assert_eq!(
        status.code(),
        Some(1),
        "a non-zero exit, to restart clean: {status}"
    );
    assert_eq!(ha.holder().await.as_deref(), Some("intruder"));
}
