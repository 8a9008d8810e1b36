/**
 * Key pools: round robin and weights over a target's upstream keys; one retry on the next key after
 * an upstream 429 or a connection failure before any response (streams included); no other
 * retries; a key refused with 401 set aside for its cool-down and logged by name only.
 * Proven by the requests the mock (and a key gate in front of it) actually received.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import Anthropic from '@anthropic-ai/sdk'
import { startGateway, startMock } from '../helper.js'
import { startGatewayWithClient, startKeyGate } from './support.js'
import { KeyPool } from '../../src/routing/key-pool.js'

const chat = (stream = false): string => JSON.stringify({ model: 'gpt-4o-mini', stream, messages: [{ role: 'user', content: 'hi' }] })

async function post (url: string, headers: Record<string, string> = {}, body = chat()): Promise<number> {
  const res = await request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body })
  await res.body.dump()
  return res.statusCode
}

function bearer (h: Record<string, string>): string {
  return (h.authorization ?? '').replace(/^Bearer /, '')
}

test('round robin over the pool; weights spread requests in proportion', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEYS: 'pool-key-aaa1,pool-key-bbb2,pool-key-ccc3' } })
  // chat, not /v1/models: the model list is cached, so only its first request would go upstream
  for (let i = 0; i < 6; i++) await post(`${gw.url}/v1/chat/completions`)
  assert.deepEqual(mock.requests.map(r => bearer(r.headers)), ['pool-key-aaa1', 'pool-key-bbb2', 'pool-key-ccc3', 'pool-key-aaa1', 'pool-key-bbb2', 'pool-key-ccc3'])

  const weighted = await startMock(t)
  const gw2 = await startGateway(t, {
    yaml: `upstream:\n  url: ${weighted.url}\n  keys:\n    - { key: heavy-key-001, weight: 3 }\n    - { key: light-key-002, weight: 1 }\n`
  })
  for (let i = 0; i < 8; i++) await post(`${gw2.url}/v1/chat/completions`)
  const used = weighted.requests.map(r => r.headers.authorization === 'Bearer heavy-key-001' ? 'H' : 'L')
  // smooth weighted round robin: 3:1, and the light key is interleaved rather than starved to the end
  assert.equal(used.join(''), 'HHLHHHLH')
})

test('429 on one key → retried once on the next key; the client never sees the 429', async (t) => {
  const mock = await startMock(t)
  const gate = await startKeyGate(t, mock.url, { status: { 'limited-key-01': 429 } })
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: gate.url, GATEWAY_UPSTREAM_KEYS: 'limited-key-01,spare-key-002' } })
  assert.equal(await post(`${gw.url}/v1/chat/completions`), 200)
  assert.deepEqual(gate.keys, ['limited-key-01', 'spare-key-002'])
  assert.equal(mock.count('/v1/chat/completions'), 1)
  assert.equal(mock.requests.at(-1)!.bodyText, chat(), 'the same JSON body was sent again')
  assert.match(gw.logText(), /"key":"key-1".*"nextKey":"key-2".*"reason":"upstream_429"/)
  const line = gw.logs.map(l => JSON.parse(l) as Record<string, unknown>).find(l => l.msg === 'request completed' && l.path === '/v1/chat/completions')
  assert.equal(line?.attempts, 2, 'the usage record counts both upstream requests')
  assert.equal(line?.upstreamKey, 'key-2', 'and names the key that answered')
})

test('streaming through @anthropic-ai/sdk survives a 429 on the first key', async (t) => {
  const mock = await startMock(t)
  const gate = await startKeyGate(t, mock.url, { status: { 'sk-ant-limited-1': 429 } })
  const gw = await startGateway(t, {
    yaml: `
targets:
  claude:
    url: ${gate.url}
    provider: anthropic
    keys:
      - { key: sk-ant-limited-1, name: ant-a }
      - { key: sk-ant-spare-22, name: ant-b }
`
  })
  const client = new Anthropic({ baseURL: `${gw.url}/claude`, apiKey: 'gateway-client-key', maxRetries: 0 })
  const final = await client.messages.stream({ model: 'claude-3-5-sonnet-latest', max_tokens: 32, messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-chunks': '4' } }).finalMessage()
  assert.equal(final.content[0].type === 'text' && final.content[0].text, 'tok0 tok1 tok2 tok3 ')
  assert.deepEqual(gate.keys, ['sk-ant-limited-1', 'sk-ant-spare-22'])
  assert.equal(mock.count('/v1/messages'), 1)
  assert.match(gw.logText(), /"key":"ant-a","nextKey":"ant-b"/)
})

test('a connection failure before any response → retried once on the next key', async (t) => {
  const mock = await startMock(t)
  const gate = await startKeyGate(t, mock.url, { reset: ['broken-key-001'] })
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: gate.url, GATEWAY_UPSTREAM_KEYS: 'broken-key-001,working-key-02' } })
  const res = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat(true) })
  assert.equal(res.statusCode, 200)
  assert.ok((await res.body.text()).trimEnd().endsWith('data: [DONE]'))
  assert.deepEqual(gate.keys, ['broken-key-001', 'working-key-02'])
  assert.equal(mock.count(), 1)
})

test('only one retry: 429 on every key → the client gets the second 429; resets on every key → 502', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEYS: 'first-key-0001,second-key-002,third-key-0003' } })
  assert.equal(await post(`${gw.url}/v1/chat/completions`, { 'x-mock-status': '429' }), 429)
  assert.equal(mock.count(), 2)
  assert.deepEqual(mock.requests.map(r => bearer(r.headers)), ['first-key-0001', 'second-key-002'])

  mock.reset()
  assert.equal(await post(`${gw.url}/v1/chat/completions`, { 'x-mock-fault': 'reset-before-headers' }), 502)
  assert.equal(mock.count(), 2)
})

test('no retry: other statuses, a single key, a client-mapped key, a streamed (multipart) body', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEYS: 'first-key-0001,second-key-002' } })
  for (const status of ['500', '503', '400']) {
    mock.reset()
    assert.equal(await post(`${gw.url}/v1/chat/completions`, { 'x-mock-status': status }), Number(status))
    assert.equal(mock.count(), 1, `no retry on ${status}`)
  }

  mock.reset()
  const form = new FormData()
  form.append('purpose', 'assistants')
  form.append('file', new Blob([Buffer.alloc(4096, 1)]), 'data.jsonl')
  // the runtime's FormData and fetch: undici's FormData does not stream the runtime's Blob
  const upload = await fetch(`${gw.url}/v1/files`, { method: 'POST', body: form, headers: { 'x-mock-status': '429' } })
  assert.equal(upload.status, 429)
  await upload.arrayBuffer()
  assert.equal(mock.count(), 1, 'a streamed body cannot be sent twice')

  const single = await startMock(t)
  const one = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: single.url, GATEWAY_UPSTREAM_KEY: 'only-key-00001' } })
  assert.equal(await post(`${one.url}/v1/chat/completions`, { 'x-mock-status': '429' }), 429)
  assert.equal(single.count(), 1)

  const mapped = await startMock(t)
  const withClient = await startGatewayWithClient(t, { env: { GATEWAY_UPSTREAM_URL: mapped.url, GATEWAY_UPSTREAM_KEYS: 'first-key-0001,second-key-002' } },
    () => ({ name: 'mapped', upstreamKeys: new Map([['default', 'client-own-key-7']]) }))
  assert.equal(await post(`${withClient.url}/v1/chat/completions`, { 'x-mock-status': '429' }), 429)
  assert.equal(mapped.count(), 1)
  assert.equal(bearer(mapped.requests[0].headers), 'client-own-key-7')
})

test('a key refused with 401 is set aside, logged by its name only, and comes back after its cool-down', async (t) => {
  const mock = await startMock(t)
  const gate = await startKeyGate(t, mock.url, { status: { 'revoked-key-0001': 401 } })
  const yaml = (cooldown: number): string => `
upstream:
  url: ${gate.url}
  keyCooldownMs: ${cooldown}
  keys:
    - { key: revoked-key-0001, name: billing-old }
    - { key: good-key-000002, name: billing-new }
`
  const gw = await startGateway(t, { yaml: yaml(3_600_000) })
  assert.equal(await post(`${gw.url}/v1/chat/completions`), 401, 'a 401 is passed on, not retried')
  assert.deepEqual(gate.keys, ['revoked-key-0001'])
  for (let i = 0; i < 4; i++) assert.equal(await post(`${gw.url}/v1/chat/completions`), 200)
  assert.deepEqual(gate.keys.slice(1), ['good-key-000002', 'good-key-000002', 'good-key-000002', 'good-key-000002'])
  const refusal = gw.logs.find(l => l.includes('set aside'))
  assert.ok(refusal !== undefined)
  assert.match(refusal, /"key":"billing-old"/)
  assert.match(refusal, /"cooldownMs":3600000/)

  gate.keys.length = 0
  const quick = await startGateway(t, { yaml: yaml(20) })
  assert.equal(await post(`${quick.url}/v1/chat/completions`), 401)
  let back = false
  for (let i = 0; i < 50 && !back; i++) {
    await sleep(10)
    await post(`${quick.url}/v1/chat/completions`)
    back = gate.keys.slice(1).includes('revoked-key-0001')
  }
  assert.ok(back, 'the key is tried again after its cool-down')
})

test('KeyPool: every key set aside → the one that comes back first; skip never returns the failed key', () => {
  const pool = new KeyPool([{ name: 'a', key: 'ka', weight: 1 }, { name: 'b', key: 'kb', weight: 1 }, { name: 'c', key: 'kc', weight: 1 }], 1000)
  const [a, b, c] = pool.keys
  pool.setAside(a, 0)
  pool.setAside(b, 500)
  pool.setAside(c, 200)
  assert.equal(pool.pick(null, 100).name, 'a', 'a is back first (1000 < 1200 < 1500)')
  assert.equal(pool.pick(a, 100).name, 'c')
  assert.deepEqual(pool.available(1300), ['a', 'c'])
  for (let i = 0; i < 10; i++) assert.notEqual(pool.pick(b, 2000), b)
})
