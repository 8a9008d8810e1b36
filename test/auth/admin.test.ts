/**
 * The admin API: off (404) without an admin token, guarded with one, and what it answers.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { request } from 'undici'
import { loadConfig } from '../../config/load.js'
import { buildServer } from '../../src/server.js'
import { captureLogs, startGateway, startMock, tempDir, type GatewayHandle } from '../helper.js'

const ADMIN = 'adm-token-0001-secret'
const ALICE = 'ck-alice-0001-secret'

async function call (gw: GatewayHandle, method: 'GET' | 'POST', path: string, headers: Record<string, string> = {}): Promise<{ status: number, headers: Record<string, unknown>, body: any }> {
  const res = await request(`${gw.url}${path}`, { method, headers })
  return { status: res.statusCode, headers: res.headers, body: await res.body.json() }
}

test('without an admin token every /admin route answers 404, whatever the caller sends', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_CLIENT_KEYS: ALICE } })
  for (const [method, path] of [['POST', '/admin/cache/clear'], ['GET', '/admin/cache/clear'], ['GET', '/admin/keys'], ['GET', '/admin/unknown/path'], ['GET', '/admin']] as const) {
    for (const headers of [{}, { authorization: `Bearer ${ALICE}` }, { authorization: 'Bearer guess' }] as Array<Record<string, string>>) {
      const res = await call(gw, method, path, headers)
      assert.equal(res.status, 404, `${method} ${path}`)
      assert.equal(res.body.error.code, 'not_found')
    }
  }
  // the admin API is off even in pass-through mode, where every other route is open
  const open = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  assert.equal((await call(open, 'POST', '/admin/cache/clear')).status, 404)
})

test('with an admin token: missing or wrong token → 401, right token (any key header) → 200; client keys are not admin tokens', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_CLIENT_KEYS: ALICE, ADMIN_TOKEN: ADMIN } })
  for (const headers of [{}, { authorization: 'Bearer adm-token-0001' }, { authorization: `Bearer ${ADMIN}x` }, { authorization: `Bearer ${ALICE}` }] as Array<Record<string, string>>) {
    const res = await call(gw, 'POST', '/admin/cache/clear', headers)
    assert.equal(res.status, 401)
    assert.equal(res.headers['www-authenticate'], 'Bearer')
    assert.deepEqual(res.body, { error: { message: 'Admin token required', type: 'invalid_request_error', code: 'invalid_admin_token' } })
  }
  assert.equal((await call(gw, 'GET', '/admin/nowhere')).status, 401, 'unknown admin paths are guarded too')

  const ok = await call(gw, 'POST', '/admin/cache/clear', { authorization: `Bearer ${ADMIN}` })
  assert.equal(ok.status, 200)
  assert.deepEqual(ok.body, { cleared: { models: 0 } })
  assert.equal((await call(gw, 'POST', '/admin/cache/clear', { 'x-api-key': ADMIN })).status, 200)
  assert.equal((await call(gw, 'GET', '/admin/nowhere', { authorization: `Bearer ${ADMIN}` })).status, 404)
  // the admin token is not a client key either
  assert.equal((await call(gw, 'GET', '/v1/models', { authorization: `Bearer ${ADMIN}` })).status, 401)

  // the native name works the same; seed 001's DEFAULT_AUTH_HEADER carries the admin token too
  const native = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_ADMIN_TOKEN: ADMIN, DEFAULT_AUTH_HEADER: 'X-Token' } })
  assert.equal((await call(native, 'POST', '/admin/cache/clear', { 'x-token': ADMIN })).status, 200)
  assert.equal((await call(native, 'POST', '/admin/cache/clear', { 'x-token': `Bearer ${ADMIN}` })).status, 200)
  assert.equal((await call(native, 'POST', '/admin/cache/clear', { 'x-token': 'nope' })).status, 401)
})

test('GET /admin/keys lists names and settings, never a key or its hash', async (t) => {
  const mock = await startMock(t)
  const hashed = createHash('sha256').update('ck-bob-0002-secret').digest('hex')
  const yaml = `
upstream:
  url: ${mock.url}
auth:
  adminToken: ${ADMIN}
  header: X-Client-Token
  keys:
    - name: alice
      key: ${ALICE}
      upstreamKey: sk-upstream-alice-0003
      allowedModels: [gpt-4o-mini]
      allowedTargets: [default]
      rateLimit: { max: 10, timeWindowMs: 60000 }
    - name: bob
      keySha256: ${hashed}
      enabled: false
`
  const gw = await startGateway(t, { yaml })
  const res = await request(`${gw.url}/admin/keys`, { headers: { authorization: `Bearer ${ADMIN}` } })
  assert.equal(res.statusCode, 200)
  const text = await res.body.text()
  for (const secret of [ALICE, 'ck-bob-0002-secret', hashed, 'sk-upstream-alice-0003', ADMIN]) assert.ok(!text.includes(secret), 'no secret in the listing')
  assert.deepEqual(JSON.parse(text), {
    mode: 'keys',
    passThroughUnknown: false,
    header: 'x-client-token',
    keys: [
      { name: 'alice', enabled: true, hashed: false, mapsUpstreamKey: true, upstreamKeyTargets: ['default'], allowedModels: ['gpt-4o-mini'], allowedTargets: ['default'], rateLimit: { max: 10, timeWindowMs: 60000 } },
      { name: 'bob', enabled: false, hashed: true, mapsUpstreamKey: false }
    ]
  })
})

test('an admin route registered outside the admin scope fails the boot: it is never served without the guard', async (t) => {
  const { config } = loadConfig({ env: { GATEWAY_UPSTREAM_URL: 'http://127.0.0.1:9', ADMIN_TOKEN: ADMIN }, cwd: tempDir() })
  const app = await buildServer(config, { logDestination: captureLogs().stream })
  t.after(() => app.close())
  // directly on the server
  assert.throws(() => app.get('/admin/direct', async () => ({ open: true })), /GET \/admin\/direct is an admin route outside the admin scope/)
  // what a later plugin (blacklist, usage, …) would do outside src/app.ts: its routes under the /admin prefix
  await assert.rejects(async () => {
    await app.register(async (scope) => {
      scope.get('/report', async () => ({ blocked: [] }))
    }, { prefix: '/admin' })
  }, /GET \/admin\/report is an admin route outside the admin scope/)
})
