/**
 * What an upstream answers, beyond the plain case: informational answers before the final one,
 * compressed bodies (passed through compressed when nothing reads them and the client takes the
 * coding, decoded otherwise), bodies their encoding does not decode, and errors reported inside a
 * `200` event stream. Each against a real gateway and a scripted upstream on 127.0.0.1.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import { createGzip, gunzipSync, gzipSync, deflateSync } from 'node:zlib'
import { request } from 'undici'
import OpenAI from 'openai'
import Anthropic from '@anthropic-ai/sdk'
import { startGateway, type GatewayHandle } from '../helper.js'
import { recordOf } from '../observability/helpers.js'

const ADMIN = 'admin-token-SECRET-1c2d3e4f'
const CHAT = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'hi' }] }
const COMPLETION = { id: 'c1', object: 'chat.completion', created: 1, model: 'gpt-4o-mini', choices: [{ index: 0, message: { role: 'assistant', content: 'Hello' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } }

type Handler = (req: IncomingMessage, res: ServerResponse) => void

async function upstream (t: TestContext, handler: Handler): Promise<string> {
  const server = createServer((req, res) => {
    req.resume()
    req.once('end', () => handler(req, res))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.after(() => { server.closeAllConnections(); server.close() })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

async function gateway (t: TestContext, handler: Handler): Promise<GatewayHandle> {
  return startGateway(t, { env: { GATEWAY_UPSTREAM_URL: await upstream(t, handler), ADMIN_TOKEN: ADMIN } })
}

function post (gw: GatewayHandle, path: string, body: object, headers: Record<string, string> = {}): ReturnType<typeof request> {
  return request(`${gw.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
}

/** The gateway still answers a plain request (its own health route). */
async function stillServes (gw: GatewayHandle): Promise<void> {
  const res = await request(`${gw.url}/healthz`)
  assert.equal(res.statusCode, 200)
  await res.body.dump()
}

test('103 Early Hints (and 102) before the answer: the final answer reaches the client, JSON and stream', async (t) => {
  const gw = await gateway(t, (req, res) => {
    res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' })
    res.writeProcessing()
    if (req.url?.includes('stream') === true) {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.end('data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\ndata: [DONE]\n\n')
      return
    }
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(COMPLETION))
  })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client-hints-0000aaaa', maxRetries: 0 })
  const { data, response } = await client.chat.completions.create(CHAT).withResponse()
  assert.equal(data.choices[0].message.content, 'Hello')
  const record = await recordOf(gw, response.headers.get('x-request-id') as string)
  assert.deepEqual([record.status, record.errorClass, record.totalTokens], [200, null, 4])

  const res = await post(gw, '/v1/chat/completions?stream', { ...CHAT, stream: true })
  assert.equal(res.statusCode, 200)
  assert.match(await res.body.text(), /"content":"Hi"[\s\S]*\[DONE\]/)
  await stillServes(gw)
})

test('compressed answers: passed on compressed when nothing reads them and the client takes the coding; error answers are read for secrets', async (t) => {
  // a file's content: nothing of the gateway reads it (the model list would go through its cache)
  const listing = JSON.stringify({ object: 'list', data: [{ id: 'gpt-4o-mini', object: 'model' }] })
  const gw = await gateway(t, (req, res) => {
    const url = req.url ?? ''
    if (url.startsWith('/v1/files/')) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' })
      res.end(gzipSync(listing))
    } else if (url.startsWith('/v1/audio/speech')) {
      res.writeHead(200, { 'content-type': 'audio/mpeg', 'content-encoding': 'deflate' })
      res.end(deflateSync(Buffer.from('ID3 not really audio')))
    } else if (req.headers['x-answer'] === 'error') {
      res.writeHead(400, { 'content-type': 'application/json', 'content-encoding': 'gzip' })
      res.end(gzipSync(JSON.stringify({ error: { message: 'bad request', type: 'invalid_request_error' } })))
    } else {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' })
      res.end(gzipSync(JSON.stringify(COMPLETION)))
    }
  })
  // nothing reads a file's content or audio: the client that takes gzip/deflate gets them as sent
  const models = await request(`${gw.url}/v1/files/file-1/content`, { headers: { 'accept-encoding': 'gzip, br' } })
  assert.equal(models.headers['content-encoding'], 'gzip')
  assert.equal(gunzipSync(Buffer.from(await models.body.arrayBuffer())).toString(), listing)
  const speech = await post(gw, '/v1/audio/speech', { model: 'tts-1', input: 'hi', voice: 'alloy' }, { 'accept-encoding': 'deflate' })
  assert.equal(speech.headers['content-encoding'], 'deflate')
  await speech.body.dump()
  // an error answer is read whatever the client takes: it is checked for configured secrets
  // (src/proxy/answer-check.ts), then sent decoded with its exact length
  const refused = await post(gw, '/v1/chat/completions', CHAT, { 'accept-encoding': 'gzip', 'x-answer': 'error' })
  assert.equal(refused.statusCode, 400)
  assert.equal(refused.headers['content-encoding'], undefined)
  const refusedBody = await refused.body.text()
  assert.equal(refused.headers['content-length'], String(Buffer.byteLength(refusedBody)))
  assert.match(refusedBody, /bad request/)

  // the usage tap reads a completion: decoded, and the client gets it plain
  const chat = await post(gw, '/v1/chat/completions', CHAT, { 'accept-encoding': 'gzip' })
  assert.equal(chat.headers['content-encoding'], undefined)
  assert.deepEqual(await chat.body.json(), COMPLETION)
  const record = await recordOf(gw, String(chat.headers['x-request-id']))
  assert.equal(record.totalTokens, 4)

  // a client that does not take the coding the upstream chose anyway gets it decoded
  for (const accept of ['identity', 'br', 'gzip;q=0, deflate', '*;q=0']) {
    const plain = await request(`${gw.url}/v1/files/file-1/content`, { headers: { 'accept-encoding': accept } })
    assert.equal(plain.headers['content-encoding'], undefined, accept)
    assert.equal(await plain.body.text(), listing, accept)
  }
  const star = await request(`${gw.url}/v1/files/file-1/content`, { headers: { 'accept-encoding': '*' } })
  assert.equal(star.headers['content-encoding'], 'gzip')
  await star.body.dump()
})

test('a body its content-encoding does not decode: a shaped 502 before anything was sent; after, an error event or a cut', async (t) => {
  const first = 'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
  const gw = await gateway(t, (req, res) => {
    const sse = req.url?.includes('stream') === true
    res.writeHead(200, { 'content-type': sse ? 'text/event-stream' : 'application/json', 'content-encoding': 'gzip' })
    const late = req.headers['x-late'] === '1'
    if (!late) {
      // a gzip header, then bytes that are no deflate data
      res.end(Buffer.concat([gzipSync('{}').subarray(0, 10), Buffer.from('this is not deflate data at all, sorry')]))
      return
    }
    // a first part that decodes (flushed), then garbage once that part has left: written in one
    // turn, both would reach the gateway as one chunk that does not decode at all
    const z = createGzip()
    let written: Promise<void> = Promise.resolve()
    z.on('data', (c: Buffer) => { written = new Promise(resolve => res.write(c, () => resolve())) })
    z.write(sse ? first : '{"id":"c1","padding":"' + 'x'.repeat(70000))
    z.flush(() => { written.then(() => res.end(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00, 0x01, 0x02])), () => {}) })
  })
  for (const path of ['/v1/chat/completions', '/v1/chat/completions?stream']) {
    const early = await post(gw, path, { ...CHAT, stream: path.endsWith('stream') }, { 'accept-encoding': 'gzip' })
    assert.equal(early.statusCode, 502, path)
    assert.deepEqual(await early.body.json(), { error: { message: 'The upstream service sent an invalid response', type: 'upstream_error', code: 'upstream_bad_response' } })
    assert.equal((await recordOf(gw, String(early.headers['x-request-id']))).errorClass, 'upstream_bad_encoding')
  }

  const stream = await post(gw, '/v1/chat/completions?stream', { ...CHAT, stream: true }, { 'accept-encoding': 'gzip', 'x-late': '1' })
  assert.equal(stream.statusCode, 200)
  assert.equal(await stream.body.text(), first + 'data: {"error":{"message":"The upstream stream was interrupted","type":"upstream_error","code":"upstream_bad_encoding"}}\n\n')
  assert.equal((await recordOf(gw, String(stream.headers['x-request-id']))).errorClass, 'upstream_bad_encoding')

  const json = await post(gw, '/v1/chat/completions', CHAT, { 'accept-encoding': 'gzip', 'x-late': '1' })
  assert.equal(json.statusCode, 200)
  await assert.rejects(json.body.text(), 'a body that could not be decoded is cut, never passed as whole')
  assert.equal((await recordOf(gw, String(json.headers['x-request-id']))).errorClass, 'upstream_bad_encoding')
  assert.equal(gw.logs.filter(l => l.includes('"upstream_bad_encoding"') && l.includes('"msg":"upstream')).length, 4, 'one line each')
  await stillServes(gw)
})

test('an error event inside a 200 stream is an error: usage record, metrics, access line', async (t) => {
  const gw = await gateway(t, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    if (req.url?.includes('/messages') === true) {
      res.end('event: message_start\ndata: {"type":"message_start","message":{"id":"m1","type":"message","role":"assistant","model":"claude-3-5-haiku-latest","content":[],"usage":{"input_tokens":4,"output_tokens":0}}}\n\n' +
        'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n')
      return
    }
    res.end('data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n' +
      'data: {"error":{"message":"The server had an error while processing your request.","type":"server_error"}}\n\n')
  })
  const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client-errors-0000aaaa', maxRetries: 0 })
  const { data: stream, response } = await openai.chat.completions.create({ ...CHAT, stream: true }).withResponse()
  await assert.rejects(async () => { for await (const _c of stream) { /* read */ } }, /server had an error/)
  const record = await recordOf(gw, response.headers.get('x-request-id') as string)
  assert.deepEqual([record.status, record.errorClass, record.aborted], [200, 'upstream_stream_error', false])

  const anthropic = new Anthropic({ baseURL: gw.url, apiKey: 'sk-client-errors-0000aaaa', maxRetries: 0 })
  const messages = anthropic.messages.stream({ model: 'claude-3-5-haiku-latest', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] })
  await assert.rejects(messages.finalMessage(), /Overloaded/)
  const { response: aResponse } = await messages.withResponse()
  const aRecord = await recordOf(gw, aResponse.headers.get('x-request-id') as string)
  assert.equal(aRecord.errorClass, 'upstream_stream_error')

  const metrics = await (await request(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })).body.text()
  assert.match(metrics, /^gateway_upstream_errors_total\{target="default",class="upstream_stream_error"\} 2$/m)
  const usage = await (await request(`${gw.url}/admin/usage`, { headers: { authorization: `Bearer ${ADMIN}` } })).body.json() as { totals: { errors: number } }
  assert.equal(usage.totals.errors, 2)
})

test('a response stage that throws on what the upstream sent: that response passes on, one line, still serving', async (t) => {
  const events = 'data: {"choices":[{"index":0,"delta":{"content":"boom"}}]}\n\ndata: [DONE]\n\n'
  const url = await upstream(t, (req, res) => {
    const gzip = req.headers['x-gzip'] === '1'
    res.writeHead(200, { 'content-type': 'text/event-stream', ...(gzip ? { 'content-encoding': 'gzip' } : {}) })
    res.end(gzip ? gzipSync(events) : events)
  })
  const gw = await startGateway(t, {
    env: { GATEWAY_UPSTREAM_URL: url },
    // a stage with a bug (as a plugin's could have): it throws on a chunk of the upstream's body
    prepare: (app) => app.forwarder.addStage({
      name: 'buggy',
      position: 'near-client',
      make: () => ({
        write: (chunk: Buffer | string) => { if (String(chunk).includes('boom')) throw new Error('stage bug'); return chunk },
        end: () => ''
      })
    })
  })
  // gzip: the decoder makes it a chain of streams, where the stage runs inside the decoder's callback
  for (const gzip of ['1', '0']) {
    const res = await post(gw, '/v1/chat/completions', { ...CHAT, stream: true }, { 'x-gzip': gzip })
    assert.equal(res.statusCode, 200)
    assert.equal(await res.body.text(), events, `gzip ${gzip}`)
  }
  assert.equal(gw.logs.filter(l => l.includes('response stage failed')).length, 2)
  await stillServes(gw)
})
