#!/usr/bin/env node
/**
 * The container's health probe (Dockerfile HEALTHCHECK, docker-compose.yml healthcheck):
 * `GET /healthz` on the gateway's own listen address; exit 0 on a 200, 1 otherwise.
 *
 * The address comes from the same configuration load as the gateway's (environment, `.env` and the
 * YAML file in the working directory, plus the gateway's own flags read from PID 1's command line
 * when PID 1 is the gateway), so `PROXY_PORT=6543` or `-listen :9000` need no change to the probe.
 */
import { probe } from './health-probe.js'

probe().then(ok => process.exit(ok ? 0 : 1), (err: unknown) => {
  process.stderr.write(`healthcheck: ${(err as Error).message}\n`)
  process.exit(1)
})
