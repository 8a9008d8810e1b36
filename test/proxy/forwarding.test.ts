/**
 * What the forwarder sends upstream and returns to the client, over real HTTP (undici).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { startGateway, startMock } from '../helper.js'

const chat = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })

test('path and query string preserved; client credentials replaced by the upstream key', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEY: 'sk-upstream-fwd-1' } })
  const res = await request(`${gw.url}/v1/models?limit=2&order=asc`, {
    headers: { authorization: 'Bearer sk-client-fwd-1', 'x-api-key': 'sk-client-fwd-2', 'api-key': 'sk-client-fwd-3', 'openai-organization': 'org-1' }
  })
  assert.equal(res.statusCode, 200)
  await res.body.json()
  const seen = mock.requests.at(-1)!
  assert.equal(seen.url, '/v1/models?limit=2&order=asc')
  assert.equal(seen.headers.authorization, 'Bearer sk-upstream-fwd-1')
  assert.equal(seen.headers['x-api-key'], undefined)
  assert.equal(seen.headers['api-key'], undefined)
  assert.equal(seen.headers['openai-organization'], 'org-1', 'other headers pass')
})

test('with no upstream key the client credentials pass through', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const res = await request(`${gw.url}/v1/models`, { headers: { authorization: 'Bearer sk-own-key-1' } })
  await res.body.dump()
  assert.equal(mock.requests.at(-1)!.headers.authorization, 'Bearer sk-own-key-1')
})

test('client address headers are removed and none is added; request id returned and forwarded', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const res = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-forwarded-for': '6.6.6.6',
      'x-real-ip': '6.6.6.6',
      forwarded: 'for=6.6.6.6',
      via: '1.1 evil',
      'cf-connecting-ip': '6.6.6.6',
      'true-client-ip': '6.6.6.6',
      'x-request-id': 'req-abc-123'
    },
    body: chat
  })
  assert.equal(res.statusCode, 200)
  assert.equal(res.headers['x-request-id'], 'req-abc-123')
  await res.body.json()
  const h = mock.requests.at(-1)!.headers
  for (const name of ['x-forwarded-for', 'x-real-ip', 'forwarded', 'via', 'cf-connecting-ip', 'true-client-ip']) {
    assert.equal(h[name], undefined, `${name} must not reach the upstream`)
  }
  assert.equal(h['x-request-id'], 'req-abc-123')
})

test('an unsafe x-request-id is replaced by a generated one', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const res = await request(`${gw.url}/v1/models`, { headers: { 'x-request-id': 'bad id with spaces' } })
  await res.body.dump()
  const id = res.headers['x-request-id'] as string
  assert.match(id, /^[0-9a-f-]{36}$/)
  assert.equal(mock.requests.at(-1)!.headers['x-request-id'], id)
})

test('JSON bodies are forwarded byte for byte', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const body = '{"model":"gpt-4o-mini",  "messages":[{"role":"user","content":"é 你好"}],"n":12345678901234567890}'
  const res = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
  await res.body.dump()
  assert.equal(mock.requests.at(-1)!.bodyText, body)
})

test('SSE responses carry no-buffering headers and keep the upstream status', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const res = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [], stream: true })
  })
  assert.equal(res.statusCode, 200)
  assert.match(String(res.headers['content-type']), /^text\/event-stream/)
  assert.equal(res.headers['x-accel-buffering'], 'no')
  assert.equal(res.headers['cache-control'], 'no-cache')
  const text = await res.body.text()
  assert.ok(text.trimEnd().endsWith('data: [DONE]'))
})

test('request body over the limit → 413 JSON', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_BODY_LIMIT: '2048' } })
  const res = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'x', pad: 'a'.repeat(4096) })
  })
  assert.equal(res.statusCode, 413)
  const body = await res.body.json() as { error: { type: string, code: string } }
  assert.equal(body.error.code, 'request_too_large')
  assert.equal(mock.count('/v1/chat'), 0)
})

test('malformed JSON → 400 JSON error, never forwarded', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const res = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":' })
  assert.equal(res.statusCode, 400)
  const body = await res.body.json() as { error: { message: string, type: string, code: string } }
  assert.deepEqual(body.error, { message: 'We could not parse the JSON body of your request', type: 'invalid_request_error', code: 'invalid_json' })
  assert.equal(mock.count('/v1/chat'), 0)
})

test('unknown route → 404 JSON; /healthz and /ping answer', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const nf = await request(`${gw.url}/nope`)
  assert.equal(nf.statusCode, 404)
  assert.equal((await nf.body.json() as { error: { code: string } }).error.code, 'not_found')
  const hz = await request(`${gw.url}/healthz`)
  assert.deepEqual(await hz.body.json(), { status: 'ok' })
  const ping = await request(`${gw.url}/ping`)
  assert.equal(typeof (await ping.body.json() as { pong: number }).pong, 'number')
})

test('Anthropic routes get Anthropic-shaped gateway errors', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const res = await request(`${gw.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' })
  assert.equal(res.statusCode, 400)
  const body = await res.body.json() as { type: string, error: { type: string } }
  assert.equal(body.type, 'error')
  assert.equal(body.error.type, 'invalid_request_error')
})
