/**
 * Test helpers: the real gateway on 127.0.0.1:0 built from a real config load (env, flags, YAML),
 * with its log lines captured, and the embedded mock upstream.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { loadConfig } from '../config/load.js'
import type { GatewayConfig } from '../config/schema.js'
import { buildServer } from '../src/server.js'
import { tempDir } from './tmp.js'
import { startMockUpstream, type MockOptions, type MockUpstream } from '../mock/upstream.js'

export interface GatewayHandle {
  url: string
  app: FastifyInstance
  config: GatewayConfig
  /** every log line written so far (raw JSON text) */
  logs: string[]
  logText: () => string
}

export interface GatewayInput {
  env?: Record<string, string>
  argv?: string[]
  /** YAML text written to a temp dir and passed with --config */
  yaml?: string
  /** runs on the built app before it listens (e.g. a test-only hook) */
  prepare?: (app: FastifyInstance) => void
}

export { tempDir }

export function captureLogs (): { stream: Writable, lines: string[] } {
  const lines: string[] = []
  const stream = new Writable({
    write (chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(line)
      cb()
    }
  })
  return { stream, lines }
}

export async function startGateway (t: TestContext, input: GatewayInput = {}): Promise<GatewayHandle> {
  const cwd = tempDir()
  const argv = [...(input.argv ?? [])]
  if (input.yaml !== undefined) {
    const file = join(cwd, 'gateway.yaml')
    writeFileSync(file, input.yaml)
    argv.push('--config', file)
  }
  const { config } = loadConfig({ argv, env: { GATEWAY_PORT: '0', ...input.env }, cwd })
  const { stream, lines } = captureLogs()
  const app = await buildServer(config, { logDestination: stream })
  input.prepare?.(app)
  t.after(() => app.close())
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  return { url, app, config, logs: lines, logText: () => lines.join('\n') }
}

export async function startMock (t: TestContext, opts: MockOptions = {}): Promise<MockUpstream> {
  const mock = await startMockUpstream(opts)
  t.after(() => mock.close())
  return mock
}
