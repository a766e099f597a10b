#!/usr/bin/env bash
# The whole trackgate test suite, on a fresh machine or a warm one.
#
# Installs what is missing (the Tansu broker, Node packages, Chromium), then
# runs: format check, clippy -D warnings, unit and integration tests (each
# integration test starts its own Tansu broker and gateway on free loopback
# ports; tests/clients.rs runs the real Segment and RudderStack libraries from
# npm and PyPI, in Chromium for the browser ones, and tests/contract.rs runs
# schemathesis against docs/openapi.yaml), and the SDK's unit and
# real-Chromium end-to-end tests.
#
#   ./scripts/test.sh                everything
#   SKIP_SDK=1 ./scripts/test.sh     no SDK tests
#   SKIP_CLIENTS=1 ./scripts/test.sh no client-library or schemathesis tests
set -euo pipefail
cd "$(dirname "$0")/.."

TANSU_VERSION="0.6.0"
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@"
}

ensure_build_tools() {
  # librdkafka is built from source by rdkafka-sys (bundled): needs a C
  # toolchain, make, and zlib/zstd headers are vendored by the crates.
  local missing=()
  command -v cc >/dev/null || missing+=(build-essential)
  command -v make >/dev/null || missing+=(make)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  command -v python3 >/dev/null || missing+=(python3)
  python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
  if [ ${#missing[@]} -gt 0 ]; then
    step "installing build tools: ${missing[*]}"
    apt_install "${missing[@]}"
  fi
}

ensure_tansu() {
  if command -v tansu >/dev/null && tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    return
  fi
  step "installing the Tansu broker $TANSU_VERSION (about 10 minutes on 2 cores, once per machine)"
  cargo install tansu --version "$TANSU_VERSION" --features dynostore --locked
}

ensure_node() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    step "installing Node.js"
    apt_install nodejs npm
  fi
}

ensure_build_tools
ensure_tansu
export TANSU_BIN="$(command -v tansu)"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

if [ "${SKIP_CLIENTS:-0}" != 1 ]; then
  ensure_node
  step "client libraries (npm, PyPI), schemathesis, Chromium"
  bash sdk-js/scripts/ensure-chromium.sh
  bash tests/clients/setup.sh
else
  # Not `TRACKGATE_`-prefixed: the gateways the tests start read every
  # `TRACKGATE_` variable as configuration and refuse unknown keys.
  export TEST_CLIENTS_SKIP=1
fi

step "unit and integration tests (real Tansu broker)"
cargo test --workspace --all-targets

if [ "${SKIP_SDK:-0}" != 1 ] && [ -f sdk-js/package.json ]; then
  ensure_node
  step "sdk-js: Chromium"
  bash sdk-js/scripts/ensure-chromium.sh
  step "sdk-js: unit tests, build, size budget, end-to-end in Chromium"
  cargo build --bin trackgate
  export TRACKGATE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/trackgate"
  (cd sdk-js && npm ci --no-audit --no-fund && npm run build && npm test && npm run test:e2e)
fi

step "all tests passed"
