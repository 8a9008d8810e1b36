/**
 * Hostile and broken input from clients: each gets a JSON error in its SDK's shape with the right
 * status (or passes through untouched when judging it is the upstream's job), nothing unintended
 * reaches the upstream, and the gateway keeps serving. Raw sockets (node:net) send what HTTP
 * client libraries refuse to send: slow headers (slowloris) and slow or stalled bodies included.
 * Smuggling forms are in smuggling.test.ts.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { createServer } from 'node:http'
import { createHash, randomBytes } from 'node:crypto'
import { request } from 'undici'
import { startGateway, startMock, type GatewayHandle } from '../helper.js'
import type { MockUpstream } from '../../mock/upstream.js'
import { until } from '../poll.js'
import { Probe, wsUrl } from '../realtime/ws-helpers.js'
import { INTERNALS, lastJsonBody, rawExchange, statusesOf, stillServing, upstreamReleased } from './support.js'

const UPSTREAM_KEY = 'sk-upstream-bad-input-0001'
const CLIENT_KEY = 'ck-bad-input-client-0001'
const RESTRICTED_KEY = 'ck-bad-input-restricted-0001'
const ADMIN_TOKEN = 'adm-bad-input-token-0001'
const AUTH = { authorization: `Bearer ${CLIENT_KEY}` }

async function setup (t: TestContext, env: Record<string, string> = {}): Promise<{ mock: MockUpstream, gw: GatewayHandle }> {
  const mock = await startMock(t)
  const gw = await startGateway(t, {
    env: {
      GATEWAY_UPSTREAM_URL: mock.url,
      GATEWAY_UPSTREAM_KEY: UPSTREAM_KEY,
      GATEWAY_CLIENT_KEYS: JSON.stringify([
        { name: 'client', key: CLIENT_KEY },
        { name: 'restricted', key: RESTRICTED_KEY, allowedModels: ['gpt-4o-mini'] }
      ]),
      GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN,
      GATEWAY_RATE_LIMIT_ENABLED: 'false',
      ...env
    }
  })
  return { mock, gw }
}

async function post (url: string, body: string | Buffer, headers: Record<string, string>): Promise<{ status: number, text: string, json: any }> {
  const res = await request(url, { method: 'POST', headers, body })
  const text = await res.body.text()
  let json: any = null
  try { json = JSON.parse(text) } catch {}
  return { status: res.statusCode, text, json }
}

test('malformed and truncated JSON → 400 invalid_json in the SDK\'s shape; nothing forwarded', async (t) => {
  const { mock, gw } = await setup(t)
  const full = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }] })
  const bodies = [
    '{', '}', '{"model":', '{"model":"gpt-4o-mini"', 'nul', 'undefined', "{'model':'x'}", '{"a":1}}', '{"a":1} trailing',
    '{"a":01}', '{"a":NaN}', '{"a":"\u0001"}', '\ufeff{"a":1}', '[1,2', '"unterminated', '{"a":"\\x41"}',
    ...[1, 10, full.length >> 1, full.length - 1].map(n => full.slice(0, n))
  ]
  for (const body of bodies) {
    const openai = await post(`${gw.url}/v1/chat/completions`, body, { ...AUTH, 'content-type': 'application/json' })
    assert.equal(openai.status, 400, body)
    assert.deepEqual(openai.json, { error: { message: 'We could not parse the JSON body of your request', type: 'invalid_request_error', code: 'invalid_json' } }, body)
    const anthropic = await post(`${gw.url}/v1/messages`, body, { 'x-api-key': CLIENT_KEY, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' })
    assert.equal(anthropic.status, 400, body)
    assert.deepEqual(anthropic.json, { type: 'error', error: { type: 'invalid_request_error', message: 'We could not parse the JSON body of your request' } }, body)
  }
  assert.equal(mock.count(), 0)
})

test('JSON nested 100,000 levels deep: an answer, not a crash', async (t) => {
  const { gw } = await setup(t)
  for (const [open, close] of [['[', ']'], ['{"a":', '}']]) {
    const body = open.repeat(100_000) + '1' + close.repeat(100_000)
    const res = await post(`${gw.url}/v1/chat/completions`, body, { ...AUTH, 'content-type': 'application/json' })
    assert.ok(res.status < 500, `status ${res.status}`)
    assert.doesNotMatch(res.text, INTERNALS)
  }
  await stillServing(gw.url)
})

test('a body cut short (the client promises more bytes and hangs up): nothing forwarded, the gateway keeps serving', async (t) => {
  const { mock, gw } = await setup(t)
  const head = `POST /v1/chat/completions HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer ${CLIENT_KEY}\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n`
  const { hostname, port } = new URL(gw.url)
  for (let i = 0; i < 20; i++) {
    await new Promise<void>((resolve) => {
      const s = connect(Number(port), hostname, () => { s.write(head + '{"model":"gpt-4o-mini","mess'); setImmediate(() => s.destroy()) })
      s.on('close', () => resolve())
      s.on('error', () => {})
    })
  }
  await stillServing(gw.url)
  assert.equal(mock.count(), 0)
})

test('wrong and missing content types: passed through untouched (the upstream judges), except where the gateway must read the model', async (t) => {
  const { mock, gw } = await setup(t)
  const body = JSON.stringify({ model: 'gpt-4o', messages: [] })
  const forms: Array<[string, Record<string, string>]> = [
    ['missing', {}], ['text/plain', { 'content-type': 'text/plain' }], ['form', { 'content-type': 'application/x-www-form-urlencoded' }],
    ['text/json', { 'content-type': 'text/json' }]
  ]
  for (const [name, headers] of forms) {
    mock.reset()
    const res = await post(`${gw.url}/v1/chat/completions`, body, { ...AUTH, ...headers })
    assert.equal(res.status, 200, name)
    assert.equal(mock.requests[0].bodySha256, createHash('sha256').update(body).digest('hex'), `${name}: byte for byte`)
    // a key limited to some models cannot hide its model where the gateway does not look (an
    // upstream that parses any body as JSON would otherwise serve gpt-4o to it)
    const restricted = await post(`${gw.url}/v1/chat/completions`, body, { authorization: `Bearer ${RESTRICTED_KEY}`, ...headers })
    assert.equal(restricted.status, 400, name)
    assert.equal(restricted.json.error.code, 'model_not_checkable', name)
  }
  // a content type that is not one is refused (415), a JSON content type on something that is
  // not JSON is the client's mistake (400): neither is forwarded
  mock.reset()
  const garbage = await post(`${gw.url}/v1/chat/completions`, body, { ...AUTH, 'content-type': ';;;==//' })
  assert.equal(garbage.status, 415)
  assert.deepEqual(garbage.json, { error: { message: 'Unsupported content type', type: 'invalid_request_error', code: 'unsupported_media_type' } })
  const notJson = await post(`${gw.url}/v1/chat/completions`, 'model=gpt-4o', { ...AUTH, 'content-type': 'application/json; charset=utf-8' })
  assert.equal(notJson.status, 400)
  assert.equal(mock.count(), 0)
})

test('a restricted key: a second "model" in another case (Go decoders match keys case-insensitively) or a non-string model is refused', async (t) => {
  const { mock, gw } = await setup(t)
  const headers = { authorization: `Bearer ${RESTRICTED_KEY}`, 'content-type': 'application/json' }
  for (const body of [
    '{"model":"gpt-4o-mini","MODEL":"gpt-4o","messages":[]}',
    '{"Model":"gpt-4o","model":"gpt-4o-mini","messages":[]}',
    '{"model":["gpt-4o"],"messages":[]}',
    '{"model":{"name":"gpt-4o"},"messages":[]}',
    '{"model":null,"messages":[]}'
  ]) {
    const res = await post(`${gw.url}/v1/chat/completions`, body, headers)
    assert.equal(res.status, 400, body)
    assert.equal(res.json.error.code, 'model_not_checkable', body)
  }
  // JSON escapes are decoded before the check, as every upstream decodes them
  const escaped = await post(`${gw.url}/v1/chat/completions`, '{"mod\\u0065l":"gpt-4o","messages":[]}', headers)
  assert.equal(escaped.status, 403)
  // the last of two "model" keys is what JSON.parse, Python and Go all take: checked
  const dup = await post(`${gw.url}/v1/chat/completions`, '{"model":"gpt-4o-mini","model":"gpt-4o","messages":[]}', headers)
  assert.equal(dup.status, 403)
  assert.equal(mock.count(), 0)
  const ok = await post(`${gw.url}/v1/chat/completions`, '{"model":"gpt-4o-mini","messages":[]}', headers)
  assert.equal(ok.status, 200)
})

test('a restricted key on Azure-style paths: the deployment in the path must be an allowed model\'s, whatever the body says', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, {
    env: { GATEWAY_RATE_LIMIT_ENABLED: 'false', GATEWAY_CLIENT_KEYS: JSON.stringify([{ name: 'restricted', key: RESTRICTED_KEY, allowedModels: ['gpt-4o-mini'] }]) },
    yaml: `upstream:\n  url: ${mock.url}\n  provider: azure\n  keys: [azure-key-bad-input-0002]\n  azure: { apiVersion: 2024-10-21, deployments: { gpt-4o-mini: prod-mini, gpt-4o: prod-big } }\n`
  })
  const headers = { 'api-key': RESTRICTED_KEY, 'content-type': 'application/json' }
  const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [] })
  for (const deployment of ['prod-big', 'gpt-4o', 'prod%2Dbig', '%ff']) {
    const res = await post(`${gw.url}/openai/deployments/${deployment}/chat/completions?api-version=2024-10-21`, body, headers)
    assert.ok([400, 403].includes(res.status), `${deployment} → ${res.status}`)
  }
  assert.equal(mock.count(), 0)
  const ok = await post(`${gw.url}/openai/deployments/prod-mini/chat/completions?api-version=2024-10-21`, body, headers)
  assert.equal(ok.status, 200)
  // the OpenAI-style path is mapped by the gateway itself, from the checked model
  const mapped = await post(`${gw.url}/v1/chat/completions`, body, headers)
  assert.equal(mapped.status, 200)
  assert.deepEqual(mock.requests.map(r => r.path), ['/openai/deployments/prod-mini/chat/completions', '/openai/deployments/prod-mini/chat/completions'])
})

test('a restricted key opens realtime sessions only with exactly one allowed ?model=', async (t) => {
  const { mock, gw } = await setup(t)
  const protocols = ['realtime', `openai-insecure-api-key.${RESTRICTED_KEY}`]
  for (const [query, status] of [['?model=gpt-4o-realtime-preview', 403], ['', 400], ['?model=gpt-4o-mini&model=gpt-4o-realtime-preview', 400]] as const) {
    const probe = new Probe(wsUrl(gw.url, `/v1/realtime${query}`), protocols)
    await probe.waitClosed()
    assert.equal(probe.refusedWith, status, query)
  }
  assert.equal(mock.wsConnections.length, 0)
  const allowed = new Probe(wsUrl(gw.url, '/v1/realtime?model=gpt-4o-mini'), protocols)
  await allowed.opened
  allowed.ws.close()
})

test('bodies over the limit: declared → 413 before a byte is read; chunked → 413 once crossed; the connection is not reused', async (t) => {
  const { mock, gw } = await setup(t, { GATEWAY_BODY_LIMIT: '1024' })
  const head = `POST /v1/chat/completions HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer ${CLIENT_KEY}\r\nContent-Type: application/json\r\n`
  // headers only, announcing 10 GB: answered without waiting for (or reading) the body
  const declared = await rawExchange(gw.url, `${head}Content-Length: 10000000000\r\n\r\n`)
  assert.ok(declared.closedByServer)
  assert.deepEqual(statusesOf(declared.text), [413])
  assert.equal(lastJsonBody(declared.text).error.code, 'request_too_large')

  const chunk = `{"pad":"${'x'.repeat(500)}",`
  const chunked = await rawExchange(gw.url, `${head}Transfer-Encoding: chunked\r\n\r\n` + `${chunk.length.toString(16)}\r\n${chunk}\r\n`.repeat(4) + '0\r\n\r\n')
  assert.deepEqual(statusesOf(chunked.text), [413])

  const fits = JSON.stringify({ model: 'gpt-4o-mini', messages: [], pad: 'y'.repeat(900) })
  assert.equal((await post(`${gw.url}/v1/chat/completions`, fits, { ...AUTH, 'content-type': 'application/json' })).status, 200)
  assert.equal(mock.count(), 1, 'only the request that fits reached the upstream')
})

test('10,000 headers → 431 in the OpenAI shape, connection closed, nothing forwarded', async (t) => {
  const { mock, gw } = await setup(t)
  let head = `GET /v1/models HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer ${CLIENT_KEY}\r\n`
  for (let i = 0; i < 10_000; i++) head += `x-h${i}: v\r\n`
  const r = await rawExchange(gw.url, head + '\r\n')
  assert.ok(r.closedByServer)
  assert.deepEqual(statusesOf(r.text), [431])
  assert.deepEqual(lastJsonBody(r.text), { error: { message: 'The request headers are too large', type: 'invalid_request_error', code: 'headers_too_large' } })
  assert.equal(mock.count(), 0)
  await stillServing(gw.url)
})

test('invalid UTF-8: in a JSON body → 400; percent-encoded in the path → 400 JSON; header bytes and the query pass untouched', async (t) => {
  const { mock, gw } = await setup(t)
  for (const bad of [[0xff], [0xc3, 0x28], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80]]) {
    const body = Buffer.concat([Buffer.from('{"model":"gpt-4o-mini","messages":[{"role":"user","content":"'), Buffer.from(bad), Buffer.from('"}]}')])
    const res = await post(`${gw.url}/v1/chat/completions`, body, { ...AUTH, 'content-type': 'application/json' })
    assert.equal(res.status, 400, Buffer.from(bad).toString('hex'))
    assert.equal(res.json.error.code, 'invalid_json')
  }
  assert.equal(mock.count(), 0)

  for (const path of ['/v1/models/%ff', '/v1/models/%c3%28', '/admin/%ff', '/v1/models/%']) {
    const r = await rawExchange(gw.url, `GET ${path} HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer ${CLIENT_KEY}\r\nConnection: close\r\n\r\n`)
    assert.deepEqual(statusesOf(r.text), [400], path)
    assert.deepEqual(lastJsonBody(r.text), { error: { message: 'The request URL is malformed', type: 'invalid_request_error', code: 'bad_url' } }, path)
  }
  assert.equal(mock.count(), 0)

  const header = Buffer.concat([Buffer.from(`GET /v1/models/gpt-4o?q=%ff%fe HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer ${CLIENT_KEY}\r\nX-Note: `), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('\r\nConnection: close\r\n\r\n')])
  const passed = await rawExchange(gw.url, header)
  assert.deepEqual(statusesOf(passed.text), [200])
  assert.equal(mock.requests[0].url, '/v1/models/gpt-4o?q=%ff%fe')
  assert.equal(Buffer.from(mock.requests[0].headers['x-note'], 'latin1').toString('hex'), 'fffec3')
})

test('encoded path tricks never reach an admin route without the admin token, nor the upstream', async (t) => {
  const { mock, gw } = await setup(t)
  const models = async (): Promise<string | undefined> => {
    const res = await request(`${gw.url}/v1/models`, { headers: AUTH })
    await res.body.dump()
    return res.headers['x-cache'] as string | undefined
  }
  assert.equal(await models(), 'MISS')
  assert.equal(await models(), 'HIT', 'the model list is cached: clearing it would show')
  mock.reset()

  const tricks = [
    '/v1/../admin/cache/clear', '/v1/%2e%2e/admin/cache/clear', '/v1/%2E%2E/admin/cache/clear', '/v1/.%2e/admin/cache/clear',
    '/v1/%2e./admin/cache/clear', '/v1/..%2fadmin/cache/clear', '/v1%2f..%2fadmin/cache/clear', '/v1/..%2Fadmin/cache/clear',
    '/v1/..%5cadmin/cache/clear', '/v1/..\\admin/cache/clear', '/v1\\..\\admin/cache/clear', '/v1/..;/admin/cache/clear',
    '/v1/models/../../admin/cache/clear', '/v1/chat/../../admin/cache/clear?x=1', '/default/v1/../admin/cache/clear',
    '/openai/../admin/cache/clear', '/v1/./../admin/cache/clear', '/v1/%252e%252e/admin/cache/clear',
    '//admin/cache/clear', '///admin/cache/clear', '/admin//cache/clear', '/admin/./cache/clear', '/./admin/cache/clear',
    '/admin/cache/clear/', '/ADMIN/cache/clear', '/Admin/Cache/Clear', '/admin/cache%2fclear', '/admin%2fcache%2fclear',
    '/%61dmin/cache/clear', '/admin/%63ache/clear', '/admin/cache/clear;x', '/admin/cache/clear%00', '/admin/cache/clear%20',
    '/admin/cache/clear?', '/admin/cache/clear#x', '/admin\\cache\\clear', '/.%2e/admin/cache/clear', '/%2e%2e/admin/cache/clear',
    '/v1/..', '/v1/.', '/admin', '/admin/', '/admin/keys/../cache/clear'
  ]
  for (const credentials of [`Authorization: Bearer ${CLIENT_KEY}\r\n`, '']) {
    for (const path of tricks) {
      for (const method of ['POST', 'GET']) {
        const r = await rawExchange(gw.url, `${method} ${path} HTTP/1.1\r\nHost: gw.test\r\n${credentials}Content-Length: 0\r\nConnection: close\r\n\r\n`)
        const [status] = statusesOf(r.text)
        assert.ok([400, 401, 404].includes(status), `${method} ${path} → ${status}`)
        assert.doesNotMatch(r.text, /"cleared"/, `${method} ${path}`)
        assert.doesNotMatch(r.text, INTERNALS, `${method} ${path}`)
      }
    }
  }
  const reached = mock.requests.map(r => r.url).filter(u => /admin|\.\.|%2e|\\|%5c/i.test(u))
  assert.deepEqual(reached, [], 'no trick reached the upstream')
  assert.equal(await models(), 'HIT', 'the cache was never cleared')

  // control: the real route with the real token does clear it, so the check above could fail
  const clear = await rawExchange(gw.url, `POST /admin/cache/clear HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`)
  assert.deepEqual(statusesOf(clear.text), [200])
  assert.equal(await models(), 'MISS')
})

test('CR/LF in forwarded values: refused by the parser or percent-encoded; never a second header or request upstream', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, {
    env: { GATEWAY_RATE_LIMIT_ENABLED: 'false' },
    yaml: `upstream:\n  url: ${mock.url}\n  provider: azure\n  keys: [azure-key-bad-input-0001]\n  azure: { apiVersion: 2024-10-21 }\n`
  })
  // raw CR, LF and CRLF inside header values, in the request line and in a header name
  for (const raw of [
    'GET /v1/models HTTP/1.1\r\nHost: gw.test\r\nX-Note: a\rInjected: 1\r\n\r\n',
    'GET /v1/models HTTP/1.1\r\nHost: gw.test\r\nX-Note: a\nInjected: 1\r\n\r\n',
    'GET /v1/models HTTP/1.1\r\nHost: gw.test\r\nX-Note: a\r\r\nInjected: 1\r\n\r\n',
    'GET /v1/models?x=a\rInjected: 1 HTTP/1.1\r\nHost: gw.test\r\n\r\n',
    // no version: Node's parser takes it for HTTP/0.9 and still reads the next line as a header
    'GET /v1/models\nInjected: 1 HTTP/1.1\r\nHost: gw.test\r\n\r\n',
    'GET /v1/models\r\nHost: gw.test\r\n\r\n',
    'GET /v1/models HTTP/2.0\r\nHost: gw.test\r\n\r\n',
    'GET /v1/models HTTP/1.1\r\nHost: gw.test\r\nX-No\rte: a\r\n\r\n',
    'GET /v1/models HTTP/1.1\r\nHost: gw.test\r\nX-Request-Id: a\rInjected: 1\r\n\r\n'
  ]) {
    const r = await rawExchange(gw.url, raw)
    assert.ok(r.closedByServer, JSON.stringify(raw))
    assert.deepEqual(statusesOf(r.text), [400], JSON.stringify(raw))
  }
  assert.equal(mock.count(), 0)

  // encoded CR/LF in the path and query stay encoded; in a JSON model (Azure puts it in the path)
  // they are percent-encoded; in x-request-id they make the id be replaced
  const r = await rawExchange(gw.url, 'GET /v1/models/a%0d%0aInjected:%201?q=%0d%0aX:%201 HTTP/1.1\r\nHost: gw.test\r\nX-Request-Id: a%0d%0aSet-Cookie:%20x\r\nConnection: close\r\n\r\n')
  assert.equal(statusesOf(r.text).length, 1)
  assert.doesNotMatch(r.text, /^set-cookie/im)
  const body = JSON.stringify({ model: 'gpt\r\nInjected: 1\r\n\r\nGET /x HTTP/1.1', messages: [] })
  const res = await post(`${gw.url}/v1/chat/completions`, body, { 'content-type': 'application/json' })
  assert.ok(res.status < 500)
  assert.equal(mock.count(), 2, 'one upstream request each, never a smuggled third')
  assert.equal(mock.requests[0].url, '/openai/models/a%0d%0aInjected:%201?q=%0d%0aX:%201&api-version=2024-10-21')
  assert.match(mock.requests[1].url, /^\/openai\/deployments\/gpt%0D%0AInjected%3A%201%0D%0A%0D%0AGET%20%2Fx%20HTTP%2F1\.1\/chat\/completions\?/)
  for (const req of mock.requests) {
    assert.equal(req.headers.injected, undefined)
    assert.notEqual(req.headers['x-request-id'], 'a%0d%0aSet-Cookie:%20x')
  }
})

/** A masked client frame header announcing `length` bytes (RFC 6455 §5.2); the payload is not sent. */
function frameHeader (opcode: number, length: number, fin = true): Buffer {
  const head = Buffer.alloc(14)
  head[0] = (fin ? 0x80 : 0) | opcode
  head[1] = 0x80 | 127
  head.writeBigUInt64BE(BigInt(length), 2)
  randomBytes(4).copy(head, 10)
  return head
}

function maskedFrame (opcode: number, payload: Buffer, fin: boolean): Buffer {
  const mask = randomBytes(4)
  const head = Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | 126, payload.length >> 8, payload.length & 0xff])
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]))
  return Buffer.concat([head, mask, masked])
}

/** Opens a WebSocket by hand on a raw socket; resolves with the socket once 101 arrived. */
async function rawWebSocket (gwUrl: string): Promise<{ socket: import('node:net').Socket, received: () => Buffer }> {
  const { hostname, port } = new URL(gwUrl)
  const socket = connect(Number(port), hostname)
  const chunks: Buffer[] = []
  socket.on('data', (d: Buffer) => chunks.push(d))
  socket.on('error', () => {})
  socket.write('GET /v1/realtime?model=gpt-4o-realtime-preview HTTP/1.1\r\nHost: gw.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Protocol: realtime\r\n\r\n`)
  const received = (): Buffer => Buffer.concat(chunks)
  await until('the 101 answer', () => received().includes('\r\n\r\n'))
  assert.match(received().toString('latin1'), /^HTTP\/1\.1 101 /)
  return { socket, received }
}

/** The close code in the last close frame (opcode 8) the server sent, if any. */
function closeCodeIn (data: Buffer): number | null {
  const at = data.indexOf('\r\n\r\n') + 4
  for (let i = at; i < data.length;) {
    const opcode = data[i] & 0x0f
    let len = data[i + 1] & 0x7f
    let off = i + 2
    if (len === 126) { len = data.readUInt16BE(off); off += 2 } else if (len === 127) { len = Number(data.readBigUInt64BE(off)); off += 8 }
    if (opcode === 8) return data.readUInt16BE(off)
    i = off + len
  }
  return null
}

test('oversized WebSocket frames: a frame announcing 2^53 bytes, or fragments adding up past maxPayload, close with 1009 at once', async (t) => {
  const { mock, gw } = await setup(t, { GATEWAY_AUTH_ENABLED: 'false', GATEWAY_REALTIME_MAX_PAYLOAD: '4096' })
  const attacks: Array<[string, Buffer[]]> = [
    ['one frame announcing 2^53-1 bytes', [frameHeader(0x1, Number.MAX_SAFE_INTEGER)]],
    ['one binary frame announcing 5000 bytes', [frameHeader(0x2, 5000)]],
    ['three fragments of 2000 bytes', [maskedFrame(0x1, Buffer.alloc(2000, 0x61), false), maskedFrame(0x0, Buffer.alloc(2000, 0x61), false), maskedFrame(0x0, Buffer.alloc(2000, 0x61), true)]]
  ]
  for (const [name, frames] of attacks) {
    const before = mock.wsConnections.length
    const { socket, received } = await rawWebSocket(gw.url)
    await until('the upstream session', () => mock.wsConnections.length > before)
    for (const f of frames) socket.write(f)
    await until(`${name}: the close frame`, () => closeCodeIn(received()) !== null)
    assert.equal(closeCodeIn(received()), 1009, name)
    await until(`${name}: the socket is closed`, () => socket.destroyed || socket.readableEnded)
    socket.destroy()
    await until(`${name}: the upstream session ended`, () => mock.wsConnections[before].closeCode !== undefined)
  }
  await upstreamReleased(mock)
  await stillServing(gw.url)
})

test('slowloris: header bytes trickled in are cut at the headers timeout with 408; others are served meanwhile', async (t) => {
  const { mock, gw } = await setup(t, { GATEWAY_HEADERS_TIMEOUT_MS: '1000' })
  const head = `GET /v1/models HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer ${CLIENT_KEY}\r\nX-Slow: ${'s'.repeat(200)}\r\n\r\n`
  // one byte every 50 ms: the whole head would take 13 s; the bound is 8 s (Node's default check
  // interval alone would have let it live up to 31 s)
  const slow = Array.from({ length: 3 }, () => rawExchange(gw.url, [...head], { gapMs: 50, boundMs: 8000 }))
  const fast = await request(`${gw.url}/v1/models`, { headers: AUTH })
  assert.equal(fast.statusCode, 200)
  await fast.body.dump()
  for (const r of await Promise.all(slow)) {
    assert.ok(r.closedByServer, 'the slow client was cut before the bound')
    assert.deepEqual(statusesOf(r.text), [408])
    assert.deepEqual(lastJsonBody(r.text), { error: { message: 'The request headers were not received in time', type: 'invalid_request_error', code: 'request_timeout' } })
  }
  assert.equal(mock.count(), 1)
})

test('slow bodies: refused callers are not waited for; a body that goes silent is cut; a slow but steady one, or one the upstream reads slowly, is not', async (t) => {
  // the idle timeout alone: the minimum pace (a trickle, test/hardening/tenancy.test.ts) is off
  const { mock, gw } = await setup(t, { GATEWAY_BODY_IDLE_TIMEOUT_MS: '1000', GATEWAY_BODY_MIN_BYTES_PER_SECOND: '0' })
  const head = 'POST /v1/chat/completions HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n'
  // no key: 401 at once, and the connection closed instead of waiting for 1000 bytes that never come
  const anonymous = await rawExchange(gw.url, `${head}\r\n{"model":`, { boundMs: 900 })
  assert.ok(anonymous.closedByServer, 'closed before the idle timeout could matter')
  assert.deepEqual(statusesOf(anonymous.text), [401])
  assert.match(anonymous.text, /\r\nconnection: close\r\n/i)

  // a key, then silence: closed after the idle timeout (bounded wait), access line says why
  const silent = await rawExchange(gw.url, `${head}Authorization: Bearer ${CLIENT_KEY}\r\n\r\n{"model":`, { boundMs: 6000 })
  assert.ok(silent.closedByServer)
  await until('the access line', () => gw.logs.some(l => l.includes('"errorClass":"client_body_timeout"')))

  // a streamed upload that goes silent: cut too, and its upstream request released
  const upload = await rawExchange(gw.url, `POST /v1/files HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer ${CLIENT_KEY}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`, { boundMs: 6000 })
  assert.ok(upload.closedByServer)
  await upstreamReleased(mock)

  // slow but never silent for a whole second: served
  const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [] })
  const parts = [`POST /v1/chat/completions HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer ${CLIENT_KEY}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
    ...body.match(/.{1,8}/g)!]
  const steady = await rawExchange(gw.url, parts, { gapMs: 400, boundMs: 10_000 })
  assert.deepEqual(statusesOf(steady.text), [200])
})

test('slow bodies: an upload the upstream reads slowly (backpressure) is not taken for a silent client', async (t) => {
  // an upstream that reads nothing for 2.5 s, then everything
  const server = createServer((req, res) => {
    req.pause()
    setTimeout(() => {
      let bytes = 0
      req.on('data', (d: Buffer) => { bytes += d.length })
      req.on('end', () => res.end(JSON.stringify({ bytes })))
      req.resume()
    }, 2500)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.after(() => { server.closeAllConnections(); server.close() })
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: `http://127.0.0.1:${(server.address() as { port: number }).port}`, GATEWAY_BODY_IDLE_TIMEOUT_MS: '1000', GATEWAY_RATE_LIMIT_ENABLED: 'false' } })
  const size = 32 * 1024 * 1024
  const res = await request(`${gw.url}/v1/files`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: Buffer.alloc(size, 0x62) })
  assert.equal(res.statusCode, 200)
  assert.deepEqual(await res.body.json(), { bytes: size })
})
