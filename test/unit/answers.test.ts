/**
 * Upstream answers through `inject`, from a purpose-built upstream on 127.0.0.1, port 0: an
 * upstream that echoes the credentials it got never hands a configured secret to the client
 * (error bodies split across chunks or compressed, response headers; an error body too large to
 * check is a 502), and compressed answers are passed on compressed only when nothing reads them
 * and the client takes the coding.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gunzipSync, gzipSync } from 'node:zlib'
import type { LightMyRequestResponse } from 'fastify'
import { ERROR_BODY_BOUND } from '../../src/proxy/answer-check.js'
import { REDACTED } from '../../src/lib/secret-filter.js'
import { injectGateway, type InjectedGateway } from './gateway.js'

const POOL_KEY = 'sk-pool-operator-SECRET-0001'
const ORG_HEADER = 'org-header-value-SECRET-0003'
const CLIENT = 'ck-plain-client-0004'
const COMPLETION = { id: 'c1', object: 'chat.completion', model: 'gpt-4o-mini', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 3, total_tokens: 4 } }

async function upstream (t: TestContext, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer((req, res) => { req.resume(); handler(req, res) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.after(() => server.close())
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

function echoed (req: IncomingMessage): string {
  return `${String(req.headers.authorization)} org=${String(req.headers['x-org'])}`
}

async function echoingGateway (t: TestContext): Promise<InjectedGateway> {
  const url = await upstream(t, (req, res) => {
    const query = new URL(req.url ?? '/', 'http://x').searchParams
    res.setHeader('x-debug-auth', echoed(req))
    const text = JSON.stringify({ error: { message: `Incorrect API key provided: ${echoed(req)}.`, type: 'invalid_request_error', code: 'invalid_api_key' } })
    if (query.has('ok')) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(COMPLETION))
    } else if (query.has('big')) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`${echoed(req)} ${'x'.repeat(ERROR_BODY_BOUND)}`)
    } else if (query.has('gzip')) {
      res.writeHead(401, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(gzipSync(text))
    } else {
      res.writeHead(401, { 'content-type': 'application/json' })
      const cut = text.indexOf('SECRET') // the key split across two chunks
      res.write(text.slice(0, cut), () => res.end(text.slice(cut)))
    }
  })
  return await injectGateway(t, {
    yaml: `
upstream:
  url: ${url}
  keys: [${POOL_KEY}]
  headers: { x-org: ${ORG_HEADER} }
auth:
  keys:
    - { name: plain, key: ${CLIENT} }
`
  })
}

function post (gw: InjectedGateway, url: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return gw.app.inject({ method: 'POST', url, payload: { model: 'gpt-4o-mini', messages: [] }, headers: { authorization: `Bearer ${CLIENT}`, ...headers } })
}

function assertClean (where: string, text: string): void {
  for (const secret of [POOL_KEY, ORG_HEADER]) assert.ok(!text.includes(secret), `${secret} reached the client in ${where}`)
}

test('an upstream 401 naming the key, split across chunks, reaches the client without it, with an exact length; the header echo too', async (t) => {
  const gw = await echoingGateway(t)
  const res = await post(gw, '/v1/chat/completions')
  assert.equal(res.statusCode, 401)
  assertClean('a 401', res.body + JSON.stringify(res.headers))
  assert.match(res.json().error.message, /Incorrect API key provided: Bearer \[REDACTED\] org=\[REDACTED\]\./)
  assert.equal(Number(res.headers['content-length']), Buffer.byteLength(res.body))
  assert.equal(res.headers['x-debug-auth'], `Bearer ${REDACTED} org=${REDACTED}`)
  const models = await gw.app.inject({ url: '/v1/models', headers: { authorization: `Bearer ${CLIENT}` } })
  assert.equal(models.statusCode, 401)
  assertClean('the model list', models.body + JSON.stringify(models.headers))
})

test('a compressed error body is decoded and checked; one over the bound is a 502; a 2xx body passes untouched but its headers are checked', async (t) => {
  const gw = await echoingGateway(t)
  const gz = await post(gw, '/v1/chat/completions?gzip', { 'accept-encoding': 'gzip' })
  assert.equal(gz.statusCode, 401)
  assert.equal(gz.headers['content-encoding'], undefined, 'sent plain')
  assertClean('a gzip 401', gz.body)
  assert.match(gz.body, /Bearer \[REDACTED\]/)
  const big = await post(gw, '/v1/chat/completions?big')
  assert.equal(big.statusCode, 502)
  assert.equal(big.json().error.code, 'upstream_bad_response')
  assertClean('an oversized error body', big.body + JSON.stringify(big.headers))
  assert.ok(gw.logs().some(l => String(l.msg).startsWith('upstream error body too large or unreadable to check for secrets')))
  const ok = await post(gw, '/v1/chat/completions?ok')
  assert.equal(ok.statusCode, 200)
  assert.deepEqual(ok.json(), COMPLETION)
  assert.equal(ok.headers['x-debug-auth'], `Bearer ${REDACTED} org=${REDACTED}`)
})

test('compressed answers: passed on compressed when nothing reads them and the client takes the coding; decoded otherwise', async (t) => {
  const listing = JSON.stringify({ object: 'file', id: 'file-1' })
  const url = await upstream(t, (req, res) => {
    const body = req.url?.startsWith('/v1/files/') === true ? listing : JSON.stringify(COMPLETION)
    res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(gzipSync(body))
  })
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: url } })
  const file = await gw.app.inject({ url: '/v1/files/file-1/content', headers: { 'accept-encoding': 'gzip, br' } })
  assert.equal(file.headers['content-encoding'], 'gzip')
  assert.equal(gunzipSync(file.rawPayload).toString(), listing)
  for (const accept of ['identity', 'br', 'gzip;q=0, deflate']) {
    const plain = await gw.app.inject({ url: '/v1/files/file-1/content', headers: { 'accept-encoding': accept } })
    assert.equal(plain.headers['content-encoding'], undefined, accept)
    assert.equal(plain.body, listing, accept)
  }
  // the usage tap reads a completion: decoded, and the client gets it plain
  const chat = await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { model: 'gpt-4o-mini', messages: [] }, headers: { 'accept-encoding': 'gzip' } })
  assert.equal(chat.headers['content-encoding'], undefined)
  assert.deepEqual(chat.json(), COMPLETION)
  const line = gw.logs().find(l => l.msg === 'request completed' && l.requestId === chat.headers['x-request-id'])
  assert.equal(line?.totalTokens, 4)
})

test('a body its content-encoding does not decode: a shaped 502 before anything was sent', async (t) => {
  const url = await upstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' })
    res.end(Buffer.concat([gzipSync('{}').subarray(0, 10), Buffer.from('this is not deflate data at all, sorry')]))
  })
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: url } })
  const res = await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { model: 'gpt-4o-mini', messages: [] }, headers: { 'accept-encoding': 'gzip' } })
  assert.equal(res.statusCode, 502)
  assert.deepEqual(res.json(), { error: { message: 'The upstream service sent an invalid response', type: 'upstream_error', code: 'upstream_bad_response' } })
  const line = gw.logs().find(l => l.msg === 'request completed' && l.requestId === res.headers['x-request-id'])
  assert.equal(line?.errorClass, 'upstream_bad_encoding')
})
