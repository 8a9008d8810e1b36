#!/usr/bin/env bash
# redis-server for the tests that share state through a real Redis (test/abuse/redis-shared.test.ts,
# context-id and usage stores); they start their own servers on free loopback ports.
exec bash "$(dirname "$0")/apt-ensure.sh" ensure-redis redis-server redis-server --version
