#!/usr/bin/env bash
# Builds promtool (Prometheus's rule checker and rule unit-test runner) from the Go module
# proxy (pinned in tests/envtest/promtool/go.mod) into a cache outside the repository, once,
# and prints the path of the binary as its last line. Honours PROMTOOL_BIN when it points at
# an executable. Used by tests/alerts/check.sh (`make alerts`).
set -euo pipefail

# github.com/prometheus/prometheus v0.316.0 is Prometheus 3.16.0 (the module's v0.3xx.y tags
# carry the 3.xx.y releases).
PROMETHEUS_MODULE_VERSION=v0.316.0
# Rule checks and rule unit tests need no service discovery: leaving out its plugins (the
# cloud SDKs) makes the build several times smaller and faster.
BUILD_TAGS=remove_all_sd
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ -n "${PROMTOOL_BIN:-}" && -x "${PROMTOOL_BIN}" ]]; then
  echo "$PROMTOOL_BIN"
  exit 0
fi

cache="${APIKEY_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/apikey-operator}/promtool/${PROMETHEUS_MODULE_VERSION}-${BUILD_TAGS}"
if [[ -x "$cache/promtool" ]]; then
  echo "$cache/promtool"
  exit 0
fi

command -v go >/dev/null || { echo "promtool.sh: Go is required to build promtool" >&2; exit 1; }
grep -qE "github.com/prometheus/prometheus ${PROMETHEUS_MODULE_VERSION}( |$)" "$here/promtool/go.mod" ||
  { echo "promtool.sh: tests/envtest/promtool/go.mod does not pin ${PROMETHEUS_MODULE_VERSION}" >&2; exit 1; }
mkdir -p "$cache"
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=readonly

minor_patch="${PROMETHEUS_MODULE_VERSION#v0.3}"   # v0.316.0 -> 16.0
ldflags="-s -w -X github.com/prometheus/common/version.Version=3.${minor_patch}"
ldflags+=" -X github.com/prometheus/common/version.Branch=HEAD"

started=$SECONDS
echo "promtool.sh: building promtool (prometheus ${PROMETHEUS_MODULE_VERSION}; first run only, a few minutes on two cores)" >&2
(cd "$here/promtool" && go build -trimpath -tags "$BUILD_TAGS" -ldflags "$ldflags" -o "$cache/promtool.tmp" github.com/prometheus/prometheus/cmd/promtool) >&2
mv "$cache/promtool.tmp" "$cache/promtool"
echo "promtool.sh: built in $((SECONDS - started))s" >&2
echo "$cache/promtool"
