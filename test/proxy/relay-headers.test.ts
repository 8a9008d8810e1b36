/**
 * The relay writes the upstream's answer itself: its Content-Length is kept when only taps watch
 * the body, the gateway's own headers win over the upstream's, and an upstream header Node
 * refuses to send becomes a clear 502 in the client's error shape instead of a hang.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer as createTcpServer } from 'node:net'
import { createServer } from 'node:http'
import { once } from 'node:events'
import { request } from 'undici'
import { startGateway } from '../helper.js'

const CHAT = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })

test('Content-Length kept under the usage tap; our request id and CORS win over the upstream\'s', async (t) => {
  const body = '{"id":"x","object":"chat.completion","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}'
  const upstream = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'access-control-allow-origin': 'https://upstream.example', 'x-upstream-own': 'yes' })
    res.end(body)
  })
  upstream.listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  t.after(() => upstream.close())
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as { port: number }).port}`, GATEWAY_RATE_LIMIT_ENABLED: 'false', GATEWAY_CORS_ORIGINS: '*' } })
  const res = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'req-relay-1' }, body: CHAT })
  assert.equal(await res.body.text(), body)
  assert.equal(res.headers['content-length'], String(Buffer.byteLength(body)))
  assert.equal(res.headers['transfer-encoding'], undefined)
  assert.equal(res.headers['x-request-id'], 'req-relay-1')
  assert.equal(res.headers['access-control-allow-origin'], '*', 'the gateway\'s CORS policy, not the upstream\'s')
  assert.equal(res.headers['x-upstream-own'], 'yes')
})

test('an upstream header Node will not send: 502 in the client\'s shape, and the gateway goes on', async (t) => {
  const upstream = createTcpServer((socket) => {
    socket.once('data', () => {
      socket.end('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nx-bad: a\u0001b\r\n\r\n{}')
    })
  })
  upstream.listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  t.after(() => upstream.close())
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as { port: number }).port}`, GATEWAY_RATE_LIMIT_ENABLED: 'false' } })
  for (const [path, shape] of [['/v1/chat/completions', 'openai'], ['/v1/messages', 'anthropic']] as const) {
    const res = await request(`${gw.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: CHAT })
    assert.equal(res.statusCode, 502)
    const answer = await res.body.json() as { type?: string, error: { code?: string, type: string } }
    if (shape === 'openai') assert.equal(answer.error.code, 'upstream_bad_response')
    else assert.equal(answer.type, 'error')
  }
  const health = await request(`${gw.url}/healthz`)
  assert.equal(health.statusCode, 200)
  await health.body.dump()
})
