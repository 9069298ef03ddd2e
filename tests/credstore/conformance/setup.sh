#!/usr/bin/env bash
# Builds (once per requirements.txt) the Python venv holding the vendors' published
# clients used by the credstore conformance tests, and prints its directory.
# Fails loudly when the venv cannot be built: conformance must never be skipped.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${CONFORMANCE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/apikey-operator/credstore-conformance-venv}"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"

if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
  echo "$want" >"$stamp"
fi
echo "$venv"
