/**
 * The client address and the allow/deny lists, against the real gateway over HTTP: trusted
 * proxies only, one normal form, 403 in the client's SDK shape, health probe exemption, seed 004's
 * YAML lists.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { request } from 'undici'
import { loadConfig } from '../../config/load.js'
import { buildServer } from '../../src/server.js'
import { captureLogs, startGateway, startMock, tempDir } from '../helper.js'

async function get (url: string, headers: Record<string, string> = {}): Promise<{ status: number, body: any }> {
  const res = await request(url, { headers })
  const text = await res.body.text()
  return { status: res.statusCode, body: text === '' ? null : JSON.parse(text) }
}

test('without trusted proxies a spoofed X-Forwarded-For changes nothing', async (t) => {
  const mock = await startMock(t)
  // the spoofed address is denied, the real one (the socket peer) is allowed
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_IP_DENY: '6.6.6.6', GATEWAY_IP_ALLOW: '127.0.0.1' } })
  const spoofs: Array<Record<string, string>> = [{ 'x-forwarded-for': '6.6.6.6' }, { 'x-real-ip': '6.6.6.6' }, { forwarded: 'for=6.6.6.6' }, { 'x-forwarded-for': '10.1.1.1, 6.6.6.6' }]
  for (const spoof of spoofs) {
    const res = await get(`${gw.url}/v1/models`, spoof)
    assert.equal(res.status, 200, JSON.stringify(spoof))
  }
  // and a spoofed allowed address does not get a denied peer in
  const denyPeer = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_IP_ALLOW: '6.6.6.6' } })
  assert.equal((await get(`${denyPeer.url}/v1/models`, { 'x-forwarded-for': '6.6.6.6' })).status, 403)
})

test('behind a trusted proxy the client is the first untrusted hop from the right, in normal form', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, {
    env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_TRUSTED_PROXIES: '127.0.0.1', GATEWAY_IP_DENY: '203.0.113.0/24,2001:db8::/32' }
  })
  const cases: Array<[string, number]> = [
    ['198.51.100.1', 200],
    ['203.0.113.9', 403],
    ['::ffff:203.0.113.9', 403], // mapped form of a denied IPv4 address
    ['[2001:db8::5]:443', 403], // proxies that send a port
    ['2001:DB8:0::5', 403],
    ['2001:db9::5', 200],
    // the client prepended an address of its choosing; the proxy appended the real one
    ['198.51.100.1, 203.0.113.9', 403],
    ['203.0.113.9, 198.51.100.1', 200]
  ]
  for (const [xff, status] of cases) {
    assert.equal((await get(`${gw.url}/v1/models`, { 'x-forwarded-for': xff })).status, status, xff)
  }
})

test('a denied address gets 403 JSON in the OpenAI shape, and the Anthropic shape on /v1/messages', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_IP_DENY: '127.0.0.0/8' } })
  const openaiRes = await get(`${gw.url}/v1/models`)
  assert.equal(openaiRes.status, 403)
  assert.deepEqual(openaiRes.body, { error: { message: 'Requests from your address are not allowed', type: 'request_forbidden', code: 'ip_not_allowed' } })
  const res = await request(`${gw.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  assert.equal(res.statusCode, 403)
  assert.deepEqual(await res.body.json(), { type: 'error', error: { type: 'permission_error', message: 'Requests from your address are not allowed' } })
  assert.equal(mock.requests.length, 0, 'nothing reached the upstream')

  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-test-key-000', maxRetries: 0 })
  await assert.rejects(client.models.list(), (err: unknown) => err instanceof OpenAI.PermissionDeniedError && err.status === 403)
})

test('a non-empty allowlist denies everyone else; /healthz is exempt only when configured', async (t) => {
  const mock = await startMock(t)
  const strict = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_IP_ALLOW: '10.0.0.0/8,2001:db8::/32' } })
  assert.equal((await get(`${strict.url}/v1/models`)).status, 403)
  assert.equal((await get(`${strict.url}/healthz`)).status, 403)
  assert.equal((await get(`${strict.url}/no/such/path`)).status, 403, 'refused before routing decides anything')

  const probes = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_IP_ALLOW: '10.0.0.0/8', GATEWAY_IP_FILTER_EXEMPT_HEALTH: 'true' } })
  assert.deepEqual(await get(`${probes.url}/healthz`), { status: 200, body: { status: 'ok' } })
  assert.equal((await get(`${probes.url}/ping`)).status, 200)
  assert.equal((await get(`${probes.url}/v1/models`)).status, 403)

  const allowed = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_IP_ALLOW: '10.0.0.0/8,127.0.0.0/8' } })
  assert.equal((await get(`${allowed.url}/v1/models`)).status, 200)
})

test('IPv4 clients of a dual-stack listener (::ffff:a.b.c.d) match IPv4 rules; IPv6 networks match', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_IP_DENY: '192.0.2.0/24,2001:db8:bad::/48' } })
  const cases: Array<[string, number]> = [
    ['::ffff:192.0.2.10', 403], // seed 002 recorded 192.0.2.10 but checked this form, and never matched
    ['192.0.2.10', 403],
    ['::ffff:198.51.100.10', 200],
    ['2001:db8:bad:1::1', 403],
    ['2001:db8:beef::1', 200]
  ]
  for (const [remoteAddress, status] of cases) {
    const res = await gw.app.inject({ method: 'GET', url: '/v1/models', remoteAddress })
    assert.equal(res.statusCode, status, remoteAddress)
  }
})

test('a real IPv6 socket peer (::1) is matched by an IPv6 rule', async (t) => {
  const mock = await startMock(t)
  const { config } = loadConfig({ env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_IP_DENY: '::1' }, cwd: tempDir() })
  const app = await buildServer(config, { logDestination: captureLogs().stream })
  t.after(() => app.close())
  await app.listen({ host: '::1', port: 0 })
  const { port } = app.server.address() as { port: number }
  assert.equal((await get(`http://[::1]:${port}/v1/models`)).status, 403)
})

test("seed 004's ip_whitelist / ip_blacklist keys work from its YAML file", async (t) => {
  const mock = await startMock(t)
  const deny = await startGateway(t, { yaml: `base_url: ${mock.url}\nip_blacklist:\n  - 127.0.0.1\n` })
  assert.equal((await get(`${deny.url}/v1/models`)).status, 403)
  const allow = await startGateway(t, { yaml: `base_url: ${mock.url}\nip_whitelist:\n  - 192.168.1.10\n` })
  assert.equal((await get(`${allow.url}/v1/models`)).status, 403)
  const ok = await startGateway(t, { yaml: `base_url: ${mock.url}\nip_whitelist:\n  - 127.0.0.1\nip_blacklist: []\n` })
  assert.equal((await get(`${ok.url}/v1/models`)).status, 200)
})
