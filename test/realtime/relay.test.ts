/**
 * The realtime relay over real sockets: a `ws` client → the gateway → the mock's /v1/realtime
 * (or a purpose-built upstream where the mock cannot play the part).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import Fastify, { type FastifyBaseLogger, type FastifyRequest, type FastifyReply } from 'fastify'
import { pino } from 'pino'
import { request } from 'undici'
import { loadConfig } from '../../config/load.js'
import app from '../../src/app.js'
import type { RealtimeSessionSummary } from '../../src/realtime/summary.js'
import { captureLogs, startGateway, startMock, tempDir } from '../helper.js'
import { Probe, closedPortUrl, startHeldUpstream, startSilentServer, waitFor, wsUrl } from './ws-helpers.js'

const KEY_PROTOCOL = 'openai-insecure-api-key.sk-client-browser-1'

function logLine (lines: string[], msg: string): Record<string, unknown> | undefined {
  for (const line of lines) {
    const parsed = JSON.parse(line) as Record<string, unknown>
    if (parsed.msg === msg) return parsed
  }
  return undefined
}

test('relays both ways: upstream key, OpenAI-Beta and query kept, key sub-protocol never upstream', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEY: 'sk-upstream-rt-1' } })
  const client = new Probe(wsUrl(gw.url), ['realtime', KEY_PROTOCOL, 'openai-beta.realtime-v1'], { headers: { 'openai-beta': 'realtime=v1' } })
  await client.opened
  assert.equal(client.ws.protocol, 'realtime', 'the chosen protocol is echoed to the client')
  await client.received(1)
  assert.equal(client.json(0).type, 'session.created')
  assert.equal((client.json(0).session as { model: string }).model, 'gpt-4o-realtime-preview')

  client.send({ type: 'response.create' })
  client.send({ type: 'conversation.item.create', item: { text: 'é 你好' } })
  await client.received(6)
  assert.deepEqual(client.types(), ['session.created', 'response.created', 'response.output_text.delta', 'response.output_text.delta', 'response.done', 'mock.echo'])
  assert.deepEqual((client.json(5).data as { item: unknown }).item, { text: 'é 你好' })

  const upstream = mock.wsConnections[0]
  assert.equal(upstream.url, '/v1/realtime?model=gpt-4o-realtime-preview')
  assert.equal(upstream.headers.authorization, 'Bearer sk-upstream-rt-1')
  assert.equal(upstream.headers['openai-beta'], 'realtime=v1')
  assert.equal(upstream.protocol, 'realtime')
  assert.equal(upstream.headers['sec-websocket-protocol'], 'realtime,openai-beta.realtime-v1')
  assert.ok(!JSON.stringify(upstream.headers).includes('sk-client-browser-1'), 'the browser key never reaches the upstream')

  client.ws.close(1000, 'done')
  assert.deepEqual(await client.waitClosed(), { code: 1000, reason: 'done' })
  await waitFor(() => logLine(gw.logs, 'realtime session closed') !== undefined, 'the session log line')
  const line = logLine(gw.logs, 'realtime session closed')!
  assert.equal(line.level, 30)
  assert.equal(line.target, 'default')
  assert.equal(line.model, 'gpt-4o-realtime-preview')
  assert.equal(line.messagesFromClient, 2)
  assert.equal(line.messagesToClient, 6)
  assert.equal(line.closeCode, 1000)
  assert.equal(line.closedBy, 'client')
  assert.deepEqual(line.tokens, { input: 10, output: 20, total: 30, responses: 1 })
  assert.ok(!gw.logText().includes('sk-client-browser-1'), 'the browser key is in no log line')
  assert.ok(!gw.logText().includes('sk-upstream-rt-1'))
})

test('binary frames stay binary, text stays text, byte for byte', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const client = new Probe(wsUrl(gw.url))
  await client.opened
  await client.received(1)
  const audio = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) % 256))
  client.ws.send(audio, { binary: true })
  client.send('not json')
  await client.received(3)
  assert.equal(client.messages[1].binary, true)
  assert.ok(client.messages[1].data.equals(audio))
  assert.equal(client.messages[2].binary, false)
  assert.deepEqual(client.json(2), { event_id: 'event_sess_mock1_2', type: 'mock.echo', data: 'not json' })
})

test('no OpenAI-Beta and no credentials: nothing invented, no crash', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const client = new Probe(wsUrl(gw.url))
  await client.opened
  await client.received(1)
  const h = mock.wsConnections[0].headers
  assert.equal(h['openai-beta'], undefined)
  assert.equal(h.authorization, undefined)
  assert.equal(h['sec-websocket-protocol'], undefined)
  assert.equal(client.ws.protocol, '')
})

test('pass-through mode (no upstream key, no client auth): the browser key becomes the upstream bearer, never a sub-protocol', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const client = new Probe(wsUrl(gw.url), ['realtime', KEY_PROTOCOL])
  await client.opened
  await client.received(1)
  const h = mock.wsConnections[0].headers
  assert.equal(h.authorization, 'Bearer sk-client-browser-1')
  assert.equal(h['sec-websocket-protocol'], 'realtime')
})

test('close codes and reasons from the upstream reach the client; a dropped upstream becomes 1011', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })

  const a = new Probe(wsUrl(gw.url))
  await a.received(1)
  a.send({ type: 'mock.close', code: 4001, reason: 'upstream says bye' })
  assert.deepEqual(await a.waitClosed(), { code: 4001, reason: 'upstream says bye' })

  const b = new Probe(wsUrl(gw.url))
  await b.received(1)
  b.send({ type: 'mock.close', code: 1000 })
  assert.deepEqual(await b.waitClosed(), { code: 1000, reason: '' })

  const c = new Probe(wsUrl(gw.url))
  await c.received(1)
  c.send({ type: 'mock.terminate' })
  assert.deepEqual(await c.waitClosed(), { code: 1011, reason: 'upstream connection lost' })
})

test('close codes and reasons from the client reach the upstream', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const client = new Probe(wsUrl(gw.url))
  await client.received(1)
  client.ws.close(4002, 'client says bye')
  await client.waitClosed()
  await waitFor(() => mock.wsConnections[0]?.closeCode !== undefined, 'the upstream close')
  assert.equal(mock.wsConnections[0].closeCode, 4002)
  assert.equal(mock.wsConnections[0].closeReason, 'client says bye')

  // a client that vanishes without a close frame: the upstream hears 1001
  const gone = new Probe(wsUrl(gw.url))
  await gone.received(1)
  gone.ws.terminate()
  await waitFor(() => mock.wsConnections[1]?.closeCode !== undefined, 'the second upstream close')
  assert.equal(mock.wsConnections[1].closeCode, 1001)
  assert.equal(mock.wsConnections[1].closeReason, 'client went away')
})

test('upstream down → 1011; upstream refusing the handshake → 1011 / 1013 with its status', async (t) => {
  const down = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: await closedPortUrl() } })
  const a = new Probe(wsUrl(down.url))
  await a.opened
  assert.deepEqual(await a.waitClosed(), { code: 1011, reason: 'upstream unreachable' })

  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const b = new Probe(wsUrl(gw.url), [], { headers: { 'x-mock-status': '401' } })
  assert.deepEqual(await b.waitClosed(), { code: 1011, reason: 'upstream refused the connection (401)' })
  const c = new Probe(wsUrl(gw.url), [], { headers: { 'x-mock-status': '429' } })
  assert.deepEqual(await c.waitClosed(), { code: 1013, reason: 'upstream refused the connection (429)' })
})

test('an upstream that never completes the handshake → 1013 after the open timeout', async (t) => {
  const silent = await startSilentServer(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: silent, GATEWAY_REALTIME_OPEN_TIMEOUT_MS: '150' } })
  const client = new Probe(wsUrl(gw.url))
  await client.opened
  assert.deepEqual(await client.waitClosed(), { code: 1013, reason: 'upstream did not open within 150 ms' })
})

test('messages sent before the upstream opens are queued and delivered in order', async (t) => {
  const upstream = await startHeldUpstream(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: upstream.url } })
  const client = new Probe(wsUrl(gw.url), ['realtime'])
  await client.opened
  for (let i = 0; i < 20; i++) client.send({ type: 'early', i })
  client.ws.send(Buffer.from([0, 1, 2, 255]), { binary: true })
  await waitFor(() => upstream.upgrades.length === 1, 'the upstream handshake to start')
  upstream.release()
  await waitFor(() => upstream.received[0]?.length === 21, 'the queued messages upstream')
  const got = upstream.received[0]
  assert.deepEqual(got.slice(0, 20).map(m => (JSON.parse(m.data.toString()) as { i: number }).i), Array.from({ length: 20 }, (_, i) => i))
  assert.equal(got[20].binary, true)
  assert.deepEqual([...got[20].data], [0, 1, 2, 255])
  // and the session is live afterwards, both ways
  client.send({ type: 'late' })
  upstream.sockets[0].send('{"type":"from.upstream"}')
  await client.received(1)
  assert.equal(client.json(0).type, 'from.upstream')
  await waitFor(() => got.length === 22, 'the late message')
})

test('the early-message queue is bounded: 1008 past the count, 1009 past the bytes', async (t) => {
  const upstream = await startHeldUpstream(t)
  const gw = await startGateway(t, {
    env: { GATEWAY_UPSTREAM_URL: upstream.url, GATEWAY_REALTIME_QUEUE_MAX_MESSAGES: '3', GATEWAY_REALTIME_QUEUE_MAX_BYTES: '2048' }
  })
  const a = new Probe(wsUrl(gw.url))
  await a.opened
  for (let i = 0; i < 4; i++) a.send({ i })
  assert.deepEqual(await a.waitClosed(), { code: 1008, reason: 'more than 3 messages before the upstream opened' })

  const b = new Probe(wsUrl(gw.url))
  await b.opened
  b.send('x'.repeat(1500))
  b.send('y'.repeat(1500))
  assert.deepEqual(await b.waitClosed(), { code: 1009, reason: 'more than 2048 bytes before the upstream opened' })
  upstream.release()
})

test('maxPayload applies to client messages (1009)', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_REALTIME_MAX_PAYLOAD: '4096' } })
  const client = new Probe(wsUrl(gw.url))
  await client.received(1)
  client.send('z'.repeat(5000))
  const closed = await client.waitClosed()
  assert.equal(closed.code, 1009)
  await waitFor(() => mock.wsConnections[0]?.closeCode !== undefined, 'the upstream close')
  assert.equal(mock.wsConnections[0].closeCode, 1009)
})

test('maxPayload applies to upstream messages (1009)', async (t) => {
  const upstream = await startHeldUpstream(t)
  upstream.release()
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: upstream.url, GATEWAY_REALTIME_MAX_PAYLOAD: '4096' } })
  const client = new Probe(wsUrl(gw.url), ['realtime'])
  await waitFor(() => upstream.sockets.length === 1, 'the upstream socket')
  upstream.sockets[0].send('u'.repeat(5000))
  assert.equal((await client.waitClosed()).code, 1009)
  assert.equal(client.messages.length, 0)
})

test('an onRequest hook that refuses answers the upgrade with HTTP; no socket, no upstream dial', async (t) => {
  const mock = await startMock(t)
  const { config } = loadConfig({ env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_PORT: '0' }, argv: [], cwd: tempDir() })
  const { stream, lines } = captureLogs()
  const fastify = Fastify({ loggerInstance: pino({ level: 'info' }, stream) as FastifyBaseLogger })
  // the session's summary, as its closing line reports it
  const summaries = (): Array<Partial<RealtimeSessionSummary>> => lines.map(l => JSON.parse(l)).filter(l => l.msg === 'realtime session closed')
  // stands in for the auth / IP / rate-limit plugins, which are root onRequest hooks
  // (registered before the app, so before @fastify/websocket: the worst order for socket cleanup)
  fastify.addHook('onRequest', async function refuse (req: FastifyRequest, reply: FastifyReply) {
    const status = Number(req.headers['x-test-refuse'] ?? 0)
    if (status > 0) return reply.code(status).send({ error: { message: 'refused by test hook', type: 'test', code: null } })
  })
  await fastify.register(app, { config })
  t.after(() => fastify.close())
  const url = await fastify.listen({ host: '127.0.0.1', port: 0 })

  for (const status of [401, 403, 429]) {
    const refused = new Probe(wsUrl(url), ['realtime', KEY_PROTOCOL], { headers: { 'x-test-refuse': String(status) } })
    await refused.waitClosed()
    assert.equal(refused.refusedWith, status)
    assert.match(refused.refusedBody, /refused by test hook/)
  }
  assert.equal(mock.wsConnections.length, 0, 'the upstream was never dialled')
  assert.equal(mock.count('/v1/realtime'), 0)

  // the same hook letting the upgrade through; its session hook gets the summary
  const ok = new Probe(wsUrl(url))
  await ok.received(1)
  ok.ws.close(4000, 'bye')
  await waitFor(() => summaries().length === 1, 'the session summary')
  const [summary] = summaries()
  assert.equal(summary.closeCode, 4000)
  assert.equal(summary.closeReason, 'bye')
  assert.equal(summary.upstreamOpened, true)
  assert.equal(summary.messagesToClient, 1)
})

test('a plain GET of /v1/realtime is told to upgrade (426 JSON)', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const res = await request(`${gw.url}/v1/realtime?model=x`)
  assert.equal(res.statusCode, 426)
  const body = await res.body.json() as { error: { code: string } }
  assert.equal(body.error.code, 'upgrade_required')
})

test('keepalive drops a client that stops answering pings; the upstream hears 1001', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_REALTIME_KEEPALIVE_MS: '50' } })
  let pings = 0
  const client = new Probe(wsUrl(gw.url), [], { autoPong: false })
  client.ws.on('ping', () => { pings++ })
  await client.received(1)
  assert.equal((await client.waitClosed()).code, 1006)
  assert.ok(pings >= 1)
  await waitFor(() => mock.wsConnections[0]?.closeCode !== undefined, 'the upstream close')
  assert.equal(mock.wsConnections[0].closeCode, 1001)

  // a client that answers is kept through many intervals
  const alive = new Probe(wsUrl(gw.url))
  let alivePings = 0
  alive.ws.on('ping', () => { alivePings++ })
  await alive.received(1)
  await waitFor(() => alivePings >= 5, 'five pings')
  assert.equal(alive.closed, null)
})

test('idle timeout and maximum session length close both sides with 1000 and a reason', async (t) => {
  const mock = await startMock(t)
  const idle = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_REALTIME_IDLE_TIMEOUT_MS: '100' } })
  const a = new Probe(wsUrl(idle.url))
  assert.deepEqual(await a.waitClosed(), { code: 1000, reason: 'session idle for 100 ms' })
  await waitFor(() => mock.wsConnections[0]?.closeCode !== undefined, 'the upstream close')
  assert.equal(mock.wsConnections[0].closeCode, 1000)

  const max = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_REALTIME_MAX_SESSION_MS: '100' } })
  const b = new Probe(wsUrl(max.url))
  assert.deepEqual(await b.waitClosed(), { code: 1000, reason: 'maximum session length reached' })
})

test('gateway shutdown closes sessions with 1001 on both sides', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const client = new Probe(wsUrl(gw.url))
  await client.received(1)
  await gw.app.close()
  assert.deepEqual(await client.waitClosed(), { code: 1001, reason: 'gateway shutting down' })
  await waitFor(() => mock.wsConnections[0]?.closeCode !== undefined, 'the upstream close')
  assert.equal(mock.wsConnections[0].closeCode, 1001)
})

/** Polls until `value()` stops changing (the pipes have filled and stalled), then returns it. */
async function settled (value: () => number): Promise<number> {
  let last = -1
  let same = 0
  await waitFor(() => {
    const now = value()
    same = now === last ? same + 1 : 0
    last = now
    return same >= 10
  }, 'the buffers to settle', 10_000)
  return last
}

test('backpressure: a slow reader on one side stalls the other side instead of filling the gateway', async (t) => {
  const upstream = await startHeldUpstream(t)
  upstream.release()
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: upstream.url } })
  const client = new Probe(wsUrl(gw.url), ['realtime'])
  await client.opened
  await waitFor(() => upstream.sockets.length === 1, 'the upstream socket')
  const up = upstream.sockets[0]
  const MESSAGES = 64
  const SIZE = 512 * 1024
  const frame = (i: number): Buffer => { const b = Buffer.alloc(SIZE, i); b.writeUInt32BE(i, 0); return b }

  // upstream → client, with the client not reading: the upstream's own send buffer must stay
  // large (the gateway stopped reading it) rather than drain into the gateway's memory
  client.ws.pause()
  for (let i = 0; i < MESSAGES; i++) up.send(frame(i))
  const stuckUpstream = await settled(() => up.bufferedAmount)
  assert.ok(stuckUpstream > 8 * 1024 * 1024, `upstream still holds ${stuckUpstream} bytes`)
  client.ws.resume()
  await client.received(MESSAGES)
  assert.deepEqual(client.messages.map(m => m.data.readUInt32BE(0)), Array.from({ length: MESSAGES }, (_, i) => i))
  assert.ok(client.messages.every(m => m.binary && m.data.length === SIZE))

  // client → upstream, with the upstream not reading
  up.pause()
  for (let i = 0; i < MESSAGES; i++) client.ws.send(frame(i))
  const stuckClient = await settled(() => client.ws.bufferedAmount)
  assert.ok(stuckClient > 8 * 1024 * 1024, `client still holds ${stuckClient} bytes`)
  up.resume()
  await waitFor(() => upstream.received[0].length === MESSAGES, 'all messages upstream')
  assert.deepEqual(upstream.received[0].map(m => m.data.readUInt32BE(0)), Array.from({ length: MESSAGES }, (_, i) => i))
})
