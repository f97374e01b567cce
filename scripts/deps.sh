#!/usr/bin/env bash
# Installs the Debian 12 packages chatd needs to build, test and run.
# Idempotent: installs only what is missing, and does nothing when all is there.
set -euo pipefail

packages=(
  build-essential pkg-config
  libuv1-dev libhttp-parser-dev libjansson-dev libjwt-dev libsodium-dev
  libssl-dev libsqlite3-dev libpq-dev libhiredis-dev
  libcmocka-dev
  python3 python3-pytest python3-requests python3-websockets
  postgresql-15 sqlite3 curl
  nginx
)
if [ "${CHATD_DEPS_EXTRA:-}" != "" ]; then
  # shellcheck disable=SC2206
  packages+=(${CHATD_DEPS_EXTRA})
fi

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; then
  "${sudo_cmd[@]}" apt-get update
  "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi
