#!/usr/bin/env bash
# A/B comparison of two gateway binaries under the same load, alternating
# in one run (so both see the same machine), against one Tansu broker:
#
#   loadtest/ab.sh OLD_BINARY NEW_BINARY
#
# e.g. build the old revision, copy target/release/trackgate aside, build
# the new one, then `loadtest/ab.sh /tmp/trackgate-old target/release/trackgate`.
# Reports, per binary, events per gateway CPU-second on 50-event batches and
# requests per gateway CPU-second on single-event POSTs (medians of ROUNDS
# max-throughput bursts), and NEW/OLD. CPU-normalised figures are used
# because they hold on a busy machine. Loopback only, bounded in time.
#
# Knobs (environment): ROUNDS (3), BURST_SECS (5), CONNECTIONS (32), OUT (target/ab).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 OLD_BINARY NEW_BINARY" >&2; exit 2; }
OLD="$(realpath "$1")"
NEW="$(realpath "$2")"
ROUNDS="${ROUNDS:-3}"
BURST_SECS="${BURST_SECS:-5}"
CONNECTIONS="${CONNECTIONS:-32}"
OUT="${OUT:-target/ab}"
export PATH="$HOME/.cargo/bin:$PATH"
TANSU="${TANSU_BIN:-$(command -v tansu)}"

cargo build --release -p trackgate-load --bin trackgate-load >&2
mkdir -p "$OUT"
rm -f "$OUT"/*.json
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  PIN_SERVER=(taskset -c 1)
  PIN_LOAD=(taskset -c 0)
else
  PIN_SERVER=()
  PIN_LOAD=()
fi
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
"${PIN_LOAD[@]}" "$TANSU" broker --listener-url "tcp://127.0.0.1:$TANSU_PORT" \
  --advertised-listener-url "tcp://127.0.0.1:$TANSU_PORT" \
  --storage-engine memory://tansu/ >"$OUT/tansu.log" 2>&1 &
PIDS+=($!)
sleep 0.5

# start NAME BINARY: sets PORT_<NAME> and PID_<NAME>.
start() {
  local name="$1" bin="$2" port admin
  port="$(free_port)"
  admin="$(free_port)"
  cat >"$OUT/$name.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
admin_listen = "127.0.0.1:$admin"
trusted_proxies = ["127.0.0.1"]
[kafka]
brokers = "127.0.0.1:$TANSU_PORT"
[[sources]]
id = "ab"
write_key = "wk_ab"
EOF
  TRACKGATE_LOG=warn "${PIN_SERVER[@]}" "$bin" --config "$OUT/$name.toml" >"$OUT/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 300); do
    curl -fs "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fs "http://127.0.0.1:$admin/readyz" >/dev/null || { echo "ab: $name not ready" >&2; exit 1; }
  printf -v "PORT_$name" '%s' "$port"
  printf -v "PID_$name" '%s' "$pid"
}
start old "$OLD"
start new "$NEW"

load() {
  local run="$1" who="$2"
  shift 2
  local port_var="PORT_$who" pid_var="PID_$who"
  "${PIN_LOAD[@]}" target/release/trackgate-load --target "http://127.0.0.1:${!port_var}" \
    --write-key wk_ab --connections "$CONNECTIONS" --server-pid "${!pid_var}" --mode max \
    --duration "$BURST_SECS" --quiet --json "$OUT/$run-$who.json" "$@" >/dev/null
}
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r/$ROUNDS" >&2
  for who in old new; do load "batch-$r" "$who" --mix batch=1 --batch-size 50; done
  for who in old new; do load "single-$r" "$who" --mix single=1; done
done

python3 - "$OUT" "$ROUNDS" "$OLD" "$NEW" <<'EOF'
import json, statistics, sys
out, rounds, old, new = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def series(kind, who, key):
    return [json.load(open(f"{out}/{kind}-{r}-{who}.json"))["server"][key] for r in range(1, rounds + 1)]
print(f"old: {old}\nnew: {new}")
for kind, key, label in [("batch", "events_per_cpu_second", "50-event batches, events per gateway CPU-second"),
                         ("single", "requests_per_cpu_second", "single-event POSTs, requests per gateway CPU-second")]:
    o, n = series(kind, "old", key), series(kind, "new", key)
    print(label)
    print("  old  " + "  ".join(f"{v:,.0f}" for v in o) + f"   median {statistics.median(o):,.0f}")
    print("  new  " + "  ".join(f"{v:,.0f}" for v in n) + f"   median {statistics.median(n):,.0f}")
    print(f"  new/old {statistics.median(n) / statistics.median(o):.2f}")
EOF
