/**
 * `/metrics` scraped after real traffic shows the right counts; it is behind the admin token on
 * the main listener, or open on a listener of its own; refusals, upstream errors, cache results
 * and label bounds are counted from what the gateway answered.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { request } from 'undici'
import { startGateway, startMock } from '../helper.js'
import { GatewayMetrics, LabelLimiter, refusalReason, upstreamErrorClass } from '../../src/metrics/gateway-metrics.js'
import { endpointLabel } from '../../src/metrics/routes.js'

const ADMIN = 'admin-token-SECRET-0a1b2c3d'

/** The value of one sample; labels in the order the metric declares them. */
function sample (text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const entries = Object.entries(labels)
  const head = entries.length === 0 ? name : `${name}{${entries.map(([k, v]) => `${k}="${v}"`).join(',')}}`
  const line = text.split('\n').find(l => l.startsWith(`${head} `))
  return line === undefined ? undefined : Number(line.slice(head.length + 1))
}

/** Scrapes until `done` holds for the text (bounded): requests are counted when the server saw them end. */
async function scrapeUntil (url: string, token: string, done: (text: string) => boolean): Promise<string> {
  let text = ''
  for (let i = 0; i < 200; i++) {
    const got = await scrape(url, token)
    assert.equal(got.status, 200)
    assert.match(got.type, /^text\/plain; version=0\.0\.4/)
    text = got.text
    if (done(text)) return text
    await new Promise(resolve => setTimeout(resolve, 10))
  }
  return text
}

async function scrape (url: string, token?: string): Promise<{ status: number, text: string, type: string }> {
  const res = await request(url, { headers: token !== undefined ? { authorization: `Bearer ${token}` } : {} })
  return { status: res.statusCode, text: await res.body.text(), type: String(res.headers['content-type']) }
}

test('counts after traffic: requests, latency, ttfb, tokens, refusals, upstream errors, streams', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, ADMIN_TOKEN: ADMIN } })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client-metrics-0000aaaa', maxRetries: 0 })
  const headers = { 'x-mock-chunks': '3' }
  for (let i = 0; i < 3; i++) await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }, { headers })
  for (let i = 0; i < 2; i++) {
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true }, { headers })
    for await (const _c of stream) { /* drain */ }
  }
  const post = (extra: Record<string, string>): Promise<void> => request(`${gw.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...extra }, body: '{"model":"gpt-4o-mini","messages":[]}'
  }).then(r => r.body.dump())
  await post({ 'x-mock-status': '500' })
  await post({ 'x-mock-status': '429' })
  await post({ 'x-mock-fault': 'reset-before-headers' })
  await request(`${gw.url}/nowhere`).then(r => r.body.dump())

  assert.equal((await scrape(`${gw.url}/metrics`)).status, 401, 'no token')
  assert.equal((await scrape(`${gw.url}/metrics`, 'wrong')).status, 401, 'wrong token')

  const text = await scrapeUntil(`${gw.url}/metrics`, ADMIN, (text) =>
    sample(text, 'gateway_refusals_total', { reason: 'unauthorised' }) === 2 && text.includes('status="404"'))
  const chat = { target: 'default', route: '/v1/chat/completions' }
  assert.equal(sample(text, 'gateway_requests_total', { ...chat, status: '200' }), 5)
  assert.equal(sample(text, 'gateway_requests_total', { ...chat, status: '500' }), 1)
  assert.equal(sample(text, 'gateway_requests_total', { ...chat, status: '429' }), 1)
  assert.equal(sample(text, 'gateway_requests_total', { ...chat, status: '502' }), 1)
  assert.equal(sample(text, 'gateway_requests_total', { target: 'none', route: 'unmatched', status: '404' }), 1)
  assert.equal(sample(text, 'gateway_request_duration_seconds_count', chat), 8)
  assert.equal(sample(text, 'gateway_upstream_ttfb_seconds_count', { target: 'default' }), 7, 'every answer but the reset')
  assert.equal(sample(text, 'gateway_tokens_total', { client: 'anonymous', model: 'gpt-4o-mini', kind: 'prompt' }), 50)
  assert.equal(sample(text, 'gateway_tokens_total', { client: 'anonymous', model: 'gpt-4o-mini', kind: 'completion' }), 15)
  assert.equal(sample(text, 'gateway_refusals_total', { reason: 'unauthorised' }), 2)
  assert.equal(sample(text, 'gateway_refusals_total', { reason: 'rate_limited' }), undefined, "the upstream's 429 is not our refusal")
  assert.equal(sample(text, 'gateway_upstream_errors_total', { target: 'default', class: 'http_5xx' }), 1)
  assert.equal(sample(text, 'gateway_upstream_errors_total', { target: 'default', class: 'http_429' }), 1)
  assert.equal(sample(text, 'gateway_upstream_errors_total', { target: 'default', class: 'upstream_reset' }), 1)
  assert.equal(sample(text, 'gateway_active_streams'), 0)
  assert.equal(sample(text, 'gateway_realtime_sessions'), 0)
  assert.ok((sample(text, 'process_cpu_user_seconds_total') ?? 0) > 0, 'process metrics')
  assert.ok(!text.includes('sk-client-metrics'), 'no key in the metrics')
})

test('an open stream is an active stream until it ends', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_ADMIN_TOKEN: ADMIN } })
  const res = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-mock-hold': 'metrics-stream' },
    body: '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}'
  })
  const body = res.body.text()
  assert.equal(sample((await scrape(`${gw.url}/metrics`, ADMIN)).text, 'gateway_active_streams'), 1)
  mock.release('metrics-stream')
  await body
  const text = await scrapeUntil(`${gw.url}/metrics`, ADMIN, (text) => sample(text, 'gateway_active_streams') === 0)
  assert.equal(sample(text, 'gateway_active_streams'), 0)
})

test('separate listener: open on its own port, absent from the main one; no admin token: 404', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_METRICS_SEPARATE: 'true', GATEWAY_METRICS_PORT: '0' } })
  const address = gw.app.metricsAddress()
  assert.ok(address !== null)
  assert.equal(address.address, '127.0.0.1')
  await request(`${gw.url}/v1/models`).then(r => r.body.dump())
  const own = await scrape(`http://127.0.0.1:${address.port}/metrics`)
  assert.equal(own.status, 200)
  assert.ok(own.text.includes('gateway_requests_total'))
  assert.equal((await scrape(`http://127.0.0.1:${address.port}/other`)).status, 404)
  assert.equal((await scrape(`${gw.url}/metrics`, ADMIN)).status, 404)

  const plain = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  assert.equal((await scrape(`${plain.url}/metrics`, ADMIN)).status, 404, 'no admin token configured: never open')
  assert.equal(plain.app.metricsAddress(), null)
})

test('metrics off: no page, no decorator', async (t) => {
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: 'http://127.0.0.1:9', GATEWAY_METRICS: 'false', ADMIN_TOKEN: ADMIN } })
  assert.equal(gw.app.metrics, null)
  assert.equal((await scrape(`${gw.url}/metrics`, ADMIN)).status, 404)
})

test('cache results from X-Cache, refusal reasons, upstream error classes', async () => {
  const m = new GatewayMetrics({ maxClientLabels: 2, maxModelLabels: 2 })
  const base = { target: 'default', route: '/v1/models', status: 200, durationMs: 3, ttfbMs: null, errorClass: null, upstreamStatus: 0 }
  m.observe({ ...base, cache: 'HIT' })
  m.observe({ ...base, cache: 'HIT' })
  m.observe({ ...base, cache: 'MISS' })
  m.observe({ ...base, cache: undefined })
  m.observe({ ...base, status: 403, errorClass: 'ip_blacklisted', cache: undefined })
  m.observe({ ...base, status: 429, errorClass: 'rate_limit_exceeded', cache: undefined })
  m.realtimeSessionOpened()
  const text = await m.text()
  assert.equal(sample(text, 'gateway_cache_requests_total', { route: '/v1/models', result: 'hit' }), 2)
  assert.equal(sample(text, 'gateway_cache_requests_total', { route: '/v1/models', result: 'miss' }), 1)
  assert.equal(sample(text, 'gateway_refusals_total', { reason: 'blacklisted' }), 1)
  assert.equal(sample(text, 'gateway_refusals_total', { reason: 'rate_limited' }), 1)
  assert.equal(sample(text, 'gateway_realtime_sessions'), 1)

  assert.equal(refusalReason(401, 'invalid_api_key', 0), 'unauthorised')
  assert.equal(refusalReason(401, null, 401), null, 'the upstream refused, not us')
  assert.equal(refusalReason(403, 'ip_not_allowed', 0), 'ip_denied')
  assert.equal(refusalReason(403, 'model_not_allowed', 0), 'forbidden')
  assert.equal(refusalReason(200, null, 200), null)
  assert.equal(upstreamErrorClass('upstream_idle_timeout', 200), 'upstream_idle_timeout')
  assert.equal(upstreamErrorClass(null, 503), 'http_5xx')
  assert.equal(upstreamErrorClass('client_abort', 200), null)
})

test('label bounds: client names and models past the limit show as "other"; routes come from a fixed list', () => {
  const limiter = new LabelLimiter(2)
  assert.equal(limiter.label('a'), 'a')
  assert.equal(limiter.label('b'), 'b')
  assert.equal(limiter.label('c'), 'other')
  assert.equal(limiter.label('a'), 'a')
  assert.equal(limiter.label(null), 'none')
  assert.equal(endpointLabel('/v1/chat/completions'), '/v1/chat/completions')
  assert.equal(endpointLabel('/v1/models/gpt-4o'), '/v1/models')
  assert.equal(endpointLabel('/v1/files/file-1/content'), '/v1/files')
  assert.equal(endpointLabel('/v1/messages/count_tokens'), '/v1/messages/count_tokens')
  assert.equal(endpointLabel('/v1/messages'), '/v1/messages')
  assert.equal(endpointLabel('/v1/audio/speech'), '/v1/audio/speech')
  assert.equal(endpointLabel('/v1/audio/whatever'), '/v1/audio')
  assert.equal(endpointLabel('/v1/made-up-endpoint-123'), '/v1/other')
  assert.equal(endpointLabel('/release/v1/embeddings'), '/v1/embeddings')
})
