#!/usr/bin/env bash
# Builds the container image from Containerfile with podman and smoke-tests
# what it contains, on a machine that can build images but neither pull
# base images nor run containers:
#
#   1. runtime base: a Debian bookworm root filesystem (debootstrap, cached
#      under $IMAGE_TEST_CACHE), cut down to what distroless "cc" holds
#      (libc6, libgcc-s1, ca-certificates, passwd/group with the nonroot
#      user 65532, /tmp), imported as localhost/trackgate-runtime-base;
#   2. `podman build` of Containerfile with RUNTIME_IMAGE set to it, and
#      as BUILDER_IMAGE the whole bookworm root filesystem (a shell, no Rust:
#      localhost/trackgate-builder-base) with PREBUILT naming the gateway
#      built on this host ($TRACKGATE_BIN, default target/release/trackgate;
#      bookworm's glibc), so every step of both stages runs but `cargo build`;
#   3. the image's filesystem is exported (`podman create` + `export`) and
#      its entrypoint runs with chroot as the image's user, with the image's
#      environment and a configuration mounted where the image expects it,
#      against a Tansu broker on loopback: the image's own `trackgate probe`
#      sees /readyz answer 200, one event sent over HTTP is read back from
#      Tansu with the image's `trackgate tail`, and SIGTERM ends the gateway
#      with exit 0 after its drain.
#
# IMAGE_TEST_COMPILE=1 runs the build stage's `cargo build --release` too:
# the builder is then the bookworm root filesystem with a C and C++
# compiler (librdkafka's build needs both) and this machine's Rust
# toolchain and crate cache mounted in place of the Rust image (about 10
# minutes on 2 cores; not part of scripts/test.sh).
#
# Needs root (chroot), podman and debootstrap (scripts/test.sh installs
# them), and Tansu ($TANSU_BIN). Prints its duration.
set -euo pipefail
cd "$(dirname "$0")/.."
start_s=$SECONDS

BIN="${TRACKGATE_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/trackgate}"
TANSU="${TANSU_BIN:-$(command -v tansu || echo "$HOME/.cargo/bin/tansu")}"
CACHE="${IMAGE_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/trackgate-image-test}"
SUITE="${DEBIAN_SUITE:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BASE_IMAGE="localhost/trackgate-runtime-base:$SUITE"
BUILDER_BASE="localhost/trackgate-builder-base:$SUITE"
IMAGE="localhost/trackgate:image-test"
# Packages whose files make the runtime base (what distroless "cc" ships).
BASE_PACKAGES="libc6 libgcc-s1 ca-certificates netbase tzdata"
WAIT_S=30
# An absolute path: `env -i` leaves no PATH to find it with.
CHROOT="$(command -v chroot || echo /usr/sbin/chroot)"

say() { printf '==> %s\n' "$*"; }
fail() {
  printf 'image-test: %s\n' "$*" >&2
  if [ -s "${work:-}/gateway.log" ]; then
    printf -- '---- gateway log (last lines) ----\n' >&2
    tail -20 "$work/gateway.log" >&2
  fi
  exit 1
}

[ "$(id -u)" = 0 ] || fail "needs root (chroot)"
for tool in podman debootstrap chroot curl; do
  command -v "$tool" >/dev/null || fail "$tool is missing (scripts/test.sh installs it)"
done
[ "${IMAGE_TEST_COMPILE:-0}" = 1 ] || [ -x "$BIN" ] || fail "no gateway binary at $BIN (cargo build --release, or set TRACKGATE_BIN)"
[ -x "$TANSU" ] || fail "no Tansu broker at $TANSU (set TANSU_BIN)"

work="$(mktemp -d)"
pids=()
container=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -z "$container" ] || podman rm -f "$container" >/dev/null 2>&1 || true
  # The image itself goes (its layers are the large part); the base stays cached.
  podman rmi -f "$IMAGE" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # seconds, description, command...
  local deadline=$((SECONDS + $1)) what="$2"; shift 2
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "timed out waiting for $what"
    sleep 0.2
  done
}

# 1. The runtime base.
rootfs="$CACHE/$SUITE-rootfs"
if [ ! -x "$rootfs/usr/bin/dpkg" ]; then
  say "debootstrap $SUITE (once per machine, about a minute)"
  rm -rf "$rootfs" && mkdir -p "$CACHE"
  debootstrap --variant=minbase --include=ca-certificates,netbase "$SUITE" "$rootfs" "$MIRROR" > "$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log"; fail "debootstrap failed"; }
fi
if ! podman image exists "$BASE_IMAGE"; then
  say "runtime base: $BASE_PACKAGES from the $SUITE root filesystem"
  base="$work/base"
  mkdir -p "$base/etc" "$base/tmp" "$base/var/lib" "$base/usr/local/bin"
  chmod 1777 "$base/tmp"
  # The merged-/usr links first (/lib → usr/lib …), then every file of the
  # packages at its physical path.
  for l in bin lib lib64 sbin; do [ -L "$rootfs/$l" ] && cp -a "$rootfs/$l" "$base/$l"; done
  # shellcheck disable=SC2086
  chroot "$rootfs" dpkg -L $BASE_PACKAGES | sort -u | while read -r f; do
    [ -d "$rootfs$f" ] && continue
    [ -e "$rootfs$f" ] || [ -L "$rootfs$f" ] || continue
    dir="$(cd "$rootfs$(dirname "$f")" && pwd -P)"
    dest="$base${dir#"$rootfs"}"
    mkdir -p "$dest" && cp -a "$rootfs$f" "$dest/"
  done
  mkdir -p "$base/etc/ssl/certs"
  cp -aL "$rootfs/etc/ssl/certs/ca-certificates.crt" "$base/etc/ssl/certs/"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$base/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' > "$base/etc/group"
  tar -C "$base" -c . | podman import --quiet - "$BASE_IMAGE" > /dev/null
fi
if ! podman image exists "$BUILDER_BASE"; then
  tar -C "$rootfs" -c . | podman import --quiet - "$BUILDER_BASE" > /dev/null
fi
say "runtime base $BASE_IMAGE: $(podman image inspect -f '{{.Size}}' "$BASE_IMAGE") bytes"

# 2. The image. `--isolation chroot`: RUN steps without a container runtime.
# --layers=false: no intermediate images are left behind (the build stage
# of a compile is gigabytes).
build=(podman build --quiet --pull=never --format docker --isolation chroot --layers=false
  --build-arg RUNTIME_IMAGE="$BASE_IMAGE")
if [ "${IMAGE_TEST_COMPILE:-0}" = 1 ]; then
  rust_builder="localhost/trackgate-rust-builder:$SUITE"
  if ! podman image exists "$rust_builder"; then
    cat > "$work/builder.Containerfile" <<BUILDER
FROM $BUILDER_BASE
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc g++ libc6-dev make perl pkg-config ca-certificates > /dev/null && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/opt/rustup CARGO_HOME=/opt/cargo PATH=/opt/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
BUILDER
    podman build --quiet --pull=never --isolation chroot -t "$rust_builder" -f "$work/builder.Containerfile" "$work" > /dev/null
  fi
  rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"
  cargo_home="${CARGO_HOME:-$HOME/.cargo}"
  say "podman build (BUILDER_IMAGE=$rust_builder with this machine's toolchain, RUNTIME_IMAGE=$BASE_IMAGE): cargo build --release"
  "${build[@]}" --build-arg BUILDER_IMAGE="$rust_builder" \
    -v "$rustup_home:/opt/rustup:ro" -v "$cargo_home/bin:/opt/cargo/bin:ro" \
    -v "$cargo_home/registry:/opt/cargo/registry" \
    -t "$IMAGE" . > /dev/null
else
  # A context holding what the build stage copies, and the host's binary.
  ctx="$work/context"
  mkdir -p "$ctx/prebuilt" "$ctx/config"
  cp Containerfile .containerignore "$ctx/"
  cp config/trackgate.example.toml "$ctx/config/"
  cp "$BIN" "$ctx/prebuilt/trackgate"
  say "podman build (BUILDER_IMAGE=$BUILDER_BASE, RUNTIME_IMAGE=$BASE_IMAGE, PREBUILT=prebuilt/trackgate)"
  "${build[@]}" --build-arg BUILDER_IMAGE="$BUILDER_BASE" \
    --build-arg PREBUILT=prebuilt/trackgate -t "$IMAGE" "$ctx" > /dev/null
fi
user="$(podman image inspect -f '{{.Config.User}}' "$IMAGE")"
entrypoint="$(podman image inspect -f '{{range .Config.Entrypoint}}{{.}} {{end}}' "$IMAGE")"
volumes="$(podman image inspect -f '{{range $k, $v := .Config.Volumes}}{{$k}} {{end}}' "$IMAGE")"
say "image $IMAGE: $(podman image inspect -f '{{.Size}}' "$IMAGE") bytes, user $user, entrypoint $entrypoint, volumes $volumes"
[ "$user" = "65532:65532" ] || fail "the image does not run as the non-root user (User=$user)"
[ "$volumes" = "/var/lib/trackgate/spool " ] || fail "the spool is not the declared volume ($volumes)"
healthcheck="$(podman image inspect -f '{{if .Config.Healthcheck}}{{range .Config.Healthcheck.Test}}{{.}} {{end}}{{end}}' "$IMAGE")"
case "$healthcheck" in *"trackgate probe"*) ;; *) fail "no /readyz health check ($healthcheck)" ;; esac
stopsignal="$(podman image inspect -f '{{.Config.StopSignal}}' "$IMAGE")"
say "health check: $healthcheck; stop signal: $stopsignal"

# 3. Its filesystem, run with chroot as the image would run it.
root="$work/root"
mkdir -p "$root"
container="$(podman create "$IMAGE")"
podman export "$container" | tar -C "$root" -x
spool_owner="$(stat -c %u:%g "$root/var/lib/trackgate/spool")"
[ "$spool_owner" = "65532:65532" ] || fail "the spool directory belongs to $spool_owner"
[ "$(stat -c %u "$root/usr/local/bin/trackgate")" = 0 ] || fail "the binary must not belong to the runtime user"

broker_port="$(free_port)"; listen_port="$(free_port)"; admin_port="$(free_port)"
"$TANSU" broker --listener-url "tcp://127.0.0.1:$broker_port" \
  --advertised-listener-url "tcp://127.0.0.1:$broker_port" \
  --storage-engine memory://tansu/ > "$work/tansu.log" 2>&1 &
pids+=($!)
wait_for "$WAIT_S" "Tansu" bash -c "exec 3<>/dev/tcp/127.0.0.1/$broker_port"

# The configuration a user mounts at /etc/trackgate/trackgate.toml.
mkdir -p "$root/etc/trackgate"
cat > "$root/etc/trackgate/trackgate.toml" <<TOML
[kafka]
brokers = "127.0.0.1:$broker_port"
partitions = 1

[[sources]]
id = "web"
write_key = "wk_image_test"
allowed_origins = ["*"]
TOML
# The image's environment, then what `podman run -e` would add: ports that
# are free on this machine (in a container, 8080 and 9464).
mapfile -t image_env < <(podman image inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$IMAGE" | grep -v '^$')
run_env=("${image_env[@]}"
  "TRACKGATE_SERVER__LISTEN=127.0.0.1:$listen_port"
  "TRACKGATE_SERVER__ADMIN_LISTEN=127.0.0.1:$admin_port"
  "TRACKGATE_LOG=info,librdkafka=warn" "NO_COLOR=1")
in_image() { env -i "${run_env[@]}" "$CHROOT" --userspec="$user" "$root" "$@"; }

say "gateway from the image: chroot --userspec=$user $entrypoint"
# exec: the gateway itself is the child the script signals, as PID 1 is in
# a container.
# shellcheck disable=SC2086
(exec env -i "${run_env[@]}" "$CHROOT" --userspec="$user" "$root" $entrypoint) > "$work/gateway.log" 2>&1 &
gateway_pid=$!
pids+=("$gateway_pid")
probe() { in_image /usr/local/bin/trackgate probe --admin "127.0.0.1:$admin_port"; }
deadline=$((SECONDS + WAIT_S))
until probe >/dev/null 2>&1; do
  kill -0 "$gateway_pid" 2>/dev/null || fail "the gateway exited before it was ready"
  [ $SECONDS -lt $deadline ] || fail "timed out waiting for /readyz 200"
  sleep 0.2
done
say "/readyz answered 200 to the image's trackgate probe"

marker="image-test-$(date +%s)-$$"
status="$(curl -s -o "$work/answer" -w '%{http_code}' -u wk_image_test: \
  -H 'content-type: application/json' \
  -d "{\"anonymousId\":\"visitor-1\",\"name\":\"Home\",\"properties\":{\"marker\":\"$marker\"}}" \
  "http://127.0.0.1:$listen_port/v1/page")"
[ "$status" = 200 ] || fail "POST /v1/page answered $status: $(cat "$work/answer")"
in_image /usr/local/bin/trackgate tail --brokers "127.0.0.1:$broker_port" \
  --topic tracking.raw.pageviews --from-beginning --format json \
  --max-records 1 --idle-timeout-ms 15000 > "$work/records" 2>&1 || true
grep -q "$marker" "$work/records" || fail "the event did not reach Tansu: $(cat "$work/records")"
say "the event reached Tansu (read back with the image's trackgate tail)"

stop_start=$SECONDS
kill -TERM "$gateway_pid"
wait "$gateway_pid" && code=0 || code=$?
[ "$code" = 0 ] || fail "the gateway exited with $code after SIGTERM"
grep -q "shutdown complete" "$work/gateway.log" || fail "no drain in the log"
say "SIGTERM: drained and exited 0 in $((SECONDS - stop_start)) s"
say "image test passed in $((SECONDS - start_s)) s"
