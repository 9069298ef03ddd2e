#!/usr/bin/env bash
# Checks the kubectl plugin's krew manifest (deploy/krew/.krew.yaml, a krew-release-bot
# template) the way krew-index does, then installs the plugin from it with krew:
#
#  1. builds krew's validate-krew-manifest and krew itself (sigs.k8s.io/krew v0.4.3, pinned
#     in tests/krew/tool/go.mod) from the Go module proxy into a cache outside the
#     repository, once;
#  2. builds kubectl-apikeys and packs kubectl-apikeys-<tag>-linux-amd64.tar.gz the way a
#     release attaches it (the binary and the LICENSE at the top level);
#  3. renders the template as krew-release-bot would, for that archive: its sha256, and a uri
#     on a local HTTP server. Only a linux-amd64 binary can be built here: the linux-arm64,
#     darwin-amd64 and darwin-arm64 entries are served the SAME archive (so the same sha256).
#     For them this proves the manifest's structure, selectors, uri pattern and file layout,
#     not that a binary for that platform exists or runs;
#  4. runs `validate-krew-manifest -manifest apikeys.yaml` (krew-index's check: structure,
#     selectors covering distinct platforms, and `kubectl krew install` of every platform,
#     which must extract a LICENSE file);
#  5. installs with `krew install --manifest=… --archive=…` into a scratch KREW_ROOT for
#     every platform (KREW_OS/KREW_ARCH), and runs the installed linux-amd64 plugin through
#     the real kubectl: `kubectl apikeys --version` and `--help`.
#
# KUBECTL_APIKEYS_BIN: an existing kubectl-apikeys binary instead of `cargo build`.
# KUBEBUILDER_ASSETS: the directory holding kubectl (else tests/envtest/setup.sh builds it).
set -euo pipefail

KREW_VERSION=v0.4.3
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
template="$root/deploy/krew/.krew.yaml"
cache="${APIKEY_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/apikey-operator}/krew/${KREW_VERSION}"

say() { echo "krew/check.sh: $*" >&2; }

# 1. The tools. Built without a version tag: krew then counts as a development build and
# never asks GitHub for a newer release (the check stays offline).
if [[ ! -x "$cache/validate-krew-manifest" || ! -x "$cache/krew" ]]; then
  command -v go >/dev/null || { say "Go is required to build krew"; exit 1; }
  mkdir -p "$cache"
  export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=readonly
  for tool in validate-krew-manifest krew; do
    started=$SECONDS
    say "building ${tool} ${KREW_VERSION} (first run only)"
    (cd "$here/tool" && go build -trimpath -ldflags "-s -w" -o "$cache/$tool.tmp" "sigs.k8s.io/krew/cmd/$tool") >&2
    mv "$cache/$tool.tmp" "$cache/$tool"
    say "built ${tool} in $((SECONDS - started))s"
  done
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# kubectl: validate-krew-manifest installs through `kubectl krew`, and the plugin is run
# the way users run it.
assets="${KUBEBUILDER_ASSETS:-$("$root/tests/envtest/setup.sh" | tail -n 1)}"
[[ -x "$assets/kubectl" ]] || { say "no kubectl in $assets"; exit 1; }
mkdir -p "$work/bin"
ln -s "$assets/kubectl" "$work/bin/kubectl"
ln -s "$cache/krew" "$work/bin/kubectl-krew"
export KREW_NO_UPGRADE_CHECK=1

# 2. The plugin and its release archive.
if [[ -n "${KUBECTL_APIKEYS_BIN:-}" ]]; then
  plugin="$KUBECTL_APIKEYS_BIN"
else
  (cd "$root" && cargo build --locked --bin kubectl-apikeys) >&2
  plugin="${CARGO_TARGET_DIR:-$root/target}/debug/kubectl-apikeys"
  [[ "$plugin" = /* ]] || plugin="$root/$plugin"
fi
[[ -x "$plugin" ]] || { say "no plugin binary at $plugin"; exit 1; }
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)"
tag="v${version}"

license=LICENSE
mkdir -p "$work/pack" "$work/serve"
cp "$plugin" "$work/pack/kubectl-apikeys"
cp "$root/$license" "$work/pack/$license"
archive="$work/kubectl-apikeys-${tag}-linux-amd64.tar.gz"
tar -C "$work/pack" --owner=0 --group=0 -czf "$archive" kubectl-apikeys "$license"
sha="$(sha256sum "$archive" | cut -d' ' -f1)"
say "packed $(basename "$archive") (sha256 $sha)"

# 3. A local server for the uris, and the rendered manifest (named as in krew-index).
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$work/serve" >"$work/http.log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 100); do
  port="$(sed -n 's/.* port \([0-9]*\).*/\1/p' "$work/http.log" | head -n 1)"
  [[ -n "$port" ]] && break
  sleep 0.1
done
[[ -n "$port" ]] || { say "the HTTP server did not start: $(cat "$work/http.log")"; exit 1; }

manifest="$work/apikeys.yaml"
# krew-release-bot's rendering: {{ .TagName }} everywhere, and each
# {{addURIAndSha "URL" .TagName }} line replaced by `uri:` and `sha256:` at its indentation.
# The uri keeps the template's file name for that platform, on the local server.
awk -v tag="$tag" -v base="http://127.0.0.1:${port}" -v sha="$sha" '
  { gsub(/\{\{ *\.TagName *\}\}/, tag) }
  /\{\{ *addURIAndSha / {
    match($0, /^ */); indent = substr($0, 1, RLENGTH)
    match($0, /"[^"]*"/); url = substr($0, RSTART + 1, RLENGTH - 2)
    sub(/.*\//, "", url)
    print indent "uri: " base "/" url
    print indent "sha256: " sha
    next
  }
  { print }
' "$template" >"$manifest"
if grep -n '{{' "$manifest" >&2; then say "unrendered template expressions left"; exit 1; fi
# Every platform's archive name, served as a copy of the one archive (see 3. above).
while read -r uri; do
  cp "$archive" "$work/serve/${uri##*/}"
done < <(sed -n 's/^ *uri: //p' "$manifest")
[[ -f "$work/serve/$(basename "$archive")" ]] || { say "the manifest does not name $(basename "$archive")"; exit 1; }
say "rendered $(grep -c '^ *uri: ' "$manifest") platforms into apikeys.yaml"

# 4. krew-index's validation.
PATH="$work/bin:$PATH" "$cache/validate-krew-manifest" -manifest "$manifest" >&2
say "validate-krew-manifest: OK"

# 5. A real install per platform, from the local archive.
for platform in linux/amd64 linux/arm64 darwin/amd64 darwin/arm64; do
  krew_root="$work/krew-${platform/\//-}"
  mkdir -p "$krew_root"
  KREW_ROOT="$krew_root" KREW_OS="${platform%/*}" KREW_ARCH="${platform#*/}" \
    "$cache/krew" install --manifest="$manifest" --archive="$archive" </dev/null >&2
  installed="$krew_root/store/apikeys/$tag"
  for file in kubectl-apikeys "$license"; do
    [[ -f "$installed/$file" ]] || { say "$platform: $file not installed in $installed"; exit 1; }
  done
  [[ -x "$krew_root/bin/kubectl-apikeys" ]] || { say "$platform: no $krew_root/bin/kubectl-apikeys"; exit 1; }
  # The receipt `krew list` and `krew upgrade` go by (`krew list` itself wants an index).
  grep -q "^  version: ${tag}$" "$krew_root/receipts/apikeys.yaml" 2>/dev/null \
    || { say "$platform: no receipt for apikeys ${tag}"; exit 1; }
  say "krew install ($platform): OK"
done

# The linux-amd64 install, run by kubectl as a plugin from the krew root's bin.
krew_root="$work/krew-linux-amd64"
run_plugin() { PATH="$krew_root/bin:$work/bin:$PATH" kubectl apikeys "$@"; }
# (`kubectl plugin list` exits non-zero on any warning about other plugins on PATH.)
plugins="$(PATH="$krew_root/bin:$work/bin:$PATH" kubectl plugin list 2>/dev/null || true)"
grep -qx "$krew_root/bin/kubectl-apikeys" <<<"$plugins" \
  || { say "kubectl plugin list does not find the installed plugin:"$'\n'"$plugins"; exit 1; }
reported="$(run_plugin --version)"
[[ "$reported" == "kubectl apikeys ${version}" ]] || { say "kubectl apikeys --version said: $reported"; exit 1; }
help="$(run_plugin --help)"
for command in status rotate describe compromised; do
  grep -q "^  ${command} " <<<"$help" || { say "kubectl apikeys --help lacks $command:"$'\n'"$help"; exit 1; }
done
say "kubectl apikeys --version: $reported; --help lists status, rotate, describe, compromised"
