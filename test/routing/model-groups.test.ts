/**
 * Routing by model and model groups, against real upstreams on loopback: one that refuses
 * connections, one answering 500, one 429 with Retry-After, one a 200 stream whose first event is
 * an error, and the mock that answers; the official OpenAI SDK as the client (stream and not).
 * Proven by what each upstream received, the response headers and the usage record.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import type { ServerResponse } from 'node:http'
import OpenAI from 'openai'
import { request } from 'undici'
import { startGateway, startMock, type GatewayHandle } from '../helper.js'
import { freePort } from '../ports.js'
import type { MockUpstream } from '../../mock/upstream.js'
import { Probe, wsUrl } from '../realtime/ws-helpers.js'

const CHAT = '/v1/chat/completions'

function json (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body))
}

/** A mock whose chat completions always answer `status` with an OpenAI error body. */
async function failing (t: TestContext, status: number, headers: Record<string, string> = {}): Promise<MockUpstream> {
  const mock = await startMock(t)
  mock.override(CHAT, (_req, res) => { json(res, status, { error: { message: `upstream says ${status}`, type: 'server_error', code: null } }, headers) })
  return mock
}

/** A mock answering 200 with an event stream whose first event is an error event. */
async function errorFirst (t: TestContext): Promise<MockUpstream> {
  const mock = await startMock(t)
  mock.override(CHAT, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.end('data: {"error":{"message":"overloaded","type":"server_error","code":"overloaded"}}\n\n')
  })
  return mock
}

interface Upstreams {
  refusing: string
  failing: MockUpstream
  limited: MockUpstream
  broken: MockUpstream
  good: MockUpstream
}

async function upstreams (t: TestContext): Promise<Upstreams> {
  return {
    refusing: `http://127.0.0.1:${await freePort()}`,
    failing: await failing(t, 500),
    limited: await failing(t, 429, { 'retry-after': '120' }),
    broken: await errorFirst(t),
    good: await startMock(t)
  }
}

function targetsYaml (u: Upstreams): string {
  return `
targets:
  refusing: { url: "${u.refusing}" }
  failing: { url: "${u.failing.url}" }
  limited: { url: "${u.limited.url}" }
  broken: { url: "${u.broken.url}" }
  good: { url: "${u.good.url}" }
`
}

const FIVE = `
modelGroups:
  smart:
    maxAttempts: 5
    deployments:
      - { target: refusing, model: m-refused }
      - { target: failing, model: m-500 }
      - { target: limited, model: m-429 }
      - { target: broken, model: m-error-event }
      - { target: good, model: gpt-4o }
`

function models (mock: MockUpstream): unknown[] {
  return mock.requests.filter(r => r.path === CHAT).map(r => (r.json as { model?: unknown }).model)
}

function completed (gw: GatewayHandle): Array<Record<string, unknown>> {
  return gw.logs.map(l => JSON.parse(l) as Record<string, unknown>).filter(l => l.msg === 'request completed' && l.path === CHAT)
}

test('a target\'s models globs route by the JSON model, before the default target, after the path prefix', async (t) => {
  const fallback = await startMock(t)
  const claude = await startMock(t)
  const embed = await startMock(t)
  const gw = await startGateway(t, {
    yaml: `
upstream: { url: "${fallback.url}" }
targets:
  oa: { url: "${claude.url}", models: ["GPT-4o*", "o?-mini"] }
  emb: { url: "${embed.url}", models: [text-embedding-3-small] }
`
  })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'client', maxRetries: 0 })
  await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
  await client.chat.completions.create({ model: 'o3-mini', messages: [{ role: 'user', content: 'hi' }] })
  await client.embeddings.create({ model: 'text-embedding-3-small', input: 'x' })
  await client.chat.completions.create({ model: 'llama-3', messages: [{ role: 'user', content: 'hi' }] })
  assert.equal(claude.count(CHAT), 2, 'globs match in any case, * and ?')
  assert.equal(embed.count('/v1/embeddings'), 1)
  assert.equal(fallback.count(CHAT), 1, 'an unmatched model goes to the default target')
  // a path prefix fixes the target: the model does not move it
  const prefixed = new OpenAI({ baseURL: `${gw.url}/emb/v1`, apiKey: 'client', maxRetries: 0 })
  await prefixed.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })
  assert.equal(embed.count(CHAT), 1)
  assert.equal(claude.count(CHAT), 2)
})

test('a multipart form routes by its model field; a realtime session by ?model=', async (t) => {
  const fallback = await startMock(t)
  const audio = await startMock(t)
  const gw = await startGateway(t, {
    yaml: `
upstream: { url: "${fallback.url}" }
targets:
  audio: { url: "${audio.url}", models: ["whisper-*", "gpt-4o-realtime*"] }
`
  })
  const form = new FormData()
  form.append('model', 'whisper-1')
  form.append('file', new Blob([Buffer.alloc(2048, 1)], { type: 'audio/wav' }), 'a.wav')
  const res = await fetch(`${gw.url}/v1/audio/transcriptions`, { method: 'POST', body: form })
  assert.equal(res.status, 200)
  await res.arrayBuffer()
  assert.equal(audio.count('/v1/audio/transcriptions'), 1)
  assert.equal(fallback.count('/v1/audio/transcriptions'), 0)

  const session = new Probe(wsUrl(gw.url), ['realtime'])
  await session.opened
  // the upstream's first event came through: the relay is connected
  await session.received(1)
  session.ws.close()
  assert.equal(audio.wsConnections.length, 1, 'the session went to the target whose globs match its model')
  assert.equal(fallback.wsConnections.length, 0)
})

test('fallback: refused, 500, 429 and an error-event stream are each tried on the next deployment (SDK, not streaming)', async (t) => {
  const u = await upstreams(t)
  const gw = await startGateway(t, { yaml: targetsYaml(u) + FIVE })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'client', maxRetries: 0 })
  const { data, response } = await client.chat.completions.create({ model: 'smart', messages: [{ role: 'user', content: 'hi' }] }).withResponse()
  assert.equal(typeof data.choices[0].message.content, 'string')
  assert.ok((data.choices[0].message.content ?? '').length > 0, 'a complete answer')
  assert.equal(response.headers.get('x-gateway-target'), 'good')
  assert.equal(response.headers.get('x-gateway-attempts'), '5')
  // each attempt named its own deployment's model, from the client's body
  assert.deepEqual(models(u.failing), ['m-500'])
  assert.deepEqual(models(u.limited), ['m-429'])
  assert.deepEqual(models(u.broken), ['m-error-event'])
  assert.deepEqual(models(u.good), ['gpt-4o'])
  const messages = (u.good.requests[0].json as { messages: unknown }).messages
  assert.deepEqual(messages, [{ role: 'user', content: 'hi' }], 'the rest of the body as the client sent it')

  const [line] = completed(gw)
  assert.equal(line.target, 'good', 'the record names the target that answered')
  assert.equal(line.model, 'smart', 'and the model the client asked for')
  assert.equal(line.attempts, 5)
  const log = line.attemptLog as Array<Record<string, unknown>>
  assert.deepEqual(log.map(a => [a.target, a.model, a.status ?? null, a.errorClass ?? null]), [
    ['refusing', 'm-refused', null, 'upstream_refused'],
    ['failing', 'm-500', 500, 'upstream_5xx'],
    ['limited', 'm-429', 429, 'upstream_429'],
    ['broken', 'm-error-event', 200, 'upstream_stream_error'],
    ['good', 'gpt-4o', 200, null]
  ])
  for (const a of log) assert.equal(typeof a.durationMs, 'number')
})

test('fallback with the SDK streaming: one complete stream from the deployment that answered', async (t) => {
  const u = await upstreams(t)
  const gw = await startGateway(t, { yaml: targetsYaml(u) + FIVE })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'client', maxRetries: 0 })
  const { data: stream, response } = await client.chat.completions.create({ model: 'smart', stream: true, messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-chunks': '5' } }).withResponse()
  let text = ''
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
  assert.equal(text, 'tok0 tok1 tok2 tok3 tok4 ')
  assert.equal(response.headers.get('x-gateway-target'), 'good')
  assert.equal(response.headers.get('x-gateway-attempts'), '5')
  assert.deepEqual(models(u.broken), ['m-error-event'])
  assert.equal(u.good.count(CHAT), 1)
})

test('maxAttempts bounds the attempts; when all fail the client gets the last answer as it came', async (t) => {
  const u = await upstreams(t)
  const gw = await startGateway(t, {
    yaml: targetsYaml(u) + `
modelGroups:
  capped:
    maxAttempts: 2
    deployments:
      - { target: failing, model: a }
      - { target: limited, model: b }
      - { target: good, model: c }
`
  })
  const res = await request(`${gw.url}${CHAT}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'capped', messages: [] }) })
  assert.equal(res.statusCode, 429)
  assert.equal(res.headers['retry-after'], '120')
  assert.equal(res.headers['x-gateway-target'], 'limited')
  assert.equal(res.headers['x-gateway-attempts'], '2')
  assert.match(await res.body.text(), /upstream says 429/)
  assert.equal(u.good.count(CHAT), 0)
})

test('no failover on other 4xx, after bytes reached the client, or when retryOn leaves the failure out', async (t) => {
  const bad = await failing(t, 400)
  const cut = await startMock(t)
  cut.override(CHAT, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write('data: {"id":"c1","object":"chat.completion.chunk","created":0,"model":"m","choices":[{"index":0,"delta":{"content":"part "},"finish_reason":null}]}\n\n')
    setTimeout(() => res.socket?.destroy(), 20)
  })
  const u = await upstreams(t)
  const gw = await startGateway(t, {
    yaml: targetsYaml(u) + `
  bad: { url: "${bad.url}" }
  cut: { url: "${cut.url}" }
modelGroups:
  four: { deployments: [{ target: bad, model: a }, { target: good, model: b }] }
  midway: { deployments: [{ target: cut, model: a }, { target: good, model: b }] }
  only429: { retryOn: ["429"], deployments: [{ target: failing, model: a }, { target: good, model: b }] }
`
  })
  const post = async (model: string, stream = false): Promise<{ status: number, text: string }> => {
    const res = await request(`${gw.url}${CHAT}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, stream, messages: [] }) })
    return { status: res.statusCode, text: await res.body.text() }
  }
  assert.equal((await post('four')).status, 400)
  const midway = await post('midway', true)
  assert.equal(midway.status, 200)
  assert.match(midway.text, /part /)
  assert.match(midway.text, /"error"/, 'the stream ends with the error event, as without a group')
  assert.equal((await post('only429')).status, 500)
  assert.equal(u.good.count(CHAT), 0, 'the next deployment was never asked')
})

test('/v1/models lists the groups; allowedModels names groups; an Azure deployment and a key per target', async (t) => {
  const mock = await startMock(t)
  const azure = await startMock(t)
  const claude = await startMock(t)
  const gw = await startGateway(t, {
    yaml: `
upstream: { url: "${mock.url}", key: sk-default-upstream-1 }
targets:
  az:
    url: "${azure.url}"
    provider: azure
    keys: [azure-upstream-key-1]
    azure: { apiVersion: 2024-10-21, deployments: { gpt-4o: prod-4o } }
  claude: { url: "${claude.url}", provider: anthropic, keys: [sk-ant-upstream-1] }
modelGroups:
  smart:
    deployments:
      - { target: az, model: gpt-4o }
      - { target: claude, model: claude-sonnet-4-5 }
      - { target: default, model: gpt-4o-mini }
  other: { deployments: [{ target: default, model: gpt-4o }] }
auth:
  keys:
    - { name: limited, key: gwk-limited-to-smart-1, allowedModels: [smart] }
    - { name: free, key: gwk-free-key-0001 }
`
  })
  const limited = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'gwk-limited-to-smart-1', maxRetries: 0 })
  const free = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'gwk-free-key-0001', maxRetries: 0 })
  const ids = (await free.models.list()).data.map(m => m.id)
  assert.ok(ids.includes('gpt-4o-mini'), 'the upstream\'s models')
  assert.ok(ids.includes('smart') && ids.includes('other'), 'and the groups')
  assert.deepEqual((await limited.models.list()).data.map(m => m.id), ['smart'], 'a restricted key sees what it may use')
  assert.equal((await free.models.retrieve('smart')).id, 'smart')

  // the group's first deployment answers (one of another dialect would be translated: test/translate/model-groups.test.ts)
  const { response } = await limited.chat.completions.create({ model: 'smart', messages: [{ role: 'user', content: 'hi' }] }).withResponse()
  assert.equal(response.headers.get('x-gateway-target'), 'az')
  assert.equal(claude.requests.length, 0)
  const sent = azure.requests.at(-1)!
  assert.equal(sent.path, '/openai/deployments/prod-4o/chat/completions', 'the deployment model maps to its Azure deployment')
  assert.equal(sent.headers['api-key'], 'azure-upstream-key-1', 'the key of the deployment\'s target')
  assert.equal(sent.headers.authorization, undefined, 'no header of the client or of another target')
  assert.equal((sent.json as { model: string }).model, 'gpt-4o')
  const [line] = completed(gw)
  assert.deepEqual([line.model, line.target, line.upstreamModel, line.attempts, line.attemptLog], ['smart', 'az', 'gpt-4o', 1, undefined], 'one attempt: the record itself says it all')

  await assert.rejects(limited.chat.completions.create({ model: 'other', messages: [] }), (err: InstanceType<typeof OpenAI.APIError>) => err.status === 403)
  await assert.rejects(limited.chat.completions.create({ model: 'gpt-4o', messages: [] }), (err: InstanceType<typeof OpenAI.APIError>) => err.status === 403)
})

test('every deployment unreachable: the gateway\'s 502 in the SDK\'s shape, still saying where it went', async (t) => {
  const down = `http://127.0.0.1:${await freePort()}`
  const gw = await startGateway(t, {
    yaml: `
targets:
  one: { url: "${down}" }
  two: { url: "${down}" }
modelGroups:
  gone: { deployments: [{ target: one, model: a }, { target: two, model: b }] }
`
  })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'client', maxRetries: 0 })
  const err = await client.chat.completions.create({ model: 'gone', messages: [] }).then(() => null, (e: unknown) => e as InstanceType<typeof OpenAI.APIError>)
  assert.equal(err?.status, 502)
  assert.equal(err?.headers?.get('x-gateway-attempts'), '2')
  assert.equal(err?.headers?.get('x-gateway-target'), 'two')
  const [line] = completed(gw)
  assert.deepEqual((line.attemptLog as Array<{ errorClass: string }>).map(a => a.errorClass), ['upstream_refused', 'upstream_refused'])
})
