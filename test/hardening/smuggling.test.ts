/**
 * HTTP request smuggling: every ambiguous framing is refused with one 400 (OpenAI-shaped JSON) and
 * the connection is closed, so nothing queued behind it on the socket is ever read as a second
 * request, and nothing at all reaches the upstream. Sent over raw sockets (node:net): HTTP client
 * libraries refuse to produce these messages.
 *
 * The control case, a legitimate pipeline of two requests, shows that the upstream count would see
 * a smuggled second request if one got through.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startGateway, startMock, type GatewayHandle } from '../helper.js'
import type { MockUpstream } from '../../mock/upstream.js'
import { INTERNALS, lastJsonBody, rawExchange, statusesOf, stillServing } from './support.js'

const BODY = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
const LEN = Buffer.byteLength(BODY)
const HEAD = 'POST /v1/chat/completions HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/json\r\n'
/** a complete second request, smuggled after the first one's real end by each ambiguous framing */
const SMUGGLED = 'GET /v1/models HTTP/1.1\r\nHost: gw.test\r\n\r\n'
const CHUNKED = `${LEN.toString(16)}\r\n${BODY}\r\n0\r\n\r\n`

const FORMS: Record<string, string> = {
  'Content-Length then Transfer-Encoding (CL.TE)': `${HEAD}Content-Length: ${LEN + 5 + SMUGGLED.length}\r\nTransfer-Encoding: chunked\r\n\r\n${CHUNKED}${SMUGGLED}`,
  'Transfer-Encoding then Content-Length (TE.CL)': `${HEAD}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n${CHUNKED}${SMUGGLED}`,
  'Transfer-Encoding with a space before the colon': `${HEAD}Transfer-Encoding : chunked\r\nContent-Length: ${LEN}\r\n\r\n${BODY}${SMUGGLED}`,
  'two Content-Length headers that disagree': `${HEAD}Content-Length: ${LEN}\r\nContent-Length: ${LEN + SMUGGLED.length}\r\n\r\n${BODY}${SMUGGLED}`,
  'two equal Content-Length headers': `${HEAD}Content-Length: ${LEN}\r\nContent-Length: ${LEN}\r\n\r\n${BODY}${SMUGGLED}`,
  'a Content-Length list': `${HEAD}Content-Length: ${LEN}, ${LEN}\r\n\r\n${BODY}${SMUGGLED}`,
  'a signed Content-Length': `${HEAD}Content-Length: +${LEN}\r\n\r\n${BODY}${SMUGGLED}`,
  'a hexadecimal Content-Length': `${HEAD}Content-Length: 0x${LEN.toString(16)}\r\n\r\n${BODY}${SMUGGLED}`,
  'obs-fold: a header continued on the next line': `${HEAD}X-Note: first\r\n Transfer-Encoding: chunked\r\nContent-Length: ${LEN}\r\n\r\n${BODY}${SMUGGLED}`,
  'obs-fold of Transfer-Encoding itself': `${HEAD}Transfer-Encoding:\r\n chunked\r\nContent-Length: ${LEN}\r\n\r\n${BODY}${SMUGGLED}`,
  'an unknown transfer coding': `${HEAD}Transfer-Encoding: xchunked\r\n\r\n${CHUNKED}${SMUGGLED}`,
  'chunked applied twice': `${HEAD}Transfer-Encoding: chunked, chunked\r\n\r\n${CHUNKED}${SMUGGLED}`,
  'two Transfer-Encoding headers': `${HEAD}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n${CHUNKED}${SMUGGLED}`,
  'Transfer-Encoding on HTTP/1.0': `${HEAD.replace('HTTP/1.1', 'HTTP/1.0')}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n${CHUNKED}${SMUGGLED}`,
  'a chunk size that is not hexadecimal': `${HEAD}Transfer-Encoding: chunked\r\n\r\nzz\r\n${BODY}\r\n0\r\n\r\n${SMUGGLED}`,
  'a chunk size that overflows': `${HEAD}Transfer-Encoding: chunked\r\n\r\n10000000000000000${LEN.toString(16)}\r\n${BODY}\r\n0\r\n\r\n${SMUGGLED}`,
  'chunks ended by bare LF': `${HEAD}Transfer-Encoding: chunked\r\n\r\n${LEN.toString(16)}\n${BODY}\n0\n\n${SMUGGLED}`,
  'header lines ended by bare LF': `POST /v1/chat/completions HTTP/1.1\nHost: gw.test\nContent-Type: application/json\nContent-Length: ${LEN}\n\n${BODY}${SMUGGLED}`,
  'a NUL byte in a header value': `${HEAD}X-Note: a\u0000b\r\nContent-Length: ${LEN}\r\n\r\n${BODY}${SMUGGLED}`
}

async function setup (t: import('node:test').TestContext): Promise<{ mock: MockUpstream, gw: GatewayHandle }> {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEY: 'sk-upstream-smuggling-0001' } })
  return { mock, gw }
}

test('control: a legitimate pipeline of two requests on one connection reaches the upstream twice', async (t) => {
  const { mock, gw } = await setup(t)
  const r = await rawExchange(gw.url, `${HEAD}Content-Length: ${LEN}\r\n\r\n${BODY}GET /v1/models HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n`)
  assert.deepEqual(statusesOf(r.text), [200, 200])
  assert.equal(mock.count(), 2)
})

for (const [name, raw] of Object.entries(FORMS)) {
  test(`smuggling form refused with 400 and a closed connection: ${name}`, async (t) => {
    const { mock, gw } = await setup(t)
    const r = await rawExchange(gw.url, raw)
    assert.ok(r.closedByServer, 'the gateway closed the connection')
    assert.deepEqual(statusesOf(r.text), [400], 'one answer, never a second one for the smuggled request')
    assert.match(r.text, /\r\nconnection: close\r\n/i)
    const body = lastJsonBody(r.text)
    assert.equal(body.error.type, 'invalid_request_error')
    assert.equal(body.error.code, 'bad_request')
    assert.doesNotMatch(r.text, INTERNALS)
    assert.equal(mock.count(), 0, 'nothing reached the upstream')
    await stillServing(gw.url)
  })
}

test('two Host headers are refused (RFC 9112 §3.2): a front proxy may have routed by the other one', async (t) => {
  const { mock, gw } = await setup(t)
  const r = await rawExchange(gw.url, 'GET /v1/models HTTP/1.1\r\nHost: gw.test\r\nHost: other.test\r\nConnection: close\r\n\r\n')
  assert.deepEqual(statusesOf(r.text), [400])
  assert.equal(lastJsonBody(r.text).error.code, 'invalid_host')
  assert.equal(mock.count(), 0)
})

// Node answers this one itself (requireHostHeader) and keeps parsing: a request pipelined behind
// it would still be handed to the gateway (SECURITY.md, known limits). Every front proxy sets
// Host on what it forwards, so only a client's own connection can carry such a pair.
test('an HTTP/1.1 request without Host is refused with 400; the connection is closed', async (t) => {
  const { mock, gw } = await setup(t)
  const r = await rawExchange(gw.url, 'GET /v1/models HTTP/1.1\r\n\r\n')
  assert.ok(r.closedByServer)
  assert.deepEqual(statusesOf(r.text), [400])
  assert.equal(mock.count(), 0)
})

test('absolute-form request targets never reach the upstream as a request line naming another host', async (t) => {
  const { mock, gw } = await setup(t)
  for (const target of ['http://evil.example/v1/models', 'https://evil.example:8443/v1/chat/completions', 'http://127.0.0.1:1/v1/models']) {
    const r = await rawExchange(gw.url, `GET ${target} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n`)
    assert.deepEqual(statusesOf(r.text), [400], target)
    assert.equal(lastJsonBody(r.text).error.code, 'invalid_path', target)
  }
  assert.equal(mock.count(), 0)
})
