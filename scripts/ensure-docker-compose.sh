#!/usr/bin/env bash
# A Compose CLI for test/deploy/compose.test.ts, which validates docker-compose.yml offline
# (`docker compose config` / `docker-compose config` need no engine).
if docker compose version >/dev/null 2>&1; then exit 0; fi
exec bash "$(dirname "$0")/apt-ensure.sh" ensure-docker-compose docker-compose docker-compose version
