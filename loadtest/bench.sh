#!/usr/bin/env bash
# One-command benchmark: trackgate side by side with its ceiling.
#
#   loadtest/bench.sh
#
# Builds release binaries, starts a Tansu broker (in memory), the gateway
# (privacy stage at its defaults, 127.0.0.1 trusted as proxy, topics
# created) and the ceiling server (same hyper stack, reads the body, answers
# 204), then runs the same pre-generated requests against both, alternating:
#   1. single-event POSTs, ROUNDS x {ceiling, gateway} max-throughput bursts;
#   2. 50-event batches, ROUNDS x {ceiling, gateway} bursts, with the
#      gateway's CPU time (utime+stime from /proc/PID/stat);
#   3. the realistic mix (trackgate-load's defaults: singles and batches,
#      PII share, gzip share, GPC share), max throughput, gateway only, with
#      events per gateway CPU-second;
#   4. open loop at half the gateway's measured single-event maximum, with
#      end-to-end verification against the broker (nothing missing, nothing
#      duplicated);
#   5. the reactor under large batches: single-event POSTs in an open loop
#      (STALL_RATE req/s) while 2,500-event batches arrive (STALL_BATCHES
#      per second), p99 of the small requests;
# and prints the figures next to their targets. Everything listens on
# loopback only; every run is bounded in time. When taskset is there, the
# server under test gets core 1, the load generator and the broker core 0.
#
# Knobs (environment): ROUNDS (3), BURST_SECS (5), OPEN_SECS (10),
# CONNECTIONS (32), OUT (target/bench), SPOOL (on: the write-ahead spool in
# $OUT/trackgate-spool, emptied first; off: memory-only producer queue),
# MAX_IN_FLIGHT (kafka.max_in_flight_requests, default 1), STALL_RATE (200),
# STALL_BATCHES (4), KAFKA_TOML (lines added to the gateway's [kafka] table,
# e.g. 'linger_ms = 20' or 'compression = "none"'), OPEN_RATE (the open
# loop's rate, req/s; default half the measured single-event maximum), BIN (a directory holding trackgate, trackgate-load and
# ceiling to measure instead of building them: e.g. an earlier commit's).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
BURST_SECS="${BURST_SECS:-5}"
OPEN_SECS="${OPEN_SECS:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
OUT="${OUT:-target/bench}"
SPOOL="${SPOOL:-on}"
MAX_IN_FLIGHT="${MAX_IN_FLIGHT:-1}"
STALL_RATE="${STALL_RATE:-200}"
STALL_BATCHES="${STALL_BATCHES:-4}"
WRITE_KEY="wk_bench"
export PATH="$HOME/.cargo/bin:$PATH"
TANSU="${TANSU_BIN:-$(command -v tansu || true)}"

step() { printf '\n==> %s\n' "$*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }

[ -n "$TANSU" ] || die "tansu not found (scripts/test.sh installs it)"
command -v python3 >/dev/null || die "python3 is needed for ports and the summary"

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "${BIN:-}" ]; then
  step "using the binaries in $BIN (trackgate, trackgate-load, ceiling), not building"
else
  step "building release binaries"
  cargo build --release -p trackgate -p trackgate-load --bins >&2
  BIN="target/release"
fi
mkdir -p "$OUT"
rm -f "$OUT"/*.json

if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  PIN_SERVER=(taskset -c 1)
  PIN_LOAD=(taskset -c 0)
  PINNING="server on core 1; load generator and broker on core 0"
else
  PIN_SERVER=()
  PIN_LOAD=()
  PINNING="no pinning (taskset missing or one core)"
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "nothing listens on port $1"
}

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

TANSU_PORT="$(free_port)"
step "starting Tansu on 127.0.0.1:$TANSU_PORT"
"${PIN_LOAD[@]}" "$TANSU" broker \
  --listener-url "tcp://127.0.0.1:$TANSU_PORT" \
  --advertised-listener-url "tcp://127.0.0.1:$TANSU_PORT" \
  --storage-engine memory://tansu/ >"$OUT/tansu.log" 2>&1 &
PIDS+=($!)
wait_port "$TANSU_PORT"

GW_PORT="$(free_port)"
GW_ADMIN="$(free_port)"
cat >"$OUT/trackgate.toml" <<EOF
[server]
listen = "127.0.0.1:$GW_PORT"
admin_listen = "127.0.0.1:$GW_ADMIN"
trusted_proxies = ["127.0.0.1"]

[kafka]
brokers = "127.0.0.1:$TANSU_PORT"
max_in_flight_requests = $MAX_IN_FLIGHT
${KAFKA_TOML:-}

[spool]
enabled = $([ "$SPOOL" = off ] && echo false || echo true)

# 2,500-event batches of the generator's events are about 1.5 MB.
[limits]
max_request_bytes = 4194304

# The limiter runs (its cost is measured) but never refuses the load tool.
[rate_limit]
per_ip_rps = 1000000
per_ip_burst = 1000000

[[sources]]
id = "bench"
write_key = "$WRITE_KEY"
EOF
rm -rf "$OUT/trackgate-spool"
step "starting the gateway on 127.0.0.1:$GW_PORT (spool $SPOOL, max in flight $MAX_IN_FLIGHT)"
TRACKGATE_LOG=warn "${PIN_SERVER[@]}" "$BIN/trackgate" --config "$OUT/trackgate.toml" \
  >"$OUT/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")
for _ in $(seq 1 300); do
  if curl -fs "http://127.0.0.1:$GW_ADMIN/readyz" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
curl -fs "http://127.0.0.1:$GW_ADMIN/readyz" >/dev/null || die "gateway not ready (see $OUT/gateway.log)"

CEIL_PORT="$(free_port)"
step "starting the ceiling on 127.0.0.1:$CEIL_PORT"
"${PIN_SERVER[@]}" "$BIN/ceiling" --listen "127.0.0.1:$CEIL_PORT" >"$OUT/ceiling.log" 2>&1 &
CEIL_PID=$!
PIDS+=("$CEIL_PID")
wait_port "$CEIL_PORT"

# load NAME PORT PID [trackgate-load options...]: one run, report in $OUT/NAME.json.
load() {
  local name="$1" port="$2" pid="$3"
  shift 3
  "${PIN_LOAD[@]}" "$BIN/trackgate-load" --target "http://127.0.0.1:$port" \
    --write-key "$WRITE_KEY" --connections "$CONNECTIONS" --server-pid "$pid" \
    --quiet --json "$OUT/$name.json" "$@" >"$OUT/$name.txt"
  sed "s/^/    /" "$OUT/$name.txt" >&2
}

SINGLE=(--mix single=1)
BATCH=(--mix batch=1 --batch-size 50)

step "warm-up"
load warmup-ceiling "$CEIL_PORT" "$CEIL_PID" --mode max --duration 2 "${SINGLE[@]}"
load warmup-gateway "$GW_PORT" "$GW_PID" --mode max --duration 2 "${SINGLE[@]}"

for r in $(seq 1 "$ROUNDS"); do
  step "single-event POSTs, round $r/$ROUNDS"
  load "single-ceiling-$r" "$CEIL_PORT" "$CEIL_PID" --mode max --duration "$BURST_SECS" "${SINGLE[@]}"
  load "single-gateway-$r" "$GW_PORT" "$GW_PID" --mode max --duration "$BURST_SECS" "${SINGLE[@]}"
done

for r in $(seq 1 "$ROUNDS"); do
  step "50-event batches, round $r/$ROUNDS"
  load "batch-ceiling-$r" "$CEIL_PORT" "$CEIL_PID" --mode max --duration "$BURST_SECS" "${BATCH[@]}"
  load "batch-gateway-$r" "$GW_PORT" "$GW_PID" --mode max --duration "$BURST_SECS" "${BATCH[@]}"
done

for r in $(seq 1 "$ROUNDS"); do
  step "realistic mix (singles and batches, PII, gzip, GPC), round $r/$ROUNDS"
  load "mix-gateway-$r" "$GW_PORT" "$GW_PID" --mode max --duration "$BURST_SECS"
done

HALF_RATE="$(python3 - "$OUT" "$ROUNDS" <<'EOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rps = [json.load(open(f"{out}/single-gateway-{r}.json"))["requests_2xx_per_second"] for r in range(1, rounds + 1)]
print(max(1, round(statistics.median(rps) / 2)))
EOF
)"
# OPEN_RATE fixes the open loop's rate instead (to compare builds at one load).
HALF_RATE="${OPEN_RATE:-$HALF_RATE}"
step "open loop at $HALF_RATE req/s (half the measured maximum unless OPEN_RATE), verified end to end"
load open-gateway "$GW_PORT" "$GW_PID" --mode open --rate "$HALF_RATE" --duration "$OPEN_SECS" \
  "${SINGLE[@]}" --verify-brokers "127.0.0.1:$TANSU_PORT" || true

step "reactor: $STALL_RATE single-event req/s while $STALL_BATCHES batches of 2,500 events arrive per second"
curl -fs "http://127.0.0.1:$GW_ADMIN/metrics" >"$OUT/stall-metrics-before.txt" || true
CONNECTIONS=4 load stall-batches "$GW_PORT" "$GW_PID" --mode open --rate "$STALL_BATCHES" \
  --duration "$OPEN_SECS" --mix batch=1 --batch-size 2500 --timeout-ms 20000 &
STALL_BG=$!
CONNECTIONS=8 load stall-single "$GW_PORT" "$GW_PID" --mode open --rate "$STALL_RATE" \
  --duration "$OPEN_SECS" --mix single=1
wait "$STALL_BG" || true
curl -fs "http://127.0.0.1:$GW_ADMIN/metrics" >"$OUT/stall-metrics-after.txt" || true
step "the same against the ceiling (what the generator and the machine add by themselves)"
CONNECTIONS=4 load stall-batches-ceiling "$CEIL_PORT" "$CEIL_PID" --mode open --rate "$STALL_BATCHES" \
  --duration "$OPEN_SECS" --mix batch=1 --batch-size 2500 --timeout-ms 20000 &
STALL_BG=$!
CONNECTIONS=8 load stall-single-ceiling "$CEIL_PORT" "$CEIL_PID" --mode open --rate "$STALL_RATE" \
  --duration "$OPEN_SECS" --mix single=1
wait "$STALL_BG" || true

LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$OUT" "$ROUNDS" "$PINNING" "$LOAD_BEFORE" "$LOAD_AFTER" <<'EOF'
import json, statistics, sys
out, rounds, pinning, load_before, load_after = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
load = lambda n: json.load(open(f"{out}/{n}.json"))
med = statistics.median

def series(kind, who, key):
    return [key(load(f"{kind}-{who}-{r}")) for r in range(1, rounds + 1)]

ok_rps = lambda j: j["requests_2xx_per_second"]
ev_s = lambda j: j["events_per_second"]
ev_cpu = lambda j: j["server"]["events_per_cpu_second"]
req_cpu = lambda j: j["server"]["requests_per_cpu_second"]
gen = lambda j: j["generator_cpu_seconds"] / j["elapsed_seconds"]
srv = lambda j: j["server"]["cpu_seconds"] / j["elapsed_seconds"]
non2xx = lambda j: sum(v for k, v in j["statuses"].items() if not k.startswith("2")) + j["transport_errors"] + j["timeouts"]

sc, sg = series("single", "ceiling", ok_rps), series("single", "gateway", ok_rps)
bc, bg = series("batch", "ceiling", ev_s), series("batch", "gateway", ev_s)
bcpu = series("batch", "gateway", ev_cpu)
ratios = [g / c for g, c in zip(sg, sc)]
scpu, gcpu = series("single", "ceiling", req_cpu), series("single", "gateway", req_cpu)
cpu_ratios = [g / c for g, c in zip(gcpu, scpu)]
ceiling_cores = series("single", "ceiling", srv)
openj = load("open-gateway")
p99 = openj["latency_us"]["p99"]
peak = max(load(n)["server"]["peak_rss_kib"] for n in ["open-gateway"] + [f"batch-gateway-{r}" for r in range(1, rounds + 1)]) / 1024
ver = openj.get("verify") or {}

def row(label, values, fmt="{:,.0f}"):
    return f"  {label:<38} " + "  ".join(fmt.format(v) for v in values) + f"   median {fmt.format(med(values))}"

def verdict(ok):
    return "MET" if ok else "MISSED"

print()
print("trackgate benchmark — " + pinning)
print(f"  rounds {rounds}; per-round values in order; all on loopback")
print(f"  machine load average (1/5/15 min): {load_before} before, {load_after} after")
print()
print("single-event POSTs (max throughput, 2xx answers per second)")
print(row("ceiling req/s", sc))
print(row("gateway req/s", sg))
print(row("gateway / ceiling", ratios, "{:.2f}"))
print(row("ceiling server CPU (cores)", ceiling_cores, "{:.2f}"))
print(row("gateway server CPU (cores)", series("single", "gateway", srv), "{:.2f}"))
print(row("generator CPU vs ceiling (cores)", series("single", "ceiling", gen), "{:.2f}"))
print(row("ceiling req per server CPU-second", scpu))
print(row("gateway req per server CPU-second", gcpu))
print(row("gateway / ceiling, CPU-normalised", cpu_ratios, "{:.2f}"))
print(row("gateway non-2xx/errors", series("single", "gateway", non2xx)))
saturated = med(ceiling_cores) >= 0.9
if not saturated:
    print(f"  note: the ceiling used {med(ceiling_cores):.2f} of its core: it was not saturated, so its req/s is")
    print("  bounded by the generator or the machine and the plain ratio flatters the gateway;")
    print("  the CPU-normalised ratio (work per server CPU-second) is the fairer comparison.")
print()
print("50-event batches (max throughput)")
print(row("ceiling events/s", bc))
print(row("ceiling server CPU (cores)", series("batch", "ceiling", srv), "{:.2f}"))
print(row("gateway events/s", bg))
print(row("gateway events per gateway CPU-second", bcpu))
print(row("gateway server CPU (cores)", series("batch", "gateway", srv), "{:.2f}"))
print(row("gateway non-2xx/errors", series("batch", "gateway", non2xx)))
mixcpu = series("mix", "gateway", ev_cpu)
print()
print("realistic mix (trackgate-load defaults: singles and 50-event batches, PII, gzip, GPC)")
print(row("gateway events/s", series("mix", "gateway", ev_s)))
print(row("gateway events per gateway CPU-second", mixcpu))
print(row("gateway non-2xx/errors", series("mix", "gateway", non2xx)))
print()
print(f"open loop at {openj['target_rate']:.0f} req/s (half the gateway's median maximum unless OPEN_RATE) for {openj['elapsed_seconds']:.1f} s")
l = openj["latency_us"]
print(f"  latency p50 {l['p50']} µs, p90 {l['p90']} µs, p99 {l['p99']} µs, p99.9 {l['p999']} µs, max {l['max']} µs")
print(f"  send lag p99 {openj['send_lag_us']['p99']} µs (generator lateness, included above)")
sv = openj["service_us"]
print(f"  service time (from the actual send; the server's share, diagnosis only) p50 {sv['p50']} µs, p99 {sv['p99']} µs")
print(f"  statuses {openj['statuses']}, transport errors {openj['transport_errors']}, timeouts {openj['timeouts']}")
if ver:
    print(f"  verification {'PASSED' if ver['passed'] else 'FAILED'}: expected {ver['expected']}, found {ver['found']}, missing {ver['missing']}, duplicates {ver['duplicates']}, misrouted {ver['misrouted']}, unexpected {ver['unexpected']}")
stall = load("stall-single")
stallb = load("stall-batches")
ls = stall["latency_us"]
print()
print(f"reactor: {stall['target_rate']:.0f} single-event req/s while {stallb['target_rate']:.0f} batches of 2,500 events arrive per second")
print(f"  small requests: p50 {ls['p50']} µs, p99 {ls['p99']} µs, p99.9 {ls['p999']} µs, max {ls['max']} µs; statuses {stall['statuses']}")
def handling_buckets(path):
    # Cumulative request-duration buckets of every endpoint but batch.
    b = {}
    try:
        for line in open(path):
            if line.startswith("trackgate_http_request_duration_seconds_bucket") and 'endpoint="batch"' not in line:
                le = line.split('le="')[1].split('"')[0]
                b[le] = b.get(le, 0) + float(line.rsplit(" ", 1)[1])
    except FileNotFoundError:
        pass
    return b
hb, ha = handling_buckets(f"{out}/stall-metrics-before.txt"), handling_buckets(f"{out}/stall-metrics-after.txt")
diff = sorted(((float("inf") if le == "+Inf" else float(le), ha[le] - hb.get(le, 0)) for le in ha), key=lambda x: x[0])
if diff and diff[-1][1] > 0:
    total = diff[-1][1]
    p99_le = next(le for le, n in diff if n >= 0.99 * total)
    print(f"  small requests, handling time inside the gateway (its histogram): p99 <= {p99_le * 1000:g} ms of {total:.0f} requests")
lc = load("stall-single-ceiling")["latency_us"]
print(f"  the same against the ceiling: p50 {lc['p50']} µs, p99 {lc['p99']} µs, p99.9 {lc['p999']} µs, max {lc['max']} µs")
lb = stallb["latency_us"]
print(f"  2,500-event batches: p50 {lb['p50']} µs, p99 {lb['p99']} µs; statuses {stallb['statuses']}")
print()
print("targets")
print(f"  single-event req/s >= 0.75 x ceiling      {med(ratios):.2f}            {verdict(med(ratios) >= 0.75)}{'' if saturated else ' (ceiling not saturated: not conclusive)'}")
print(f"    same, CPU-normalised                     {med(cpu_ratios):.2f}            {verdict(med(cpu_ratios) >= 0.75)}")
print(f"  batch events per CPU-second >= 500,000     {med(bcpu):,.0f}       {verdict(med(bcpu) >= 500_000)}")
print(f"  p99 <= 2 ms at half the maximum rate      {p99 / 1000:.2f} ms        {verdict(p99 <= 2000)}")
print(f"  realistic mix, events per CPU-second       {med(mixcpu):,.0f}")
print(f"  small-request p99 under 2,500-event batches {ls['p99'] / 1000:.2f} ms (ceiling under the same load: {lc['p99'] / 1000:.2f} ms)")
print(f"  peak RSS <= 100 MB under sustained load    {peak:.1f} MiB       {verdict(peak * 1.048576 <= 100)}")
if ver:
    print(f"  end-to-end: nothing missing or duplicated  {'yes' if ver['passed'] else 'no'}")
EOF
echo "reports: $OUT/*.json" >&2
