/**
 * Property-based fuzzing (fast-check) of what an upstream answers: informational answers (100,
 * 102, 103) before the final one or instead of it, random statuses, content types and framing
 * (content-length right, short or long, chunked, close-delimited), bodies compressed with gzip,
 * deflate or brotli, or claiming a coding they are not in (truncated, garbage appended, an
 * unknown coding), event streams with OpenAI and Anthropic events, `[DONE]`, and error events
 * inside a `200` stream. Each answer comes from a raw TCP upstream, through the real gateway, to
 * a real HTTP client that asks for a JSON answer or a stream, with a random Accept-Encoding.
 *
 * For every exchange: the client gets an answer or a cut connection, never a hang (bounded);
 * never the gateway's generic 500; nothing of the gateway's insides. Afterwards the gateway still
 * serves and logged nothing at error level. Seeded and bounded: HARDENING_FUZZ_UPSTREAM_RUNS
 * raises the count, HARDENING_FUZZ_SEED changes the seed.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Socket } from 'node:net'
import { once } from 'node:events'
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib'
import fc from 'fast-check'
import { request } from 'undici'
import { startGateway } from '../helper.js'
import { INTERNALS, stillServing } from './support.js'

const RUNS = Number(process.env.HARDENING_FUZZ_UPSTREAM_RUNS ?? 80)
const SEED = Number(process.env.HARDENING_FUZZ_SEED ?? 20261122) + 17

interface Answer {
  informational: Array<{ status: number, headers: Array<[string, string]> }>
  /** null: the upstream closes after the informational answers */
  status: number | null
  type: 'json' | 'sse' | 'text' | 'none'
  coding: 'none' | 'gzip' | 'x-gzip' | 'deflate' | 'br' | 'zstd' | 'bogus'
  damage: 'none' | 'truncate' | 'garbage' | 'plain'
  framing: 'length' | 'short' | 'long' | 'chunked' | 'close'
  events: string[]
  /** SSE: the encoded body goes out in this many writes (flushed pieces) */
  pieces: number
}

// ------------------------------------------------------------------------------- arbitraries

const textArb = fc.string({ unit: fc.constantFrom('a', 'b', 'é', '你', ' ', '"', '\\', '\n', 'x'), maxLength: 12 })
const openAiEvent = textArb.map(t => `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { content: t }, finish_reason: null }], usage: null })}\n\n`)
const EVENT_CONSTANTS = [
  'data: [DONE]\n\n',
  `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } })}\n\n`,
  'data: {"error":{"message":"The server had an error while processing your request.","type":"server_error"}}\n\n',
  'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',
  'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"c","content":[],"usage":{"input_tokens":4,"output_tokens":0}}}\n\n',
  'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}\n\n',
  'event: message_stop\ndata: {"type":"message_stop"}\n\n',
  'event: response.completed\ndata: {"type":"response.completed","response":{"usage":{"input_tokens":1,"output_tokens":1,"total_tokens":2}}}\n\n',
  ': keep-alive\n\n',
  'data: {"half":',
  'data: not json\r\n\r\n',
  '\n\n\n'
]
const eventArb = fc.oneof({ weight: 3, arbitrary: openAiEvent }, { weight: 2, arbitrary: fc.constantFrom(...EVENT_CONSTANTS) })
const headerArb = fc.tuple(fc.constantFrom('link', 'x-hint', 'x-request-id', 'retry-after'), fc.string({ unit: fc.constantFrom('a', '<', '/', '>', ';', '=', ' ', '1'), maxLength: 20 }))

const answerArb: fc.Arbitrary<Answer> = fc.record({
  informational: fc.array(fc.record({ status: fc.constantFrom(100, 102, 103), headers: fc.array(headerArb, { maxLength: 2 }) }), { maxLength: 3 }),
  status: fc.oneof({ weight: 12, arbitrary: fc.constantFrom(200, 200, 200, 201, 204, 304, 400, 401, 429, 500, 503) }, { weight: 1, arbitrary: fc.constant(null) }),
  type: fc.constantFrom('json', 'sse', 'sse', 'text', 'none'),
  coding: fc.constantFrom('none', 'none', 'gzip', 'gzip', 'x-gzip', 'deflate', 'br', 'zstd', 'bogus'),
  damage: fc.constantFrom('none', 'none', 'none', 'truncate', 'garbage', 'plain'),
  framing: fc.constantFrom('length', 'length', 'chunked', 'chunked', 'close', 'short', 'long'),
  events: fc.array(eventArb, { maxLength: 8 }),
  pieces: fc.integer({ min: 1, max: 4 })
})

interface Ask { stream: boolean, path: string, accept: string | null }
const askArb: fc.Arbitrary<Ask> = fc.record({
  stream: fc.boolean(),
  path: fc.constantFrom('/v1/chat/completions', '/v1/messages', '/v1/responses', '/v1/files/f/content'),
  accept: fc.constantFrom(null, 'gzip', 'gzip, deflate, br', 'identity', 'br;q=0, *', '*;q=0')
})

// ------------------------------------------------------------------------------- the upstream

function bodyOf (answer: Answer): Buffer {
  if (answer.type === 'sse') return Buffer.from(answer.events.join(''))
  if (answer.type === 'json') return Buffer.from(JSON.stringify({ id: 'c', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: answer.events.length > 0 ? answer.events[0] : '' } }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }))
  if (answer.type === 'text') return Buffer.from(answer.events.join('') || 'plain text')
  return Buffer.alloc(0)
}

function encode (answer: Answer, plain: Buffer): Buffer {
  let body: Buffer
  switch (answer.coding) {
    case 'gzip': case 'x-gzip': body = gzipSync(plain); break
    case 'deflate': body = deflateSync(plain); break
    case 'br': body = brotliCompressSync(plain); break
    case 'zstd': case 'bogus': body = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), plain]); break
    default: body = plain
  }
  if (answer.coding === 'none') return body
  if (answer.damage === 'truncate') return body.subarray(0, Math.floor(body.length / 2))
  if (answer.damage === 'garbage') return Buffer.concat([body, Buffer.from('\x00garbage\xff after the end')])
  if (answer.damage === 'plain') return plain
  return body
}

const REASONS: Record<number, string> = { 100: 'Continue', 102: 'Processing', 103: 'Early Hints' }

/** The answer as bytes on the wire, in pieces; the socket closes after the last one. */
function wire (answer: Answer): Buffer[] {
  const head = answer.informational.map(i => `HTTP/1.1 ${i.status} ${REASONS[i.status]}\r\n${i.headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`).join('')
  if (answer.status === null) return [Buffer.from(head)]
  const body = encode(answer, bodyOf(answer))
  const headers: string[] = [`HTTP/1.1 ${answer.status} X`]
  if (answer.type !== 'none') headers.push(`content-type: ${answer.type === 'sse' ? 'text/event-stream' : answer.type === 'json' ? 'application/json' : 'text/plain'}`)
  if (answer.coding !== 'none') headers.push(`content-encoding: ${answer.coding === 'bogus' ? 'gzip, br' : answer.coding}`)
  if (answer.framing === 'length') headers.push(`content-length: ${body.length}`)
  if (answer.framing === 'short') headers.push(`content-length: ${Math.max(0, body.length - 3)}`)
  if (answer.framing === 'long') headers.push(`content-length: ${body.length + 7}`)
  if (answer.framing === 'chunked') headers.push('transfer-encoding: chunked')
  headers.push('connection: close')
  const start = Buffer.from(head + headers.join('\r\n') + '\r\n\r\n')
  const parts: Buffer[] = []
  const size = Math.ceil(body.length / answer.pieces)
  for (let i = 0; i < body.length; i += Math.max(1, size)) parts.push(body.subarray(i, i + Math.max(1, size)))
  const framed = answer.framing === 'chunked'
    ? [...parts.map(p => Buffer.concat([Buffer.from(`${p.length.toString(16)}\r\n`), p, Buffer.from('\r\n')])), Buffer.from('0\r\n\r\n')]
    : parts
  return [start, ...framed]
}

async function rawUpstream (t: TestContext, next: () => Answer): Promise<string> {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    let seen = Buffer.alloc(0)
    const onData = (chunk: Buffer): void => {
      seen = Buffer.concat([seen, chunk])
      const end = seen.indexOf('\r\n\r\n')
      if (end === -1) return
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(seen.subarray(0, end).toString('latin1'))?.[1] ?? 0)
      if (seen.length < end + 4 + length) return
      socket.off('data', onData)
      send(socket, wire(next())).catch(() => socket.destroy())
    }
    socket.on('data', onData)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.after(() => { for (const s of sockets) s.destroy(); server.close() })
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`
}

/** Each piece in its own write, one turn of the event loop apart, then the end. */
async function send (socket: Socket, pieces: Buffer[]): Promise<void> {
  for (const piece of pieces) {
    if (socket.destroyed) return
    socket.write(piece)
    await new Promise(resolve => setImmediate(resolve))
  }
  socket.end()
}

// ------------------------------------------------------------------------------- the run

test(`fuzz upstream answers: ${RUNS} random answers (seed ${SEED}): 1xx, codings right and broken, framing, error events in 200 streams`, async (t) => {
  let current: Answer | null = null
  const url = await rawUpstream(t, () => current as Answer)
  const gw = await startGateway(t, {
    env: {
      GATEWAY_UPSTREAM_URL: url,
      GATEWAY_RATE_LIMIT_ENABLED: 'false',
      GATEWAY_FIRST_BYTE_TIMEOUT_MS: '3000',
      GATEWAY_IDLE_TIMEOUT_MS: '3000'
    }
  })
  const statuses = new Map<string, number>()
  await fc.assert(fc.asyncProperty(answerArb, askArb, async (answer, ask) => {
    current = answer
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    if (ask.accept !== null) headers['accept-encoding'] = ask.accept
    if (ask.path === '/v1/messages') headers['anthropic-version'] = '2023-06-01'
    let res
    try {
      res = await request(`${gw.url}${ask.path}`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8, stream: ask.stream }),
        headersTimeout: 15_000,
        bodyTimeout: 15_000
      })
    } catch (err) {
      // cut before the status line reached the client (a body-less 204 whose upstream sent a
      // body after all fails once the gateway wrote its head): a cut, never a hang
      assert.equal((err as { code?: string }).code, 'UND_ERR_SOCKET', String(err))
      statuses.set('cut', (statuses.get('cut') ?? 0) + 1)
      return
    }
    let body = ''
    let cut = false
    try {
      body = Buffer.from(await res.body.arrayBuffer()).toString('latin1')
    } catch {
      cut = true // a body that failed after its headers is cut, never passed as whole
    }
    const key = `${res.statusCode}${cut ? ' cut' : ''}`
    statuses.set(key, (statuses.get(key) ?? 0) + 1)
    const ours = /"code":"internal_error"|The gateway failed to process the request/.test(body)
    assert.ok(!ours, `the gateway's own 500 for ${JSON.stringify(answer)}: ${body.slice(0, 300)}`)
    assert.doesNotMatch(body, INTERNALS)
    // the upstream never answers 502/504 here: those are the gateway's own, shaped for the SDK
    if (res.statusCode === 502 || res.statusCode === 504) assert.match(body, /"upstream_|^\{"type":"error"/)
  }), { seed: SEED, numRuns: RUNS, endOnFailure: true, includeErrorInReport: true })
  t.diagnostic(`answers: ${[...statuses].sort().map(([k, n]) => `${k}×${n}`).join(', ')}`)
  const errors = gw.logs.filter(l => /"level":(50|60)/.test(l))
  assert.deepEqual(errors, [], 'nothing logged at error level')
  await stillServing(gw.url)
})
