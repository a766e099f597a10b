#!/usr/bin/env bash
# Runs one cargo-fuzz target for a bounded time. Not part of scripts/test.sh
# (too slow); crashes it finds become regression unit tests in
# src/fuzzing.rs.
#
#   scripts/fuzz.sh TARGET SECONDS     e.g. scripts/fuzz.sh decode 300
#   targets: decode (request path), scrub (privacy scrubber)
#   FUZZ_SANITIZER=address             build with AddressSanitizer (default
#                                      none: the C libraries the gateway
#                                      links, librdkafka and zstd, do not
#                                      build under it; the fuzzed path is
#                                      safe Rust, so panics, overflows and
#                                      hangs are what there is to find)
#
# cargo-fuzz needs nightly-only rustc flags; a stable toolchain accepts them
# with RUSTC_BOOTSTRAP=1. Seeds in fuzz/seeds/TARGET start the corpus
# (fuzz/corpus/TARGET, not committed); crashing inputs land in
# fuzz/artifacts/TARGET.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET="${1:?usage: scripts/fuzz.sh TARGET SECONDS (targets: decode, scrub)}"
DURATION="${2:-60}"
SANITIZER="${FUZZ_SANITIZER:-none}"
# Largest input tried, in bytes: bigger than any interesting header block
# plus a multi-event body, well under limits.max_request_bytes.
MAX_LEN=65536
# An input taking longer than this (seconds) counts as a hang.
INPUT_TIMEOUT=10

export PATH="$HOME/.cargo/bin:$PATH"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

corpus="fuzz/corpus/$TARGET"
mkdir -p "$corpus"
if [ -d "fuzz/seeds/$TARGET" ]; then
  cp -n "fuzz/seeds/$TARGET"/* "$corpus"/ 2>/dev/null || true
fi

echo "==> fuzzing $TARGET for ${DURATION}s (sanitizer: $SANITIZER)"
cargo fuzz run --sanitizer "$SANITIZER" "$TARGET" "$corpus" -- \
  -max_total_time="$DURATION" \
  -max_len="$MAX_LEN" \
  -timeout="$INPUT_TIMEOUT" \
  -print_final_stats=1
