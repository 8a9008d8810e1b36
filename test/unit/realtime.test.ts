/**
 * The realtime route through @fastify/websocket's `injectWS`: the session relayed to the mock's
 * /v1/realtime, the credentials and headers the upstream sees, close codes both ways, refusals
 * before the upgrade, the early-message queue, and the session's log line and usage record.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import type { FastifyInstance } from 'fastify'
import type { WebSocket } from 'ws'
import { startMock } from '../helper.js'
import { injectGateway, type InjectedGateway } from './gateway.js'
import { startHeldUpstream } from '../realtime/ws-helpers.js'

const MODEL = 'gpt-4o-realtime-preview'

/**
 * injectWS hands the gateway a bare object as its request. What Node's HTTP server would have set
 * on a real upgrade request (the peer address, the HTTP version, the raw header lines) is given
 * here, so the hooks that read them see what they would see on a socket.
 */
function upgradeContext (headers: Record<string, string>, remoteAddress = '127.0.0.1'): Record<string, unknown> {
  const all = { host: 'gateway.test', ...headers }
  const socket = Object.assign(new EventEmitter(), { remoteAddress, destroyed: false, destroy () { this.destroyed = true } })
  return { headers: all, rawHeaders: Object.entries(all).flat(), socket, httpVersionMajor: 1, httpVersionMinor: 1 }
}

/**
 * The injected transport is two in-memory streams: after a closing handshake nothing ends them the
 * way a TCP close would, so `ws` would wait its 30 s close timeout. Closing handshakes that are
 * done (the client saw its close) end the server side's transport here.
 */
function endClosedTransports (app: FastifyInstance): void {
  for (const socket of app.websocketServer.clients) if (socket.readyState === socket.CLOSING) socket.terminate()
}

interface Session {
  ws: WebSocket
  messages: Array<Record<string, unknown>>
  received: (n: number) => Promise<void>
  closed: Promise<{ code: number, reason: string }>
}

async function open (gw: InjectedGateway, path: string, headers: Record<string, string> = {}): Promise<Session> {
  const messages: Array<Record<string, unknown>> = []
  const arrived = new EventEmitter()
  let closedResolve: (v: { code: number, reason: string }) => void = () => {}
  const closed = new Promise<{ code: number, reason: string }>(resolve => { closedResolve = resolve })
  const ws = await gw.app.injectWS(path, upgradeContext(headers), {
    onInit: (socket) => {
      socket.on('message', (data: Buffer) => { messages.push(JSON.parse(data.toString()) as Record<string, unknown>); arrived.emit('message') })
      socket.on('close', (code: number, reason: Buffer) => {
        closedResolve({ code, reason: reason.toString() })
        endClosedTransports(gw.app)
      })
    }
  })
  const received = async (n: number): Promise<void> => {
    while (messages.length < n) {
      const more = await Promise.race([new Promise(resolve => arrived.once('message', () => resolve(true))), closed.then(() => false)])
      if (more === false && messages.length < n) throw new Error(`the session closed after ${messages.length} of ${n} messages`)
    }
  }
  return { ws, messages, received, closed }
}

async function until (what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 300 && !check(); i++) await new Promise(resolve => setTimeout(resolve, 10))
  if (!check()) throw new Error(`timed out waiting for: ${what}`)
}

test('relays both ways with the upstream key; OpenAI-Beta and query kept; the key sub-protocol never goes upstream; one log line and one usage record', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEY: 'sk-upstream-rt-1' } })
  const s = await open(gw, `/v1/realtime?model=${MODEL}`, {
    'sec-websocket-protocol': 'realtime, openai-insecure-api-key.sk-client-browser-1, openai-beta.realtime-v1',
    'openai-beta': 'realtime=v1'
  })
  // sent at once: the gateway queues it until the upstream is open
  s.ws.send(JSON.stringify({ type: 'response.create' }))
  s.ws.send(JSON.stringify({ type: 'conversation.item.create', item: { text: 'é 你好' } }))
  await s.received(6)
  assert.deepEqual(s.messages.map(m => m.type), ['session.created', 'response.created', 'response.output_text.delta', 'response.output_text.delta', 'response.done', 'mock.echo'])
  assert.deepEqual((s.messages[5].data as { item: unknown }).item, { text: 'é 你好' })
  const upstream = mock.wsConnections[0]
  assert.equal(upstream.url, `/v1/realtime?model=${MODEL}`)
  assert.equal(upstream.headers.authorization, 'Bearer sk-upstream-rt-1')
  assert.equal(upstream.headers['openai-beta'], 'realtime=v1')
  assert.equal(upstream.headers['sec-websocket-protocol'], 'realtime,openai-beta.realtime-v1')
  assert.ok(!JSON.stringify(upstream.headers).includes('sk-client-browser-1'))

  s.ws.close(1000, 'done')
  assert.deepEqual(await s.closed, { code: 1000, reason: 'done' })
  await until('the session line', () => gw.logs().some(l => l.msg === 'realtime session closed'))
  const line = gw.logs().find(l => l.msg === 'realtime session closed')!
  assert.equal(line.target, 'default')
  assert.equal(line.model, MODEL)
  assert.equal(line.messagesFromClient, 2)
  assert.equal(line.messagesToClient, 6)
  assert.equal(line.closeCode, 1000)
  assert.equal(line.closedBy, 'client')
  await until('the upstream close', () => upstream.closeCode !== undefined)
  assert.equal(upstream.closeCode, 1000)
  await until('the usage record', () => gw.logs().some(l => l.msg === 'usage'))
  const usage = gw.logs().find(l => l.msg === 'usage')!
  assert.equal(usage.model, MODEL)
  assert.equal(typeof usage.totalTokens, 'number')
  assert.ok((usage.totalTokens as number) > 0, 'response.done usage counted')
})

test('close codes from the upstream reach the client; a dropped upstream becomes 1011', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const a = await open(gw, '/v1/realtime')
  await a.received(1)
  a.ws.send(JSON.stringify({ type: 'mock.close', code: 4001, reason: 'upstream says bye' }))
  assert.deepEqual(await a.closed, { code: 4001, reason: 'upstream says bye' })
  const b = await open(gw, '/v1/realtime')
  await b.received(1)
  b.ws.send(JSON.stringify({ type: 'mock.terminate' }))
  assert.deepEqual(await b.closed, { code: 1011, reason: 'upstream connection lost' })
  await until('both session lines', () => gw.logs().filter(l => l.msg === 'realtime session closed').length === 2)
  assert.deepEqual(gw.logs().filter(l => l.msg === 'realtime session closed').map(l => l.closedBy), ['upstream', 'upstream'])
})

test('upstream unreachable → 1011; upstream refusing the handshake → 1011 or 1013 with its status', async (t) => {
  const down = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: 'http://127.0.0.1:9' } })
  const a = await open(down, '/v1/realtime')
  assert.deepEqual(await a.closed, { code: 1011, reason: 'upstream unreachable' })
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const b = await open(gw, '/v1/realtime', { 'x-mock-status': '401' })
  assert.deepEqual(await b.closed, { code: 1011, reason: 'upstream refused the connection (401)' })
  const c = await open(gw, '/v1/realtime', { 'x-mock-status': '429' })
  assert.deepEqual(await c.closed, { code: 1013, reason: 'upstream refused the connection (429)' })
})

test('refusals before the upgrade: no key 401, a model the key may not use 403, a plain GET 426; no upstream dial', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, {
    yaml: `
upstream: { url: '${mock.url}' }
auth:
  keys:
    - { name: web, key: ck-rt-web-0001, allowedModels: [${MODEL}] }
`
  })
  await assert.rejects(open(gw, `/v1/realtime?model=${MODEL}`), /Unexpected server response: 401/)
  await assert.rejects(open(gw, '/v1/realtime?model=gpt-4o', { authorization: 'Bearer ck-rt-web-0001' }), /Unexpected server response: 403/)
  const plain = await gw.app.inject({ url: `/v1/realtime?model=${MODEL}`, headers: { authorization: 'Bearer ck-rt-web-0001' } })
  assert.equal(plain.statusCode, 426)
  assert.equal(plain.json().error.type, 'invalid_request_error')
  assert.equal(mock.wsConnections.length, 0)
  // the browser form of the key: a sub-protocol
  const s = await open(gw, `/v1/realtime?model=${MODEL}`, { 'sec-websocket-protocol': 'realtime, openai-insecure-api-key.ck-rt-web-0001' })
  await s.received(1)
  assert.equal(s.messages[0].type, 'session.created')
  assert.equal(mock.wsConnections.length, 1)
  s.ws.close(1000)
  await s.closed
})

test('the queue of messages sent before the upstream opens is bounded: 1008 past the count, 1009 past the bytes', async (t) => {
  const upstream = await startHeldUpstream(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: upstream.url, GATEWAY_REALTIME_QUEUE_MAX_MESSAGES: '3', GATEWAY_REALTIME_QUEUE_MAX_BYTES: '2048' } })
  const a = await open(gw, '/v1/realtime')
  for (let i = 0; i < 4; i++) a.ws.send(JSON.stringify({ i }))
  assert.deepEqual(await a.closed, { code: 1008, reason: 'more than 3 messages before the upstream opened' })
  const b = await open(gw, '/v1/realtime')
  b.ws.send('x'.repeat(1500))
  b.ws.send('y'.repeat(1500))
  assert.deepEqual(await b.closed, { code: 1009, reason: 'more than 2048 bytes before the upstream opened' })
})

test('the session limits: idle time and maximum length close both sides with 1000 and a reason; a client message over maxPayload is 1009', async (t) => {
  const mock = await startMock(t)
  const idle = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_REALTIME_IDLE_TIMEOUT_MS: '100' } })
  const a = await open(idle, '/v1/realtime')
  assert.deepEqual(await a.closed, { code: 1000, reason: 'session idle for 100 ms' })
  await until('the upstream close', () => mock.wsConnections[0]?.closeCode !== undefined)
  assert.equal(mock.wsConnections[0].closeCode, 1000)
  const max = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_REALTIME_MAX_SESSION_MS: '100' } })
  const b = await open(max, '/v1/realtime')
  assert.deepEqual(await b.closed, { code: 1000, reason: 'maximum session length reached' })
  const small = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_REALTIME_MAX_PAYLOAD: '4096' } })
  const c = await open(small, '/v1/realtime')
  await c.received(1)
  const upstreams = mock.wsConnections.length
  c.ws.send('z'.repeat(5000))
  assert.equal((await c.closed).code, 1009)
  await until('the upstream close', () => mock.wsConnections[upstreams - 1]?.closeCode !== undefined)
  assert.equal(mock.wsConnections[upstreams - 1].closeCode, 1009)
})

test('gateway shutdown closes sessions with 1001 on both sides', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const s = await open(gw, '/v1/realtime')
  await s.received(1)
  await gw.app.close()
  assert.deepEqual(await s.closed, { code: 1001, reason: 'gateway shutting down' })
  await until('the upstream close', () => mock.wsConnections[0]?.closeCode !== undefined)
  assert.equal(mock.wsConnections[0].closeCode, 1001)
})
