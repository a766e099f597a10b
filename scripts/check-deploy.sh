#!/usr/bin/env bash
# Validates everything under deploy/ offline, in a few seconds:
#   - Kubernetes: `kubectl kustomize` builds the base and each overlay, and
#     `kubernetes-validate --strict` checks every object against the
#     Kubernetes OpenAPI schemas (unknown fields are errors);
#   - Prometheus: `promtool check rules` and `promtool test rules` (a unit
#     test per alert); the Grafana dashboard parses as JSON;
#   - systemd: `systemd-analyze verify` of the unit (any warning fails);
#   - with TRACKGATE_BIN (a built gateway): `trackgate check-config` of the
#     configuration files the manifests ship.
# Needs kubectl, promtool, systemd-analyze, python3 and kubernetes-validate
# (KUBERNETES_VALIDATE=path, else on PATH); scripts/test.sh installs them.
# The metric names the rules and the dashboard query are checked against a
# running gateway by tests/deploy_metrics.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Oldest Kubernetes the manifests target: the preStop `sleep` action is on
# by default from 1.30.
K8S_VERSIONS="${K8S_VERSIONS:-1.30.0 1.33.0}"
VALIDATE="${KUBERNETES_VALIDATE:-$(command -v kubernetes-validate || true)}"

say() { printf '  %s\n' "$*"; }
fail() { printf 'check-deploy: %s\n' "$*" >&2; exit 1; }

for tool in kubectl promtool systemd-analyze python3; do
  command -v "$tool" >/dev/null || fail "$tool is missing (scripts/test.sh installs it)"
done
[ -x "$VALIDATE" ] || fail "kubernetes-validate is missing (scripts/test.sh installs it in a venv)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "kubernetes: kustomize build and schema validation (${K8S_VERSIONS})"
for dir in deploy/kubernetes/base deploy/kubernetes/overlays/*/; do
  dir="${dir%/}"
  out="$work/$(echo "$dir" | tr / _).yaml"
  kubectl kustomize "$dir" > "$out"
  kinds="$(grep '^kind:' "$out" | awk '{print $2}' | sort | tr '\n' ' ')"
  for v in $K8S_VERSIONS; do
    "$VALIDATE" --strict --quiet -k "$v" "$out" || fail "$dir does not validate against Kubernetes $v"
  done
  say "$dir: ${kinds}valid"
done

echo "prometheus: rules and their unit tests"
promtool check rules deploy/monitoring/alerts.yaml | sed 's/^/  /'
promtool test rules deploy/monitoring/alerts.test.yaml | sed 's/^/  /'
python3 -m json.tool deploy/monitoring/grafana-dashboard.json > /dev/null
say "grafana-dashboard.json: valid JSON"

echo "systemd: systemd-analyze verify"
# verify wants the ExecStart binaries to exist: point them at a stand-in.
printf '#!/bin/sh\n' > "$work/trackgate"
chmod +x "$work/trackgate"
sed "s#/usr/local/bin/trackgate#$work/trackgate#g" deploy/systemd/trackgate.service > "$work/trackgate.service"
verify_out="$(systemd-analyze verify "$work/trackgate.service" 2>&1)" || fail "systemd-analyze verify: $verify_out"
[ -z "$verify_out" ] || fail "systemd-analyze verify warned: $verify_out"
say "deploy/systemd/trackgate.service: no warnings"

if [ -n "${TRACKGATE_BIN:-}" ]; then
  echo "trackgate check-config: the configurations the manifests ship"
  for f in deploy/kubernetes/base/trackgate.toml deploy/kubernetes/overlays/*/trackgate.toml; do
    # The Secret's variables, as the StatefulSet sets them.
    TRACKGATE_SOURCES__0__WRITE_KEY=wk_check_deploy \
    TRACKGATE_SOURCES__0__SERVER_KEY=sk_check_deploy_long_secret \
    TRACKGATE_INSPECT__TOKEN=check_deploy_inspector_token \
      "$TRACKGATE_BIN" --config "$f" check-config > /dev/null || fail "$f is not a valid configuration"
    say "$f: valid"
  done
fi
echo "deploy checks passed"
