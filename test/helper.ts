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
import { allOptions, type GatewayConfig } from '../config/schema.js'
import { envDefault, flagForms, settable } from '../config/describe.js'
import assert from 'node:assert/strict'
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

/** The gateway built from `input` (env, flags, YAML in a fresh temp dir), its log lines captured; not listening yet. */
export async function buildGateway (t: TestContext, input: GatewayInput = {}): Promise<{ app: FastifyInstance, config: GatewayConfig, cwd: string, lines: string[] }> {
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
  return { app, config, cwd, lines }
}

export async function startGateway (t: TestContext, input: GatewayInput = {}): Promise<GatewayHandle> {
  const { app, config, lines } = await buildGateway(t, input)
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  return { url, app, config, logs: lines, logText: () => lines.join('\n') }
}

/** A config with a secret in every place one can go (upstream and pool keys, proxy and Redis passwords, tokens, a mapped key). */
export const SECRETS_YAML = {
  secrets: ['sk-upstream-secret-1', 'sk-ant-secret-2', 'sk-ant-secret-3', 'proxypass', 'admin-secret-4', 'client-secret-5', 'sk-mapped-secret-6', 'redispass', 'proxy2pass'],
  yaml: [
    'upstream: { url: https://api.openai.com, key: sk-upstream-secret-1 }',
    'targets:',
    '  claude:',
    '    url: api.anthropic.com',
    '    keys: [sk-ant-secret-2, { key: sk-ant-secret-3, name: backup }]',
    '    proxy: http://user:proxypass@10.0.0.2:3128',
    'auth:',
    '  adminToken: admin-secret-4',
    '  keys: [{ name: web, key: client-secret-5, upstreamKey: sk-mapped-secret-6, allowedModels: [gpt-4o-mini] }]',
    'redis: { url: "redis://:redispass@redis:6379" }'
  ].join('\n'),
  /** the last secret comes from the environment */
  env: { HTTPS_PROXY: 'http://u:proxy2pass@10.0.0.3:1' }
}

/** A default upstream at `a` and a target `b` at `b`, each adding its own `x-which` header. */
export function twoTargets (a: string, b: string, extra = ''): string {
  return `
upstream:
  url: ${a}
  headers: { x-which: default }
targets:
  b:
    url: ${b}
    headers: { x-which: b }
${extra}`
}

export async function startMock (t: TestContext, opts: MockOptions = {}): Promise<MockUpstream> {
  const mock = await startMockUpstream(opts)
  t.after(() => mock.close())
  return mock
}

/** Every settable option is in the help text with its description, env names and default. */
export function assertHelpListsEveryOption (text: string): void {
  const blocks = helpBlocks(text)
  for (const o of settable(allOptions)) {
    const head = flagForms(o).length > 0 ? flagForms(o).join(', ') : o.env[0]
    const block = blocks.find(b => b.startsWith(`  ${head} `) || b.startsWith(`  ${head}\n`))
    assert.ok(block !== undefined, `${o.path} is listed as ${head}`)
    assert.ok(block.includes(o.doc), `${o.path}: its description`)
    for (const name of o.env) assert.ok(block.includes(name), `${o.path}: env ${name}`)
    const def = envDefault(o)
    assert.ok(block.includes(`default ${def === '' ? '(empty)' : def}`), `${o.path}: default in ${block}`)
  }
}

/** --help's option blocks: a line starting with the flags (or env name), then its indented lines. */
function helpBlocks (text: string): string[] {
  const blocks: string[] = []
  for (const line of text.split('\n')) {
    if (/^ {2}\S/.test(line)) blocks.push(line)
    else if (/^ {3,}\S/.test(line) && blocks.length > 0) blocks[blocks.length - 1] += `\n${line}`
  }
  return blocks
}
