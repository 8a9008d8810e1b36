/**
 * Upstream answers never hand a configured secret to the client: an upstream that echoes the
 * credentials it got (in an error body, compressed or split across chunks, and in a response
 * header) is relayed without them, over the forwarder and the model list alike; short secrets and
 * target header values included. 2xx bodies pass untouched.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { gzipSync } from 'node:zlib'
import OpenAI from 'openai'
import { request, type Dispatcher } from 'undici'
import { startGateway } from '../helper.js'
import { UpstreamExchange } from '../../src/proxy/exchange.js'
import { checkedBody, ERROR_BODY_BOUND, holdBody } from '../../src/proxy/answer-check.js'
import { REDACTED, SecretFilter } from '../../src/lib/secret-filter.js'

const POOL_KEY = 'sk-pool-operator-SECRET-0001'
const MAPPED_KEY = 'sk-mapped-operator-SECRET-0002'
const ORG_HEADER = 'org-header-value-SECRET-0003'
const SHORT = 'Zq7x' // a short target header value: removed where it stands alone
const CLIENT = 'ck-plain-client-0004'
const MAPPED_CLIENT = 'ck-mapped-client-0005'
const SECRETS = [POOL_KEY, MAPPED_KEY, ORG_HEADER, SHORT]

/** The credentials and target headers a request carried, as one string. */
function echoed (req: IncomingMessage): string {
  return `${String(req.headers.authorization)} org=${String(req.headers['x-org'])} tag=${String(req.headers['x-tag'])}`
}

/**
 * An upstream that echoes what it got: a 401 whose message names the key, written in two chunks
 * split in the middle of it (gzip-compressed when `?gzip`), an `X-Debug-Auth` header on every
 * answer, a 200 otherwise; `?big` answers an error body over the gateway's bound.
 */
async function echoingUpstream (t: TestContext): Promise<string> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume()
    const url = new URL(req.url ?? '/', 'http://x')
    res.setHeader('x-debug-auth', echoed(req))
    if (url.searchParams.has('ok')) {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'gpt-4o-mini', object: 'model' }] }))
      return
    }
    const text = JSON.stringify({ error: { message: `Incorrect API key provided: ${echoed(req)}. (tag ${SHORT})`, type: 'invalid_request_error', code: 'invalid_api_key' } })
    if (url.searchParams.has('big')) {
      res.writeHead(500, { 'content-type': 'text/plain' })
      res.end(`${echoed(req)} ${'x'.repeat(ERROR_BODY_BOUND)}`)
      return
    }
    if (url.searchParams.has('gzip')) {
      res.writeHead(401, { 'content-type': 'application/json', 'content-encoding': 'gzip' })
      res.end(gzipSync(text))
      return
    }
    res.writeHead(401, { 'content-type': 'application/json' })
    const cut = text.indexOf('SECRET') // inside the key
    res.write(text.slice(0, cut), () => res.end(text.slice(cut)))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.after(() => server.close())
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`
}

async function gateway (t: TestContext): Promise<Awaited<ReturnType<typeof startGateway>>> {
  const upstream = await echoingUpstream(t)
  return await startGateway(t, {
    yaml: `
upstream:
  url: ${upstream}
  keys: [${POOL_KEY}]
  headers: { x-org: ${ORG_HEADER}, x-tag: ${SHORT} }
models:
  cacheTtlMs: 0
auth:
  keys:
    - { name: plain, key: ${CLIENT} }
    - { name: mapped, key: ${MAPPED_CLIENT}, upstreamKey: ${MAPPED_KEY} }
`
  })
}

function assertClean (where: string, text: string): void {
  for (const secret of SECRETS) assert.ok(!text.includes(secret), `${secret} reached the client in ${where}: ${text.slice(0, 300)}`)
}

test('an upstream 401 naming the key, split across chunks, reaches the SDK without it; the header echo too', async (t) => {
  const gw = await gateway(t)
  for (const key of [CLIENT, MAPPED_CLIENT]) {
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 })
    await assert.rejects(client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }), (err: unknown) => {
      assert.ok(err instanceof OpenAI.AuthenticationError, String(err))
      assert.equal(err.code, 'invalid_api_key')
      assertClean('the SDK error', `${err.message} ${JSON.stringify(err.error)} ${JSON.stringify(Object.fromEntries(err.headers as unknown as Iterable<[string, string]>))}`)
      assert.match(err.message, /Incorrect API key provided: Bearer \[REDACTED\] org=\[REDACTED\] tag=\[REDACTED\]\. \(tag \[REDACTED\]\)/)
      return true
    })
  }
  const res = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${CLIENT}`, 'content-type': 'application/json' }, body: '{}' })
  const body = await res.body.text()
  assert.equal(res.statusCode, 401)
  assert.equal(Number(res.headers['content-length']), Buffer.byteLength(body), 'an exact length for the checked body')
  JSON.parse(body)
  assertClean('a raw 401', body + JSON.stringify(res.headers))
  assert.equal(res.headers['x-debug-auth'], `Bearer ${REDACTED} org=${REDACTED} tag=${REDACTED}`)
})

test('a compressed error body is decoded and checked; one over the bound is not relayed (502); a 2xx body passes untouched but its headers are checked', async (t) => {
  const gw = await gateway(t)
  const gz = await request(`${gw.url}/v1/chat/completions?gzip`, { method: 'POST', headers: { authorization: `Bearer ${CLIENT}`, 'content-type': 'application/json', 'accept-encoding': 'gzip' }, body: '{}' })
  const text = await gz.body.text()
  assert.equal(gz.statusCode, 401)
  assert.equal(gz.headers['content-encoding'], undefined, 'sent plain')
  assert.match(text, /Incorrect API key provided: Bearer \[REDACTED\]/)
  assertClean('a gzip 401', text)

  const big = await request(`${gw.url}/v1/chat/completions?big`, { method: 'POST', headers: { authorization: `Bearer ${CLIENT}`, 'content-type': 'application/json' }, body: '{}' })
  const bigText = await big.body.text()
  assert.equal(big.statusCode, 502)
  assert.equal(JSON.parse(bigText).error.code, 'upstream_bad_response')
  assertClean('an oversized error body', bigText + JSON.stringify(big.headers))
  assert.match(gw.logText(), /upstream error body too large or unreadable to check for secrets/)

  const ok = await request(`${gw.url}/v1/chat/completions?ok`, { method: 'POST', headers: { authorization: `Bearer ${CLIENT}`, 'content-type': 'application/json' }, body: '{}' })
  assert.equal(ok.statusCode, 200)
  assert.deepEqual(await ok.body.json(), { object: 'list', data: [{ id: 'gpt-4o-mini', object: 'model' }] })
  assert.equal(ok.headers['x-debug-auth'], `Bearer ${REDACTED} org=${REDACTED} tag=${REDACTED}`)
})

test('the model list: an upstream error naming the key is checked the same way', async (t) => {
  const gw = await gateway(t)
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: MAPPED_CLIENT, maxRetries: 0 })
  await assert.rejects(client.models.list(), (err: unknown) => {
    assert.ok(err instanceof OpenAI.AuthenticationError, String(err))
    assertClean('the model list error', `${err.message} ${JSON.stringify(Object.fromEntries(err.headers as unknown as Iterable<[string, string]>))}`)
    assert.match(err.message, /Bearer \[REDACTED\]/)
    return true
  })
})

/** undici's controller, as far as an exchange fed by hand needs one */
const CONTROLLER = { pause () {}, resume () {}, abort () {}, aborted: false, paused: false, reason: null } as unknown as Dispatcher.DispatchController

test('holdBody and checkedBody: a key split across two chunks is found; the bound holds', async () => {
  const filter = SecretFilter.of(SECRETS)!
  const text = `{"error":{"message":"Incorrect API key provided: ${POOL_KEY} (${SHORT})","n":${4}}}`
  for (let cut = 1; cut < text.length; cut++) {
    const exchange = new UpstreamExchange()
    const held = holdBody(exchange, 1024)
    exchange.onResponseData(CONTROLLER, Buffer.from(text.slice(0, cut)))
    exchange.onResponseData(CONTROLLER, Buffer.from(text.slice(cut)))
    exchange.onResponseEnd()
    const out = checkedBody((await held)!, undefined, filter)!.toString()
    assert.equal(out, `{"error":{"message":"Incorrect API key provided: ${REDACTED} (${REDACTED})","n":4}}`, `cut at ${cut}`)
  }
  const over = new UpstreamExchange()
  const held = holdBody(over, 8)
  over.onResponseData(CONTROLLER, Buffer.from('123456789'))
  assert.equal(await held, null)
  assert.equal(checkedBody(Buffer.from('x'), 'zstd', filter), null, 'an encoding the gateway cannot read')
})

test('short secrets: removed where they stand alone, JSON stays JSON, words and numbers that contain them stay', () => {
  const filter = SecretFilter.of(['42', 'k1', 'sk-long-enough-0001'])!
  assert.equal(filter.redact('key k1 and 42.'), `key ${REDACTED} and ${REDACTED}.`)
  assert.equal(filter.redact('k10 ak1 1420 sk-long-enough-0001x'), `k10 ak1 1420 ${REDACTED}x`)
  const line = '{"n":42,"msg":"token 42 used by k1","list":[42,"42"]}\n'
  const out = filter.redact(line)
  assert.ok(out.endsWith('\n'))
  assert.deepEqual(JSON.parse(out), { n: 42, msg: `token ${REDACTED} used by ${REDACTED}`, list: [42, REDACTED] })
  assert.equal(SecretFilter.of([]), null)
})
