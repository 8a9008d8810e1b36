/**
 * Key guessing is limited per address (issue 17, item 9): refused client keys and admin tokens
 * count against the rate limit of the address (IPv6 per /64); past it every request from there is
 * a 429 with retry-after, a right guess included. The automatic blacklist groups IPv6 the same
 * way. Addresses come from X-Forwarded-For through a trusted proxy (the test's loopback peer).
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { request } from 'undici'
import { startGateway, startMock, type GatewayHandle } from '../helper.js'
import { until } from '../poll.js'

const VALID = 'sk-valid-client-key-0000000001'
const ADMIN = 'admin-token-for-guessing-tests'

async function call (url: string, from: string, key: string | null): Promise<{ status: number, headers: Record<string, unknown>, body: any }> {
  const headers: Record<string, string> = { 'x-forwarded-for': from }
  if (key !== null) headers.authorization = `Bearer ${key}`
  const res = await request(url, { headers })
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, body: text === '' ? null : JSON.parse(text) }
}

async function gateway (t: TestContext, env: Record<string, string>): Promise<GatewayHandle> {
  const mock = await startMock(t)
  return await startGateway(t, {
    env: {
      GATEWAY_UPSTREAM_URL: mock.url,
      GATEWAY_CLIENT_KEYS: VALID,
      GATEWAY_ADMIN_TOKEN: ADMIN,
      GATEWAY_TRUSTED_PROXIES: '127.0.0.1',
      ...env
    }
  })
}

test('200 wrong keys from one address under a 10/min limit: 10 are 401, the rest 429 with retry-after, a right key too; other addresses are not affected', async (t) => {
  // the blacklist off: this is the rate limit's answer, not the blacklist's
  const gw = await gateway(t, { GATEWAY_RATE_LIMIT_REQUESTS: '10', GATEWAY_RATE_LIMIT_INTERVAL_MS: '60000', GATEWAY_BLACKLIST_ENABLED: 'false' })
  const url = `${gw.url}/v1/models`
  const statuses: number[] = []
  for (let i = 0; i < 200; i++) {
    const res = await call(url, '203.0.113.5', `sk-guess-${i}`)
    statuses.push(res.status)
    if (res.status === 429) {
      assert.ok(Number(res.headers['retry-after']) >= 1 && Number(res.headers['retry-after']) <= 60)
      assert.equal(res.body.error.code, 'rate_limit_exceeded')
    }
  }
  assert.deepEqual(statuses, [...Array<number>(10).fill(401), ...Array<number>(190).fill(429)])

  // a right guess is not told apart while the window lasts
  assert.equal((await call(url, '203.0.113.5', VALID)).status, 429)
  // the SDK reads it as its rate-limit error
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-guess-sdk', maxRetries: 0, defaultHeaders: { 'x-forwarded-for': '203.0.113.5' } })
  await assert.rejects(client.models.list(), (err: unknown) => err instanceof OpenAI.RateLimitError && /invalid key from your address/.test(err.message))

  // another address: its own count
  assert.equal((await call(url, '203.0.113.6', 'sk-other-guess')).status, 401)
  assert.equal((await call(url, '203.0.113.6', VALID)).status, 200)
  assert.ok(!gw.logText().includes('sk-guess-1'), 'no guessed key in any log line')
})

test('IPv6 guesses count per /64: rotating addresses inside one network does not reset the count', async (t) => {
  const gw = await gateway(t, { GATEWAY_RATE_LIMIT_REQUESTS: '5', GATEWAY_BLACKLIST_ENABLED: 'false' })
  const url = `${gw.url}/v1/models`
  for (let i = 1; i <= 5; i++) assert.equal((await call(url, `2001:db8:1:2::${i.toString(16)}`, `sk-guess-${i}`)).status, 401)
  assert.equal((await call(url, '2001:db8:1:2:ffff:ffff:ffff:ffff', 'sk-guess-6')).status, 429)
  assert.equal((await call(url, '2001:db8:1:3::1', 'sk-guess-7')).status, 401, 'the next /64 is another network')
})

test('admin token guesses count too', async (t) => {
  const gw = await gateway(t, { GATEWAY_RATE_LIMIT_REQUESTS: '3', GATEWAY_BLACKLIST_ENABLED: 'false' })
  const url = `${gw.url}/admin/keys`
  for (let i = 0; i < 3; i++) assert.equal((await call(url, '198.51.100.9', `wrong-admin-${i}`)).status, 401)
  const refused = await call(url, '198.51.100.9', ADMIN)
  assert.equal(refused.status, 429)
  assert.ok(Number(refused.headers['retry-after']) >= 1)
  assert.equal((await call(url, '198.51.100.10', ADMIN)).status, 200)
})

test('the automatic blacklist counts and blocks IPv6 clients per /64', async (t) => {
  const gw = await gateway(t, { GATEWAY_BLACKLIST_THRESHOLD: '3', GATEWAY_RATE_LIMIT_ENABLED: 'false' })
  const url = `${gw.url}/v1/models`
  for (let i = 1; i <= 3; i++) assert.equal((await call(url, `2001:db8:5:6::${i}`, `sk-guess-${i}`)).status, 401)
  await until('the network is blacklisted', () => gw.app.blacklist.size === 1)
  assert.deepEqual(gw.app.blacklist.list().map(e => e.ip), ['2001:db8:5:6::'])
  assert.match(gw.app.blacklist.list()[0].reason, /from 2001:db8:5:6::\/64/)
  const refused = await call(url, '2001:db8:5:6:abcd::42', VALID)
  assert.equal(refused.status, 403)
  assert.equal(refused.body.error.code, 'ip_blacklisted')
  assert.equal((await call(url, '2001:db8:5:7::1', VALID)).status, 200, 'the neighbouring /64 is not blocked')
  // IPv4 is unchanged: one address, counted alone
  for (let i = 1; i <= 2; i++) assert.equal((await call(url, '192.0.2.1', `sk-guess-${i}`)).status, 401)
  assert.equal((await call(url, '192.0.2.2', 'sk-guess-3')).status, 401)
  assert.equal((await call(url, '192.0.2.2', VALID)).status, 200)
  assert.equal(gw.app.blacklist.size, 1)
})
