#!/usr/bin/env bash
# Installs the vendors' published Python SDKs (the conformance references) into a virtualenv
# cached outside the repository, once, and prints the directory of the installed
# `akamai.edgegrid` package (which ships the official EdgeGrid test vectors) as its last line.
set -euo pipefail

EDGEGRID_PYTHON_VERSION=2.0.9

cache="${APIKEY_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/apikey-operator}/conformance-venv"
python="$cache/bin/python"
locate='import akamai.edgegrid, os; print(os.path.dirname(akamai.edgegrid.__file__))'

if ! "$python" -c "$locate" >/dev/null 2>&1; then
  command -v python3 >/dev/null || { echo "venv.sh: python3 is required for the conformance vectors" >&2; exit 1; }
  python3 -m venv "$cache" >&2
  "$python" -m pip install --quiet --disable-pip-version-check \
    "edgegrid-python==${EDGEGRID_PYTHON_VERSION}" >&2
fi
"$python" -c "$locate"
