#!/usr/bin/env bash
# Builds helm from the Go module proxy (pinned in tests/envtest/helm/go.mod) into a cache
# outside the repository, once, and prints the path of the binary as its last line.
# Honours HELM_BIN when it points at an executable.
set -euo pipefail

HELM_VERSION=v3.19.5
# The Kubernetes version helm assumes for `helm template`/`helm lint` (.Capabilities): the one
# tests/envtest/setup.sh builds the test control plane from.
KUBE_MAJOR=1
KUBE_MINOR=34
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ -n "${HELM_BIN:-}" && -x "${HELM_BIN}" ]]; then
  echo "$HELM_BIN"
  exit 0
fi

cache="${APIKEY_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/apikey-operator}/helm/${HELM_VERSION}-k8s-${KUBE_MAJOR}.${KUBE_MINOR}"
if [[ -x "$cache/helm" ]]; then
  echo "$cache/helm"
  exit 0
fi

command -v go >/dev/null || { echo "helm.sh: Go is required to build helm" >&2; exit 1; }
mkdir -p "$cache"
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=readonly

ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  ldflags+=" -X ${pkg}.k8sVersionMajor=${KUBE_MAJOR} -X ${pkg}.k8sVersionMinor=${KUBE_MINOR}"
done

started=$SECONDS
echo "helm.sh: building helm ${HELM_VERSION} (first run only, a few minutes on two cores)" >&2
(cd "$here/helm" && go build -trimpath -ldflags "$ldflags" -o "$cache/helm.tmp" helm.sh/helm/v3/cmd/helm) >&2
mv "$cache/helm.tmp" "$cache/helm"
echo "helm.sh: built in $((SECONDS - started))s" >&2
echo "$cache/helm"
