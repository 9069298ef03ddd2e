//! Prometheus metrics of the operator. Labels are bounded sets (kinds, results, error
//! classes, upstream APIs and their operations), never object names.
//!
//! | Metric | Labels |
//! |---|---|
//! | `apikey_operator_reconciliations_total` | `kind`, `result` |
//! | `apikey_operator_reconciliations_deferred_total` | `kind` |
//! | `apikey_operator_reconcile_duration_seconds` | `kind` |
//! | `apikey_operator_rotations_total` | `kind`, `trigger` |
//! | `apikey_operator_retirements_total` | `kind`, `how` (`scheduled`, `released`, `forced`, `break_glass`) |
//! | `apikey_operator_kubernetes_requests_total` | `method` |
//! | `apikey_operator_lease_requests_total` | `method` |
//! | `apikey_operator_leader` | |
//! | `apikey_operator_upstream_requests_total` | `store_kind`, `api`, `operation`, `status_class` |
//! | `apikey_operator_upstream_request_duration_seconds` | `api`, `operation` |
//! | `apikey_operator_resources` | `kind`, `ready` (`True`, `False`, `Unknown`) |
//! | `apikey_operator_credential_expiry_earliest_timestamp_seconds` | `kind` |
//! | `apikey_operator_credentials_with_expiry` | `kind` |
//! | `apikey_operator_rotations_overdue` | `kind` |
//! | `apikey_operator_credentials_unused` | `kind` |
//! | `apikey_operator_retirements_held` | `kind` |
//!
//! The last six are read at scrape time from the controllers' caches (see [`Metrics::track`]),
//! so they are exact whatever happened between scrapes, and cost nothing between scrapes.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::{
    ApiClient, ApiToken, ClusterCredentialStore, CredentialStore, KeyStatus, ServiceAccountKey,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub kind: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KubeRequestLabels {
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RotationLabels {
    pub kind: &'static str,
    pub trigger: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RetirementLabels {
    pub kind: &'static str,
    pub how: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamRequestLabels {
    /// `CredentialStore` or `ClusterCredentialStore`.
    pub store_kind: &'static str,
    /// `akamai`, `prefactor`, `trendMicro` or `zenml`.
    pub api: &'static str,
    /// The client operation (`create_token`, `rotate_key`, ...): a fixed set per API.
    pub operation: &'static str,
    /// `2xx`, `3xx`, `4xx`, `5xx`, or `error` when no HTTP answer arrived (timeout, connection).
    pub status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLatencyLabels {
    pub api: &'static str,
    pub operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadyLabels {
    kind: &'static str,
    ready: &'static str,
}

/// What the upstream clients record: every HTTP attempt (retries included) and its latency.
/// Cheap to clone (the families are shared); carried by [`crate::upstream::ClientOptions`].
#[derive(Clone, Debug)]
pub struct UpstreamMetrics {
    requests: Family<UpstreamRequestLabels, Counter>,
    duration: Family<UpstreamLatencyLabels, Histogram>,
}

impl UpstreamMetrics {
    fn new() -> Self {
        UpstreamMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.005, 2.0, 14))),
        }
    }

    /// Records one HTTP attempt to an upstream: `status` is `None` when no answer arrived.
    pub fn request(
        &self,
        store_kind: &'static str,
        api: &'static str,
        operation: &'static str,
        status: Option<u16>,
        took: Duration,
    ) {
        let status_class = match status {
            Some(200..=299) => "2xx",
            Some(300..=399) => "3xx",
            Some(400..=499) => "4xx",
            Some(500..=599) => "5xx",
            Some(_) | None => "error",
        };
        self.requests
            .get_or_create(&UpstreamRequestLabels {
                store_kind,
                api,
                operation,
                status_class,
            })
            .inc();
        self.duration
            .get_or_create(&UpstreamLatencyLabels { api, operation })
            .observe(took.as_secs_f64());
    }
}

/// What a kind's cached objects say about their health, read at scrape time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KindSummary {
    pub ready: u64,
    pub not_ready: u64,
    pub unknown: u64,
    /// The earliest `status.expiresAt` among the kind's objects (Unix seconds).
    pub earliest_expiry: Option<i64>,
    /// How many objects have a `status.expiresAt`.
    pub with_expiry: u64,
    /// How many objects' `status.nextRotationTime` passed more than [`OVERDUE_AFTER`] ago.
    pub rotations_overdue: u64,
    /// How many objects' credential, where the upstream reports use, was last used (or,
    /// never used, issued) longer ago than the unused threshold.
    pub unused: u64,
    /// How many objects keep a previous credential past its retain period, held by a
    /// rollout or a recent use.
    pub retirements_held: u64,
}

/// A rotation this late is failing, not merely queued behind others.
pub const OVERDUE_AFTER: Duration = Duration::from_secs(5 * 60);

/// What a summary is measured against.
#[derive(Clone, Copy, Debug)]
pub struct SummaryClock {
    pub now: k8s_openapi::jiff::Timestamp,
    /// A credential not used for this long counts as unused.
    pub unused_after: Duration,
}

/// An object whose health the inventory metrics count.
pub trait Inventoried {
    /// The `Ready` condition, if set.
    fn ready_condition(&self) -> Option<&Condition>;
    /// When the current credential expires upstream, if it does.
    fn credential_expiry(&self) -> Option<&Time> {
        None
    }
    /// When the operator means to rotate next.
    fn next_rotation(&self) -> Option<&Time> {
        None
    }
    /// When the current credential was last used, and when it was issued, where the
    /// upstream reports use (`None` where it does not, or nothing was issued yet).
    fn use_record(&self) -> Option<(Option<&Time>, &Time)> {
        None
    }
    /// Whether a rollout or a recent use holds back the retirement of a previous credential.
    fn retirement_held(&self) -> bool {
        false
    }
}

fn key_ready(status: Option<&KeyStatus>) -> Option<&Condition> {
    status?.conditions.iter().find(|c| c.type_ == "Ready")
}

macro_rules! inventoried_key {
    ($kind:ty, reports_use = $reports_use:literal) => {
        impl Inventoried for $kind {
            fn ready_condition(&self) -> Option<&Condition> {
                key_ready(self.status.as_ref())
            }
            fn credential_expiry(&self) -> Option<&Time> {
                self.status.as_ref()?.expires_at.as_ref()
            }
            fn next_rotation(&self) -> Option<&Time> {
                self.status.as_ref()?.next_rotation_time.as_ref()
            }
            fn use_record(&self) -> Option<(Option<&Time>, &Time)> {
                let status = self.status.as_ref().filter(|_| $reports_use)?;
                Some((
                    status.last_used_time.as_ref(),
                    status.last_rotation_time.as_ref()?,
                ))
            }
            fn retirement_held(&self) -> bool {
                self.status
                    .as_ref()
                    .is_some_and(|s| s.retiring.iter().any(|r| r.waiting_for.is_some()))
            }
        }
    };
}
inventoried_key!(ApiToken, reports_use = true);
// Akamai reports no last use of a client credential.
inventoried_key!(ApiClient, reports_use = false);
inventoried_key!(ServiceAccountKey, reports_use = true);

macro_rules! inventoried_store {
    ($kind:ty) => {
        impl Inventoried for $kind {
            fn ready_condition(&self) -> Option<&Condition> {
                self.status
                    .as_ref()?
                    .conditions
                    .iter()
                    .find(|c| c.type_ == "Ready")
            }
        }
    };
}
inventoried_store!(CredentialStore);
inventoried_store!(ClusterCredentialStore);

impl KindSummary {
    /// Summarises `objects` as of `clock`.
    pub fn of<'a, K: Inventoried + 'a>(
        objects: impl IntoIterator<Item = &'a K>,
        clock: SummaryClock,
    ) -> Self {
        let overdue_before = clock.now - OVERDUE_AFTER;
        let unused_before = clock.now - clock.unused_after;
        let mut summary = KindSummary::default();
        for object in objects {
            match object.ready_condition().map(|c| c.status.as_str()) {
                Some("True") => summary.ready += 1,
                Some("False") => summary.not_ready += 1,
                _ => summary.unknown += 1,
            }
            if let Some(expiry) = object.credential_expiry() {
                let seconds = expiry.0.as_second();
                summary.with_expiry += 1;
                summary.earliest_expiry = Some(summary.earliest_expiry.map_or(seconds, |e| e.min(seconds)));
            }
            if object.next_rotation().is_some_and(|t| t.0 < overdue_before) {
                summary.rotations_overdue += 1;
            }
            if let Some((last_used, issued)) = object.use_record()
                && last_used.unwrap_or(issued).0 < unused_before
            {
                summary.unused += 1;
            }
            if object.retirement_held() {
                summary.retirements_held += 1;
            }
        }
        summary
    }
}

type Summarise = Box<dyn Fn(SummaryClock) -> KindSummary + Send + Sync>;

/// A credential unused this long counts in `credentials_unused` unless configured otherwise.
pub const DEFAULT_UNUSED_AFTER: Duration = Duration::from_secs(30 * 24 * 3600);

/// Emits the inventory gauges from the tracked caches on every scrape.
struct Inventory {
    kinds: RwLock<Vec<(&'static str, Summarise)>>,
    unused_after: RwLock<Duration>,
}

impl Default for Inventory {
    fn default() -> Self {
        Inventory {
            kinds: RwLock::default(),
            unused_after: RwLock::new(DEFAULT_UNUSED_AFTER),
        }
    }
}

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<&str> = self.kinds.read().unwrap().iter().map(|(k, _)| *k).collect();
        f.debug_struct("Inventory").field("kinds", &kinds).finish()
    }
}

impl Collector for Inventory {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let resources = Family::<ReadyLabels, Gauge>::default();
        let earliest = Family::<KindLabels, Gauge>::default();
        let with_expiry = Family::<KindLabels, Gauge>::default();
        let overdue = Family::<KindLabels, Gauge>::default();
        let unused = Family::<KindLabels, Gauge>::default();
        let held = Family::<KindLabels, Gauge>::default();
        let clock = SummaryClock {
            now: k8s_openapi::jiff::Timestamp::now(),
            unused_after: *self.unused_after.read().unwrap(),
        };
        for (kind, summarise) in self.kinds.read().unwrap().iter() {
            let summary = summarise(clock);
            for (ready, count) in [
                ("True", summary.ready),
                ("False", summary.not_ready),
                ("Unknown", summary.unknown),
            ] {
                resources
                    .get_or_create(&ReadyLabels { kind, ready })
                    .set(count as i64);
            }
            with_expiry
                .get_or_create(&KindLabels { kind })
                .set(summary.with_expiry as i64);
            if let Some(at) = summary.earliest_expiry {
                earliest.get_or_create(&KindLabels { kind }).set(at);
            }
            // Stores neither rotate nor get used.
            if !kind.ends_with("CredentialStore") {
                overdue
                    .get_or_create(&KindLabels { kind })
                    .set(summary.rotations_overdue as i64);
                unused
                    .get_or_create(&KindLabels { kind })
                    .set(summary.unused as i64);
                held.get_or_create(&KindLabels { kind })
                    .set(summary.retirements_held as i64);
            }
        }
        resources.encode(encoder.encode_descriptor(
            "resources",
            "Objects of each kind by the status of their Ready condition",
            None,
            resources.metric_type(),
        )?)?;
        earliest.encode(encoder.encode_descriptor(
            "credential_expiry_earliest_timestamp_seconds",
            "The earliest upstream expiry (status.expiresAt, Unix seconds) among the credentials of each kind; absent when none expires",
            None,
            earliest.metric_type(),
        )?)?;
        with_expiry.encode(encoder.encode_descriptor(
            "credentials_with_expiry",
            "Objects of each kind whose current credential has an upstream expiry",
            None,
            with_expiry.metric_type(),
        )?)?;
        overdue.encode(encoder.encode_descriptor(
            "rotations_overdue",
            "Objects of each kind whose next rotation (status.nextRotationTime) passed more than five minutes ago: rotation is failing",
            None,
            overdue.metric_type(),
        )?)?;
        unused.encode(encoder.encode_descriptor(
            "credentials_unused",
            "Objects of each kind whose credential the upstream reports unused (or never used since issue) for longer than the operator's --unused-after",
            None,
            unused.metric_type(),
        )?)?;
        held.encode(encoder.encode_descriptor(
            "retirements_held",
            "Objects of each kind that keep a previous credential past its retain period because a rollout or a recent use holds it",
            None,
            held.metric_type(),
        )?)?;
        Ok(())
    }
}

/// Every metric the controllers record.
pub struct Metrics {
    pub registry: Registry,
    reconciliations: Family<ReconcileLabels, Counter>,
    deferred: Family<KindLabels, Counter>,
    reconcile_duration: Family<KindLabels, Histogram>,
    rotations: Family<RotationLabels, Counter>,
    retirements: Family<RetirementLabels, Counter>,
    kube_requests: Family<KubeRequestLabels, Counter>,
    lease_requests: Family<KubeRequestLabels, Counter>,
    leader: Gauge,
    /// Handed to the upstream clients (through `ClientOptions`).
    pub upstream: UpstreamMetrics,
    inventory: Arc<Inventory>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("apikey_operator");
        let reconciliations = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciliations",
            "Reconciliations by kind and result",
            reconciliations.clone(),
        );
        let deferred = Family::<KindLabels, Counter>::default();
        registry.register(
            "reconciliations_deferred",
            "Reconciliations put back for a moment because their store held its fair share of the kind's workers",
            deferred.clone(),
        );
        let reconcile_duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconciliation",
            reconcile_duration.clone(),
        );
        let rotations = Family::<RotationLabels, Counter>::default();
        registry.register(
            "rotations",
            "Credential rotations by kind and trigger",
            rotations.clone(),
        );
        let retirements = Family::<RetirementLabels, Counter>::default();
        registry.register(
            "retirements",
            "Previous credentials retired, by kind and how: at the end of the retain period (scheduled), once nothing held them (released), after maxRetain (forced), or at once (break_glass)",
            retirements.clone(),
        );
        let kube_requests = Family::<KubeRequestLabels, Counter>::default();
        registry.register(
            "kubernetes_requests",
            "Requests sent to the Kubernetes API by HTTP method",
            kube_requests.clone(),
        );
        let lease_requests = Family::<KubeRequestLabels, Counter>::default();
        registry.register(
            "lease_requests",
            "The part of kubernetes_requests spent on leader election (coordination.k8s.io Leases), by HTTP method",
            lease_requests.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica runs the controllers (it holds the lease, or runs without leader election), else 0",
            leader.clone(),
        );
        let upstream = UpstreamMetrics::new();
        registry.register(
            "upstream_requests",
            "HTTP requests sent to upstream credential stores (retries included) by store kind, API, operation and status class",
            upstream.requests.clone(),
        );
        registry.register(
            "upstream_request_duration_seconds",
            "Latency of one HTTP request to an upstream credential store",
            upstream.duration.clone(),
        );
        let inventory = Arc::new(Inventory::default());
        registry.register_collector(Box::new(inventory.clone()));
        Metrics {
            registry,
            reconciliations,
            deferred,
            reconcile_duration,
            rotations,
            retirements,
            kube_requests,
            lease_requests,
            leader,
            upstream,
            inventory,
        }
    }
}

impl Metrics {
    /// Records one finished reconciliation.
    pub fn reconciled(&self, kind: &'static str, result: &'static str, took: Duration) {
        self.reconciliations
            .get_or_create(&ReconcileLabels { kind, result })
            .inc();
        self.reconcile_duration
            .get_or_create(&KindLabels { kind })
            .observe(took.as_secs_f64());
    }

    /// Records one reconciliation put back because its store held its share of the workers.
    pub fn deferred(&self, kind: &'static str) {
        self.deferred.get_or_create(&KindLabels { kind }).inc();
    }

    /// Reports `Ready` counts and credential expiry of `kind` from a controller's cache on every
    /// scrape (`apikey_operator_resources`, `..._credential_expiry_earliest_timestamp_seconds`,
    /// `..._credentials_with_expiry`). Call once per kind, with the controller's `store()`.
    pub fn track<K>(&self, kind: &'static str, store: Store<K>)
    where
        K: Inventoried + kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    {
        self.track_with(kind, move |clock| {
            let objects = store.state();
            KindSummary::of(objects.iter().map(|o| &**o), clock)
        });
    }

    /// Like [`Metrics::track`], from any source of summaries.
    pub fn track_with(
        &self,
        kind: &'static str,
        summarise: impl Fn(SummaryClock) -> KindSummary + Send + Sync + 'static,
    ) {
        self.inventory
            .kinds
            .write()
            .unwrap()
            .push((kind, Box::new(summarise)));
    }

    /// Records one rotation.
    pub fn rotated(&self, kind: &'static str, trigger: &'static str) {
        self.rotations
            .get_or_create(&RotationLabels { kind, trigger })
            .inc();
    }

    /// Records one retirement of a previous credential.
    pub fn retired(&self, kind: &'static str, how: &'static str) {
        self.retirements
            .get_or_create(&RetirementLabels { kind, how })
            .inc();
    }

    /// Records one request to the Kubernetes API; requests for Leases are also counted apart.
    pub fn kube_request(&self, method: &http::Method, path: &str) {
        let method = match *method {
            http::Method::GET => "GET",
            http::Method::POST => "POST",
            http::Method::PUT => "PUT",
            http::Method::PATCH => "PATCH",
            http::Method::DELETE => "DELETE",
            _ => "other",
        };
        self.kube_requests
            .get_or_create(&KubeRequestLabels { method })
            .inc();
        if path.starts_with("/apis/coordination.k8s.io/") {
            self.lease_requests
                .get_or_create(&KubeRequestLabels { method })
                .inc();
        }
    }

    /// From when on a credential not used counts in `credentials_unused`.
    pub fn set_unused_after(&self, after: Duration) {
        *self.inventory.unused_after.write().unwrap() = after;
    }

    /// Whether this replica runs the controllers.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(metrics: &Metrics, name: &str) -> Vec<(String, f64)> {
        metrics
            .encode()
            .lines()
            .filter(|l| l.starts_with(name))
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').unwrap();
                (series.to_string(), value.parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn upstream_requests_are_counted_by_status_class_and_timed() {
        let metrics = Metrics::default();
        let up = metrics.upstream.clone();
        up.request(
            "CredentialStore",
            "prefactor",
            "create_token",
            Some(201),
            Duration::from_millis(3),
        );
        up.request(
            "CredentialStore",
            "prefactor",
            "create_token",
            Some(429),
            Duration::from_millis(3),
        );
        up.request(
            "CredentialStore",
            "prefactor",
            "create_token",
            None,
            Duration::from_millis(3),
        );
        let counts = sample(&metrics, "apikey_operator_upstream_requests_total");
        for class in ["2xx", "4xx", "error"] {
            assert!(
                counts
                    .iter()
                    .any(|(s, v)| s.contains(&format!("status_class=\"{class}\"")) && *v == 1.0),
                "{class}: {counts:?}"
            );
        }
        let durations = sample(
            &metrics,
            "apikey_operator_upstream_request_duration_seconds_count",
        );
        assert_eq!(durations.len(), 1);
        assert_eq!(durations[0].1, 3.0);
    }

    #[test]
    fn lease_requests_are_counted_apart_and_in_the_total() {
        let metrics = Metrics::default();
        metrics.kube_request(
            &http::Method::PATCH,
            "/apis/coordination.k8s.io/v1/namespaces/n/leases/l",
        );
        metrics.kube_request(&http::Method::PATCH, "/api/v1/namespaces/n/secrets/s");
        let text = metrics.encode();
        assert!(
            text.contains("apikey_operator_kubernetes_requests_total{method=\"PATCH\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("apikey_operator_lease_requests_total{method=\"PATCH\"} 1"),
            "{text}"
        );
        assert!(text.contains("apikey_operator_leader 0"), "{text}");
        metrics.set_leader(true);
        assert!(metrics.encode().contains("apikey_operator_leader 1"));
    }

    #[test]
    fn inventory_counts_ready_and_reports_the_earliest_expiry() {
        let metrics = Metrics::default();
        metrics.track_with("ApiToken", |_| KindSummary {
            ready: 2,
            not_ready: 1,
            unknown: 0,
            earliest_expiry: Some(1_900_000_000),
            with_expiry: 2,
            rotations_overdue: 1,
            unused: 3,
            retirements_held: 0,
        });
        metrics.track_with("ApiClient", |_| KindSummary::default());
        metrics.track_with("CredentialStore", |_| KindSummary::default());
        let text = metrics.encode();
        assert!(
            text.contains("apikey_operator_resources{kind=\"ApiToken\",ready=\"True\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("apikey_operator_resources{kind=\"ApiToken\",ready=\"False\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("apikey_operator_resources{kind=\"ApiClient\",ready=\"True\"} 0"),
            "{text}"
        );
        assert!(
            text.contains(
                "apikey_operator_credential_expiry_earliest_timestamp_seconds{kind=\"ApiToken\"} 1900000000"
            ),
            "{text}"
        );
        assert!(
            !text
                .contains("apikey_operator_credential_expiry_earliest_timestamp_seconds{kind=\"ApiClient\"}"),
            "no expiry, no sample: {text}"
        );
        assert!(
            text.contains("apikey_operator_rotations_overdue{kind=\"ApiToken\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("apikey_operator_credentials_unused{kind=\"ApiToken\"} 3"),
            "{text}"
        );
        assert!(
            !text.contains("apikey_operator_credentials_unused{kind=\"CredentialStore\"}"),
            "stores are not credentials: {text}"
        );
    }

    #[test]
    fn summaries_read_the_ready_condition_and_expiry() {
        let token = |ready: Option<&str>, expires: Option<&str>| -> ApiToken {
            let mut status = serde_json::json!({
                "lastRotationTime": "2026-01-01T00:00:00Z",
                "nextRotationTime": "2026-03-01T00:00:00Z",
            });
            if let Some(ready) = ready {
                status["conditions"] = serde_json::json!([{
                    "type": "Ready", "status": ready, "reason": "R", "message": "",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }]);
            }
            if let Some(expires) = expires {
                status["expiresAt"] = serde_json::json!(expires);
            }
            serde_json::from_value(serde_json::json!({
                "apiVersion": "apikeys.dev/v1alpha1", "kind": "ApiToken",
                "metadata": {"name": "t"},
                "spec": {"storeRef": {"name": "s"}, "scope": "account"},
                "status": status,
            }))
            .unwrap()
        };
        let mut used = token(None, None);
        let status = used.status.as_mut().unwrap();
        status.last_used_time = Some(Time("2026-02-27T00:00:00Z".parse().unwrap()));
        status.next_rotation_time = Some(Time("2026-03-01T00:58:00Z".parse().unwrap()));
        let tokens = [
            token(Some("True"), Some("2030-01-01T00:00:00Z")),
            token(Some("False"), Some("2029-01-01T00:00:00Z")),
            used,
        ];
        let clock = SummaryClock {
            now: "2026-03-01T01:00:00Z".parse().unwrap(),
            unused_after: Duration::from_secs(24 * 3600),
        };
        let summary = KindSummary::of(tokens.iter(), clock);
        assert_eq!(
            summary,
            KindSummary {
                ready: 1,
                not_ready: 1,
                unknown: 1,
                earliest_expiry: Some(1_861_920_000),
                with_expiry: 2,
                rotations_overdue: 2,
                unused: 3,
                retirements_held: 0,
            },
            "the third was due two minutes ago (not yet overdue) and used two days ago"
        );
    }
}
