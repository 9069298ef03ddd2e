#!/usr/bin/env bash
# kstatus: a small test tool that gives kstatus' verdict on Kubernetes objects.
#
# kstatus is the status computation of sigs.k8s.io/cli-utils/pkg/kstatus/status (Compute): the
# rules that Flux, kpt, Config Sync, Argo CD-style health checks and `cli-utils` pollers use to
# decide whether an applied object is InProgress, Current, Failed or Terminating. The cluster
# tests feed it the objects (the operator's custom resources, Secrets, Deployments, ...) read back
# from a real run and assert the verdicts, so the operator's status/conditions are checked
# against the real library rather than a re-implementation of its rules.
#
# CLI contract of the built binary (tests/kstatus/tool/main.go has the details):
#   kstatus < objects.json > verdicts.json
#   stdin:  a JSON array of full objects as the API server returns them (custom resources
#           included), or a List ({"kind":"List","items":[...]}, as `kubectl get -o json` prints);
#           each needs a kind and metadata.name.
#   stdout: a JSON array, one entry per input, in input order:
#           {"kind","namespace","name","status":"InProgress|Failed|Current|Terminating|NotFound|Unknown",
#            "message","conditions":[{"type":"Reconciling|Stalled","status","reason","message"}]}
#           (status.Compute never says NotFound itself; a Compute error gives "Unknown" with the
#           error in "message" and "error".)
#   exit:   0; 2 with a one-line message on stderr on bad input or arguments.
#   kstatus --version prints the cli-utils version it was built with.
#
# This script builds it from the Go module proxy (pinned in tests/kstatus/tool/go.mod and go.sum)
# into a cache outside the repository, once per version of the tool's sources, and prints the
# path of the binary as its last line. Honours KSTATUS_BIN when it points at an executable.
#   bin="$(tests/kstatus/build.sh | tail -n1)"; kubectl get apikeys -A -o json | "$bin"
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tool="$here/tool"

if [[ -n "${KSTATUS_BIN:-}" && -x "${KSTATUS_BIN}" ]]; then
  echo "$KSTATUS_BIN"
  exit 0
fi

CLI_UTILS_VERSION="$(awk '$1 == "sigs.k8s.io/cli-utils" { print $2 }' "$tool/go.mod")"
[[ -n "$CLI_UTILS_VERSION" ]] || { echo "kstatus/build.sh: no sigs.k8s.io/cli-utils in $tool/go.mod" >&2; exit 1; }
sources_hash="$(cat "$tool/main.go" "$tool/go.mod" "$tool/go.sum" | sha256sum | cut -c1-12)"
cache="${APIKEY_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/apikey-operator}/kstatus/${CLI_UTILS_VERSION}-${sources_hash}"
if [[ -x "$cache/kstatus" ]]; then
  echo "$cache/kstatus"
  exit 0
fi

command -v go >/dev/null || { echo "kstatus/build.sh: Go is required to build the kstatus tool" >&2; exit 1; }
mkdir -p "$cache"
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=readonly

started=$SECONDS
echo "kstatus/build.sh: building kstatus (cli-utils ${CLI_UTILS_VERSION}, first run only)" >&2
(cd "$tool" && go build -trimpath -ldflags "-s -w" -o "$cache/kstatus.tmp.$$" .) >&2
mv "$cache/kstatus.tmp.$$" "$cache/kstatus"
echo "kstatus/build.sh: built in $((SECONDS - started))s" >&2
echo "$cache/kstatus"
