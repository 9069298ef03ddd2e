//! The chart's alerts (PrometheusRule) and Grafana dashboard (ConfigMap): rendered only when
//! asked and as their values say, and querying only what the operator really serves — every
//! series name in a rule expression or a dashboard query (`x_total` of a counter, `x_bucket` of
//! a histogram, a gauge) must appear in a real `/metrics` scrape, and every label those
//! selectors match on must be a label of its samples. The scrape is the shared operator's, after
//! a token with an expiry was created and rotated (so every family has samples), plus a
//! leader-elected operator's (the Lease metrics). promtool checks the rules' behaviour and the
//! queries' syntax: tests/alerts/check.sh (`make alerts`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use apikey_operator::api::ApiToken;
use serde_json::{Value, json};

use apikey_operator_test_support::fixtures::{self, TokenSetup, is_ready, merge, wait_for};
use apikey_operator_test_support::{envtest, processes};

use super::operator::{scrape, start_operator};
use super::{FULLNAME, apply, chart_dir, find, render, run_helm, template, with_sets};

const NAMESPACE: &str = "apikey-system";
const ENABLED: &[&str] = &[
    "metrics.prometheusRule.enabled=true",
    "grafana.dashboard.enabled=true",
];

/// The rule expressions of the rendered PrometheusRule, by alert name.
fn alert_exprs(objects: &[Value]) -> BTreeMap<String, String> {
    let rule = find(objects, "PrometheusRule", FULLNAME);
    rule["spec"]["groups"]
        .as_array()
        .expect("spec.groups")
        .iter()
        .flat_map(|group| group["rules"].as_array().expect("rules").iter())
        .map(|rule| {
            (
                rule["alert"]
                    .as_str()
                    .expect("every rule is an alert")
                    .to_string(),
                rule["expr"].as_str().expect("expr").to_string(),
            )
        })
        .collect()
}

/// The dashboard JSON the rendered ConfigMap holds.
fn dashboard(objects: &[Value]) -> Value {
    let config_map = find(objects, "ConfigMap", &format!("{FULLNAME}-dashboard"));
    let text = config_map["data"]["apikey-operator.json"]
        .as_str()
        .expect("the ConfigMap holds apikey-operator.json");
    serde_json::from_str(text).unwrap_or_else(|e| panic!("the dashboard is not valid JSON: {e}"))
}

/// Every PromQL query of the dashboard: panel targets and query variables.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    fn panels(items: &Value, out: &mut Vec<String>) {
        for panel in items.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                out.extend(target["expr"].as_str().map(str::to_string));
            }
            panels(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dashboard["panels"], &mut out);
    for variable in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        out.extend(variable["query"]["query"].as_str().map(str::to_string));
    }
    out
}

/// The `apikey_operator_*` selectors of a PromQL expression: metric name and the label names
/// its `{…}` matchers use (empty when it has none).
fn selectors(expr: &str) -> Vec<(String, BTreeSet<String>)> {
    let mut found = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("apikey_operator_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        let name = tail[..end].to_string();
        let mut labels = BTreeSet::new();
        let mut after = &tail[end..];
        if let Some(matchers) = after.strip_prefix('{') {
            let close = matchers.find('}').expect("a closed label matcher");
            let mut inside = &matchers[..close];
            // label op "value", …: a quoted value holds no quote of its own here.
            while let Some(op) = inside.find(['=', '!']) {
                labels.insert(inside[..op].trim().trim_start_matches(',').trim().to_string());
                let open = inside.find('"').expect("a quoted matcher value");
                let value_end = open + 1 + inside[open + 1..].find('"').expect("a closed quote");
                inside = &inside[value_end + 1..];
            }
            after = &matchers[close + 1..];
        }
        found.push((name, labels));
        rest = after;
    }
    found
}

/// What scrapes served: the label names of the samples of each series name (`x_total` of a
/// counter, `x_bucket`/`x_count`/`x_sum` of a histogram, a gauge's own name), from the
/// samples as [`processes::scrape`] keys them (`name{labels}`).
#[derive(Default)]
struct Served(BTreeMap<String, BTreeSet<String>>);

impl Served {
    fn add(&mut self, samples: &BTreeMap<String, f64>) {
        for series in samples.keys() {
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            let names = self.0.entry(name.to_string()).or_default();
            for pair in labels.trim_end_matches('}').split("\",") {
                if let Some((label, _)) = pair.split_once('=') {
                    names.insert(label.trim_start_matches(',').to_string());
                }
            }
        }
    }

    /// The metric family of a series name, for messages: `x` of `x_total`, `x_bucket`, ….
    fn family(name: &str) -> &str {
        ["_total", "_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name)
    }
}

#[test]
fn the_alerts_and_dashboard_render_only_when_asked_and_as_configured() {
    // Off by default.
    let defaults = render(NAMESPACE, &[]);
    assert!(
        !defaults
            .iter()
            .any(|o| o["kind"] == "PrometheusRule" || o["kind"] == "ConfigMap"),
        "the defaults render no PrometheusRule and no dashboard"
    );

    let chart = chart_dir();
    let lint = run_helm(&with_sets(
        vec!["lint", "--strict", chart.to_str().unwrap()],
        ENABLED,
    ))
    .unwrap_or_else(|e| panic!("helm lint with the alerts and dashboard: {e}"));
    assert!(lint.contains("0 chart(s) failed"), "{lint}");

    let objects = render(NAMESPACE, ENABLED);
    // The default selector is what Prometheus labels the chart's ServiceMonitor targets with:
    // job = the metrics Service's name, namespace = the Service's.
    let service = find(&objects, "Service", &format!("{FULLNAME}-metrics"));
    let selector = format!(
        "job=\"{}\",namespace=\"{}\"",
        service["metadata"]["name"].as_str().unwrap(),
        service["metadata"]["namespace"].as_str().unwrap()
    );
    let exprs = alert_exprs(&objects);
    assert_eq!(exprs.len(), 7, "{:?}", exprs.keys());
    for (alert, expr) in &exprs {
        for (metric, _) in selectors(expr) {
            assert!(
                expr.contains(&format!("{metric}{{{selector}")),
                "{alert}: {metric} is not selected by {selector}: {expr}"
            );
        }
    }
    let rule = find(&objects, "PrometheusRule", FULLNAME);
    for rule in rule["spec"]["groups"][0]["rules"].as_array().unwrap() {
        let alert = rule["alert"].as_str().unwrap();
        assert!(
            ["info", "warning", "critical"]
                .contains(&rule["labels"]["severity"].as_str().unwrap_or_default()),
            "{alert}: {rule}"
        );
        for annotation in ["summary", "description"] {
            assert!(
                rule["annotations"][annotation]
                    .as_str()
                    .is_some_and(|t| t.ends_with('.')),
                "{alert}: the {annotation} is a sentence: {rule}"
            );
        }
        let runbook = rule["annotations"]["runbook_url"].as_str().unwrap();
        let anchor = runbook.rsplit_once('#').map(|(_, a)| a).unwrap_or_default();
        assert_eq!(anchor, alert.to_lowercase(), "{alert}: {runbook}");
        let docs = std::fs::read_to_string(chart.join("../../docs/alerts.md")).unwrap();
        assert!(
            docs.contains(&format!("\n## {alert}\n")),
            "docs/alerts.md has no section {alert}"
        );
    }

    // The ConfigMap holds the chart's dashboard file as it is, labelled for the sidecar.
    let config_map = find(&objects, "ConfigMap", &format!("{FULLNAME}-dashboard"));
    assert_eq!(config_map["metadata"]["labels"]["grafana_dashboard"], "1");
    let file = std::fs::read_to_string(chart.join("dashboards/apikey-operator.json")).unwrap();
    assert_eq!(
        config_map["data"]["apikey-operator.json"].as_str().unwrap(),
        file.trim_end()
    );
    let board = dashboard(&objects);
    assert_eq!(board["uid"], "apikey-operator");

    // Every option shows where it should.
    let objects = render(
        NAMESPACE,
        &[
            "metrics.prometheusRule.enabled=true",
            "metrics.prometheusRule.namespace=monitoring",
            "metrics.prometheusRule.labels.release=prometheus",
            "metrics.prometheusRule.selector=job=\"apikey-operator\"",
            "metrics.prometheusRule.alertLabels.team=platform",
            "metrics.prometheusRule.disabled[0]=ApikeyOperatorKeysUnused",
            "grafana.dashboard.enabled=true",
            "grafana.dashboard.namespace=grafana",
            "grafana.dashboard.label=dashboards.example.com/load",
            "grafana.dashboard.labelValue=yes",
            "grafana.dashboard.annotations.grafana_folder=Operators",
        ],
    );
    let rule = find(&objects, "PrometheusRule", FULLNAME);
    assert_eq!(rule["metadata"]["namespace"], "monitoring");
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    let exprs = alert_exprs(&objects);
    assert!(
        !exprs.contains_key("ApikeyOperatorKeysUnused"),
        "{:?}",
        exprs.keys()
    );
    assert!(
        exprs.values().all(|e| e.contains("{job=\"apikey-operator\"")),
        "{exprs:?}"
    );
    for rule in rule["spec"]["groups"][0]["rules"].as_array().unwrap() {
        assert_eq!(rule["labels"]["team"], "platform", "{rule}");
    }
    let config_map = find(&objects, "ConfigMap", &format!("{FULLNAME}-dashboard"));
    assert_eq!(config_map["metadata"]["namespace"], "grafana");
    assert_eq!(
        config_map["metadata"]["labels"]["dashboards.example.com/load"],
        "yes"
    );
    assert_eq!(
        config_map["metadata"]["annotations"]["grafana_folder"],
        "Operators"
    );

    // The schema refuses what would make broken rules.
    for (sets, mentions) in [
        (
            &["metrics.prometheusRule.disabled[0]=ApikeyOperatorNoSuchAlert"][..],
            "disabled",
        ),
        (
            &["metrics.prometheusRule.upstreamErrorRatio=2"][..],
            "upstreamErrorRatio",
        ),
        (
            &["metrics.prometheusRule.upstreamErrorWindow=soon"][..],
            "upstreamErrorWindow",
        ),
        (&["metrics.prometheusRule.selector={job=\"x\"}"][..], "selector"),
        (
            &["metrics.prometheusRule.expiryWarningDays=0"][..],
            "expiryWarningDays",
        ),
        (&["grafana.dashboard.label=not a label"][..], "label"),
        (&["grafana.dashboards.enabled=true"][..], "dashboards"),
    ] {
        let error = template(NAMESPACE, sets).expect_err(&format!("{sets:?} was accepted"));
        assert!(
            error.contains("schema") && error.contains(mentions),
            "{sets:?}: the error should name {mentions}: {error}"
        );
    }
}

#[tokio::test]
async fn every_metric_the_alerts_and_dashboard_query_is_served() {
    let objects = render(NAMESPACE, ENABLED);
    let board = dashboard(&objects);
    let mut queries: Vec<(String, String)> = alert_exprs(&objects)
        .into_iter()
        .map(|(alert, expr)| (format!("alert {alert}"), expr))
        .collect();
    queries.extend(
        dashboard_queries(&board)
            .into_iter()
            .map(|q| ("the dashboard".to_string(), q)),
    );
    // metric → (label matched on → where, where the metric is queried)
    type Places = BTreeSet<String>;
    let mut queried: BTreeMap<String, (BTreeMap<String, Places>, Places)> = BTreeMap::new();
    for (place, query) in &queries {
        for (metric, labels) in selectors(query) {
            let entry = queried.entry(metric).or_default();
            for label in labels {
                entry.0.entry(label).or_default().insert(place.clone());
            }
            entry.1.insert(place.clone());
        }
    }
    assert!(queried.len() >= 10, "{queried:?}");

    // The ConfigMap is a valid object for the API server (size, keys).
    let setup = TokenSetup::new("monitoring").await;
    let config_map = find(&objects, "ConfigMap", &format!("{FULLNAME}-dashboard"));
    let mut config_map = config_map.clone();
    config_map["metadata"]["namespace"] = json!(setup.namespace);
    apply(&setup.client, &config_map, true)
        .await
        .unwrap_or_else(|e| panic!("the API server refuses the dashboard ConfigMap: {e}"));

    // Samples for the families that have none until something happens: a token with an
    // expiry, created (reconciliations, upstream requests) and rotated once.
    setup
        .ready_token(
            "watched",
            json!({"expiresAt": "2030-01-01T00:00:00Z", "rotation": {"retainPrevious": "0s"}}),
        )
        .await;
    merge(
        &setup.tokens,
        "watched",
        json!({"metadata": {"annotations": {"apikeys.dev/rotate": "monitoring-1"}}}),
    )
    .await;
    wait_for(&setup.tokens, "watched", "rotated once", |t: &ApiToken| {
        is_ready(t) && t.status.as_ref().and_then(|s| s.rotation_count) == Some(1)
    })
    .await;

    // The shared operator runs without leader election; the chart runs it with. One more
    // operator, elected as the chart runs it, on a namespace of its own (with nothing in it,
    // so it never meets the shared one) serves the Lease metrics.
    let elected_namespace = envtest::namespace(&setup.client, "monitoring-elected").await;
    let plane = envtest::control_plane();
    let dir = plane.dir.join(&elected_namespace);
    std::fs::create_dir_all(&dir).unwrap();
    let elected = start_operator(
        &plane.kubeconfig,
        &dir,
        &elected_namespace,
        Some(&elected_namespace),
    )
    .await;

    // Counters move a little after the status shows what happened: scrape until every queried
    // series is there, or the deadline.
    let shared = processes::operator();
    let deadline = tokio::time::Instant::now() + fixtures::CONVERGE;
    let (served, missing) = loop {
        let mut served = Served::default();
        served.add(
            &processes::scrape(&shared.probes)
                .await
                .expect("the operator serves /metrics"),
        );
        served.add(&scrape(&elected).await);
        let missing: Vec<String> = queried
            .iter()
            .filter(|(metric, _)| !served.0.contains_key(*metric))
            .map(|(metric, (_, places))| {
                format!(
                    "{metric} (family {}; queried by {})",
                    Served::family(metric),
                    places.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        if missing.is_empty() || tokio::time::Instant::now() > deadline {
            break (served, missing);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        missing.is_empty(),
        "the alerts and dashboard query series /metrics does not serve:\n  {}\n/metrics serves: {:?}",
        missing.join("\n  "),
        served
            .0
            .keys()
            .filter(|n| n.starts_with("apikey_operator_"))
            .collect::<Vec<_>>()
    );

    // Every label the selectors match on is one of the series' own (job, namespace, pod and
    // instance are the scrape target's, added by Prometheus).
    let mut unknown_labels = Vec::new();
    for (metric, (labels, _)) in &queried {
        let own = &served.0[metric];
        for (label, places) in labels {
            if !["job", "namespace", "pod", "instance"].contains(&label.as_str()) && !own.contains(label) {
                unknown_labels.push(format!(
                    "{metric}{{{label}=…}} in {places:?}: its samples carry {own:?}"
                ));
            }
        }
    }
    assert!(
        unknown_labels.is_empty(),
        "the alerts and dashboard match on labels the series do not have:\n  {}",
        unknown_labels.join("\n  ")
    );
}

#[test]
fn selectors_are_read_from_promql() {
    assert_eq!(
        selectors(
            r#"sum by (api) (rate(apikey_operator_upstream_requests_total{job=~"$job",status_class=~"5xx|error"}[5m])) / apikey_operator_leader"#
        ),
        [
            (
                "apikey_operator_upstream_requests_total".to_string(),
                BTreeSet::from(["job".to_string(), "status_class".to_string()])
            ),
            ("apikey_operator_leader".to_string(), BTreeSet::new()),
        ]
    );
    let mut served = Served::default();
    served.add(&BTreeMap::from([
        (
            "apikey_operator_rotations_total{kind=\"ApiToken\",trigger=\"annotation\"}".to_string(),
            1.0,
        ),
        ("apikey_operator_leader".to_string(), 1.0),
    ]));
    assert_eq!(
        served.0["apikey_operator_rotations_total"],
        BTreeSet::from(["kind".to_string(), "trigger".to_string()])
    );
    assert_eq!(served.0["apikey_operator_leader"], BTreeSet::new());
    assert_eq!(
        Served::family("apikey_operator_reconcile_duration_seconds_bucket"),
        "apikey_operator_reconcile_duration_seconds"
    );
    assert_eq!(Served::family("apikey_operator_leader"), "apikey_operator_leader");
}
