/**
 * One tenant cannot starve the others (issue 17, item 5): requests in flight are capped per key
 * (per address without one) below the upstream pool, a body trickled in is refused once it falls
 * under the minimum pace, and an answer the client leaves unread is cut after a bounded stall, so
 * the upstream connections such requests pin come back. Real gateway, embedded mock upstream, the
 * official openai SDK for the requests that read the answers, raw sockets for the ones that stall.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import OpenAI from 'openai'
import { request } from 'undici'
import WebSocket from 'ws'
import { startGateway, startMock, type GatewayHandle } from '../helper.js'
import { until } from '../poll.js'
import type { MockUpstream } from '../../mock/upstream.js'
import { lastJsonBody, rawExchange, statusesOf, stillServing, upstreamReleased } from './support.js'

const KEY_A = 'sk-tenant-a-0000000000000000'
const KEY_B = 'sk-tenant-b-0000000000000000'
const KEY_RT = 'sk-tenant-rt-000000000000000'
const POOL = 6
const CAP = 4

/** raw connections still open at the end of a test: closed before the gateway (which waits for them) */
const rawSockets = new Set<Socket>()

async function setup (t: TestContext, env: Record<string, string> = {}): Promise<{ mock: MockUpstream, gw: GatewayHandle }> {
  // after-hooks run in the order they were added: this one before the gateway's close
  t.after(() => { for (const s of rawSockets) s.destroy() })
  const mock = await startMock(t)
  const gw = await startGateway(t, {
    env: {
      GATEWAY_UPSTREAM_URL: mock.url,
      GATEWAY_UPSTREAM_CONNECTIONS: String(POOL),
      GATEWAY_RATE_LIMIT_MAX_CONCURRENT: String(CAP),
      GATEWAY_CLIENT_KEYS: JSON.stringify([
        { name: 'tenant-a', key: KEY_A },
        { name: 'tenant-b', key: KEY_B },
        { name: 'tenant-rt', key: KEY_RT, maxConcurrent: 1 }
      ]),
      ...env
    }
  })
  return { mock, gw }
}

/** A raw connection that sends `data` and never reads a byte of the answer. */
async function openRaw (url: string, data: string): Promise<Socket> {
  const { hostname, port } = new URL(url)
  const socket = connect(Number(port), hostname)
  socket.on('error', () => {})
  rawSockets.add(socket)
  socket.once('close', () => rawSockets.delete(socket))
  await new Promise<void>(resolve => socket.once('connect', resolve))
  socket.pause()
  socket.write(data)
  return socket
}

/** A streamed upload that sent its first bytes and then trickles nothing more (for now). */
function slowUpload (key: string): string {
  return `POST /v1/files HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n`
}

/** A 64 MiB download whose answer the client never reads. */
function unreadDownload (key: string): string {
  return `GET /v1/files/file-big/content HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer ${key}\r\nX-Mock-Bytes: ${64 * 1024 * 1024}\r\n\r\n`
}

const pinned = (mock: MockUpstream): number => mock.requests.filter(r => !r.closed).length

test('tenant A holds its cap with slow uploads and unread answers; its next request is a 429 concurrency_limit the SDK reads; tenant B is served; released slots come back', async (t) => {
  const { mock, gw } = await setup(t)
  const held: Socket[] = []
  for (let i = 0; i < CAP / 2; i++) held.push(await openRaw(gw.url, slowUpload(KEY_A)))
  for (let i = 0; i < CAP / 2; i++) held.push(await openRaw(gw.url, unreadDownload(KEY_A)))
  await until('tenant A pins its upstream connections', () => pinned(mock) === CAP)
  assert.equal(gw.app.rateLimitStats.inFlight, CAP)

  // more held requests than the pool has connections: each one past the cap is refused at once
  const extra = await Promise.all(Array.from({ length: POOL }, async () => await rawExchange(gw.url, slowUpload(KEY_A), { boundMs: 5000 })))
  for (const r of extra) {
    assert.ok(r.closedByServer, 'refused without waiting for the body')
    assert.deepEqual(statusesOf(r.text), [429])
    assert.match(r.text, /\r\nretry-after: 1\r\n/i)
    assert.equal(lastJsonBody(r.text).error.code, 'concurrency_limit')
  }
  assert.equal(pinned(mock), CAP, 'the refused requests never reached the upstream')

  const clientA = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY_A, maxRetries: 0 })
  await assert.rejects(clientA.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.RateLimitError, String(err))
    assert.equal(err.status, 429)
    assert.equal(err.code, 'concurrency_limit')
    assert.equal(err.type, 'requests')
    assert.equal(err.headers.get('retry-after'), '1')
    return true
  })

  // tenant B: answered normally, plain and streamed (bounded: without the cap it would wait for a
  // connection A holds for ever)
  const clientB = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY_B, maxRetries: 0, timeout: 20_000 })
  const answer = await clientB.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-chunks': '2' } })
  assert.equal(answer.choices[0].message.content?.trim(), 'tok0 tok1')
  let streamed = ''
  for await (const chunk of await clientB.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-chunks': '2' } })) {
    streamed += chunk.choices[0]?.delta?.content ?? ''
  }
  assert.equal(streamed.trim(), 'tok0 tok1')

  // A lets go: every slot is given back (once each: A holds exactly its cap again afterwards)
  for (const s of held) s.destroy()
  await until('every slot is released', () => gw.app.rateLimitStats.inFlight === 0)
  await upstreamReleased(mock)
  const again = await clientA.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-chunks': '1' } })
  assert.equal(again.choices[0].message.content?.trim(), 'tok0')
  for (let i = 0; i < CAP; i++) await openRaw(gw.url, slowUpload(KEY_A))
  await until('tenant A holds its cap again', () => gw.app.rateLimitStats.inFlight === CAP)
  const refusedAgain = await rawExchange(gw.url, slowUpload(KEY_A), { boundMs: 5000 })
  assert.deepEqual(statusesOf(refusedAgain.text), [429])
  assert.equal(gw.app.rateLimitStats.concurrencyLimited, POOL + 2)
})

test('without a key (pass-through mode) the cap is per address; every way a request ends gives its slot back', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_RATE_LIMIT_MAX_CONCURRENT: '1', GATEWAY_AUTH_ENABLED: 'false' } })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-own-credential', maxRetries: 0 })
  const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'hi' }] }
  const slotFree = async (how: string): Promise<void> => { await until(`${how}: the slot is free`, () => gw.app.rateLimitStats.inFlight === 0) }

  // answered
  await client.chat.completions.create(chat)
  assert.equal(gw.app.rateLimitStats.inFlight, 0)
  // refused by the upstream, and failed upstream (reset before headers)
  await assert.rejects(client.chat.completions.create(chat, { headers: { 'x-mock-status': '500' } }), (err: unknown) => err instanceof OpenAI.APIError && err.status === 500)
  await assert.rejects(client.chat.completions.create(chat, { headers: { 'x-mock-fault': 'reset-before-headers' } }), (err: unknown) => err instanceof OpenAI.APIError && err.status === 502)
  await slotFree('upstream failures')

  // a stream abandoned by its client half way: while it runs, the address is at its cap
  const stream = await client.chat.completions.create({ ...chat, stream: true }, { headers: { 'x-mock-hold': 'abandon', 'x-mock-chunks': '3' } })
  const it = stream[Symbol.asyncIterator]()
  await it.next()
  await assert.rejects(client.chat.completions.create(chat), (err: unknown) => err instanceof OpenAI.RateLimitError && err.code === 'concurrency_limit')
  stream.controller.abort()
  await slotFree('abandoned stream')
  await upstreamReleased(mock)

  // the client gone before the answer
  const gone = new AbortController()
  const pending = client.chat.completions.create(chat, { headers: { 'x-mock-fault': 'hang-before-headers' }, signal: gone.signal })
  await until('the upstream has the request', () => mock.requests.some(r => r.headers['x-mock-fault'] === 'hang-before-headers'))
  gone.abort()
  await assert.rejects(pending)
  await slotFree('client gone')
  await upstreamReleased(mock)
  assert.equal(mock.requests.length, 5, 'no refused request reached the upstream')
})

test('a realtime session holds a slot of its key (auth.keys[].maxConcurrent) until it closes', async (t) => {
  const { gw } = await setup(t)
  const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/v1/realtime?model=gpt-4o-realtime-preview`, { headers: { authorization: `Bearer ${KEY_RT}` } })
  t.after(() => ws.terminate())
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject) })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY_RT, maxRetries: 0 })
  await assert.rejects(client.models.list(), (err: unknown) => err instanceof OpenAI.RateLimitError && err.code === 'concurrency_limit' && /at most 1 at once/.test(err.message))
  // another key is not affected
  const other = await request(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${KEY_B}` } })
  assert.equal(other.statusCode, 200)
  await other.body.dump()

  ws.close()
  await until('the session slot is released', () => gw.app.rateLimitStats.inFlight === 0)
  const list = await client.models.list()
  assert.ok(list.data.length > 0)
})

test('a body trickled in under the minimum pace is refused with 408, JSON and streamed upload alike, and its upstream request released', async (t) => {
  // never silent for the 1 s idle timeout: one byte every 200 ms, 5 bytes per second
  const { mock, gw } = await setup(t, { GATEWAY_BODY_IDLE_TIMEOUT_MS: '1000', GATEWAY_BODY_MIN_BYTES_PER_SECOND: '100' })
  const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x'.repeat(200) }] })
  const json = `POST /v1/chat/completions HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer ${KEY_A}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`
  const upload = slowUpload(KEY_A)
  const [slowJson, slowStream] = await Promise.all([
    rawExchange(gw.url, [json, ...body], { gapMs: 200, boundMs: 15_000 }),
    rawExchange(gw.url, [upload, ...Array.from({ length: 200 }, () => '1\r\nb\r\n')], { gapMs: 200, boundMs: 15_000 })
  ])
  for (const [what, r] of [['JSON body', slowJson], ['streamed upload', slowStream]] as const) {
    assert.ok(r.closedByServer, `${what}: cut before the bound`)
    assert.deepEqual(statusesOf(r.text), [408], what)
    assert.match(r.text, /\r\nconnection: close\r\n/i, what)
    assert.deepEqual(lastJsonBody(r.text), { error: { message: 'The request body arrived too slowly (under 100 bytes per second)', type: 'invalid_request_error', code: 'request_timeout' } }, what)
  }
  await until('both access lines', () => gw.logs.filter(l => l.includes('"errorClass":"client_body_too_slow"')).length === 2)
  assert.equal(mock.requests.filter(r => r.path === '/v1/chat/completions').length, 0, 'the JSON body never went upstream')
  await upstreamReleased(mock)
  assert.equal(gw.app.rateLimitStats.inFlight, 0)

  // a steady body above the pace is served
  const steady = await rawExchange(gw.url, [json.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'), ...body.match(/.{1,64}/g)!], { gapMs: 100, boundMs: 15_000 })
  assert.deepEqual(statusesOf(steady.text), [200])
  await stillServing(gw.url)
})

test('an answer the client leaves unread is cut after the stall timeout, releasing its upstream connection; a quiet stream the client reads is not', async (t) => {
  const { mock, gw } = await setup(t, { GATEWAY_RESPONSE_STALL_TIMEOUT_MS: '1000' })
  await openRaw(gw.url, unreadDownload(KEY_A))
  await until('the download is pinned upstream', () => mock.requests.length === 1)
  await upstreamReleased(mock, 'the unread download is cut and its upstream connection released')
  await until('the access line', () => gw.logs.some(l => l.includes('"errorClass":"client_stalled"')))
  await until('its slot is released', () => gw.app.rateLimitStats.inFlight === 0)

  // a stream that says nothing for longer than the stall timeout, read by its client: kept
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY_B, maxRetries: 0 })
  const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-hold': 'quiet', 'x-mock-chunks': '2' } })
  const it = stream[Symbol.asyncIterator]()
  const first = await it.next()
  let text = first.value?.choices[0]?.delta?.content ?? ''
  // the upstream stays silent for three stall timeouts before it goes on
  const resume = setTimeout(() => mock.release('quiet'), 3000)
  t.after(() => clearTimeout(resume))
  for (let r = await it.next(); r.done !== true; r = await it.next()) text += r.value.choices[0]?.delta?.content ?? ''
  assert.equal(text.trim(), 'tok0 tok1')
})

test('a cap that is no cap (0, or not below the smallest upstream pool) is named at boot', async (t) => {
  const mock = await startMock(t)
  for (const cap of ['0', String(POOL)]) {
    const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_CONNECTIONS: String(POOL), GATEWAY_RATE_LIMIT_MAX_CONCURRENT: cap } })
    const line = gw.logs.map(l => JSON.parse(l)).find(l => /one client can hold every upstream connection/.test(l.msg))
    assert.equal(line?.level, 40, `maxConcurrent ${cap}`)
  }
  const fine = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_CONNECTIONS: String(POOL), GATEWAY_RATE_LIMIT_MAX_CONCURRENT: String(CAP) } })
  assert.ok(!fine.logText().includes('one client can hold every upstream connection'))
})
