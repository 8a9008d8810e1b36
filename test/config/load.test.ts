import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../../config/load.js'
import { tempDir } from '../tmp.js'
import { refusal } from './support.js'

function load (argv: string[] = [], env: Record<string, string> = {}, cwd = tempDir()) {
  return loadConfig({ argv, env, cwd }).config
}

test('built-in defaults', () => {
  const c = load()
  assert.equal(c.server.host, '127.0.0.1')
  assert.equal(c.server.port, 8080)
  assert.equal(c.server.bodyLimit, 32 * 1024 * 1024)
  assert.equal(c.upstream.url, 'https://api.openai.com')
  assert.equal(c.log.level, 'info')
  assert.ok(Object.isFrozen(c.upstream), 'config is frozen')
})

test('precedence: defaults < YAML < env < flags', () => {
  const dir = tempDir()
  writeFileSync(join(dir, 'g.yaml'), 'server:\n  port: 1111\n  host: 127.0.0.2\nlog:\n  level: warn\n')
  const fromYaml = load(['--config', 'g.yaml'], {}, dir)
  assert.equal(fromYaml.server.port, 1111)
  assert.equal(fromYaml.log.level, 'warn')
  const fromEnv = load(['--config', 'g.yaml'], { PROXY_PORT: '2222' }, dir)
  assert.equal(fromEnv.server.port, 2222)
  assert.equal(fromEnv.server.host, '127.0.0.2', 'env keeps what it does not set')
  const fromFlag = load(['--config', 'g.yaml', '-p', '3333'], { PROXY_PORT: '2222' }, dir)
  assert.equal(fromFlag.server.port, 3333)
})

test('CONFIG_FILE names the YAML file; ${ENV} placeholders are substituted', () => {
  const dir = tempDir()
  writeFileSync(join(dir, 'x.yaml'), 'upstream:\n  url: https://up.example\n  key: ${UP_KEY}\n')
  const c = load([], { CONFIG_FILE: 'x.yaml', UP_KEY: 'sk-secret-1234' }, dir)
  assert.equal(c.upstream.key, 'sk-secret-1234')
  assert.match(refusal(() => load([], { CONFIG_FILE: 'x.yaml' }, dir)), /UP_KEY.*not set/)
})

test('.env is read but never overrides a real environment variable', () => {
  const dir = tempDir()
  writeFileSync(join(dir, '.env'), 'PROXY_PORT=4444\nLOG_LEVEL=debug\n')
  const c = load([], { PROXY_PORT: '5555' }, dir)
  assert.equal(c.server.port, 5555)
  assert.equal(c.log.level, 'debug')
})

test('native names beat seed aliases in the same layer', () => {
  assert.equal(load([], { GATEWAY_PORT: '1', PROXY_PORT: '2' }).server.port, 1)
})

test('seed 000 flags: -l -p -api (path ignored) -key -log, Go and GNU styles', () => {
  const c = load(['-l', '127.0.0.3', '-p=2023', '-api', 'http://upstream.test:9000/v1/ignored', '--key=sk-000', '-log', 'debug'])
  assert.equal(c.server.host, '127.0.0.3')
  assert.equal(c.server.port, 2023)
  assert.equal(c.upstream.url, 'http://upstream.test:9000')
  assert.equal(c.upstream.key, 'sk-000')
  assert.equal(c.log.level, 'debug')
})

test('seed 001 env: TARGET_HOST AUTH_BEARER PROXY_PORT LOG_LEVEL DEBUG_MODE', () => {
  const c = load([], { TARGET_HOST: 'https://api.example.com', AUTH_BEARER: 'sk-001', PROXY_PORT: '8081', LOG_LEVEL: 'error', DEBUG_MODE: '1' })
  assert.equal(c.upstream.url, 'https://api.example.com')
  assert.equal(c.upstream.key, 'sk-001')
  assert.equal(c.server.port, 8081)
  assert.equal(c.log.level, 'debug', 'DEBUG_MODE turns debug on')
  assert.equal(c.log.requests, true)
})

test('seed 002 style flags: --ENV_NAME value', () => {
  assert.equal(load(['--PROXY_PORT', '6543']).server.port, 6543)
})

test('seed 003 -listen / OPENAI_PROXY_LISTEN take Go listen addresses', () => {
  const a = load(['-listen', ':9001'])
  assert.equal(a.server.host, '0.0.0.0')
  assert.equal(a.server.port, 9001)
  const b = load([], { OPENAI_PROXY_LISTEN: '127.0.0.1:9002' })
  assert.equal(b.server.host, '127.0.0.1')
  assert.equal(b.server.port, 9002)
})

test('a bare upstream host means https; a full URL keeps its scheme', () => {
  assert.equal(load([], { TARGET_HOST: 'api.example.com' }).upstream.url, 'https://api.example.com')
  assert.equal(load([], { TARGET_HOST: 'http://127.0.0.1:9/base/' }).upstream.url, 'http://127.0.0.1:9/base')
})

test('seed 004 YAML file is recognised and mapped', () => {
  const dir = tempDir()
  writeFileSync(join(dir, 'openai-chat-proxy-config.yaml'), 'base_url: https://api.example.org\ntimeout: 5\nlog_requests: true\nroute_prefix: /\n')
  const c = load([], {}, dir)
  assert.equal(c.upstream.url, 'https://api.example.org')
  assert.equal(c.upstream.connectTimeoutMs, 5000)
  assert.equal(c.log.requests, true)
})

test('bad values are refused with one line naming key, value and expected form', () => {
  assert.equal(refusal(() => load([], { LOG_LEVEL: 'loud' })), 'log.level (env LOG_LEVEL) = "loud": expected one of debug | info | warn | error | silent')
  assert.equal(refusal(() => load([], { PROXY_PORT: 'abc' })), 'server.port (env PROXY_PORT) = "abc": expected a whole number')
  assert.match(refusal(() => load(['-p', '70000'])), /^server\.port \(flag -p\) = 70000: expected a whole number from 0 to 65535$/)
  assert.match(refusal(() => load([], { TARGET_HOST: 'http://exa mple' })), /^upstream\.url \(env TARGET_HOST\) = "http:\/\/exa mple": expected a URL/)
  assert.match(refusal(() => load([], { TARGET_HOST: 'ftp://x' })), /expected an http:\/\/ or https:\/\/ URL/)
  assert.match(refusal(() => load(['--nope'])), /unknown flag --nope/)
})

test('YAML problems are refused: unreadable, invalid, unknown key', () => {
  const dir = tempDir()
  assert.match(refusal(() => load(['--config', 'missing.yaml'], {}, dir)), /missing\.yaml.*does not exist/)
  writeFileSync(join(dir, 'bad.yaml'), 'server: [1, 2\n')
  assert.match(refusal(() => load(['--config', 'bad.yaml'], {}, dir)), /invalid YAML/)
  writeFileSync(join(dir, 'unknown.yaml'), 'server:\n  prot: 1\n')
  assert.equal(refusal(() => load(['--config', 'unknown.yaml'], {}, dir)), 'server.prot: unknown key in the config file (expected one of: host, port, bodyLimit, shutdownGraceMs, headersTimeoutMs, bodyIdleTimeoutMs, bodyMinBytesPerSecond, responseStallTimeoutMs, keepAliveTimeoutMs, idleGcMs)')
  writeFileSync(join(dir, 'type.yaml'), 'server:\n  port: high\n')
  assert.match(refusal(() => load(['--config', 'type.yaml'], {}, dir)), /^server\.port \(file .*type\.yaml: server\.port\) = "high": expected a whole number from 0 to 65535$/)
})
