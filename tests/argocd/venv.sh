#!/usr/bin/env bash
# Installs (once) a Lua 5.1 interpreter for Python (lupa: Lua as Argo CD's gopher-lua runs it)
# into a virtualenv cached outside the repository, and prints its python as its last line.
# Fails when the interpreter cannot be had: the Argo CD health tests must not skip.
set -euo pipefail

LUPA_VERSION=2.8

cache="${APIKEY_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/apikey-operator}/argocd-lua-venv"
python="$cache/bin/python"

if ! "$python" -c 'import lupa.lua51' >/dev/null 2>&1; then
  command -v python3 >/dev/null || { echo "argocd/venv.sh: python3 is required for the Lua health checks" >&2; exit 1; }
  python3 -m venv "$cache" >&2
  "$python" -m pip install --quiet --disable-pip-version-check "lupa==${LUPA_VERSION}" >&2
fi
echo "$python"
