#!/usr/bin/env bash
# akamai-sdk: a test program that drives the credential store's Akamai IAM API v3 emulation
# through Akamai's official Go SDK.
#
# The SDK is github.com/akamai/AkamaiOPEN-edgegrid-golang (pkg/iam, over pkg/session and
# pkg/edgegrid), which Akamai's Terraform provider is built on. The program runs the whole
# client/credential lifecycle with it (create with every setting, get with every option, list,
# full-replace update, lock/unlock incl. self, credentials create/list/get/update/deactivate/
# deactivate-all/delete, account switch keys, signing: fresh credentials, tampered signature,
# replayed nonce, and the SDK's expiresOn work-around), so the emulation is checked against the
# bodies, types and validations of the real client rather than a re-implementation of them.
#
# CLI contract of the built binary (tests/akamai-sdk/tool/main.go has the details):
#   akamai-sdk-conformance --credstore-bin PATH
#           starts `PATH credstore --listen 127.0.0.1:0 --data <temp dir> --admin-api`, uses the
#           admin credential it bootstraps (akamai.edgerc, bootstrap.json), stops it at the end.
#   stdout: one line per check, `ok <name>` or `FAIL <name>: <plain reason>`, then
#           `N of M checks passed`. Client secrets are never printed.
#   exit:   0 when every check passed, 1 when one failed; 2 with a one-line message on stderr
#           when the store cannot be started or on bad arguments.
#
# This script builds it from the Go module proxy (pinned in tests/akamai-sdk/tool/go.mod and
# go.sum) into a cache outside the repository, once per version of the tool's sources, and
# prints the path of the binary as its last line. Honours AKAMAI_SDK_BIN when it points at an
# executable.
#   bin="$(tests/akamai-sdk/build.sh | tail -n1)"; "$bin" --credstore-bin target/debug/apikey-operator
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tool="$here/tool"

if [[ -n "${AKAMAI_SDK_BIN:-}" && -x "${AKAMAI_SDK_BIN}" ]]; then
  echo "$AKAMAI_SDK_BIN"
  exit 0
fi

sdk="github.com/akamai/AkamaiOPEN-edgegrid-golang/v11"
# go.mod names it in a one-line `require` (the tool's only direct dependency) or in a block.
SDK_VERSION="$(awk -v m="$sdk" '$1 == m { print $2 } $1 == "require" && $2 == m { print $3 }' "$tool/go.mod")"
[[ -n "$SDK_VERSION" ]] || { echo "akamai-sdk/build.sh: no edgegrid-golang in $tool/go.mod" >&2; exit 1; }
sources_hash="$(cat "$tool"/*.go "$tool/go.mod" "$tool/go.sum" | sha256sum | cut -c1-12)"
cache="${APIKEY_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/apikey-operator}/akamai-sdk/${SDK_VERSION}-${sources_hash}"
if [[ -x "$cache/akamai-sdk-conformance" ]]; then
  echo "$cache/akamai-sdk-conformance"
  exit 0
fi

command -v go >/dev/null || { echo "akamai-sdk/build.sh: Go is required to build the Akamai SDK program" >&2; exit 1; }
mkdir -p "$cache"
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=readonly

started=$SECONDS
echo "akamai-sdk/build.sh: building akamai-sdk-conformance (edgegrid-golang ${SDK_VERSION}, first run only)" >&2
(cd "$tool" && go build -trimpath -ldflags "-s -w" -o "$cache/akamai-sdk-conformance.tmp.$$" .) >&2
mv "$cache/akamai-sdk-conformance.tmp.$$" "$cache/akamai-sdk-conformance"
echo "akamai-sdk/build.sh: built in $((SECONDS - started))s" >&2
echo "$cache/akamai-sdk-conformance"
