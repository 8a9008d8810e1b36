/**
 * Rate and concurrency limits through `inject`, beyond the basic count (test/unit/policies):
 * per-key limits and overrides, IPv6 clients counted per /64, the in-flight cap held by an open
 * stream and given back when it ends, and an upstream's own 429 keeping its limit headers.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { startMock } from '../helper.js'
import { injectGateway } from './gateway.js'

const CHAT = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }

async function until (what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 300 && !check(); i++) await new Promise(resolve => setTimeout(resolve, 10))
  if (!check()) throw new Error(`timed out waiting for: ${what}`)
}

test('per client key, with per-key overrides; per address without a key; IPv6 per /64', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, {
    env: { GATEWAY_RATE_LIMIT_REQUESTS: '3', GATEWAY_MODELS_CACHE_TTL_MS: '0', GATEWAY_AUTH_PASS_THROUGH_UNKNOWN: 'true' },
    yaml: `
upstream: { url: '${mock.url}' }
auth:
  keys:
    - { name: small, key: ck-small-0001, rateLimit: { max: 1, timeWindowMs: 60000 } }
    - { name: alice, key: ck-alice-0002 }
    - { name: bob, key: ck-bob-0003 }
`
  })
  const statuses = async (n: number, headers: Record<string, string>, remoteAddress = '192.0.2.1'): Promise<number[]> => {
    const out: number[] = []
    for (let i = 0; i < n; i++) out.push((await gw.app.inject({ url: '/v1/models', headers, remoteAddress })).statusCode)
    return out
  }
  assert.deepEqual(await statuses(2, { authorization: 'Bearer ck-small-0001' }), [200, 429], 'the key\'s own limit of 1')
  assert.deepEqual(await statuses(4, { authorization: 'Bearer ck-alice-0002' }), [200, 200, 200, 429], 'the global limit, per key')
  assert.deepEqual(await statuses(3, { authorization: 'Bearer ck-bob-0003' }), [200, 200, 200], 'another key from the same address has its own count')
  assert.deepEqual(await statuses(4, {}), [200, 200, 200, 429], 'an unknown caller let through: per address')
  assert.deepEqual(await statuses(2, {}, '2001:db8:1:2::1'), [200, 200])
  assert.deepEqual(await statuses(2, {}, '2001:db8:1:2:ffff::3'), [200, 429], 'same /64, a rotated address')
  assert.deepEqual(await statuses(1, {}, '2001:db8:1:3::1'), [200], 'another /64')
})

test('the in-flight cap: an open stream holds its client\'s slot; the next request is a 429 concurrency_limit until it ends', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_RATE_LIMIT_MAX_CONCURRENT: '1' } })
  const held = gw.app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { ...CHAT, stream: true }, headers: { 'x-mock-hold': 'cap-1', 'x-mock-chunks': '3' } })
  await until('the stream is open upstream', () => mock.streams.length === 1)
  const refused = await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', payload: CHAT })
  assert.equal(refused.statusCode, 429)
  assert.equal(refused.json().error.code, 'concurrency_limit')
  assert.equal(refused.headers['retry-after'], '1')
  assert.equal(gw.app.rateLimitStats.concurrencyLimited, 1)
  const other = await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', payload: CHAT, remoteAddress: '198.51.100.77' })
  assert.equal(other.statusCode, 200, 'another client has its own slot')
  mock.release('cap-1')
  const stream = await held
  assert.equal(stream.statusCode, 200)
  assert.match(stream.body, /data: \[DONE\]/)
  await until('the slot is free', () => gw.app.rateLimitStats.inFlight === 0)
  assert.equal((await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', payload: CHAT })).statusCode, 200)
  assert.ok(!gw.logs().some(l => l.msg === 'rateLimit.maxConcurrent is not below upstream.connections: one client can hold every upstream connection'), 'a cap below the pool size needs no warning')
})

test('an upstream\'s 429 keeps its own limit headers; the gateway\'s limit is under its own names', async (t) => {
  const limits = { 'x-ratelimit-limit-requests': '10000', 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '7s', 'retry-after': '7' }
  const upstream = createServer((req, res) => {
    req.resume()
    res.writeHead(429, { 'content-type': 'application/json', ...limits })
    res.end('{"error":{"message":"Rate limit reached for requests","type":"requests","code":"rate_limit_exceeded"}}')
  })
  upstream.listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  t.after(() => upstream.close())
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, GATEWAY_RATE_LIMIT_REQUESTS: '50' } })
  const res = await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', payload: CHAT })
  assert.equal(res.statusCode, 429)
  for (const [name, value] of Object.entries(limits)) assert.equal(res.headers[name], value, `${name} is the upstream's`)
  assert.equal(res.headers['x-gateway-ratelimit-limit'], '50')
  assert.equal(res.headers['x-gateway-ratelimit-remaining'], '49')
  assert.equal(res.json().error.code, 'rate_limit_exceeded')
})

test('rate limits off: no limit and no limit headers', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_RATE_LIMIT_ENABLED: 'false', GATEWAY_RATE_LIMIT_REQUESTS: '1' } })
  for (let i = 0; i < 3; i++) {
    const res = await gw.app.inject({ url: '/v1/models' })
    assert.equal(res.statusCode, 200)
    assert.equal(res.headers['x-ratelimit-limit-requests'], undefined)
  }
})
