/**
 * The event-level SSE stage under adversarial chunking: every split point of a sample stream
 * (multi-byte characters, CRLF, lone CR, comments, event/id/retry fields, multi-line data,
 * non-JSON data, [DONE]) gives the same output as the stream in one piece.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { finished } from 'node:stream/promises'
import type { Transform } from 'node:stream'
import { DROP_EVENT, LineSplitter, SseRewriteStream, SseRewriter, SseTap, parseSseFields, type SseEventRewriter, type SseTapEvent } from '../../src/lib/sse-transform.js'

const SAMPLE = [
  ': keep-alive\n',
  '\n',
  'event: message\r\n',
  'id: 7\r\n',
  'data: {"choices":[{"index":0,"delta":{"content":"héllo wörld 你好 🎉"}}]}\r\n',
  '\r\n',
  'data: {"content":\n',
  'data: "multi"}\n',
  '\n',
  'data: not json ü\n',
  '\n',
  'retry: 100\n',
  '\n',
  'data: {"content":"cr only"}\r',
  '\r',
  'data:{"content":"no space"}\n',
  '\n',
  'data: [DONE]\n',
  '\n'
].join('')

async function run (stage: Transform, chunks: Buffer[]): Promise<string> {
  const out: Buffer[] = []
  stage.on('data', (c: Buffer) => out.push(c))
  for (const c of chunks) stage.write(c)
  stage.end()
  await finished(stage)
  return Buffer.concat(out).toString('utf8')
}

function splitAt (buf: Buffer, points: number[]): Buffer[] {
  const out: Buffer[] = []
  let from = 0
  for (const p of points) {
    out.push(buf.subarray(from, p))
    from = p
  }
  out.push(buf.subarray(from))
  return out
}

/** Upper-cases every "content" string, at any depth. */
function upper (value: unknown): unknown {
  if (Array.isArray(value)) return value.map(upper)
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) out[k] = k === 'content' && typeof v === 'string' ? v.toUpperCase() : upper(v)
    return out
  }
  return value
}

const untouched: SseEventRewriter = { event: () => undefined }
const upperCaser: SseEventRewriter = { event: (v) => upper(v) }

test('an untouched stream comes out byte for byte at every split point', async () => {
  const buf = Buffer.from(SAMPLE)
  for (let i = 0; i <= buf.length; i++) {
    const out = await run(new SseRewriteStream(untouched), splitAt(buf, [i]))
    assert.equal(out, SAMPLE, `split at byte ${i}`)
  }
  const bytes = [...Array(buf.length).keys()].slice(1)
  assert.equal(await run(new SseRewriteStream(untouched), splitAt(buf, bytes)), SAMPLE, 'one byte per chunk')
})

test('a rewritten stream is the same at every split point, and only JSON data changes', async () => {
  const buf = Buffer.from(SAMPLE)
  const whole = await run(new SseRewriteStream(upperCaser), [buf])
  assert.equal(whole, [
    ': keep-alive\n',
    '\n',
    'event: message\r\n',
    'id: 7\r\n',
    'data: {"choices":[{"index":0,"delta":{"content":"HÉLLO WÖRLD 你好 🎉"}}]}\r\n',
    '\r\n',
    'data: {"content":"MULTI"}\n', // a multi-line JSON event is parsed as one and sent on one line
    '\n',
    'data: not json ü\n',
    '\n',
    'retry: 100\n',
    '\n',
    'data: {"content":"CR ONLY"}\r',
    '\r',
    'data: {"content":"NO SPACE"}\n',
    '\n',
    'data: [DONE]\n',
    '\n'
  ].join(''))
  for (let i = 0; i <= buf.length; i++) {
    assert.equal(await run(new SseRewriteStream(upperCaser), splitAt(buf, [i])), whole, `split at byte ${i}`)
  }
})

test('every pair of split points in a multi-byte event', async () => {
  const event = Buffer.from('data: {"content":"é你🎉x"}\r\n\r\n')
  const expected = 'data: {"content":"É你🎉X"}\r\n\r\n'
  for (let i = 0; i <= event.length; i++) {
    for (let j = i; j <= event.length; j++) {
      assert.equal(await run(new SseRewriteStream(upperCaser), splitAt(event, [i, j])), expected, `split at ${i},${j}`)
    }
  }
})

test('a 1 MiB line of multi-byte characters cut at chunk edges passes intact', async () => {
  const text = 'é你🎉'.repeat(Math.ceil((1024 * 1024) / 9))
  const stream = Buffer.from(`data: ${JSON.stringify({ content: text })}\n\n`)
  assert.ok(stream.length > 1024 * 1024)
  const chunks: Buffer[] = []
  for (let i = 0; i < stream.length; i += 16_381) chunks.push(stream.subarray(i, i + 16_381)) // odd size: cuts characters
  assert.equal(await run(new SseRewriteStream(untouched), chunks), stream.toString('utf8'))
  const rewritten = await run(new SseRewriteStream(upperCaser), chunks)
  assert.deepEqual(JSON.parse(rewritten.slice(6)), { content: text.toUpperCase() })
})

test('an endless line is passed on raw, never held beyond the bound', async () => {
  const max = 4096
  let told = 0
  const stage = new SseRewriteStream(upperCaser, { maxEventSize: max, onOversize: () => { told++ } })
  const out: Buffer[] = []
  stage.on('data', (c: Buffer) => out.push(c))
  const piece = Buffer.from('x'.repeat(1000))
  stage.write(Buffer.from('data: {"content":"'))
  let maxHeld = 0
  for (let i = 0; i < 1000; i++) {
    stage.write(piece)
    maxHeld = Math.max(maxHeld, stage.buffered)
  }
  stage.write(Buffer.from('"}\n\ndata: {"content":"after"}\n\n'))
  stage.end()
  await finished(stage)
  assert.ok(maxHeld <= max, `held ${maxHeld} characters`)
  assert.equal(told, 1)
  const text = Buffer.concat(out).toString()
  assert.equal(text, `data: {"content":"${'x'.repeat(1_000_000)}"}\n\ndata: {"content":"AFTER"}\n\n`)
})

test('an event of many lines over the bound passes raw up to its blank line', async () => {
  const lines = Array.from({ length: 50 }, (_, i) => `id: ${'n'.repeat(100)}${i}\n`).join('')
  const input = `${lines}data: {"content":"big"}\n\ndata: {"content":"small"}\n\n`
  const out = await run(new SseRewriteStream(upperCaser, { maxEventSize: 1024 }), [Buffer.from(input)])
  assert.equal(out, `${lines}data: {"content":"big"}\n\ndata: {"content":"SMALL"}\n\n`)
})

test('extra events of the rewriter go before [DONE], or at the end with a cut-off event closed', async () => {
  const withExtras = (): SseEventRewriter => ({ event: () => undefined, finish: () => [{ data: { held: 'text' } }, { event: 'ping', data: 1 }] })
  assert.equal(
    await run(new SseRewriteStream(withExtras()), [Buffer.from('data: {"a":1}\r\n\r\ndata: [DONE]\r\n\r\n')]),
    'data: {"a":1}\r\n\r\ndata: {"held":"text"}\r\n\r\nevent: ping\r\ndata: 1\r\n\r\ndata: [DONE]\r\n\r\n'
  )
  assert.equal(
    await run(new SseRewriteStream(withExtras()), [Buffer.from('data: {"a":1}\n\ndata: {"b":2}')]),
    'data: {"a":1}\n\ndata: {"b":2}\n\ndata: {"held":"text"}\n\nevent: ping\ndata: 1\n\n'
  )
})

test('inserted events go before the event that asked for them; a throwing rewriter leaves events alone', async () => {
  const rewriter: SseEventRewriter = {
    event: (v, ctx) => {
      if ((v as { n: number }).n === 2) ctx.insert({ event: 'before', data: 'x' })
      if ((v as { n: number }).n === 3) throw new Error('bug')
      return undefined
    }
  }
  const errors: unknown[] = []
  const out = await run(new SseRewriteStream(rewriter, { onError: (e) => errors.push(e) }), [Buffer.from('data: {"n":1}\n\nevent: e\ndata: {"n":2}\n\ndata: {"n":3}\n\n')])
  assert.equal(out, 'data: {"n":1}\n\nevent: before\ndata: "x"\n\nevent: e\ndata: {"n":2}\n\ndata: {"n":3}\n\n')
  assert.equal(errors.length, 1)
})

test('a rewriter can drop an event whole; its inserts still go out', async () => {
  const rewriter: SseEventRewriter = {
    event: (v, ctx) => {
      const n = (v as { n: number }).n
      if (n === 3) ctx.insert({ data: { replaced: 3 } })
      return n === 2 || n === 3 ? DROP_EVENT : undefined
    }
  }
  const out = await run(new SseRewriteStream(rewriter), [Buffer.from('data: {"n":1}\r\n\r\nid: 9\r\ndata: {"n":2}\r\n\r\ndata: {"n":3}\r\n\r\n: ping\r\ndata: [DONE]\r\n\r\n')])
  assert.equal(out, 'data: {"n":1}\r\n\r\ndata: {"replaced":3}\r\n\r\n: ping\r\ndata: [DONE]\r\n\r\n')
})

test('the data fast path replaces or drops one-line data unparsed; undefined goes on to event()', async () => {
  const seen: unknown[] = []
  const rewriter: SseEventRewriter = {
    data: (text) => (text === '{"n":1}' ? '{"n":"one"}' : text === '{"n":2}' ? DROP_EVENT : undefined),
    event: (v) => { seen.push(v); return undefined }
  }
  const out = await run(new SseRewriteStream(rewriter), [Buffer.from('event: e\r\ndata: {"n":1}\r\n\r\ndata: {"n":2}\r\n\r\ndata: {"n":3}\r\n\r\ndata: {"n":\r\ndata: 4}\r\n\r\n')])
  assert.equal(out, 'event: e\r\ndata: {"n":"one"}\r\n\r\ndata: {"n":3}\r\n\r\ndata: {"n":\r\ndata: 4}\r\n\r\n')
  assert.deepEqual(seen, [{ n: 3 }, { n: 4 }], 'multi-line data never takes the fast path')
})

test('beforeEnd is awaited before the stream ends', async () => {
  let stored = false
  const rewriter: SseEventRewriter = {
    event: () => undefined,
    beforeEnd: async () => { await new Promise(resolve => setTimeout(resolve, 5)); stored = true }
  }
  const stage = new SseRewriteStream(rewriter)
  stage.resume()
  stage.end(Buffer.from('data: 1\n\n'))
  await finished(stage)
  assert.equal(stored, true)
})

/**
 * LF-only streams (what LLM upstreams send) take the splitter's fast path: whole events cut at
 * '\n\n', one-line data events without line objects. The same sample in every chunking must
 * give the same output, through the Transform and through the synchronous core, and a '\r'
 * arriving mid-stream hands over to the line splitter without losing or doubling a byte.
 */
const LF_SAMPLE = [
  ': keep-alive\n',
  '\n',
  '\n', // a blank line too many, between events
  'event: message\n',
  'id: 7\n',
  'data: {"choices":[{"index":0,"delta":{"content":"héllo wörld 你好 🎉"}}]}\n',
  '\n',
  'data: {"content":\n',
  'data: "multi"}\n',
  '\n',
  'data: not json ü\n',
  '\n',
  'data:{"content":"no space"}\n',
  '\n',
  'data: {"content":"plain"}\n',
  '\n',
  'data: [DONE]\n',
  '\n'
].join('')

function runCore (core: SseRewriter, chunks: Buffer[]): string {
  let out = ''
  for (const c of chunks) out += core.write(c)
  return out + core.end()
}

test('fast path (LF only): every split point, Transform and synchronous core agree with the whole', async () => {
  const buf = Buffer.from(LF_SAMPLE)
  const whole = await run(new SseRewriteStream(upperCaser), [buf])
  assert.equal(whole, LF_SAMPLE.replace('héllo wörld', 'HÉLLO WÖRLD').replace('"multi"}\n', '"MULTI"}\n').replace('{"content":\ndata: "MULTI"}', '{"content":"MULTI"}')
    .replace('"no space"', '"NO SPACE"').replace('data:{"content"', 'data: {"content"').replace('"plain"', '"PLAIN"'))
  for (let i = 0; i <= buf.length; i++) {
    for (const j of [i, Math.min(buf.length, i + 1), Math.min(buf.length, i + 13)]) {
      assert.equal(await run(new SseRewriteStream(upperCaser), splitAt(buf, [i, j])), whole, `split at ${i},${j}`)
      assert.equal(runCore(new SseRewriter(upperCaser), splitAt(buf, [i, j])), whole, `core, split at ${i},${j}`)
      assert.equal(runCore(new SseRewriter(untouched), splitAt(buf, [i, j])), LF_SAMPLE, `untouched core, split at ${i},${j}`)
    }
  }
})

test('fast path hands over to the line splitter at the first CR, at every split point', async () => {
  const text = LF_SAMPLE + SAMPLE + LF_SAMPLE
  const buf = Buffer.from(text)
  const whole = runCore(new SseRewriter(upperCaser), [buf])
  for (let i = 0; i <= buf.length; i += 3) {
    assert.equal(runCore(new SseRewriter(untouched), splitAt(buf, [i])), text, `untouched, split at ${i}`)
    assert.equal(runCore(new SseRewriter(upperCaser), splitAt(buf, [i])), whole, `split at ${i}`)
  }
  const events: Array<string | null> = []
  const tap = new SseTap((e) => events.push(e.data))
  assert.equal(await run(tap, splitAt(buf, [...Array(buf.length).keys()].slice(1))), text, 'tap, one byte per chunk')
  assert.equal(events.filter((d) => d === '[DONE]').length, 3)
})

test('fast path: an event cut off by the end of the stream, and one over the bound', () => {
  assert.equal(runCore(new SseRewriter(upperCaser), [Buffer.from('data: {"content":"a"}\n\ndata: {"content":"b"}')]), 'data: {"content":"A"}\n\ndata: {"content":"B"}')
  const big = `data: {"content":"${'x'.repeat(3000)}"}\n\n`
  const core = new SseRewriter(upperCaser, { maxEventSize: 1024 })
  let out = ''
  let maxHeld = 0
  for (let i = 0; i < big.length; i += 100) {
    out += core.write(Buffer.from(big.slice(i, i + 100)))
    maxHeld = Math.max(maxHeld, core.buffered)
  }
  out += core.write(Buffer.from('data: {"content":"after"}\n\n')) + core.end()
  assert.ok(maxHeld <= 1024 + 100, `held ${maxHeld}`)
  assert.equal(out, big + 'data: {"content":"AFTER"}\n\n')
})

test('the tap passes chunks unchanged and reports parsed events', async () => {
  const events: SseTapEvent[] = []
  const buf = Buffer.from(SAMPLE)
  for (let i = 0; i <= buf.length; i += 7) {
    events.length = 0
    const out = await run(new SseTap(e => events.push(e)), splitAt(buf, [i]))
    assert.equal(out, SAMPLE)
    assert.deepEqual(events.map(e => e.data), [
      '{"choices":[{"index":0,"delta":{"content":"héllo wörld 你好 🎉"}}]}',
      '{"content":\n"multi"}',
      'not json ü',
      null,
      '{"content":"cr only"}',
      '{"content":"no space"}',
      '[DONE]'
    ])
    assert.equal(events[0].event, 'message')
    assert.equal(events[0].id, '7')
  }
})

test('line splitting: terminators kept, CR before LF across chunks is one CRLF', () => {
  const lines: Array<[string, string]> = []
  const splitter = new LineSplitter({ line: (t, e) => lines.push([t, e]), overflow: () => assert.fail('no overflow') })
  splitter.write(Buffer.from('a\r'))
  splitter.write(Buffer.from('\nb\r'))
  splitter.write(Buffer.from('c\n\r'))
  splitter.end()
  assert.deepEqual(lines, [['a', '\r\n'], ['b', '\r'], ['c', '\n'], ['', '\r']])
  assert.deepEqual(parseSseFields([{ text: 'data', eol: '\n' }, { text: 'data:  x', eol: '\n' }, { text: 'event:e', eol: '' }]), { event: 'e', data: '\n x', id: undefined })
})
