/**
 * The API scope's policies through `inject`: client keys (plain, hashed, disabled, allowed models
 * and targets), the admin guard and its routes (keys, cache, usage, blacklist), rate limits, the
 * address filter, CORS, the metrics page, the model-list cache, field aliases, context ids and the
 * debug log of streams. The upstream is the embedded mock.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { LightMyRequestResponse } from 'fastify'
import { startMock, tempDir } from '../helper.js'
import { injectGateway, type InjectedGateway } from './gateway.js'

const ADMIN = 'adm-unit-token-0123456789'
const ALICE = 'ck-alice-unit-0001'
const BOB = 'ck-bob-unit-0002'
const CHAT = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }

function post (gw: InjectedGateway, url: string, payload: unknown, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return gw.app.inject({ method: 'POST', url, payload: payload as Record<string, unknown>, headers: { 'content-type': 'application/json', ...headers } })
}

function admin (gw: InjectedGateway, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown): Promise<LightMyRequestResponse> {
  return gw.app.inject({ method, url, headers: { authorization: `Bearer ${ADMIN}` }, ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {}) })
}

interface UsageAnswer {
  object?: string
  source?: string
  totals: Record<string, number>
  data: Array<{ model: string, requests: number }>
}

/** Requests are settled (usage, metrics) when the server saw the answer end: wait for that, bounded. */
async function until (what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await check()) return
    await new Promise(resolve => setTimeout(resolve, 10))
  }
  throw new Error(`timed out waiting for: ${what}`)
}

test('client keys: plain and hashed keys in any header pass; wrong, missing and disabled keys get 401 with WWW-Authenticate', async (t) => {
  const mock = await startMock(t)
  const yaml = `
upstream: { url: '${mock.url}', key: sk-upstream-unit-9 }
auth:
  header: X-Client-Token
  keys:
    - { name: alice, key: ${ALICE} }
    - { name: bob, keySha256: ${createHash('sha256').update(BOB).digest('hex')} }
    - { name: carol, key: ck-carol-unit-0003, enabled: false }
`
  const gw = await injectGateway(t, { yaml })
  for (const headers of [{ authorization: `Bearer ${ALICE}` }, { 'x-api-key': ALICE }, { 'api-key': BOB }, { 'x-client-token': BOB }, { 'x-client-token': `Bearer ${ALICE}` }] as Array<Record<string, string>>) {
    const res = await post(gw, '/v1/chat/completions', CHAT, headers)
    assert.equal(res.statusCode, 200, JSON.stringify(headers))
    const seen = mock.requests.at(-1)!.headers
    assert.equal(seen.authorization, 'Bearer sk-upstream-unit-9')
    assert.equal(seen['x-client-token'], undefined, 'the key header is consumed')
  }
  for (const headers of [{}, { authorization: 'Bearer ck-wrong' }, { authorization: `Bearer ${ALICE}x` }, { authorization: 'Bearer ck-carol-unit-0003' }] as Array<Record<string, string>>) {
    const res = await post(gw, '/v1/chat/completions', CHAT, headers)
    assert.equal(res.statusCode, 401, JSON.stringify(headers))
    assert.equal(res.headers['www-authenticate'], 'Bearer')
    assert.deepEqual(res.json(), { error: { message: 'Invalid or missing authorization token', type: 'invalid_request_error', code: 'invalid_api_key' } })
  }
  const line = gw.logs().find(l => l.msg === 'request completed' && l.status === 200)
  assert.equal(line?.client, 'alice', 'the access line names the client, never its key')
  assert.ok(!JSON.stringify(gw.logs()).includes(ALICE))
})

test('per-key limits: allowed models (403 model_not_allowed, filtered /v1/models), allowed targets, upstream key mapping', async (t) => {
  const mock = await startMock(t)
  const yaml = `
upstream: { url: '${mock.url}' }
targets:
  other: { url: '${mock.url}' }
auth:
  keys:
    - { name: alice, key: ${ALICE}, allowedModels: [gpt-4o-mini], allowedTargets: [default], upstreamKey: sk-mapped-alice-1 }
`
  const gw = await injectGateway(t, { yaml, env: { GATEWAY_MODELS_CACHE_TTL_MS: '0' } })
  const auth = { authorization: `Bearer ${ALICE}` }
  assert.equal((await post(gw, '/v1/chat/completions', CHAT, auth)).statusCode, 200)
  assert.equal(mock.requests.at(-1)!.headers.authorization, 'Bearer sk-mapped-alice-1')
  const before = mock.requests.length
  const model = await post(gw, '/v1/chat/completions', { ...CHAT, model: 'gpt-4o' }, auth)
  assert.equal(model.statusCode, 403)
  assert.equal(model.json().error.code, 'model_not_allowed')
  const unchecked = await post(gw, '/v1/chat/completions', { ...CHAT, model: 7 }, auth)
  assert.equal(unchecked.statusCode, 400)
  assert.equal(unchecked.json().error.code, 'model_not_checkable')
  const target = await post(gw, '/other/v1/chat/completions', CHAT, auth)
  assert.equal(target.statusCode, 403)
  assert.equal(mock.requests.length, before, 'nothing refused reached the upstream')
  const models = await gw.app.inject({ url: '/v1/models', headers: auth })
  assert.equal(models.statusCode, 200)
  assert.deepEqual(models.json().data.map((m: { id: string }) => m.id), ['gpt-4o-mini'])
})

test('admin scope: 404 without a token; 401 for a wrong or client key; /admin/keys lists names, never secrets; cache clear', async (t) => {
  const mock = await startMock(t)
  const off = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  for (const url of ['/admin/keys', '/admin/usage', '/admin/blacklist', '/admin/nowhere']) {
    assert.equal((await off.app.inject({ url, headers: { authorization: `Bearer ${ADMIN}` } })).statusCode, 404, url)
  }
  const hashed = createHash('sha256').update(BOB).digest('hex')
  const gw = await injectGateway(t, {
    yaml: `
upstream: { url: '${mock.url}' }
auth:
  adminToken: ${ADMIN}
  keys:
    - { name: alice, key: ${ALICE}, upstreamKey: sk-upstream-alice-3, rateLimit: { max: 10, timeWindowMs: 60000 } }
    - { name: bob, keySha256: ${hashed}, enabled: false }
`
  })
  for (const headers of [{}, { authorization: 'Bearer nope' }, { authorization: `Bearer ${ALICE}` }] as Array<Record<string, string>>) {
    const res = await gw.app.inject({ method: 'POST', url: '/admin/cache/clear', headers })
    assert.equal(res.statusCode, 401)
    assert.deepEqual(res.json(), { error: { message: 'Admin token required', type: 'invalid_request_error', code: 'invalid_admin_token' } })
  }
  const keys = await admin(gw, 'GET', '/admin/keys')
  assert.equal(keys.statusCode, 200)
  for (const secret of [ALICE, BOB, hashed, 'sk-upstream-alice-3', ADMIN]) assert.ok(!keys.body.includes(secret))
  assert.equal(keys.json().mode, 'keys')
  assert.deepEqual(keys.json().keys.map((k: { name: string, enabled: boolean }) => [k.name, k.enabled]), [['alice', true], ['bob', false]])
  await gw.app.inject({ url: '/v1/models', headers: { authorization: `Bearer ${ALICE}` } })
  const cleared = await admin(gw, 'POST', '/admin/cache/clear')
  assert.equal(cleared.statusCode, 200)
  assert.deepEqual(cleared.json(), { cleared: { models: 1 } })
  assert.equal((await admin(gw, 'GET', '/admin/nowhere')).statusCode, 404)
})

test('usage API: totals by model, target and key after traffic; bad queries are 400', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_ADMIN_TOKEN: ADMIN } })
  const headers = { 'x-mock-chunks': '2' }
  await post(gw, '/v1/chat/completions', CHAT, headers)
  await post(gw, '/v1/chat/completions', { ...CHAT, model: 'gpt-4o', stream: true }, headers)
  await post(gw, '/v1/chat/completions', { ...CHAT, model: 'gpt-4o' }, { 'x-mock-status': '500' })
  let body: UsageAnswer = { totals: { requests: 0 }, data: [] }
  await until('three requests counted', async () => {
    body = (await admin(gw, 'GET', '/admin/usage?group=model&since=1h')).json<UsageAnswer>()
    return body.totals.requests === 3
  })
  assert.equal(body.object, 'usage')
  assert.equal(body.source, 'memory')
  assert.deepEqual(body.totals, { requests: 3, errors: 1, promptTokens: 20, completionTokens: 4, totalTokens: 24, cacheReadTokens: 0, cacheCreationTokens: 0 })
  assert.deepEqual(body.data.map(r => [r.model, r.requests]), [['gpt-4o', 2], ['gpt-4o-mini', 1]])
  assert.deepEqual((await admin(gw, 'GET', '/admin/usage?group=target')).json().data.map((r: { target: string }) => r.target), ['default'])
  assert.deepEqual((await admin(gw, 'GET', '/admin/usage?group=key')).json().data.map((r: { key: string }) => r.key), ['anonymous'])
  for (const query of ['?since=yesterday-ish', '?group=colour', '?since=1h&until=2h']) {
    const bad = await admin(gw, 'GET', `/admin/usage${query}`)
    assert.equal(bad.statusCode, 400, query)
    assert.equal(typeof bad.json().error.message, 'string')
  }
})

test('blacklist admin API: add (IPv6 and mapped forms normalised), list, refuse, remove; the file follows', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_ADMIN_TOKEN: ADMIN, GATEWAY_DATA_DIR: tempDir() } })
  const added = await admin(gw, 'POST', '/admin/blacklist', { ip: '[2001:DB8::1]', reason: 'scraping' })
  assert.equal(added.statusCode, 201)
  assert.equal(added.json().ip, '2001:db8::1')
  const timed = await admin(gw, 'POST', '/admin/blacklist', { ip: '::ffff:198.51.100.7', ttl: 3_600_000 })
  assert.equal(timed.json().ip, '198.51.100.7')
  assert.equal(Date.parse(timed.json().expiresAt) - Date.parse(timed.json().addedAt), 3_600_000)
  const listed = await admin(gw, 'GET', '/admin/blacklist')
  assert.deepEqual(listed.json().entries.map((e: { ip: string }) => e.ip), ['2001:db8::1', '198.51.100.7'])
  const refused = await gw.app.inject({ url: '/v1/models', remoteAddress: '198.51.100.7' })
  assert.equal(refused.statusCode, 403)
  assert.equal(typeof refused.json().error.message, 'string')
  const file = join(gw.config.blacklist.dir, 'black.json')
  await until('the file holds both entries', () => existsSync(file) && (JSON.parse(readFileSync(file, 'utf8')) as { entries: unknown[] }).entries.length === 2)
  for (const body of [{ ip: '2001:db8::zz' }, { ip: '10.0.0.0/8' }, { ip: '1.2.3.4', ttl: -5 }, {}]) {
    assert.equal((await admin(gw, 'POST', '/admin/blacklist', body)).statusCode, 400, JSON.stringify(body))
  }
  const removed = await admin(gw, 'DELETE', `/admin/blacklist/${encodeURIComponent('2001:db8:0::1')}`)
  assert.deepEqual(removed.json(), { removed: '2001:db8::1' })
  assert.equal((await gw.app.inject({ url: '/v1/models', remoteAddress: '2001:db8::1' })).statusCode, 200)
  const missing = await admin(gw, 'DELETE', '/admin/blacklist/2001:db8::1')
  assert.equal(missing.statusCode, 404)
  assert.equal(missing.json().error.message, '2001:db8::1 is not on the blacklist')
})

test('automatic blacklist: the threshold-th error of an address blacklists it; health probes never count', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_CLIENT_KEYS: ALICE, GATEWAY_BLACKLIST_THRESHOLD: '3' } })
  const from = { remoteAddress: '203.0.113.9' }
  for (let i = 0; i < 5; i++) assert.equal((await gw.app.inject({ url: '/', ...from })).statusCode, 200)
  for (let i = 0; i < 3; i++) assert.equal((await gw.app.inject({ url: '/v1/models', ...from })).statusCode, 401, `error ${i + 1}`)
  const after = await gw.app.inject({ url: '/v1/models', headers: { authorization: `Bearer ${ALICE}` }, ...from })
  assert.equal(after.statusCode, 403, 'blacklisted, even with a valid key')
  assert.equal((await gw.app.inject({ url: '/v1/models', headers: { authorization: `Bearer ${ALICE}` }, remoteAddress: '203.0.113.10' })).statusCode, 200)
  assert.ok(gw.logs().some(l => l.msg === 'address blacklisted' && l.clientIp === '203.0.113.9'), 'the addition is logged')
})

test('rate limit: N requests pass with OpenAI headers, the next is 429 in the SDK\'s shape; health probes exempt', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_RATE_LIMIT_REQUESTS: '3', GATEWAY_RATE_LIMIT_INTERVAL_MS: '60000', GATEWAY_MODELS_CACHE_TTL_MS: '0' } })
  for (let i = 1; i <= 3; i++) {
    const res = await gw.app.inject({ url: '/v1/models' })
    assert.equal(res.statusCode, 200)
    assert.equal(res.headers['x-ratelimit-remaining-requests'], String(3 - i))
  }
  const refused = await gw.app.inject({ url: '/v1/models' })
  assert.equal(refused.statusCode, 429)
  assert.equal(refused.json().error.code, 'rate_limit_exceeded')
  assert.match(refused.json().error.message, /^Rate limit reached: 3 requests per 1 min; retry in \d+ s$/)
  assert.ok(Number(refused.headers['retry-after']) >= 1)
  const anthropic = await post(gw, '/v1/messages', { model: 'claude-3-5-sonnet-latest', max_tokens: 5, messages: [] })
  assert.equal(anthropic.statusCode, 429)
  assert.equal(anthropic.json().type, 'error')
  assert.equal(anthropic.json().error.type, 'rate_limit_error')
  assert.equal((await gw.app.inject({ url: '/healthz' })).statusCode, 200)
  assert.equal(mock.requests.length, 3)
  const other = await gw.app.inject({ url: '/v1/models', remoteAddress: '198.51.100.20' })
  assert.equal(other.statusCode, 200, 'another address has its own count')
})

test('address filter: a denied network gets 403 in both shapes; an allowlist denies the rest, health exempt when asked', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_IP_DENY: '198.51.100.0/24' } })
  const denied = await gw.app.inject({ url: '/v1/models', remoteAddress: '198.51.100.3' })
  assert.deepEqual(denied.json(), { error: { message: 'Requests from your address are not allowed', type: 'request_forbidden', code: 'ip_not_allowed' } })
  const anthropic = await gw.app.inject({ method: 'POST', url: '/v1/messages', remoteAddress: '198.51.100.3', payload: {} })
  assert.deepEqual(anthropic.json(), { type: 'error', error: { type: 'permission_error', message: 'Requests from your address are not allowed' } })
  assert.equal((await gw.app.inject({ url: '/v1/models', remoteAddress: '203.0.113.1' })).statusCode, 200)
  const strict = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_IP_ALLOW: '10.0.0.0/8', GATEWAY_IP_FILTER_EXEMPT_HEALTH: 'true' } })
  assert.equal((await strict.app.inject({ url: '/v1/models', remoteAddress: '203.0.113.1' })).statusCode, 403)
  assert.equal((await strict.app.inject({ url: '/healthz', remoteAddress: '203.0.113.1' })).statusCode, 200)
  assert.equal((await strict.app.inject({ url: '/v1/models', remoteAddress: '10.1.2.3' })).statusCode, 200)
})

test('trusted proxies: the client is the first untrusted hop from the right', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_TRUSTED_PROXIES: '10.0.0.0/8', GATEWAY_IP_DENY: '198.51.100.0/24' } })
  const viaProxy = await gw.app.inject({ url: '/v1/models', remoteAddress: '10.0.0.5', headers: { 'x-forwarded-for': '1.1.1.1, 198.51.100.3, 10.0.0.7' } })
  assert.equal(viaProxy.statusCode, 403)
  const spoofed = await gw.app.inject({ url: '/v1/models', remoteAddress: '203.0.113.5', headers: { 'x-forwarded-for': '198.51.100.3' } })
  assert.equal(spoofed.statusCode, 200, 'an untrusted peer\'s header changes nothing')
})

test('CORS: configured origins get preflight answers and exposed headers; other origins none', async (t) => {
  const mock = await startMock(t)
  const origin = 'https://app.example'
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_CORS_ORIGINS: origin } })
  const pre = await gw.app.inject({ method: 'OPTIONS', url: '/v1/chat/completions', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,x-stainless-retry-count,x-evil-header' } })
  assert.equal(pre.statusCode, 204)
  assert.equal(pre.headers['access-control-allow-origin'], origin)
  const allowed = String(pre.headers['access-control-allow-headers']).toLowerCase().split(/,\s*/)
  assert.ok(allowed.includes('authorization') && allowed.includes('x-stainless-retry-count'))
  assert.ok(!allowed.includes('x-evil-header'))
  const answer = await gw.app.inject({ url: '/v1/models', headers: { origin } })
  assert.equal(answer.headers['access-control-allow-origin'], origin)
  assert.match(String(answer.headers['access-control-expose-headers']), /x-request-id/)
  const stranger = await gw.app.inject({ method: 'OPTIONS', url: '/v1/chat/completions', headers: { origin: 'https://other.example', 'access-control-request-method': 'POST' } })
  assert.equal(stranger.headers['access-control-allow-origin'], undefined)
  const any = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_CORS_ORIGINS: '*' } })
  const anyPre = await any.app.inject({ method: 'OPTIONS', url: '/v1/models', headers: { origin: 'https://x.example', 'access-control-request-method': 'GET' } })
  assert.equal(anyPre.headers['access-control-allow-origin'], '*', '"*" answers any origin')
})

test('metrics page behind the admin token: requests, tokens, refusals and upstream errors counted', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_ADMIN_TOKEN: ADMIN, GATEWAY_CLIENT_KEYS: ALICE } })
  const auth = { authorization: `Bearer ${ALICE}`, 'x-mock-chunks': '3' }
  await post(gw, '/v1/chat/completions', CHAT, auth)
  await post(gw, '/v1/chat/completions', { ...CHAT, stream: true }, auth)
  await post(gw, '/v1/chat/completions', CHAT, { ...auth, 'x-mock-status': '500' })
  await post(gw, '/v1/chat/completions', CHAT, { ...auth, 'x-mock-fault': 'reset-before-headers' })
  await post(gw, '/v1/chat/completions', CHAT)
  assert.equal((await gw.app.inject({ url: '/metrics' })).statusCode, 401)
  let text = ''
  await until('five requests counted', async () => {
    const res = await admin(gw, 'GET', '/metrics')
    text = res.body
    return res.statusCode === 200 && /gateway_requests_total\{target="default",route="\/v1\/chat\/completions",status="502"\} 1/.test(text)
  })
  assert.match(text, /gateway_requests_total\{target="default",route="\/v1\/chat\/completions",status="200"\} 2/)
  assert.match(text, /gateway_refusals_total\{reason="unauthorised"\} 2/, 'the keyless request and the tokenless scrape')
  assert.match(text, /gateway_upstream_errors_total\{target="default",class="http_5xx"\} 1/)
  assert.match(text, /gateway_upstream_errors_total\{target="default",class="upstream_reset"\} 1/)
  // keys from GATEWAY_CLIENT_KEYS are named key-1, key-2, …
  assert.match(text, /gateway_tokens_total\{client="key-1",model="gpt-4o-mini",kind="completion"\} 6/)
  assert.ok(!text.includes(ALICE))
})

test('model list cache: MISS then HIT without an upstream call; /v1/models/{id} from the list; errors not cached', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const first = await gw.app.inject({ url: '/v1/models' })
  assert.equal(first.headers['x-cache'], 'MISS')
  const second = await gw.app.inject({ url: '/v1/models' })
  assert.equal(second.headers['x-cache'], 'HIT')
  assert.deepEqual(second.json(), first.json())
  assert.equal(mock.count('/v1/models'), 1)
  const one = await gw.app.inject({ url: '/v1/models/gpt-4o' })
  assert.equal(one.statusCode, 200)
  assert.equal(one.json().id, 'gpt-4o')
  assert.equal(mock.count('/v1/models'), 1, 'a listed id is answered from the cache')
  const unknown = await gw.app.inject({ url: '/v1/models/not-a-model' })
  assert.equal(unknown.statusCode, 404)
  assert.equal(mock.count('/v1/models'), 2, 'an unknown id goes upstream')
  const failing = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  assert.equal((await failing.app.inject({ url: '/v1/models', headers: { 'x-mock-status': '500' } })).statusCode, 500)
  const retry = await failing.app.inject({ url: '/v1/models' })
  assert.equal(retry.statusCode, 200)
  assert.equal(retry.headers['x-cache'], 'MISS', 'the error was not cached')
})

test('field aliases: request keys renamed at every depth; reverse mapping on JSON and streamed answers', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_FIELD_ALIASES: '{"max_tokens":"max_completion_tokens","secret":"hidden"}' } })
  const res = await post(gw, '/v1/chat/completions', { ...CHAT, max_tokens: 5, metadata: { grid: [[{ secret: 1 }]] } })
  assert.equal(res.statusCode, 200)
  const seen = mock.requests.at(-1)!
  assert.equal(seen.bodyText, JSON.stringify({ ...CHAT, max_completion_tokens: 5, metadata: { grid: [[{ hidden: 1 }]] } }))
  assert.equal(Number(seen.headers['content-length']), seen.bodyBytes)
  const reverse = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_FIELD_ALIASES: '{"content":"text"}', GATEWAY_FIELD_ALIASES_REVERSE: 'true' } })
  const json = await post(reverse, '/v1/chat/completions', CHAT, { 'x-mock-chunks': '2' })
  assert.equal((mock.requests.at(-1)!.json as { messages: Array<Record<string, unknown>> }).messages[0].text, 'hi')
  assert.equal(json.json().choices[0].message.content, 'tok0 tok1 ')
  const stream = await post(reverse, '/v1/chat/completions', { ...CHAT, stream: true }, { 'x-mock-chunks': '2' })
  assert.match(stream.body, /"content":"tok0 "/)
})

test('context ids: the client never sees the tag; the next request of the conversation carries the chain', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url }, argv: ['-nocid'] })
  const first = await post(gw, '/v1/chat/completions', CHAT, { authorization: 'Bearer sk-client-a', 'x-mock-context-id': 'up-1', 'x-mock-chunks': '3' })
  const answer = first.json().choices[0].message.content as string
  assert.equal(answer, 'tok0 tok1 tok2 \n')
  assert.equal(Number(first.headers['content-length']), Buffer.byteLength(first.body))
  await post(gw, '/v1/chat/completions', { ...CHAT, messages: [...CHAT.messages, { role: 'assistant', content: answer }, { role: 'user', content: 'more' }] }, { authorization: 'Bearer sk-client-a' })
  const sent = mock.requests.at(-1)!.json as { messages: Array<{ content: string }> }
  assert.match(sent.messages[1].content, /^tok0 tok1 tok2\n\[CONTEXT_ID:up-1\|[0-9a-f-]{36}\]$/)
  const stream = await post(gw, '/v1/chat/completions', { ...CHAT, stream: true }, { authorization: 'Bearer sk-client-a', 'x-mock-context-id': 'up-2', 'x-mock-split-tag': '1' })
  assert.equal(stream.statusCode, 200)
  assert.ok(!stream.body.includes('CONTEXT_ID'), 'no tag reaches the client in a stream')
})

test('debug log: a stream is logged once as its event count and text; the request too; keys stay out', async (t) => {
  const mock = await startMock(t)
  const key = 'sk-debug-unit-SECRET-1'
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, DEBUG_MODE: 'true' } })
  const res = await post(gw, '/v1/chat/completions', { ...CHAT, stream: true }, { authorization: `Bearer ${key}`, 'x-mock-chunks': '4' })
  const id = res.headers['x-request-id']
  await until('the stream line', () => gw.logs().some(l => l.reqId === id && l.msg === 'response stream'))
  const lines = gw.logs().filter(l => l.reqId === id)
  const stream = lines.filter(l => l.msg === 'response stream')
  assert.equal(stream.length, 1)
  assert.equal(stream[0].text, 'tok0 tok1 tok2 tok3 ')
  assert.equal(stream[0].complete, true)
  assert.ok(lines.some(l => l.msg === 'request'))
  const json = await post(gw, '/v1/chat/completions', CHAT, { authorization: `Bearer ${key}` })
  await until('the body line', () => gw.logs().some(l => l.reqId === json.headers['x-request-id'] && l.msg === 'response body'))
  assert.ok(!JSON.stringify(gw.logs()).includes(key))
})
