#!/usr/bin/env bash
# Checks the Helm chart's alert rules and Grafana dashboard with promtool (`make alerts`):
#
#  1. Renders templates/prometheusrule.yaml (helm template --show-only, release
#     `apikey-operator` in namespace `apikey-system`, so the default selector is
#     job="apikey-operator-metrics",namespace="apikey-system") and extracts the rule file: the
#     template writes the PrometheusRule's `spec:` last and it holds nothing but the `groups:`
#     of a Prometheus rule file (the named template "apikey-operator.alertGroups"), so the
#     lines under `spec:`, unindented by two spaces, are that rule file. The extraction is
#     checked: it must start with `groups:` and keep every `- alert:` of the rendered object.
#  2. `promtool check rules` on it, and `promtool test rules` with tests/alerts/rules.test.yaml
#     (copied next to it: its rule_files names `rules.yaml`).
#  3. The same with every option of metrics.prometheusRule set (selector, labels, thresholds,
#     a disabled alert): still valid, and the options show.
#  4. The dashboard (dashboards/apikey-operator.json): valid JSON with the expected uid,
#     schemaVersion, variables and panels; every query selects `job=~"$job"`; and every query
#     parses as PromQL — one recording rule per query, Grafana's variables replaced by
#     concrete values, through `promtool check rules`.
#
# helm and promtool come from tests/envtest/helm.sh and tests/envtest/promtool.sh (HELM_BIN and
# PROMTOOL_BIN are honoured). Needs python3 (standard library only). Exits non-zero on any
# failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
chart="$root/charts/apikey-operator"
helm="$("$root/tests/envtest/helm.sh" | tail -n 1)"
promtool="$("$root/tests/envtest/promtool.sh" | tail -n 1)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export HELM_CACHE_HOME="$work/helm-cache" HELM_CONFIG_HOME="$work/helm-config" HELM_DATA_HOME="$work/helm-data"

fail() { echo "alerts/check.sh: $*" >&2; exit 1; }

# Renders the PrometheusRule with extra helm arguments "$@" and writes its rule file to $1.
render_rules() {
  local out="$1"
  shift
  "$helm" template apikey-operator "$chart" --namespace apikey-system \
    --set metrics.prometheusRule.enabled=true \
    --show-only templates/prometheusrule.yaml "$@" >"$out.rendered"
  awk '
    /^spec:$/ { in_spec = 1; next }
    in_spec && /^[^ ]/ { in_spec = 0 }
    in_spec { sub(/^  /, ""); print }
  ' "$out.rendered" >"$out"
  [[ "$(head -n 1 "$out")" == "groups:" ]] || fail "the PrometheusRule's spec does not start with groups: ($out.rendered)"
  local rendered extracted
  rendered="$(grep -c -- '- alert: ' "$out.rendered" || true)"
  extracted="$(grep -c -- '- alert: ' "$out" || true)"
  [[ "$rendered" -gt 0 && "$rendered" == "$extracted" ]] ||
    fail "extracted $extracted of the $rendered alerts from the PrometheusRule"
  echo "$extracted"
}

echo "== alert rules (defaults)"
alerts="$(render_rules "$work/rules.yaml")"
"$promtool" check rules "$work/rules.yaml"
cp "$here/rules.test.yaml" "$work/rules.test.yaml"
(cd "$work" && "$promtool" test rules rules.test.yaml)
# Every alert of the rule file has tests of its own.
missing=()
while read -r alert; do
  grep -q "alertname: $alert\$" "$here/rules.test.yaml" || missing+=("$alert")
done < <(sed -n 's/^ *- alert: \(.*\)$/\1/p' "$work/rules.yaml")
[[ ${#missing[@]} -eq 0 ]] || fail "no test in tests/alerts/rules.test.yaml for: ${missing[*]}"
echo "$alerts alerts, each tested"

echo "== alert rules (every option set)"
render_rules "$work/custom.yaml" \
  --set metrics.prometheusRule.namespace=monitoring \
  --set metrics.prometheusRule.labels.release=prometheus \
  --set-string 'metrics.prometheusRule.selector=job="apikey-operator"\,cluster="prod"' \
  --set metrics.prometheusRule.alertLabels.team=platform \
  --set 'metrics.prometheusRule.disabled[0]=ApikeyOperatorKeysUnused' \
  --set metrics.prometheusRule.runbookUrl=https://runbooks.example/apikey-operator \
  --set metrics.prometheusRule.expiryWarningDays=14 \
  --set metrics.prometheusRule.notReadyMinutes=45 \
  --set metrics.prometheusRule.storeNotReadyMinutes=20 \
  --set metrics.prometheusRule.rotationOverdueMinutes=5 \
  --set-json metrics.prometheusRule.upstreamErrorRatio=0.25 \
  --set metrics.prometheusRule.upstreamErrorWindow=30m \
  --set metrics.prometheusRule.upstreamErrorMinutes=25 \
  --set metrics.prometheusRule.leaderMissingMinutes=2 >/dev/null
"$promtool" check rules "$work/custom.yaml"
for want in '^  namespace: monitoring$' '^    release: prometheus$'; do
  grep -q "$want" "$work/custom.yaml.rendered" || fail "the custom PrometheusRule's metadata lacks '$want'"
done
for want in 'job="apikey-operator",cluster="prod"' 'team: platform' 'runbooks.example/apikey-operator#' \
  '< 14 \* 86400' 'for: 45m' 'for: 20m' 'for: 5m' '> 0.25' '\[30m\]' 'for: 25m' 'for: 2m'; do
  grep -q -- "$want" "$work/custom.yaml" || fail "custom rules lack '$want'"
done
! grep -q 'ApikeyOperatorKeysUnused' "$work/custom.yaml" || fail "a disabled alert is still rendered"
! grep -q 'apikey-operator-metrics' "$work/custom.yaml" || fail "the default selector is still used"

echo "== dashboard"
"$helm" template apikey-operator "$chart" --namespace apikey-system \
  --set grafana.dashboard.enabled=true --show-only templates/grafana-dashboard.yaml >"$work/dashboard.rendered"
grep -q '^    grafana_dashboard: "1"$' "$work/dashboard.rendered" || fail "the dashboard ConfigMap lacks the sidecar label"
python3 - "$chart/dashboards/apikey-operator.json" "$work/dashboard-rules.json" <<'PY'
import json, re, sys

source, out = sys.argv[1], sys.argv[2]
errors = []
with open(source) as f:
    dashboard = json.load(f)  # fails on invalid JSON
if dashboard.get("uid") != "apikey-operator":
    errors.append(f"uid is {dashboard.get('uid')!r}, want 'apikey-operator'")
if not 36 <= dashboard.get("schemaVersion", 0) <= 41:
    errors.append(f"schemaVersion {dashboard.get('schemaVersion')} is not one Grafana 10-12 writes")
variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
ds = variables.get("datasource", {})
if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
    errors.append("no datasource variable of type datasource for prometheus")
for name in ("job", "namespace"):
    if variables.get(name, {}).get("type") != "query":
        errors.append(f"no query variable {name}")

panels, ids, rules = [], set(), []
def walk(items):
    for p in items:
        panels.append(p)
        walk(p.get("panels", []))
walk(dashboard.get("panels", []))
substitutions = [("$__rate_interval", "5m"), ("$__interval", "1m"), ("$__range", "1h"),
                 ("${job}", ".+"), ("$job", ".+"), ("${namespace}", ".*"), ("$namespace", ".*")]
for p in panels:
    pid = p.get("id")
    if pid in ids:
        errors.append(f"panel id {pid} is used twice")
    ids.add(pid)
    grid = p.get("gridPos", {})
    if grid.get("x", 0) + grid.get("w", 0) > 24:
        errors.append(f"panel {pid} ({p.get('title')}) is wider than the grid")
    if p.get("type") == "row":
        continue
    if not p.get("title") or not p.get("targets"):
        errors.append(f"panel {pid} has no title or no targets")
    for t in p.get("targets", []):
        where = f"panel {pid} ({p.get('title')}) target {t.get('refId')}"
        if t.get("datasource", p.get("datasource", {})).get("uid") != "${datasource}":
            errors.append(f"{where} does not use the datasource variable")
        expr = t.get("expr", "")
        if not expr:
            errors.append(f"{where} has no expr")
            continue
        for m in re.finditer(r"apikey_operator_[a-z_]+(\{[^}]*\})?", expr):
            if 'job=~"$job"' not in (m.group(1) or ""):
                errors.append(f"{where}: {m.group(0)} does not select job=~\"$job\"")
        concrete = expr
        for var, value in substitutions:
            concrete = concrete.replace(var, value)
        if "$" in concrete:
            errors.append(f"{where}: a variable is left unreplaced in {concrete}")
        rules.append({"record": f"apikey_operator_dashboard:panel_{pid}_{t.get('refId')}", "expr": concrete})
if errors:
    sys.exit("dashboard: " + "\n  ".join([""] + errors))
with open(out, "w") as f:
    json.dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, f, indent=2)
print(f"{len(panels)} panels, {len(rules)} queries")
PY
# A JSON document is YAML: promtool parses every query.
"$promtool" check rules "$work/dashboard-rules.json"
echo "alerts/check.sh: all checks passed"
