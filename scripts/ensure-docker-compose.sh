#!/usr/bin/env bash
# Makes sure a Compose CLI is on PATH for test/deploy/compose.test.ts, which validates
# docker-compose.yml offline (`docker compose config` / `docker-compose config` need no engine).
# Installs Debian's docker-compose package when neither is there; otherwise says what to install
# and fails, so that test never skips silently.
set -euo pipefail

if docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; then
  exit 0
fi

if command -v apt-get >/dev/null 2>&1; then
  SUDO=''
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO='sudo'; else
      echo "ensure-docker-compose: docker-compose is missing and installing it needs root (apt-get install docker-compose)" >&2
      exit 1
    fi
  fi
  echo "ensure-docker-compose: installing docker-compose (Debian package)" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
  command -v docker-compose >/dev/null 2>&1 && exit 0
fi

echo "ensure-docker-compose: no Compose CLI found; install docker compose (v2 plugin) or docker-compose" >&2
exit 1
