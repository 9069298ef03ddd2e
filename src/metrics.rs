//! Prometheus metrics of the operator. Labels are bounded sets (kinds, results, error
//! classes), never object names.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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

/// Every metric the controllers record.
pub struct Metrics {
    pub registry: Registry,
    reconciliations: Family<ReconcileLabels, Counter>,
    reconcile_duration: Family<KindLabels, Histogram>,
    rotations: Family<RotationLabels, Counter>,
    kube_requests: Family<KubeRequestLabels, Counter>,
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
        let kube_requests = Family::<KubeRequestLabels, Counter>::default();
        registry.register(
            "kubernetes_requests",
            "Requests sent to the Kubernetes API by HTTP method",
            kube_requests.clone(),
        );
        Metrics {
            registry,
            reconciliations,
            reconcile_duration,
            rotations,
            kube_requests,
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

    /// Records one rotation.
    pub fn rotated(&self, kind: &'static str, trigger: &'static str) {
        self.rotations
            .get_or_create(&RotationLabels { kind, trigger })
            .inc();
    }

    /// Records one request to the Kubernetes API.
    pub fn kube_request(&self, method: &http::Method) {
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
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
