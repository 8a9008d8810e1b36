/**
 * Client aborts and upstream failures: what the client sees and that the upstream is released.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { startGateway, startMock } from '../helper.js'
import type { MockUpstream } from '../../mock/upstream.js'

const streamBody = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true })

/** Polls a condition with a bounded number of tries (no timing assertion: only "eventually"). */
async function eventually (check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return
    await sleep(25)
  }
  assert.fail(`never happened: ${what}`)
}

function lastStream (mock: MockUpstream) {
  const s = mock.streams.at(-1)
  assert.ok(s !== undefined, 'the mock started a stream')
  return s
}

test('a client abort mid-stream closes the upstream request', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const ac = new AbortController()
  const res = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-mock-chunks': '400', 'x-mock-delay-ms': '20' },
    body: streamBody,
    signal: ac.signal
  })
  res.body.once('data', () => ac.abort()) // abort once the first chunk arrived
  await new Promise(resolve => res.body.once('error', resolve).once('close', resolve))
  await eventually(() => lastStream(mock).aborted, 'upstream stream aborted')
  const s = lastStream(mock)
  assert.ok(s.chunksSent < 400, 'the upstream stopped early')
  assert.equal(s.chunksAfterAbort, 0)
})

test('a client abort before the upstream answered closes the upstream request', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const ac = new AbortController()
  const pending = request(`${gw.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-mock-fault': 'hang-before-headers' }, body: streamBody, signal: ac.signal
  }).catch(() => null)
  await eventually(() => mock.count('/v1/chat/completions') === 1, 'request reached the mock')
  ac.abort()
  await pending
  // the gateway must release its upstream socket: the mock sees the hanging request's socket close
  await eventually(() => mock.requests.at(-1)?.closed === true, 'upstream socket closed')
})

test('upstream timeout before headers → 504 JSON', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_FIRST_BYTE_TIMEOUT_MS: '300' } })
  const res = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-mock-fault': 'hang-before-headers' }, body: streamBody
  })
  assert.equal(res.statusCode, 504)
  const body = await res.body.json() as { error: { code: string, type: string, message: string } }
  assert.equal(body.error.code, 'upstream_timeout')
})

test('a stream that stalls ends with a final SSE error event', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_IDLE_TIMEOUT_MS: '300' } })
  const res = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-mock-fault': 'hang-mid-stream' }, body: streamBody
  })
  assert.equal(res.statusCode, 200)
  const text = await res.body.text()
  const last = text.trim().split('\n\n').at(-1) ?? ''
  assert.match(last, /^data: \{"error":/)
  assert.equal(JSON.parse(last.slice(6)).error.code, 'upstream_idle_timeout')
})

test('a stream reset mid-way ends with a final SSE error event', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const res = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-mock-fault': 'reset-mid-stream' }, body: streamBody
  })
  const text = await res.body.text()
  assert.match(text.trim().split('\n\n').at(-1) ?? '', /^data: \{"error":\{"message":"The upstream stream was interrupted"/)
})

test('upstream reset before headers → 502; the gateway keeps serving', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const res = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-mock-fault': 'reset-before-headers' }, body: streamBody
  })
  assert.equal(res.statusCode, 502)
  await res.body.dump()
  const ok = await request(`${gw.url}/v1/models`)
  assert.equal(ok.statusCode, 200)
  await ok.body.dump()
})

test('an unresolvable upstream host → 502', async (t) => {
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: 'http://upstream.invalid', GATEWAY_CONNECT_TIMEOUT_MS: '2000' } })
  const res = await request(`${gw.url}/v1/models`)
  assert.equal(res.statusCode, 502)
  assert.equal((await res.body.json() as { error: { code: string } }).error.code, 'upstream_unreachable')
})
