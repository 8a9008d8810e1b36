#!/usr/bin/env node
/**
 * The command: load and validate the config (exit 2 with one line on any problem), then listen,
 * and shut down gracefully on SIGTERM/SIGINT: stop accepting, let in-flight streams finish within
 * the grace period, then exit 0.
 */
// first: V8 settings that must be in place before anything else allocates
import './v8-tuning.js'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { loadConfig, ConfigError, type LoadResult } from '../config/load.js'
import { helpText, maskedConfig } from '../config/describe.js'
import { preflight } from '../config/preflight.js'
import { clientAuthMode, describeClientAuthMode } from '../config/sections/auth.js'
import { buildServer } from './server.js'

/** After the grace period the close only waits for sockets being destroyed: this bounds that wait. */
const HARD_STOP_MARGIN_MS = 5000

/** package.json is one level up from src/ when run with tsx, two levels from dist/src/. */
function version (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir)
  return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version
}

/** The validated config, or exit 2 with one line (bad values, and paths that cannot be used). */
function load (): LoadResult {
  try {
    const loaded = loadConfig({ argv: process.argv.slice(2), env: process.env })
    if (!loaded.actions.help && !loaded.actions.version) preflight(loaded.config, loaded.origins)
    return loaded
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`llm-gateway: invalid configuration: ${err.message}\n`)
      process.exit(2)
    }
    throw err
  }
}

/**
 * Graceful shutdown as fastify/demo does it, with close-with-grace: on a signal (or an uncaught
 * error) stop accepting and close the instance. In-flight streams get the grace period; then the
 * remaining connections are closed, so a stream that never ends cannot hold the exit back. The
 * library's own delay is only the last resort, for a close that hangs after that.
 */
function closeOnSignals (fastify: FastifyInstance, graceMs: number): void {
  closeWithGrace({
    delay: graceMs + HARD_STOP_MARGIN_MS,
    // SIGUSR2 stays free for diagnostics (a heap snapshot, the load test's GC probe)
    skip: ['SIGUSR2'],
    logger: { error: (msg: unknown) => fastify.log.error({ err: msg }, 'shutdown did not finish') }
  }, async ({ signal, err }) => {
    if (err !== undefined) fastify.log.error({ err }, 'uncaught error: shutting down')
    fastify.log.info({ signal, graceMs }, 'shutting down: waiting for in-flight requests')
    const timer = setTimeout(() => {
      fastify.log.warn('grace period over: closing remaining connections')
      fastify.server.closeAllConnections()
    }, graceMs)
    timer.unref()
    try {
      await fastify.close()
    } finally {
      clearTimeout(timer)
    }
  })
}

async function main (): Promise<void> {
  const { config, actions } = load()
  if (actions.help) { process.stdout.write(helpText()); return }
  if (actions.version) { process.stdout.write(`${version()}\n`); return }
  if (actions.checkConfig) {
    process.stdout.write(`${JSON.stringify(maskedConfig(config), null, 2)}\n`)
    // stdout stays the config as JSON; who may call the gateway is said beside it
    process.stderr.write(`client auth: ${describeClientAuthMode(clientAuthMode(config))}\n`)
    return
  }
  const fastify = await buildServer(config)
  closeOnSignals(fastify, config.server.shutdownGraceMs)
  const address = await fastify.listen({ host: config.server.host, port: config.server.port })
  fastify.log.info({ url: address }, 'gateway listening')
  if (config.upstream.url === 'mock') printDemoHint(address)
}

/** In demo mode, a curl line that works as printed. */
function printDemoHint (address: string): void {
  const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello' }] })
  process.stderr.write([
    '',
    `LLM gateway listening on ${address} in front of the embedded mock upstream. Try:`,
    `  curl -s ${address}/v1/chat/completions -H 'content-type: application/json' -d '${body}'`,
    `  curl -s ${address}/v1/models`,
    ''
  ].join('\n') + '\n')
}

main().catch((err: unknown) => {
  process.stderr.write(`llm-gateway: failed to start: ${(err as Error).message}\n`)
  process.exit(1)
})
