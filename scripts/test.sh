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
# Also: deploy/ checked offline (scripts/check-deploy.sh: kustomize and the
# Kubernetes schemas, promtool rules and their unit tests, systemd-analyze),
# and the container image built and smoke-tested (scripts/image-test.sh)
# when podman is installed.
#
#   ./scripts/test.sh                everything
#   SKIP_SDK=1 ./scripts/test.sh     no SDK tests
#   SKIP_CLIENTS=1 ./scripts/test.sh no client-library or schemathesis tests
#   IMAGE_TEST=0 ./scripts/test.sh   no container image test (it runs as root,
#                                    installing podman and debootstrap if missing)
#   TEST_RUNNER=cargo ./scripts/test.sh  `cargo test` (one test binary at a
#                                    time) instead of cargo-nextest
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

# Offline validators of deploy/: kubectl (kustomize), promtool (Debian's
# prometheus package), systemd-analyze, and kubernetes-validate (PyPI) in a
# venv of its own.
KUBERNETES_VALIDATE_VERSION="1.37.0"
DEPLOY_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/trackgate/deploy-venv"
ensure_deploy_tools() {
  local missing=()
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v systemd-analyze >/dev/null || missing+=(systemd)
  if [ ${#missing[@]} -gt 0 ]; then
    step "installing deploy validators: ${missing[*]}"
    apt_install "${missing[@]}"
  fi
  if ! command -v kubectl >/dev/null; then
    step "installing kubectl"
    apt_install kubectl || apt_install kubernetes-client
  fi
  if ! "$DEPLOY_VENV/bin/kubernetes-validate" --version 2>/dev/null | grep -q "$KUBERNETES_VALIDATE_VERSION"; then
    step "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION (PyPI, in $DEPLOY_VENV)"
    python3 -m venv "$DEPLOY_VENV"
    "$DEPLOY_VENV/bin/pip" install -q "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  fi
  export KUBERNETES_VALIDATE="$DEPLOY_VENV/bin/kubernetes-validate"
}

# podman and debootstrap build the image and its runtime base.
ensure_image_tools() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v curl >/dev/null || missing+=(curl)
  if [ ${#missing[@]} -gt 0 ]; then
    step "installing image build tools: ${missing[*]}"
    apt_install "${missing[@]}"
  fi
}

ensure_build_tools
ensure_tansu
ensure_deploy_tools
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

step "deploy/: manifests, alert rules, dashboard, systemd unit, shipped configurations"
# The debug binary is the one the integration tests use anyway.
cargo build --bin trackgate
TRACKGATE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/trackgate" bash scripts/check-deploy.sh

# cargo-nextest runs every test as its own process and keeps both cores
# busy across test binaries (cargo test runs one binary at a time, so each
# binary's slowest test leaves a core idle). Tests share no ports or
# brokers: each starts its own on free loopback ports.
step "unit and integration tests (real Tansu broker)"
if [ "${TEST_RUNNER:-nextest}" = nextest ] && cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --lib --bins --tests --examples --no-fail-fast
  # Criterion benches in test mode (each runs once) and doc tests: nextest
  # cannot list a bench that prints while listing.
  cargo test --workspace --benches
  cargo test --workspace --doc
else
  cargo test --workspace --all-targets
fi

# Building and smoke-testing the image takes about a minute warm (a first
# run adds installing podman and a debootstrap of about a minute each); it
# needs root (chroot), so it runs wherever the suite runs as root unless
# IMAGE_TEST=0, and is skipped, saying so, elsewhere.
if [ "${IMAGE_TEST:-}" = 1 ] || { [ "${IMAGE_TEST:-}" != 0 ] && [ "$(id -u)" = 0 ]; }; then
  ensure_image_tools
  step "container image: build with podman, run its gateway against Tansu"
  TRACKGATE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/trackgate" bash scripts/image-test.sh
elif [ "${IMAGE_TEST:-}" != 0 ]; then
  step "container image test skipped: it needs root"
fi

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
