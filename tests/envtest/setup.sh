#!/usr/bin/env bash
# Builds kube-apiserver, kubectl (v1.34) and etcd (v3.6) from the Go module proxy into a
# cache outside the repository, once, and prints the directory holding them as its last line.
# Honours KUBEBUILDER_ASSETS when it already holds the binaries.
set -euo pipefail

KUBE_VERSION=v1.34.4
ETCD_VERSION=v3.6.16
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

has_binaries() { [[ -x "$1/kube-apiserver" && -x "$1/etcd" && -x "$1/kubectl" ]]; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]] && has_binaries "$KUBEBUILDER_ASSETS"; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

cache="${APIKEY_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/apikey-operator}/envtest/${KUBE_VERSION}-etcd-${ETCD_VERSION}"
if has_binaries "$cache"; then
  echo "$cache"
  exit 0
fi

command -v go >/dev/null || { echo "setup.sh: Go is required to build kube-apiserver and etcd" >&2; exit 1; }
mkdir -p "$cache"
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=readonly

minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X ${pkg}.gitVersion=${KUBE_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
  ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
done

started=$SECONDS
echo "setup.sh: building kube-apiserver and kubectl ${KUBE_VERSION} (first run only, ~15 min on two cores)" >&2
(cd "$here/kube" && go build -trimpath -ldflags "$ldflags" -o "$cache/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl) >&2
echo "setup.sh: building etcd ${ETCD_VERSION}" >&2
(cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$cache/etcd" go.etcd.io/etcd/server/v3) >&2
echo "setup.sh: built in $((SECONDS - started))s" >&2
echo "$cache"
