/**
 * The /v1/models cache against the real gateway and mock: MISS then HIT, single flight proven by
 * the mock's request count, errors never cached, one entry per upstream credential and API
 * flavour, models by id from the cached list, and the admin clear.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { request } from 'undici'
import { startGateway, startMock, type GatewayHandle } from '../helper.js'

const ADMIN = 'adm-models-0001-secret'

function openai (gw: GatewayHandle, apiKey = 'sk-client-models-0001'): OpenAI {
  return new OpenAI({ baseURL: `${gw.url}/v1`, apiKey, maxRetries: 0 })
}

async function list (gw: GatewayHandle, apiKey?: string): Promise<{ ids: string[], cache: string | null }> {
  const { data, response } = await openai(gw, apiKey).models.list().withResponse()
  return { ids: data.data.map(m => m.id), cache: response.headers.get('x-cache') }
}

async function get (gw: GatewayHandle, path: string, headers: Record<string, string> = {}): Promise<{ status: number, cache: unknown, body: any }> {
  const res = await request(`${gw.url}${path}`, { headers })
  return { status: res.statusCode, cache: res.headers['x-cache'], body: await res.body.json() }
}

/** Bounded polling: the condition must turn true within the time given. */
async function until (what: string, condition: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

test('first request MISS, then HIT without an upstream call; the list is the upstream list', async (t) => {
  const mock = await startMock(t, { models: ['model-a', 'model-b'] })
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEY: 'sk-up-models-0001' } })
  assert.deepEqual(await list(gw), { ids: ['model-a', 'model-b'], cache: 'MISS' })
  assert.deepEqual(await list(gw), { ids: ['model-a', 'model-b'], cache: 'HIT' })
  assert.deepEqual(await list(gw, 'sk-another-client-0002'), { ids: ['model-a', 'model-b'], cache: 'HIT' }, 'the upstream key is the same: one entry')
  assert.equal(mock.count('/v1/models'), 1)
  assert.equal(mock.requests[0].headers.authorization, 'Bearer sk-up-models-0001')
  assert.equal(mock.requests[0].headers['accept-encoding'], undefined, 'a shared answer is fetched uncompressed')
})

test('single flight: 20 concurrent first requests make one upstream request', async (t) => {
  const mock = await startMock(t)
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  mock.override('/v1/models', async (_req, res) => {
    await gate
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ object: 'list', data: [{ id: 'only-model', object: 'model', created: 1, owned_by: 'mock' }] }))
  })
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEY: 'sk-up-models-0001', GATEWAY_LOG_LEVEL: 'debug' } })
  const answers = Array.from({ length: 20 }, () => get(gw, '/v1/models'))
  // one request went upstream, the 19 others are waiting for it inside the gateway
  await until('the first upstream request', () => mock.count('/v1/models') === 1)
  await until('19 requests joining it', () => gw.logs.filter(l => l.includes('joining the in-flight upstream request')).length === 19)
  release()
  const results = await Promise.all(answers)
  assert.equal(mock.count('/v1/models'), 1)
  for (const r of results) {
    assert.equal(r.status, 200)
    assert.equal(r.cache, 'MISS', 'all 20 were served by the one upstream answer')
    assert.deepEqual(r.body.data.map((m: { id: string }) => m.id), ['only-model'])
  }
  assert.equal((await get(gw, '/v1/models')).cache, 'HIT')
  assert.equal(mock.count('/v1/models'), 1)
})

test('errors are passed on but never cached', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEY: 'sk-up-models-0001' } })
  const failed = await get(gw, '/v1/models', { 'x-mock-status': '500' })
  assert.equal(failed.status, 500)
  assert.equal(failed.cache, 'MISS')
  await assert.rejects(openai(gw).models.list({ headers: { 'x-mock-status': '401' } }), OpenAI.AuthenticationError)
  assert.equal((await list(gw)).cache, 'MISS', 'the errors were not stored')
  assert.equal((await list(gw)).cache, 'HIT')
  assert.equal(mock.count('/v1/models'), 3)

  // an unreachable upstream is a 502, and is not cached either
  const gone = await startMock(t)
  await gone.close()
  const down = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: gone.url } })
  const r = await get(down, '/v1/models')
  assert.equal(r.status, 502)
  assert.equal(r.body.error.code, 'upstream_unreachable')
})

test('POST /admin/cache/clear empties the cache; the next request fetches again', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEY: 'sk-up-models-0001', ADMIN_TOKEN: ADMIN } })
  await list(gw)
  await get(gw, '/v1/models', { 'anthropic-version': '2023-06-01' })
  assert.equal((await list(gw)).cache, 'HIT')
  const cleared = await request(`${gw.url}/admin/cache/clear`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } })
  assert.deepEqual(await cleared.body.json(), { cleared: { models: 2 } })
  assert.equal((await list(gw)).cache, 'MISS')
  assert.equal((await list(gw)).cache, 'HIT')
  assert.equal(mock.count('/v1/models'), 3)
  const again = await request(`${gw.url}/admin/cache/clear`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } })
  assert.deepEqual(await again.body.json(), { cleared: { models: 1 } })
})

test('GET /v1/models/{id} is answered from the cached list; unknown ids go upstream', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEY: 'sk-up-models-0001' } })
  const first = await openai(gw).models.retrieve('gpt-4o').withResponse()
  assert.equal(first.data.id, 'gpt-4o')
  assert.equal(first.response.headers.get('x-cache'), 'MISS', 'no list cached yet: forwarded')
  assert.equal(mock.count('/v1/models/'), 1)

  await list(gw)
  const cached = await openai(gw).models.retrieve('gpt-4o').withResponse()
  assert.deepEqual(cached.data, { id: 'gpt-4o', object: 'model', created: 1700000000, owned_by: 'openai' })
  assert.equal(cached.response.headers.get('x-cache'), 'HIT')
  assert.equal(mock.count('/v1/models/'), 1, 'served from the list')

  await assert.rejects(openai(gw).models.retrieve('no-such-model'), OpenAI.NotFoundError)
  assert.equal(mock.count('/v1/models/'), 2, 'a model the list does not hold is asked for upstream')
})

test('Anthropic /v1/models (anthropic-version) is cached separately, in its own shape', async (t) => {
  const mock = await startMock(t, { models: ['claude-a', 'claude-b'] })
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEY: 'sk-up-models-0001' } })
  const claude = new Anthropic({ baseURL: gw.url, apiKey: 'sk-ant-client-0001', maxRetries: 0 })
  const page = await claude.models.list()
  assert.deepEqual(page.data.map(m => m.id), ['claude-a', 'claude-b'])
  assert.equal(page.data[0].type, 'model')
  assert.deepEqual((await list(gw)).ids, ['claude-a', 'claude-b'])
  assert.equal(mock.count('/v1/models'), 2, 'the OpenAI list is not the Anthropic list')

  const version = mock.requests[0].headers['anthropic-version']
  const again = await get(gw, '/v1/models', { 'anthropic-version': version, authorization: 'Bearer sk-ant-client-0001' })
  assert.equal(again.cache, 'HIT')
  assert.equal(again.body.has_more, false, 'still the Anthropic shape')
  const model = await claude.models.retrieve('claude-b')
  assert.equal(model.id, 'claude-b')
  assert.equal(mock.count('/v1/models/'), 0, 'answered from the cached Anthropic list')
  assert.equal((await list(gw)).cache, 'HIT')
  assert.equal(mock.count('/v1/models'), 2)
  // another API version may list other models: its own entry
  assert.equal((await get(gw, '/v1/models', { 'anthropic-version': '2023-01-01' })).cache, 'MISS')
})

test('one entry per upstream credential: mapped keys and own client keys do not share a list', async (t) => {
  const mock = await startMock(t)
  const keys = JSON.stringify([
    { name: 'alice', key: 'ck-alice-0001', upstreamKey: 'sk-up-alice-0001' },
    { name: 'bob', key: 'ck-bob-0002', upstreamKey: 'sk-up-bob-0002' },
    { name: 'carol', key: 'ck-carol-0003' },
    { name: 'dave', key: 'ck-dave-0004' }
  ])
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEY: 'sk-up-shared-0000', GATEWAY_CLIENT_KEYS: keys } })
  assert.equal((await list(gw, 'ck-alice-0001')).cache, 'MISS')
  assert.equal((await list(gw, 'ck-bob-0002')).cache, 'MISS')
  assert.equal((await list(gw, 'ck-alice-0001')).cache, 'HIT')
  assert.equal((await list(gw, 'ck-carol-0003')).cache, 'MISS')
  assert.equal((await list(gw, 'ck-dave-0004')).cache, 'HIT', 'carol and dave both use the target key')
  assert.deepEqual(mock.requests.map(r => r.headers.authorization), ['Bearer sk-up-alice-0001', 'Bearer sk-up-bob-0002', 'Bearer sk-up-shared-0000'])

  // no upstream key: each client's own key reaches the upstream, each gets its own entry
  const open = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  assert.equal((await list(open, 'sk-own-key-0005')).cache, 'MISS')
  assert.equal((await list(open, 'sk-own-key-0006')).cache, 'MISS')
  assert.equal((await list(open, 'sk-own-key-0005')).cache, 'HIT')
  // different query strings are different lists
  assert.equal((await get(open, '/v1/models?limit=1', { authorization: 'Bearer sk-own-key-0005' })).cache, 'MISS')
})

test('cache lifetime: entries expire after models.cacheTtlMs; 0 turns the cache off', async (t) => {
  const mock = await startMock(t)
  const off = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_MODELS_CACHE_TTL_MS: '0' } })
  assert.equal((await list(off)).cache, 'MISS')
  assert.equal((await list(off)).cache, 'MISS')
  assert.equal(mock.count('/v1/models'), 2)

  const short = await startGateway(t, { yaml: `upstream:\n  url: ${mock.url}\nmodels:\n  cacheTtlMs: 20\n` })
  assert.equal((await list(short)).cache, 'MISS')
  // bounded polling: expiry is checked by asking again until the cache says MISS
  let seen = 'HIT'
  for (let i = 0; i < 200 && seen !== 'MISS'; i++) {
    await sleep(10)
    seen = (await list(short)).cache ?? ''
  }
  assert.equal(seen, 'MISS', 'the entry expired and was fetched again')
})

test('a target with a key pool keeps one model list: picking keys does not split the cache', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEYS: 'pool-key-m1,pool-key-m2' } })
  for (let i = 0; i < 4; i++) {
    const res = await request(`${gw.url}/v1/models`)
    assert.equal(res.headers['x-cache'], i === 0 ? 'MISS' : 'HIT')
    await res.body.dump()
  }
  assert.equal(mock.count('/v1/models'), 1)
})
