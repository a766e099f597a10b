#!/usr/bin/env bash
# Installs what the client-compatibility and contract tests run, only when
# missing or changed: the pinned npm packages (npm ci) and two Python
# virtualenvs under ${TRACKGATE_CLIENTS_VENVS:-~/.cache/trackgate}
# (requirements.txt, and requirements-legacy.txt for the library that
# cannot share one). Chromium comes from sdk-js/scripts/ensure-chromium.sh.
set -euo pipefail
cd "$(dirname "$0")"
VENVS="${TRACKGATE_CLIENTS_VENVS:-$HOME/.cache/trackgate}"

# The lock last installed is kept beside the packages; equal = current.
if ! cmp -s package-lock.json node_modules/.installed-lock.json 2>/dev/null; then
  echo "installing the client libraries from npm (tests/clients/package-lock.json)"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.installed-lock.json
fi

venv() {
  local name="$1" requirements="$2" dir="$VENVS/$1"
  if ! cmp -s "$requirements" "$dir/.installed-requirements" 2>/dev/null; then
    echo "installing $requirements into $dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$dir/.installed-requirements"
  fi
}
venv clients-venv requirements.txt
venv clients-legacy-venv requirements-legacy.txt
