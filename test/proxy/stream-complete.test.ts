/**
 * A stream whose last event reached the client is complete, even when the client closes before
 * the upstream's body formally ended (a gzip trailer, the chunked terminator): not a client abort
 * in the usage record, the access line, the metrics or /admin/usage. The upstream holds its end
 * until the client has closed, so the order is the same on every run.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import { createGzip, constants as zlib } from 'node:zlib'
import { request } from 'undici'
import OpenAI from 'openai'
import { startGateway, type GatewayHandle } from '../helper.js'
import { recordOf } from '../observability/helpers.js'

const ADMIN = 'admin-token-SECRET-5e6f7a8b'

interface HeldUpstream {
  url: string
  /** resolves once the gateway's upstream connection of the current stream closed */
  gatewayLeft: () => Promise<void>
}

function openAiEvents (): string[] {
  const chunk = (content: string | null, finish: string | null): string => `data: ${JSON.stringify({
    id: 'c1',
object: 'chat.completion.chunk',
created: 1,
model: 'gpt-4o-mini',
    choices: [{ index: 0, delta: content === null ? {} : { content }, finish_reason: finish }],
usage: null
  })}\n\n`
  return [
    chunk('Hel', null), chunk('lo', null), chunk(null, 'stop'),
    `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } })}\n\n`,
    'data: [DONE]\n\n'
  ]
}

function anthropicEvents (): string[] {
  const ev = (type: string, data: object): string => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`
  return [
    ev('message_start', { message: { id: 'm1', type: 'message', role: 'assistant', model: 'claude-3-5-haiku-latest', content: [], stop_reason: null, usage: { input_tokens: 4, output_tokens: 0 } } }),
    ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
    ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Hi' } }),
    ev('content_block_stop', { index: 0 }),
    ev('message_delta', { delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 2 } }),
    ev('message_stop', {})
  ]
}

/**
 * An upstream that sends every event of a stream (gzip-compressed and flushed per event, or
 * plain) but ends its body only after the gateway closed the connection: the client is sure to
 * have left before the end.
 */
async function heldUpstream (t: TestContext, gzip: boolean): Promise<HeldUpstream> {
  let left: Promise<void> = Promise.resolve()
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume()
    const events = req.url?.includes('/messages') === true ? anthropicEvents() : openAiEvents()
    const closed = once(res, 'close').then(() => {})
    left = closed
    const headers: Record<string, string> = { 'content-type': 'text/event-stream; charset=utf-8' }
    if (gzip) headers['content-encoding'] = 'gzip'
    res.writeHead(200, headers)
    if (!gzip) {
      for (const e of events) res.write(e)
      return
    }
    const z = createGzip()
    z.pipe(res)
    for (const e of events) {
      z.write(e)
      z.flush(zlib.Z_SYNC_FLUSH)
    }
    // the gzip trailer would follow here; it never comes before the gateway has gone
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.after(() => { server.closeAllConnections(); server.close() })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, gatewayLeft: () => left }
}

async function metric (gw: GatewayHandle, name: string): Promise<string> {
  const res = await request(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })
  const text = await res.body.text()
  return text.split('\n').filter(l => l.startsWith(name)).join('\n')
}

/** /admin/usage totals: the record is written before the client's close is answered, so they are in. */
async function usageErrors (gw: GatewayHandle): Promise<{ requests: number, errors: number }> {
  const res = await request(`${gw.url}/admin/usage`, { headers: { authorization: `Bearer ${ADMIN}` } })
  const body = await res.body.json() as { totals: { requests: number, errors: number } }
  return body.totals
}

/** A raw undici client reading the body until its terminal event, then destroying the connection. */
async function readUntil (url: string, body: object, terminal: string, headers: Record<string, string> = {}): Promise<{ id: string, text: string }> {
  const res = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip', ...headers },
    body: JSON.stringify(body)
  })
  assert.equal(res.statusCode, 200)
  let text = ''
  for await (const chunk of res.body) {
    text += (chunk as Buffer).toString('utf8')
    if (text.includes(terminal)) break
  }
  res.body.destroy()
  return { id: String(res.headers['x-request-id']), text }
}

for (const gzip of [true, false]) {
  const how = gzip ? 'gzip' : 'plain'
  test(`${how} OpenAI stream, raw client closes at [DONE]: complete, not a client abort`, async (t) => {
    const up = await heldUpstream(t, gzip)
    const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: up.url, ADMIN_TOKEN: ADMIN } })
    const got = await readUntil(`${gw.url}/v1/chat/completions`, { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true }, 'data: [DONE]')
    assert.match(got.text, /"content":"lo"/, 'the client read the stream decoded')
    await up.gatewayLeft()
    const record = await recordOf(gw, got.id)
    assert.equal(record.aborted, false)
    assert.equal(record.errorClass, null)
    assert.equal(record.status, 200)
    assert.equal(record.totalTokens, 5)
    assert.equal((record as unknown as { cutShort?: boolean }).cutShort, undefined)
    assert.doesNotMatch(await metric(gw, 'gateway_client_aborts_total'), /gateway_client_aborts_total(\{[^}]*\})? [1-9]/)
    const totals = await usageErrors(gw)
    assert.deepEqual([totals.requests, totals.errors], [1, 0])
  })

  test(`${how} Anthropic stream, raw client closes at message_stop: complete`, async (t) => {
    const up = await heldUpstream(t, gzip)
    const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: up.url, ADMIN_TOKEN: ADMIN } })
    const got = await readUntil(`${gw.url}/v1/messages`, { model: 'claude-3-5-haiku-latest', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }], stream: true }, '"type":"message_stop"}\n\n', { 'anthropic-version': '2023-06-01' })
    await up.gatewayLeft()
    const record = await recordOf(gw, got.id)
    assert.equal(record.aborted, false)
    assert.equal(record.errorClass, null)
    assert.equal(record.completionTokens, 2)
  })
}

test('a stream the client leaves before its last event is still a client abort', async (t) => {
  const up = await heldUpstream(t, true)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: up.url, ADMIN_TOKEN: ADMIN } })
  const got = await readUntil(`${gw.url}/v1/chat/completions`, { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true }, '"content":"lo"')
  await up.gatewayLeft()
  const record = await recordOf(gw, got.id)
  assert.equal(record.aborted, true)
  assert.equal(record.errorClass, 'client_abort')
  assert.match(await metric(gw, 'gateway_client_aborts_total'), / 1$/m)
  assert.equal((await usageErrors(gw)).errors, 1)
})

/**
 * The fetch of a client that closes its connection as soon as `[DONE]` came in (as the Python
 * SDK's HTTP client can), under the openai SDK, which parses the same bytes.
 */
const closingAtDone: typeof fetch = async (input, init) => {
  const res = await fetch(input, init)
  const source = res.body
  if (source === null) return res
  const reader = source.getReader()
  const decoder = new TextDecoder()
  let seen = ''
  const body = new ReadableStream<Uint8Array>({
    async pull (controller) {
      const { done, value } = await reader.read()
      if (done) {
        controller.close()
        return
      }
      controller.enqueue(value)
      seen += decoder.decode(value, { stream: true })
      if (seen.includes('data: [DONE]\n\n')) {
        await reader.cancel()
        controller.close()
      }
    }
  })
  return new Response(body, { status: res.status, headers: res.headers })
}

test('the openai SDK over a client that closes at [DONE] of a gzip stream: one complete record', async (t) => {
  const up = await heldUpstream(t, true)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: up.url, ADMIN_TOKEN: ADMIN } })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client-stream-0000aaaa', maxRetries: 0, fetch: closingAtDone })
  const { data: stream, response } = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true }).withResponse()
  let text = ''
  for await (const c of stream) text += c.choices[0]?.delta?.content ?? ''
  assert.equal(text, 'Hello')
  await up.gatewayLeft()
  const record = await recordOf(gw, response.headers.get('x-request-id') as string)
  assert.equal(record.aborted, false)
  assert.equal(record.errorClass, null)
  assert.equal(record.totalTokens, 5)
  assert.equal((await usageErrors(gw)).errors, 0)
})
