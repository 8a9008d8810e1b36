/**
 * The forwarder through `inject`: what reaches the upstream (the embedded mock on port 0) and what
 * the client gets back, for JSON and SSE answers, upstream errors and faults, key pools, the
 * Anthropic and Azure providers, target prefixes, path rewrites and the gateway's own refusals.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { LightMyRequestResponse } from 'fastify'
import { startMock } from '../helper.js'
import { injectGateway, type InjectedGateway } from './gateway.js'

const CHAT = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }

function post (gw: InjectedGateway, url: string, payload: unknown, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return gw.app.inject({ method: 'POST', url, payload: payload as Record<string, unknown>, headers: { 'content-type': 'application/json', ...headers } })
}

/** The `data:` payloads of an SSE body, in order. */
function events (body: string): string[] {
  return body.split('\n').filter(l => l.startsWith('data: ')).map(l => l.slice(6))
}

test('JSON answer: upstream key replaces the client credential, request id echoed, usage in the access line', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEY: 'sk-up-unit-1' } })
  const res = await post(gw, '/v1/chat/completions?x=1', CHAT, { authorization: 'Bearer sk-client-1', 'x-request-id': 'req-unit-1', 'x-forwarded-for': '6.6.6.6' })
  assert.equal(res.statusCode, 200)
  assert.equal(res.headers['x-request-id'], 'req-unit-1')
  assert.equal(res.json().object, 'chat.completion')
  const seen = mock.requests.at(-1)!
  assert.equal(seen.url, '/v1/chat/completions?x=1')
  assert.equal(seen.headers.authorization, 'Bearer sk-up-unit-1')
  assert.equal(seen.headers['x-forwarded-for'], undefined)
  assert.equal(seen.headers['x-request-id'], 'req-unit-1')
  const line = gw.logs().find(l => l.msg === 'request completed' && l.requestId === 'req-unit-1')
  assert.ok(line !== undefined, 'an access line for the request')
  assert.equal(line.status, 200)
  assert.equal(line.model, 'gpt-4o-mini')
  assert.equal(line.totalTokens, 30)
  assert.ok(!JSON.stringify(gw.logs()).includes('sk-up-unit-1'), 'the upstream key is never logged')
})

test('SSE answer: no-buffering headers, every chunk, [DONE] last; usage counted from the stream', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const res = await post(gw, '/v1/chat/completions', { ...CHAT, stream: true }, { 'x-mock-chunks': '4', 'x-request-id': 'req-sse-1' })
  assert.equal(res.statusCode, 200)
  assert.match(String(res.headers['content-type']), /^text\/event-stream/)
  assert.equal(res.headers['x-accel-buffering'], 'no')
  assert.equal(res.headers['cache-control'], 'no-cache')
  const data = events(res.body)
  assert.equal(data.at(-1), '[DONE]')
  const text = data.slice(0, -1).map(d => (JSON.parse(d) as { choices: Array<{ delta: { content?: string } }> }).choices[0]?.delta.content ?? '').join('')
  assert.equal(text, 'tok0 tok1 tok2 tok3 ')
  const line = gw.logs().find(l => l.msg === 'request completed' && l.requestId === 'req-sse-1')
  assert.equal(line?.stream, true)
  assert.equal(line?.completionTokens, 4)
})

test('embeddings and count_tokens pass through unchanged', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const emb = await post(gw, '/v1/embeddings', { model: 'text-embedding-3-small', input: 'hello' })
  assert.equal(emb.statusCode, 200)
  assert.equal(emb.json().data[0].embedding.length > 0, true)
  const count = await post(gw, '/v1/messages/count_tokens', { model: 'claude-3-5-sonnet-latest', messages: [{ role: 'user', content: 'hi' }] })
  assert.equal(count.statusCode, 200)
  assert.equal(typeof count.json().input_tokens, 'number')
})

test('upstream error statuses pass through with their body; retry-after kept', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const res = await post(gw, '/v1/chat/completions', CHAT, { 'x-mock-status': '503', 'x-mock-retry-after': '7' })
  assert.equal(res.statusCode, 503)
  assert.equal(res.headers['retry-after'], '7')
  assert.equal(typeof res.json().error.message, 'string')
})

test('faults before the answer: reset → 502, hang past the first-byte timeout → 504', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_FIRST_BYTE_TIMEOUT_MS: '300' } })
  const reset = await post(gw, '/v1/chat/completions', CHAT, { 'x-mock-fault': 'reset-before-headers' })
  assert.equal(reset.statusCode, 502)
  assert.equal(reset.json().error.type, 'upstream_error')
  assert.ok(!reset.body.includes('127.0.0.1'), 'no internal address in the answer')
  const hang = await post(gw, '/v1/chat/completions', CHAT, { 'x-mock-fault': 'hang-before-headers' })
  assert.equal(hang.statusCode, 504)
  assert.equal(hang.json().error.code, 'upstream_timeout')
  const ok = await post(gw, '/v1/chat/completions', CHAT)
  assert.equal(ok.statusCode, 200, 'the gateway keeps serving')
})

test('faults mid-stream: a reset or a stall past the idle timeout ends the stream with one SSE error event', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_IDLE_TIMEOUT_MS: '300' } })
  const reset = await post(gw, '/v1/chat/completions', { ...CHAT, stream: true }, { 'x-mock-fault': 'reset-mid-stream' })
  const last = JSON.parse(events(reset.body).at(-1)!) as { error: { message: string } }
  assert.equal(last.error.message, 'The upstream stream was interrupted')
  const stall = await post(gw, '/v1/chat/completions', { ...CHAT, stream: true }, { 'x-mock-fault': 'hang-mid-stream' })
  assert.equal(stall.statusCode, 200)
  assert.equal((JSON.parse(events(stall.body).at(-1)!) as { error: { code: string } }).error.code, 'upstream_idle_timeout')
  const warned = gw.logs().filter(l => l.msg === 'upstream stream failed after headers were sent')
  assert.deepEqual(warned.map(l => l.errorClass), ['upstream_reset', 'upstream_idle_timeout'], 'each failure logged once, classified')
})

test('an unreachable upstream is a 502 in the OpenAI shape; on an Anthropic target in Anthropic\'s', async (t) => {
  const gw = await injectGateway(t, {
    yaml: `
upstream: { url: 'http://127.0.0.1:9' }
targets:
  claude: { url: http://127.0.0.1:9, provider: anthropic }
`
  })
  const openai = await post(gw, '/v1/chat/completions', CHAT)
  assert.equal(openai.statusCode, 502)
  assert.equal(openai.json().error.code, 'upstream_unreachable')
  const claude = await gw.app.inject({ url: '/claude/v1/models' })
  assert.equal(claude.statusCode, 502)
  assert.equal(claude.json().type, 'error')
  assert.equal(claude.json().error.type, 'api_error')
})

test('key pool: round robin; a 429 on one key is retried once on the next, a second 429 reaches the client', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEYS: 'pool-a,pool-b,pool-c' } })
  for (let i = 0; i < 3; i++) assert.equal((await post(gw, '/v1/chat/completions', CHAT)).statusCode, 200)
  const used = mock.requests.slice(-3).map(r => r.headers.authorization)
  assert.deepEqual([...used].sort(), ['Bearer pool-a', 'Bearer pool-b', 'Bearer pool-c'])
  const before = mock.requests.length
  const limited = await post(gw, '/v1/chat/completions', CHAT, { 'x-mock-status': '429' })
  assert.equal(limited.statusCode, 429)
  assert.equal(mock.requests.length - before, 2, 'one retry on the next key, no more')
  const keys = mock.requests.slice(-2).map(r => r.headers.authorization)
  assert.notEqual(keys[0], keys[1])
})

test('key pool: a key refused with 401 is set aside and logged by name only', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEYS: 'pool-x1,pool-y2', GATEWAY_KEY_COOLDOWN_MS: '600000' } })
  const refused = await post(gw, '/v1/chat/completions', CHAT, { 'x-mock-status': '401' })
  assert.equal(refused.statusCode, 401)
  const bad = mock.requests.at(-1)!.headers.authorization
  for (let i = 0; i < 4; i++) await post(gw, '/v1/chat/completions', CHAT)
  assert.ok(mock.requests.slice(-4).every(r => r.headers.authorization !== bad), 'the refused key rests')
  const text = JSON.stringify(gw.logs())
  assert.ok(!text.includes('pool-x1') && !text.includes('pool-y2'), 'keys are never logged')
  const setAside = gw.logs().filter(l => l.msg === 'upstream refused a key (401): set aside')
  assert.equal(setAside.length, 1)
  assert.match(String(setAside[0].key), /^key-[12]$/, 'the key is named, by its name')
  assert.equal(setAside[0].cooldownMs, 600000)
})

test('Anthropic target: x-api-key from the pool, SSE events through, errors in Anthropic\'s shape', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, {
    env: { GATEWAY_CLIENT_KEYS: 'ck-unit-anthropic-1' },
    yaml: `
targets:
  claude: { url: ${mock.url}, provider: anthropic, keys: [sk-ant-unit-1] }
`
  })
  const msg = { model: 'claude-3-5-sonnet-latest', max_tokens: 32, stream: true, messages: [{ role: 'user', content: 'hi' }] }
  const res = await post(gw, '/claude/v1/messages', msg, { 'x-api-key': 'ck-unit-anthropic-1', 'x-mock-chunks': '3', 'anthropic-version': '2023-06-01' })
  assert.equal(res.statusCode, 200)
  const types = events(res.body).map(d => (JSON.parse(d) as { type: string }).type)
  assert.equal(types[0], 'message_start')
  assert.equal(types.at(-1), 'message_stop')
  const seen = mock.requests.at(-1)!
  assert.equal(seen.path, '/v1/messages')
  assert.equal(seen.headers['x-api-key'], 'sk-ant-unit-1')
  assert.equal(seen.headers.authorization, undefined)
  const refused = await post(gw, '/claude/v1/messages', msg, { 'x-api-key': 'ck-wrong' })
  assert.equal(refused.statusCode, 401)
  assert.deepEqual(refused.json(), { type: 'error', error: { type: 'authentication_error', message: 'Invalid or missing authorization token' } })
})

test('Azure target: a model becomes its deployment path with api-key and api-version', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, {
    yaml: `
targets:
  az:
    url: ${mock.url}
    provider: azure
    keys: [azure-unit-key]
    azure:
      apiVersion: 2024-10-21
      deployments: { gpt-4o-mini: prod-mini }
`
  })
  const res = await post(gw, '/az/v1/chat/completions', CHAT)
  assert.equal(res.statusCode, 200)
  const seen = mock.requests.at(-1)!
  assert.equal(seen.url, '/openai/deployments/prod-mini/chat/completions?api-version=2024-10-21')
  assert.equal(seen.headers['api-key'], 'azure-unit-key')
  const emb = await post(gw, '/az/v1/embeddings', { model: 'text-embedding-3-small', input: 'x' })
  assert.equal(emb.statusCode, 200)
  assert.equal(mock.requests.at(-1)!.path, '/openai/deployments/text-embedding-3-small/embeddings')
})

test('path rewrites and target prefixes: exact and prefix rules keep the query; unknown prefixes are 404', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, {
    yaml: `
upstream: { url: '${mock.url}' }
targets:
  other:
    url: ${mock.url}
    pathRewrites:
      /v1/chat/completions: /v1/embeddings
      /v1/*: /api/v1/*
`
  })
  const res = await post(gw, '/other/v1/chat/completions?q=2', { model: 'text-embedding-3-small', input: 'x' })
  assert.equal(res.statusCode, 200)
  assert.equal(mock.requests.at(-1)!.url, '/v1/embeddings?q=2')
  await gw.app.inject({ url: '/other/v1/models?limit=1' })
  assert.equal(mock.requests.at(-1)!.url, '/api/v1/models?limit=1')
  const missing = await post(gw, '/nope/v1/chat/completions', CHAT)
  assert.equal(missing.statusCode, 404)
  assert.equal(missing.json().error.type, 'invalid_request_error')
})

test('Host routing: the first label of Host selects a target; other hosts go to the default target', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, {
    yaml: `
upstream: { url: '${mock.url}', keys: [key-default] }
targets:
  alpha: { url: ${mock.url}, keys: [key-alpha] }
`
  })
  await post(gw, '/v1/chat/completions', CHAT, { host: 'alpha.gateway.example' })
  assert.equal(mock.requests.at(-1)!.headers.authorization, 'Bearer key-alpha')
  await post(gw, '/v1/chat/completions', CHAT, { host: 'elsewhere.example' })
  assert.equal(mock.requests.at(-1)!.headers.authorization, 'Bearer key-default')
})

test('the gateway\'s own refusals: body over the limit 413, malformed JSON 400, unknown route 404; nothing forwarded', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_BODY_LIMIT: '2048' } })
  const big = await post(gw, '/v1/chat/completions', { model: 'x', pad: 'a'.repeat(4096) })
  assert.equal(big.statusCode, 413)
  assert.equal(big.json().error.code, 'request_too_large')
  const bad = await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, payload: '{"model":' })
  assert.equal(bad.statusCode, 400)
  assert.deepEqual(bad.json().error, { message: 'We could not parse the JSON body of your request', type: 'invalid_request_error', code: 'invalid_json' })
  const unknown = await gw.app.inject({ url: '/not/a/route' })
  assert.equal(unknown.statusCode, 404)
  assert.equal(mock.count('/v1/chat'), 0)
  for (const path of ['/healthz', '/ping']) assert.equal((await gw.app.inject({ url: path })).statusCode, 200)
})

test('an unsafe x-request-id is replaced by a generated one, sent upstream too', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const res = await gw.app.inject({ url: '/v1/models', headers: { 'x-request-id': 'bad id' } })
  const id = res.headers['x-request-id'] as string
  assert.match(id, /^[0-9a-f-]{36}$/)
  assert.equal(mock.requests.at(-1)!.headers['x-request-id'], id)
})
