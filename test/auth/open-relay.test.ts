/**
 * The three client-auth modes (keys required; callers' own credentials pass through; open relay)
 * and the boot refusal of an accidental open relay: an upstream key, no client key checked and an
 * address other machines can reach (the Docker image, compose) stop the start with one line,
 * unless `auth.enabled=false` was set explicitly.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { loadConfig } from '../../config/load.js'
import { clientAuthMode, isLoopbackHost } from '../../config/sections/auth.js'
import { refusal } from '../config/support.js'
import { startGateway, startMock, tempDir } from '../helper.js'
import { composeFile, dockerfileStages, serviceEnv, stageEnv } from '../deploy/files.js'

const UPSTREAM_KEY = 'sk-operator-upstream-0001'
const ADMIN = 'admin-token-open-relay-1'

function load (env: Record<string, string>, argv: string[] = [], cwd = tempDir()) {
  return loadConfig({ argv, env, cwd })
}

function withYaml (text: string, env: Record<string, string> = {}) {
  const dir = tempDir()
  writeFileSync(join(dir, 'g.yaml'), text)
  return load(env, ['--config', 'g.yaml'], dir)
}

test('an upstream key, no client keys and a public listen address: the boot is refused with one line saying what to do', () => {
  const message = refusal(() => load({ GATEWAY_HOST: '0.0.0.0', GATEWAY_UPSTREAM_KEY: UPSTREAM_KEY }))
  assert.match(message, /^open relay refused: an upstream key is configured \(upstream\.key, env GATEWAY_UPSTREAM_KEY\), no client key is checked, and server\.host \(env GATEWAY_HOST\) = "0\.0\.0\.0"/)
  assert.match(message, /GATEWAY_CLIENT_KEYS/)
  assert.match(message, /GATEWAY_AUTH_ENABLED=false \(AUTH_VALIDATION=false\)/)
  assert.ok(!message.includes(UPSTREAM_KEY), 'the key itself is never printed')

  // every form of "an upstream key", every form of "reachable from elsewhere"
  const refused: Array<[string, () => unknown]> = [
    ['seed 001: AUTH_BEARER, no ALLOWED_TOKENS, -l 0.0.0.0', () => load({ TARGET_HOST: 'https://api.example.com', AUTH_BEARER: UPSTREAM_KEY }, ['-l', '0.0.0.0'])],
    ['seed 001: AUTH_VALIDATION=true but no tokens', () => load({ AUTH_BEARER: UPSTREAM_KEY, AUTH_VALIDATION: 'true', PROXY_PORT: '8080' }, ['-l', '0.0.0.0'])],
    ['a key pool', () => load({ GATEWAY_UPSTREAM_KEYS: `${UPSTREAM_KEY},sk-second-0002`, GATEWAY_HOST: '::' })],
    ['a named target\'s key', () => withYaml(`server: { host: 192.0.2.10 }\ntargets:\n  oa: { url: https://api.openai.com, keys: [${UPSTREAM_KEY}] }\n`)],
    ['a credential in a target\'s headers', () => withYaml('server: { host: 0.0.0.0 }\ntargets:\n  g: { url: https://g.example, headers: { x-goog-api-key: secret-g-1 } }\n')],
    ['configured keys, all turned off by an explicit auth.enabled=true without keys', () => load({ GATEWAY_HOST: 'gateway.example', GATEWAY_UPSTREAM_KEY: UPSTREAM_KEY, GATEWAY_AUTH_ENABLED: 'true' })],
    ['-listen :9001', () => load({ GATEWAY_UPSTREAM_KEY: UPSTREAM_KEY }, ['-listen', ':9001'])]
  ]
  for (const [what, fn] of refused) assert.match(refusal(fn), /^open relay refused: /, what)
})

test('the Docker image and the compose services with an upstream key and no client keys refuse to start', () => {
  const image = stageEnv(dockerfileStages().at(-1) as ReturnType<typeof dockerfileStages>[number])
  assert.match(refusal(() => load({ ...image, GATEWAY_UPSTREAM_KEY: UPSTREAM_KEY, BASE_PATH: tempDir() })), /^open relay refused: .*"0\.0\.0\.0"/)
  const services = Object.entries(composeFile().services).filter(([, s]) => s.image?.startsWith('llm-gateway') === true)
  assert.ok(services.length > 0)
  for (const [name, service] of services) {
    const env = { ...serviceEnv(service), GATEWAY_UPSTREAM_KEY: UPSTREAM_KEY, BASE_PATH: tempDir() }
    assert.match(refusal(() => load(env)), /^open relay refused: /, name)
    // the line's two ways out both start
    assert.equal(clientAuthMode(load({ ...env, GATEWAY_CLIENT_KEYS: 'ck-client-0001' }).config), 'keys', name)
    assert.equal(clientAuthMode(load({ ...env, GATEWAY_AUTH_ENABLED: 'false' }).config), 'open-relay', name)
  }
})

test('what still starts: loopback, client keys, no upstream key, or an open relay asked for explicitly', () => {
  for (const host of ['127.0.0.1', '127.0.0.2', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1']) {
    assert.equal(clientAuthMode(load({ GATEWAY_HOST: host, GATEWAY_UPSTREAM_KEY: UPSTREAM_KEY }).config), 'open-relay', host)
  }
  assert.equal(clientAuthMode(load({ GATEWAY_UPSTREAM_KEY: UPSTREAM_KEY }).config), 'open-relay', 'the default address is loopback')
  assert.equal(clientAuthMode(load({ GATEWAY_HOST: '0.0.0.0', GATEWAY_UPSTREAM_KEY: UPSTREAM_KEY, GATEWAY_CLIENT_KEYS: 'ck-client-0001' }).config), 'keys')
  assert.equal(clientAuthMode(load({ GATEWAY_HOST: '0.0.0.0' }).config), 'pass-through', 'callers bring their own credentials')
  assert.equal(clientAuthMode(withYaml('server: { host: 0.0.0.0 }\ntargets:\n  b: { url: https://b.example, headers: { OpenAI-Beta: assistants=v2 } }\n').config), 'pass-through', 'a header that is no credential')
  // seed 000: -key alone means clients must send it (-bearer defaults to -key)
  assert.equal(clientAuthMode(load({}, ['-l', '0.0.0.0', '-key', UPSTREAM_KEY]).config), 'keys')
  // explicitly: the native name, seed 001's name, the YAML key
  assert.equal(clientAuthMode(load({ GATEWAY_HOST: '0.0.0.0', GATEWAY_UPSTREAM_KEY: UPSTREAM_KEY, GATEWAY_AUTH_ENABLED: 'false' }).config), 'open-relay')
  assert.equal(clientAuthMode(load({ AUTH_BEARER: UPSTREAM_KEY, AUTH_VALIDATION: 'false' }, ['-l', '0.0.0.0']).config), 'open-relay')
  assert.equal(clientAuthMode(withYaml(`server: { host: 0.0.0.0 }\nupstream: { key: ${UPSTREAM_KEY} }\nauth: { enabled: false }\n`).config), 'open-relay')
  // explicitly off with keys configured: the keys are not checked, so it is an open relay too
  assert.equal(clientAuthMode(load({ GATEWAY_HOST: '0.0.0.0', GATEWAY_UPSTREAM_KEY: UPSTREAM_KEY, GATEWAY_CLIENT_KEYS: 'ck-1-0001', GATEWAY_AUTH_ENABLED: 'false' }).config), 'open-relay')

  for (const host of ['0.0.0.0', '::', '10.0.0.1', '192.0.2.1', '::ffff:10.0.0.1', 'example.com', 'localhost.example.com', '2001:db8::1']) {
    assert.equal(isLoopbackHost(host), false, host)
  }
})

test('the three modes by their names: the boot line, GET /admin/keys', async (t) => {
  const mock = await startMock(t)
  const cases: Array<[string, Record<string, string>, string]> = [
    ['keys', { GATEWAY_CLIENT_KEYS: 'ck-client-0001', GATEWAY_UPSTREAM_KEY: UPSTREAM_KEY }, 'keys required: '],
    ['pass-through', {}, 'pass-through: no upstream key is configured'],
    ['open-relay', { GATEWAY_UPSTREAM_KEY: UPSTREAM_KEY }, 'open relay: client keys are not checked']
  ]
  for (const [mode, env, phrase] of cases) {
    const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_ADMIN_TOKEN: ADMIN, ...env } })
    const lines = gw.logs.map(l => JSON.parse(l) as { level: number, msg: string }).filter(l => l.msg.includes(`(${mode} mode)`))
    assert.equal(lines.length, 1, `${mode}: one line at start`)
    assert.ok(lines[0].msg.includes(phrase), lines[0].msg)
    assert.equal(lines[0].level, mode === 'keys' ? 30 : 40, 'a warning unless keys are required')
    const res = await request(`${gw.url}/admin/keys`, { headers: { authorization: `Bearer ${ADMIN}` } })
    assert.equal((await res.body.json() as { mode: string }).mode, mode)
  }
})

test('the command: exit 2 with the one line; --check-config names the mode', () => {
  const cli = [fileURLToPath(import.meta.resolve('tsx')), fileURLToPath(new URL('../../src/cli.ts', import.meta.url))]
  const run = (args: string[], env: Record<string, string>) =>
    spawnSync(process.execPath, ['--import', cli[0], cli[1], ...args], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8', cwd: tempDir(), timeout: 30_000 })

  const refused = run([], { GATEWAY_HOST: '0.0.0.0', GATEWAY_PORT: '0', GATEWAY_UPSTREAM_KEY: UPSTREAM_KEY })
  assert.equal(refused.status, 2, refused.stderr)
  const lines = refused.stderr.trim().split('\n')
  assert.equal(lines.length, 1, refused.stderr)
  assert.match(lines[0], /^llm-gateway: invalid configuration: open relay refused: .*GATEWAY_CLIENT_KEYS.*GATEWAY_AUTH_ENABLED=false \(AUTH_VALIDATION=false\)$/)
  assert.ok(!refused.stderr.includes(UPSTREAM_KEY))

  const modes: Array<[Record<string, string>, RegExp]> = [
    [{ GATEWAY_CLIENT_KEYS: 'ck-client-0001' }, /^client auth: keys required: .* \(keys mode\)$/],
    [{}, /^client auth: pass-through: .* \(pass-through mode\)$/],
    [{ GATEWAY_UPSTREAM_KEY: UPSTREAM_KEY, GATEWAY_AUTH_ENABLED: 'false', GATEWAY_HOST: '0.0.0.0' }, /^client auth: open relay: .* \(open-relay mode\)$/]
  ]
  for (const [env, expected] of modes) {
    const check = run(['--check-config'], env)
    assert.equal(check.status, 0, check.stderr)
    assert.match(check.stderr.trim(), expected)
    JSON.parse(check.stdout)
  }
})
