#!/usr/bin/env bash
# Installs the Debian packages the service needs. Idempotent: does nothing when all are present.
# Used by `make setup` / `make run` / `make test` and by the Dockerfile.
#   --with-test   also install what the test suite needs (Chromium, docker-compose for config checks)
set -euo pipefail

runtime=(
  python3 python3-venv tini
  xvfb x11vnc x11-utils xauth
  jwm xterm pcmanfm
  firefox-esr
  novnc
  ffmpeg
  fuse-overlayfs e2fsprogs util-linux mount procps psmisc iproute2 nftables
  fonts-dejavu-core fonts-wqy-zenhei
)
test_only=(
  chromium
  docker-compose
  xdotool scrot imagemagick
  nodejs  # with npm: the official TypeScript MCP clients (tests/mcp_server/js, npm ci)
)

want=("${runtime[@]}")
if [[ "${1:-}" == "--with-test" ]]; then
  want+=("${test_only[@]}")
fi

missing=()
for pkg in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-system-deps: missing packages: ${missing[*]}" >&2
  echo "install-system-deps: run as root, or install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi

echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
