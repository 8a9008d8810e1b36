#!/usr/bin/env bash
# Makes sure `redis-server` is on PATH for the tests that share state through a real Redis
# (test/abuse/redis-shared.test.ts). Installs the Debian/Ubuntu package when missing and allowed;
# otherwise says what to install and fails, so those tests never skip silently.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi

if command -v apt-get >/dev/null 2>&1; then
  SUDO=''
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO='sudo'; else
      echo "ensure-redis: redis-server is missing and installing it needs root (apt-get install redis-server)" >&2
      exit 1
    fi
  fi
  echo "ensure-redis: installing redis-server (Debian package)" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  # the tests start their own servers on free loopback ports; no system service is needed
  command -v redis-server >/dev/null 2>&1 && exit 0
fi

echo "ensure-redis: redis-server not found; install Redis 6+ (e.g. apt-get install redis-server, brew install redis)" >&2
exit 1
