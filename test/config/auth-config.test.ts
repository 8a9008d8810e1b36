/**
 * The auth and models config sections: every way to give client keys, seed aliases, the checks
 * done at boot, and that keys are secrets (log filter, --check-config) while names are not.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../../config/load.js'
import { maskedConfig } from '../../config/describe.js'
import { secretsOf } from '../../config/secrets.js'
import { tempDir } from '../tmp.js'
import { refusal } from './support.js'

function load (argv: string[] = [], env: Record<string, string> = {}, cwd = tempDir()) {
  return loadConfig({ argv, env, cwd }).config
}

function withYaml (text: string, env: Record<string, string> = {}, argv: string[] = []) {
  const dir = tempDir()
  writeFileSync(join(dir, 'g.yaml'), text)
  return load(['--config', 'g.yaml', ...argv], env, dir)
}

test('defaults: no keys, checking on, no admin token, 24 h model cache', () => {
  const c = load()
  assert.deepEqual(c.auth, { enabled: true, keys: [], bearer: '', header: '', passThroughUnknown: false, adminToken: '' })
  assert.deepEqual(c.models, { cacheTtlMs: 86_400_000, cacheMaxEntries: 1000 })
})

test('GATEWAY_CLIENT_KEYS: comma list or JSON array; ALLOWED_TOKENS is the seed 001 alias (native name wins)', () => {
  assert.deepEqual(load([], { GATEWAY_CLIENT_KEYS: ' k-one-1 , k-two-2,' }).auth.keys, [
    { name: 'key-1', key: 'k-one-1', enabled: true },
    { name: 'key-2', key: 'k-two-2', enabled: true }
  ])
  const json = JSON.stringify([{ name: 'alice', key: 'k-alice', allowedModels: ['gpt-4o'], rateLimit: { max: 5, timeWindowMs: 1000 } }, 'k-plain'])
  assert.deepEqual(load([], { GATEWAY_CLIENT_KEYS: json }).auth.keys, [
    { name: 'alice', key: 'k-alice', allowedModels: ['gpt-4o'], rateLimit: { max: 5, timeWindowMs: 1000 }, enabled: true },
    { name: 'key-2', key: 'k-plain', enabled: true }
  ])
  assert.deepEqual(load([], { ALLOWED_TOKENS: 'token1,token2' }).auth.keys.map(k => k.key), ['token1', 'token2'])
  assert.deepEqual(load([], { ALLOWED_TOKENS: 'token1', GATEWAY_CLIENT_KEYS: 'native-1' }).auth.keys.map(k => k.key), ['native-1'])
  const c = load([], { AUTH_VALIDATION: 'false', DEFAULT_AUTH_HEADER: 'X-Api-Key-Custom', ADMIN_TOKEN: 'adm' })
  assert.equal(c.auth.enabled, false)
  assert.equal(c.auth.header, 'x-api-key-custom', 'header names are matched lower-case')
  assert.equal(c.auth.adminToken, 'adm')
  assert.equal(load([], { GATEWAY_ADMIN_TOKEN: 'native', ADMIN_TOKEN: 'alias' }).auth.adminToken, 'native')
  assert.equal(load(['--admin-token', 'flag'], { GATEWAY_ADMIN_TOKEN: 'env' }).auth.adminToken, 'flag')
})

test('seed 000: -bearer defaults to -key only; --upstream-key and env keys do not become client keys', () => {
  const seed = load(['-key', 'sk-up-1'])
  assert.equal(seed.auth.bearer, 'sk-up-1')
  assert.deepEqual(seed.auth.keys, [{ name: 'bearer', key: 'sk-up-1', enabled: true }])
  assert.equal(load(['--key=sk-up-1']).auth.bearer, 'sk-up-1')
  assert.deepEqual(load(['-key', 'sk-up-1', '-bearer', 'client-1']).auth.keys.map(k => k.key), ['client-1'])
  assert.deepEqual(load(['--upstream-key', 'sk-up-1']).auth.keys, [])
  assert.deepEqual(load([], { GATEWAY_UPSTREAM_KEY: 'sk-up-1' }).auth.keys, [])
  assert.deepEqual(load([], { AUTH_BEARER: 'sk-up-1' }).auth.keys, [])
})

test('seed 004 api_keys map becomes named entries with their upstream keys; native sections in the same file merge', () => {
  const c = withYaml('base_url: https://example.com\napi_keys:\n  front-1: real-1\n  front-2: real-2\nauth:\n  passThroughUnknown: true\n')
  assert.equal(c.upstream.url, 'https://example.com')
  assert.deepEqual(c.auth.keys, [
    { name: 'api-key-1', key: 'front-1', upstreamKey: 'real-1', enabled: true },
    { name: 'api-key-2', key: 'front-2', upstreamKey: 'real-2', enabled: true }
  ])
  assert.equal(c.auth.passThroughUnknown, true)
  assert.deepEqual(withYaml('base_url: https://example.com\napi_keys: [k1, k2]\n').auth.keys.map(k => k.upstreamKey), [undefined, undefined])
  assert.deepEqual(withYaml('base_url: https://example.com\napi_keys:\n').auth.keys, [], 'an empty seed 004 key means the default')
})

test('boot errors: key and hash both or neither, duplicate names or keys, bad hash, bad header, bad JSON; never printing a key', () => {
  const hash = createHash('sha256').update('k-same').digest('hex')
  assert.match(refusal(() => withYaml('auth:\n  keys:\n    - name: a\n')), /auth\.keys\[0\] \(a\): expected exactly one of "key" or "keySha256"/)
  assert.match(refusal(() => withYaml(`auth:\n  keys:\n    - name: a\n      key: k\n      keySha256: ${hash}\n`)), /exactly one/)
  assert.match(refusal(() => withYaml('auth:\n  keys:\n    - { name: a, key: k1 }\n    - { name: a, key: k2 }\n')), /name "a" is used twice/)
  assert.match(refusal(() => withYaml(`auth:\n  keys:\n    - { name: a, key: k-same }\n    - { name: b, keySha256: ${hash} }\n`)), /auth\.keys\[1\] \(b\): the same key is also configured as "a"/)
  assert.match(refusal(() => withYaml('auth:\n  keys:\n    - { name: a, keySha256: abc }\n')), /auth\.keys\.0\.keySha256/)
  assert.match(refusal(() => withYaml('auth:\n  keys:\n    - { name: "bad name", key: k }\n')), /auth\.keys\.0\.name/)
  assert.match(refusal(() => withYaml('auth:\n  keys:\n    - { name: a, key: k, colour: red }\n')), /colour: unknown key/)
  assert.match(refusal(() => load([], { DEFAULT_AUTH_HEADER: 'X Bad Header' })), /auth\.header \(env DEFAULT_AUTH_HEADER\)/)
  const bad = refusal(() => load([], { GATEWAY_CLIENT_KEYS: '[{"name":"a","key":"k-secret-in-json"' }))
  assert.match(bad, /auth\.keys \(env GATEWAY_CLIENT_KEYS\) = \[REDACTED\]: expected a JSON array/)
  assert.ok(!bad.includes('k-secret-in-json'))
  const typed = refusal(() => load([], { GATEWAY_CLIENT_KEYS: '[{"name":"a","key":12345678}]' }))
  assert.ok(!typed.includes('12345678'), typed)
  assert.match(refusal(() => load([], { GATEWAY_MODELS_CACHE_TTL_MS: '-1' })), /models\.cacheTtlMs/)
})

test('client keys, mapped upstream keys, the bearer and the admin token are secrets; names and models are not', () => {
  const c = withYaml(`
auth:
  adminToken: adm-secret-1
  keys:
    - name: alice
      key: ck-secret-alice
      upstreamKey: sk-secret-mapped
      allowedModels: [gpt-4o-mini]
    - name: bob
      keySha256: ${createHash('sha256').update('x').digest('hex')}
`, {}, ['-bearer', 'bearer-secret-1'])
  const secrets = secretsOf(c)
  for (const s of ['ck-secret-alice', 'sk-secret-mapped', 'adm-secret-1', 'bearer-secret-1']) assert.ok(secrets.includes(s), s)
  for (const s of ['alice', 'bob', 'gpt-4o-mini']) assert.ok(!secrets.includes(s), `${s} must stay readable in logs`)

  const masked = maskedConfig(c) as { auth: { keys: Array<Record<string, unknown>>, adminToken: string, bearer: string } }
  const text = JSON.stringify(masked)
  for (const s of ['ck-secret-alice', 'sk-secret-mapped', 'adm-secret-1', 'bearer-secret-1']) assert.ok(!text.includes(s), s)
  assert.deepEqual(masked.auth.keys[0], { name: 'alice', key: '[REDACTED]', upstreamKey: '[REDACTED]', allowedModels: ['gpt-4o-mini'], enabled: true })
  assert.equal(masked.auth.keys[1].name, 'bob')
})
