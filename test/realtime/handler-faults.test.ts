/**
 * No WebSocket frame handler throws out of its callback: ws calls the relay's listeners from its
 * socket's 'data' handler, where a throw would stop the process. A fault in one (made on purpose
 * here, in the relay's own code) ends that one session: the client gets a realtime `error` event
 * in the shape the SDKs read and a 1011 close, the gateway logs one error line, and the next
 * session and the health probe are served.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { RealtimeRelay } from '../../src/realtime/relay.js'
import { UsageCounter } from '../../src/realtime/usage.js'
import { startGateway, startMock, type GatewayHandle } from '../helper.js'
import { stillServing } from '../hardening/support.js'
import { Probe, waitFor, wsUrl } from './ws-helpers.js'

async function gateway (t: TestContext): Promise<GatewayHandle> {
  const mock = await startMock(t)
  return await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEY: 'sk-upstream-faults' } })
}

/** Replaces `object[name]` for the test: `fault` runs instead, once; then the original again. */
function faultOnce<T extends object, K extends keyof T> (t: TestContext, object: T, name: K, fault: () => never): { fired: () => boolean } {
  const original = Object.getOwnPropertyDescriptor(object, name) as PropertyDescriptor
  let fired = false
  const key = typeof original.get === 'function' ? 'get' : 'value'
  const real = original[key] as (...args: unknown[]) => unknown
  Object.defineProperty(object, name, {
    ...original,
    [key]: function (this: unknown, ...args: unknown[]) {
      if (!fired) {
        fired = true
        fault()
      }
      return real.apply(this, args)
    }
  })
  t.after(() => { Object.defineProperty(object, name, original) })
  return { fired: () => fired }
}

function errorLines (gw: GatewayHandle): Array<Record<string, unknown>> {
  return gw.logs.map(l => JSON.parse(l) as Record<string, unknown>).filter(l => (l.level as number) >= 50)
}

/** A fresh session that completes a response, then the health probe. */
async function stillRelaying (gw: GatewayHandle): Promise<void> {
  const next = new Probe(wsUrl(gw.url))
  await next.opened
  next.send({ type: 'response.create' })
  await next.received(5)
  assert.equal(next.json(4).type, 'response.done')
  next.ws.close(1000)
  await next.waitClosed()
  await stillServing(gw.url)
}

test('a throw in the upstream message handler ends that session with an error event and 1011; the gateway goes on', async (t) => {
  const gw = await gateway(t)
  const fault = faultOnce(t, UsageCounter.prototype, 'observe', () => { throw new TypeError('fault injected in a frame handler') })
  const client = new Probe(wsUrl(gw.url))
  await client.opened
  client.send({ type: 'response.create' })
  const closed = await client.waitClosed()
  assert.equal(fault.fired(), true)
  assert.deepEqual(closed, { code: 1011, reason: 'gateway error' })
  const event = client.json(client.messages.length - 1) as { type: string, event_id: string, error: Record<string, unknown> }
  assert.equal(event.type, 'error')
  assert.match(event.event_id, /^event_/)
  assert.deepEqual(event.error, { type: 'server_error', code: 'gateway_error', message: 'The gateway failed to relay this session', param: null, event_id: null })

  await waitFor(() => gw.logs.some(l => l.includes('"msg":"realtime session closed"')), 'the session line')
  const errors = errorLines(gw)
  assert.equal(errors.length, 1, 'one error line')
  assert.equal(errors[0].msg, 'realtime relay failed')
  assert.deepEqual(errors[0].cause, { name: 'TypeError', message: 'fault injected in a frame handler' })
  await stillRelaying(gw)
})

test('a throw in the close handler is caught too: one error line, the gateway goes on', async (t) => {
  const gw = await gateway(t)
  const fault = faultOnce(t, UsageCounter.prototype, 'usage', () => { throw new RangeError('fault injected in a close handler') })
  const client = new Probe(wsUrl(gw.url))
  await client.opened
  await client.received(1)
  client.ws.close(1000, 'bye')
  await client.waitClosed()
  await waitFor(() => fault.fired() && errorLines(gw).length > 0, 'the fault and its log line')
  assert.deepEqual(errorLines(gw).map(l => l.msg), ['realtime relay failed'])
  await stillRelaying(gw)
})

test('a throw while the session is set up ends it with an error event and 1011, one log line', async (t) => {
  const gw = await gateway(t)
  const fault = faultOnce(t, RealtimeRelay.prototype, 'start', () => { throw new Error('fault injected at setup') })
  const client = new Probe(wsUrl(gw.url))
  await client.opened
  const closed = await client.waitClosed()
  assert.equal(fault.fired(), true)
  assert.equal(closed.code, 1011)
  assert.equal(client.json(0).type, 'error')
  assert.deepEqual(errorLines(gw).map(l => l.msg), ['realtime relay failed'])
  await stillRelaying(gw)
})
