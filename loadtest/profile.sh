#!/usr/bin/env bash
# Profiles the gateway under load: starts Tansu and the release gateway,
# samples the gateway with `perf record -e cpu-clock` (a software clock, so
# it works where hardware counters are not available) while trackgate-load
# runs, and prints the hottest symbols.
#
#   loadtest/profile.sh                       50-event batches
#   MIX=single=1 loadtest/profile.sh          single-event POSTs
#
# Knobs (environment): MIX (batch=1), SECS (10), OUT (target/profile).
# The call graphs stay in $OUT/perf.data (`perf report -i $OUT/perf.data`).
set -euo pipefail
cd "$(dirname "$0")/.."

MIX="${MIX:-batch=1}"
SECS="${SECS:-10}"
OUT="${OUT:-target/profile}"
export PATH="$HOME/.cargo/bin:$PATH"
TANSU="${TANSU_BIN:-$(command -v tansu)}"
command -v perf >/dev/null || { echo "profile: perf is not installed" >&2; exit 1; }

cargo build --release -p trackgate -p trackgate-load --bins >&2
mkdir -p "$OUT"
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

TANSU_PORT="$(free_port)"
"$TANSU" broker --listener-url "tcp://127.0.0.1:$TANSU_PORT" \
  --advertised-listener-url "tcp://127.0.0.1:$TANSU_PORT" \
  --storage-engine memory://tansu/ >"$OUT/tansu.log" 2>&1 &
PIDS+=($!)
GW_PORT="$(free_port)"
GW_ADMIN="$(free_port)"
cat >"$OUT/trackgate.toml" <<EOF
[server]
listen = "127.0.0.1:$GW_PORT"
admin_listen = "127.0.0.1:$GW_ADMIN"
trusted_proxies = ["127.0.0.1"]
[kafka]
brokers = "127.0.0.1:$TANSU_PORT"
[[sources]]
id = "profile"
write_key = "wk_profile"
EOF
sleep 0.5
TRACKGATE_LOG=warn target/release/trackgate --config "$OUT/trackgate.toml" >"$OUT/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")
for _ in $(seq 1 300); do
  curl -fs "http://127.0.0.1:$GW_ADMIN/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

perf record -e cpu-clock -F 1999 -g -p "$GW_PID" -o "$OUT/perf.data" -- sleep "$((SECS + 1))" \
  >"$OUT/perf.log" 2>&1 &
PERF_PID=$!
target/release/trackgate-load --target "http://127.0.0.1:$GW_PORT" --write-key wk_profile \
  --mode max --duration "$SECS" --connections 32 --mix "$MIX" --batch-size 50 \
  --server-pid "$GW_PID" --quiet
wait "$PERF_PID" || true
perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio 2>/dev/null \
  | grep -E '^ +[0-9]' | head -60
