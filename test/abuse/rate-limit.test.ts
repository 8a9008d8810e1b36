/**
 * Rate limits at the exact count (seed 002's limiter never limited), OpenAI's header names, 429
 * bodies in both SDK shapes, per-key limits and overrides, IPv6 networks, 404s and WebSocket
 * upgrades counted, health probes exempt.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer } from 'node:http'
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import OpenAI from 'openai'
import { request } from 'undici'
import WebSocket from 'ws'
import { startGateway, startMock } from '../helper.js'
import requestState from '../../plugins/request-state.js'
import clientIp from '../../plugins/client-ip.js'
import redisPlugin from '../../plugins/redis.js'
import rateLimit from '../../plugins/rate-limit.js'
import { errorBody, shapeError } from '../../src/errors.js'
import { loadConfig } from '../../config/load.js'
import { tempDir } from '../tmp.js'

async function call (url: string, init: { method?: string, headers?: Record<string, string>, body?: string } = {}) {
  const res = await request(url, { method: (init.method ?? 'GET') as 'GET', headers: init.headers, body: init.body })
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, body: text === '' ? null : JSON.parse(text) }
}

test('seed 002 names: RATE_LIMIT_REQUESTS requests pass, the next one is refused with 429 and OpenAI headers', async (t) => {
  const mock = await startMock(t)
  // model-list cache off, so every request that is let through reaches the upstream
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, RATE_LIMIT_REQUESTS: '5', RATE_LIMIT_INTERVAL: '60000', GATEWAY_MODELS_CACHE_TTL_MS: '0' } })
  for (let i = 1; i <= 5; i++) {
    const res = await call(`${gw.url}/v1/models`)
    assert.equal(res.status, 200, `request ${i}`)
    assert.equal(res.headers['x-ratelimit-limit-requests'], '5')
    assert.equal(res.headers['x-ratelimit-remaining-requests'], String(5 - i))
    assert.match(String(res.headers['x-ratelimit-reset-requests']), /^(\d+m)?\d+s$/)
  }
  const refused = await call(`${gw.url}/v1/models`)
  assert.equal(refused.status, 429)
  assert.equal(refused.headers['x-ratelimit-remaining-requests'], '0')
  assert.ok(Number(refused.headers['retry-after']) >= 1 && Number(refused.headers['retry-after']) <= 60)
  assert.ok(Number(refused.headers['retry-after-ms']) <= 60_000)
  assert.equal(refused.body.error.type, 'requests')
  assert.equal(refused.body.error.code, 'rate_limit_exceeded')
  assert.match(refused.body.error.message, /^Rate limit reached: 5 requests per 1 min; retry in \d+ s$/)
  assert.equal(mock.requests.length, 5, 'the refused request never reached the upstream')
  assert.equal(gw.app.rateLimitStats.limited, 1)

  // health probes are exempt and do not count
  for (let i = 0; i < 10; i++) assert.equal((await call(`${gw.url}/healthz`)).status, 200)
  // unknown paths are limited too (scanners)
  assert.equal((await call(`${gw.url}/wp-login.php`)).status, 429)
})

test('429 reaches the SDKs as their rate-limit error; Anthropic routes get the Anthropic shape', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_RATE_LIMIT_REQUESTS: '1', GATEWAY_RATE_LIMIT_INTERVAL_MS: '60000' } })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-test-key-001', maxRetries: 0 })
  await client.models.list()
  await assert.rejects(client.models.list(), (err: unknown) => err instanceof OpenAI.RateLimitError && err.status === 429)
  const res = await call(`${gw.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' }, body: '{}' })
  assert.equal(res.status, 429)
  assert.equal(res.body.type, 'error')
  assert.equal(res.body.error.type, 'rate_limit_error')
  assert.match(res.body.error.message, /Rate limit reached/)
})

test("our limit headers replace the upstream's on forwarded answers", async (t) => {
  const upstream = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'x-ratelimit-limit-requests': '10000', 'x-ratelimit-remaining-requests': '9999', 'x-ratelimit-limit-tokens': '2000000' })
    res.end('{"object":"list","data":[]}')
  })
  upstream.listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  t.after(() => upstream.close())
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as { port: number }).port}`, GATEWAY_RATE_LIMIT_REQUESTS: '7' } })
  const res = await call(`${gw.url}/v1/models`)
  assert.equal(res.headers['x-ratelimit-limit-requests'], '7')
  assert.equal(res.headers['x-ratelimit-remaining-requests'], '6')
  assert.equal(res.headers['x-ratelimit-limit-tokens'], '2000000', 'token limits are the upstream\'s and pass')
})

test('disabled: no limit, no headers', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_RATE_LIMIT_ENABLED: 'false', GATEWAY_RATE_LIMIT_REQUESTS: '1' } })
  for (let i = 0; i < 3; i++) {
    const res = await call(`${gw.url}/v1/models`)
    assert.equal(res.status, 200)
    assert.equal(res.headers['x-ratelimit-limit-requests'], undefined)
  }
})

/**
 * A small app with the real plugins and a stand-in for the auth plugin (which sets
 * `request.gw.client` in an earlier onRequest hook), a plain route and a WebSocket route.
 */
async function appWithClients (t: TestContext, max: number): Promise<{ app: FastifyInstance, url: string }> {
  const { config } = loadConfig({ env: { GATEWAY_RATE_LIMIT_REQUESTS: String(max) }, cwd: tempDir() })
  const app = Fastify()
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const shaped = shapeError(err)
    return reply.code(shaped.status).send(errorBody(req.url, shaped))
  })
  await app.register(requestState)
  await app.register(clientIp)
  await app.register(redisPlugin, { redis: config.redis })
  app.addHook('onRequest', async function standInAuth (request) {
    const name = request.headers['x-test-client']
    if (name === 'small') request.client = { name, rateLimit: { max: 2, timeWindowMs: 60_000 } }
    else if (typeof name === 'string') request.client = { name }
  })
  await app.register(websocket)
  await app.register(rateLimit, { rateLimit: config.rateLimit, keyPrefix: 'test:', poolSize: config.upstream.connections })
  app.get('/v1/thing', async () => ({ ok: true }))
  app.get('/v1/realtime', { websocket: true }, (socket) => { socket.send('hello') })
  t.after(() => app.close())
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, url }
}

test('per client key when authenticated, with per-key overrides; per address otherwise', async (t) => {
  const { url } = await appWithClients(t, 4)
  const statuses = async (client: string | null, n: number): Promise<number[]> => {
    const out: number[] = []
    for (let i = 0; i < n; i++) out.push((await call(`${url}/v1/thing`, { headers: client !== null ? { 'x-test-client': client } : {} })).status)
    return out
  }
  assert.deepEqual(await statuses('small', 3), [200, 200, 429], 'the key\'s own limit of 2')
  assert.deepEqual(await statuses('alice', 5), [200, 200, 200, 200, 429], 'the global limit of 4, per key')
  assert.deepEqual(await statuses('bob', 4), [200, 200, 200, 200], 'another key from the same address has its own count')
  assert.deepEqual(await statuses(null, 5), [200, 200, 200, 200, 429], 'unauthenticated: per address')
  const res = await call(`${url}/v1/thing`, { headers: { 'x-test-client': 'small' } })
  assert.equal(res.headers['x-ratelimit-limit-requests'], '2')
})

test('IPv6 clients share one count per /64; other networks and IPv4 have their own', async (t) => {
  const { app } = await appWithClients(t, 2)
  const status = async (remoteAddress: string): Promise<number> => (await app.inject({ url: '/v1/thing', remoteAddress })).statusCode
  assert.equal(await status('2001:db8:1:2::1'), 200)
  assert.equal(await status('2001:db8:1:2::2'), 200)
  assert.equal(await status('2001:db8:1:2:ffff::3'), 429, 'same /64, rotated address')
  assert.equal(await status('2001:db8:1:3::1'), 200)
  assert.equal(await status('::ffff:192.0.2.1'), 200)
  assert.equal(await status('192.0.2.1'), 200, 'mapped and plain IPv4 are one client')
  assert.equal(await status('192.0.2.1'), 429)
})

test('WebSocket upgrades count and are refused with 429 past the limit', async (t) => {
  const { url } = await appWithClients(t, 2)
  const wsUrl = url.replace('http', 'ws') + '/v1/realtime'
  for (let i = 0; i < 2; i++) {
    const ws = new WebSocket(wsUrl)
    const [message] = await once(ws, 'message')
    assert.equal(String(message), 'hello')
    ws.close()
    await once(ws, 'close')
  }
  const ws = new WebSocket(wsUrl)
  ws.on('error', () => {}) // aborting the refused handshake below reports an error
  const [req, res] = await once(ws, 'unexpected-response') as [{ destroy: () => void }, { statusCode: number, headers: Record<string, string> }]
  assert.equal(res.statusCode, 429)
  assert.ok(Number(res.headers['retry-after']) >= 1)
  req.destroy()
})

test("an upstream's 429 keeps its own limit headers; the gateway's limit is under its own names on every answer", async (t) => {
  const upstreamLimits = {
    'x-ratelimit-limit-requests': '10000',
    'x-ratelimit-remaining-requests': '0',
    'x-ratelimit-reset-requests': '7s',
    'x-ratelimit-limit-tokens': '2000000',
    'retry-after': '7',
    'retry-after-ms': '7000'
  }
  const upstream = createServer((req, res) => {
    req.resume()
    res.writeHead(req.url?.includes('models') === true ? 200 : 429, { 'content-type': 'application/json', ...upstreamLimits })
    res.end(req.url?.includes('models') === true ? '{"object":"list","data":[]}' : '{"error":{"message":"Rate limit reached for requests","type":"requests","code":"rate_limit_exceeded"}}')
  })
  upstream.listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  t.after(() => upstream.close())
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as { port: number }).port}`, GATEWAY_UPSTREAM_KEY: 'sk-up-limits-0001', GATEWAY_RATE_LIMIT_REQUESTS: '50' } })

  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client-0001', maxRetries: 0 })
  await assert.rejects(client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.RateLimitError, String(err))
    const h = err.headers as unknown as Headers
    for (const [name, value] of Object.entries(upstreamLimits)) assert.equal(h.get(name), value, `${name} is the upstream's`)
    assert.equal(h.get('x-gateway-ratelimit-limit'), '50')
    assert.equal(h.get('x-gateway-ratelimit-remaining'), '49')
    assert.match(String(h.get('x-gateway-ratelimit-reset')), /^(\d+m)?\d+s$/)
    return true
  })
  // a forwarded answer that is not a 429 keeps today's rule: the gateway's request limit under OpenAI's names too
  const ok = await call(`${gw.url}/v1/models`)
  assert.equal(ok.status, 200)
  assert.equal(ok.headers['x-ratelimit-limit-requests'], '50')
  assert.equal(ok.headers['x-gateway-ratelimit-limit'], '50')
  assert.equal(ok.headers['x-gateway-ratelimit-remaining'], '48')
})
