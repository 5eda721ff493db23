#!/usr/bin/env bash
# Make a prometheus binary available for tests/integration/test_prometheus.py
# (Debian's package; it is not started as a service: the test starts its own
# server on its own port with the shipped scrape config rewritten to point at
# the test stack). Without root or apt-get it says so and exits 1.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's prometheus (not started as a service)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # Debian's post-install starts the service (port 9090) where systemd runs; we never use it.
  exit 0
fi
echo "prometheus is not installed and this user cannot apt-get install it" >&2
exit 1
