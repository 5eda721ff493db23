#!/usr/bin/env bash
# Make Debian's mosquitto (broker + mosquitto_passwd) available for the MQTT
# tests. Installed, never used as a system service: the tests start their
# own broker on their own ports (tests/mqtt_broker.py).
set -euo pipefail
if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
  if command -v mosquitto_passwd >/dev/null 2>&1; then
    exit 0
  fi
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's mosquitto (not started as a service)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends mosquitto >/dev/null
  # Debian's post-install starts the service where systemd runs; we never use it.
  exit 0
fi
echo "mosquitto is missing and this is not root: the MQTT tests will skip" \
  "(fail with CI=true); install it with: sudo apt-get install mosquitto" >&2
