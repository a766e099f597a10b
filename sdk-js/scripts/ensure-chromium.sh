#!/usr/bin/env bash
# Installs Debian's Chromium for the end-to-end tests, only when it is missing.
# (The tests drive it with playwright-core; no browser is ever downloaded.)
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}
echo "installing chromium (Debian package)"
as_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium
