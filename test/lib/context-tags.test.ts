/**
 * [CONTEXT_ID] tags on parsed objects: seed 000's request rewrite, its key, and the response
 * filter with tags split across deltas at every possible point.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { finished } from 'node:stream/promises'
import { ContextTagFilter, MAX_CHAIN_IDS, conversationKey, injectChain, splitPartialTag, stripTags, tagHeaderKey } from '../../src/lib/context-tags.js'
import { SseRewriteStream, SseTap, type SseTapEvent } from '../../src/lib/sse-transform.js'

test('stripTags removes every complete tag and reports each chain', () => {
  const seen: string[] = []
  assert.equal(stripTags('a\n[CONTEXT_ID:x|y] b [CONTEXT_ID:z]', c => seen.push(c)), 'a\n b ')
  assert.deepEqual(seen, ['x|y', 'z'])
  assert.equal(stripTags('[CONTEXT_ID:] stays'), '[CONTEXT_ID:] stays')
})

test('splitPartialTag holds back only what may still become a tag', () => {
  assert.deepEqual(splitPartialTag('hello\n[CONT'), { emit: 'hello\n', held: '[CONT' })
  assert.deepEqual(splitPartialTag('hello [CONTEXT_ID:ab|c'), { emit: 'hello ', held: '[CONTEXT_ID:ab|c' })
  assert.deepEqual(splitPartialTag('see [1]'), { emit: 'see [1]', held: '' })
  assert.deepEqual(splitPartialTag('x [CONTEXT_ID:]'), { emit: 'x [CONTEXT_ID:]', held: '' })
  assert.deepEqual(splitPartialTag('a['), { emit: 'a', held: '[' })
  assert.deepEqual(splitPartialTag('[CONTEXTS'), { emit: '[CONTEXTS', held: '' })
  // bounded: a "tag" longer than the bound is released as text
  assert.deepEqual(splitPartialTag(`[CONTEXT_ID:${'a'.repeat(100)}`, 50), { emit: `[CONTEXT_ID:${'a'.repeat(100)}`, held: '' })
})

test('the conversation key: tag headers sorted, scoped by client, credential hash or address', () => {
  const h1 = '0123456789abcdef0123456789abcdef'
  const h2 = 'ffffffffffffffffffffffffffffffff'
  const headers = { [h2]: ['[tag]'], [h1]: ['[tag]', 'x'], 'x-other': ['[tag]'], aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: ['nope'] }
  assert.equal(tagHeaderKey(headers), `${h1}|${h2}`)
  assert.equal(tagHeaderKey({}), '')
  const byClient = conversationKey({ client: 'alice', credential: 'sk-1', ip: '1.2.3.4' }, '')
  const byKey1 = conversationKey({ credential: 'sk-1', ip: '1.2.3.4' }, '')
  const byKey2 = conversationKey({ credential: 'sk-2', ip: '1.2.3.4' }, '')
  const byIp = conversationKey({ credential: null, ip: '1.2.3.4' }, '')
  assert.equal(new Set([byClient, byKey1, byKey2, byIp]).size, 4)
  assert.ok(!byKey1.includes('sk-1'), 'the credential is hashed')
  assert.notEqual(conversationKey({ client: 'alice', ip: '' }, h1), byClient)
})

test('injectChain follows seed 000: one new id per assistant message, growing chains', () => {
  let n = 0
  const newId = (): string => `u${++n}`
  const messages: unknown[] = [
    { role: 'system', content: 'sys' },
    { role: 'assistant', content: ' first answer\n[CONTEXT_ID:old] ' },
    { role: 'user', content: 'q' },
    { role: 'assistant', content: null, tool_calls: [{ id: 't' }] },
    { role: 'assistant', content: [{ type: 'text', text: 'a [CONTEXT_ID:old]' }, { type: 'image_url', image_url: { url: 'x' } }, { type: 'text', text: 'b ' }] },
    { role: 'assistant', content: [{ type: 'image_url', image_url: { url: 'y' } }] }
  ]
  const r = injectChain(messages, 'up-3|up-4', newId)
  assert.equal(r.chain, 'up-3|up-4|u1|u2|u3|u4')
  assert.equal(r.changed, true)
  assert.deepEqual(messages, [
    { role: 'system', content: 'sys' },
    { role: 'assistant', content: 'first answer\n[CONTEXT_ID:up-3|up-4|u1]' },
    { role: 'user', content: 'q' },
    { role: 'assistant', content: null, tool_calls: [{ id: 't' }] }, // kept (seed 000 made it "")
    { role: 'assistant', content: [{ type: 'text', text: 'a ' }, { type: 'image_url', image_url: { url: 'x' } }, { type: 'text', text: 'b\n[CONTEXT_ID:up-3|up-4|u1|u2|u3]' }] },
    { role: 'assistant', content: [{ type: 'image_url', image_url: { url: 'y' } }] }
  ])
  const none = injectChain([{ role: 'user', content: 'hi' }], undefined)
  assert.deepEqual(none, { chain: '', changed: false })
})

test('JSON bodies: every string loses its tags, the first chain is reported', () => {
  const chains: string[] = []
  const filter = new ContextTagFilter(c => { chains.push(c) })
  const body = { choices: [{ message: { content: 'answer\n[CONTEXT_ID:a|b]' } }, { message: { content: 'x[CONTEXT_ID:c]' } }], n: 12 }
  assert.deepEqual(filter.json(body), { choices: [{ message: { content: 'answer\n' } }, { message: { content: 'x' } }], n: 12 })
  assert.deepEqual(chains, ['a|b'])
  assert.equal(new ContextTagFilter(() => {}).json({ a: 'plain' }), undefined)
})

function openaiStream (deltas: string[]): string {
  const chunk = (delta: object, finish: string | null): string =>
    `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
  return chunk({ role: 'assistant', content: '' }, null) + deltas.map(d => chunk({ content: d }, null)).join('') + chunk({}, 'stop') + 'data: [DONE]\n\n'
}

async function filtered (input: string, chunkSize = 0): Promise<{ text: string, events: SseTapEvent[], chain: string | null }> {
  const filter = new ContextTagFilter(() => {})
  const stage = new SseRewriteStream(filter)
  const events: SseTapEvent[] = []
  const tap = new SseTap(e => events.push(e))
  stage.pipe(tap)
  tap.resume()
  const buf = Buffer.from(input)
  if (chunkSize === 0) stage.end(buf)
  else {
    for (let i = 0; i < buf.length; i += chunkSize) stage.write(buf.subarray(i, i + chunkSize))
    stage.end()
  }
  await finished(tap)
  let text = ''
  for (const e of events) {
    if (e.data === null || e.data === '[DONE]') continue
    const v = JSON.parse(e.data) as { choices?: Array<{ delta?: { content?: string }, text?: string }>, delta?: { text?: string }, type?: string }
    text += v.choices?.[0]?.delta?.content ?? v.choices?.[0]?.text ?? (v.type === 'content_block_delta' ? v.delta?.text ?? '' : '')
  }
  return { text, events, chain: filter.firstChain }
}

test('OpenAI stream: a tag cut into three deltas at every pair of points is removed and stored', async () => {
  const answer = 'Hello [CONT world [1] é\n[CONTEXT_ID:abc|d-e]'
  const expected = 'Hello [CONT world [1] é\n'
  for (let i = 0; i <= answer.length; i++) {
    for (let j = i; j <= answer.length; j++) {
      const deltas = [answer.slice(0, i), answer.slice(i, j), answer.slice(j)]
      const { text, chain } = await filtered(openaiStream(deltas))
      assert.equal(text, expected, `deltas ${JSON.stringify(deltas)}`)
      assert.equal(chain, 'abc|d-e')
    }
  }
})

test('OpenAI stream: text that only looked like a tag start is released, even at the very end', async () => {
  for (const answer of ['a [CONTEXT_ID:never closed', 'ends with [CONT', 'x[']) {
    for (let i = 0; i <= answer.length; i++) {
      const { text, chain } = await filtered(openaiStream([answer.slice(0, i), answer.slice(i)]))
      assert.equal(text, answer)
      assert.equal(chain, null)
    }
  }
  // no finish chunk, no [DONE]: held text goes out at the end of the stream
  const cut = 'data: {"choices":[{"index":0,"delta":{"content":"a [CONT"}}]}\n\n'
  const { text } = await filtered(cut)
  assert.equal(text, 'a [CONT')
})

test('Anthropic stream: a split tag is removed; held text goes out before content_block_stop', async () => {
  const ev = (type: string, data: object): string => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`
  const delta = (text: string): string => ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text } })
  const stream = (deltas: string[]): string => ev('message_start', { message: { content: [] } }) +
    ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }) +
    deltas.map(delta).join('') + ev('content_block_stop', { index: 0 }) + ev('message_stop', {})
  const tagged = await filtered(stream(['Hi\n[CONTEXT', '_ID:ab', 'c]']), 5)
  assert.equal(tagged.text, 'Hi\n')
  assert.equal(tagged.chain, 'abc')
  const notTag = await filtered(stream(['Hi [CONTEXT_ID', ':open']))
  assert.equal(notTag.text, 'Hi [CONTEXT_ID:open')
  const types = notTag.events.map(e => e.event)
  assert.deepEqual(types.slice(-3), ['content_block_delta', 'content_block_stop', 'message_stop'])
})

test('two choices interleaved keep their own held text', async () => {
  const chunk = (index: number, content: string): string => `data: ${JSON.stringify({ choices: [{ index, delta: { content } }] })}\n\n`
  const input = chunk(0, 'zero [CONTEXT_') + chunk(1, 'one [CONT') + chunk(0, 'ID:z0]') + chunk(1, 'inue]') + 'data: [DONE]\n\n'
  const filter = new ContextTagFilter(() => {})
  const events: SseTapEvent[] = []
  const stage = new SseRewriteStream(filter)
  const tap = new SseTap(e => events.push(e))
  stage.pipe(tap)
  tap.resume()
  stage.end(Buffer.from(input))
  await finished(tap)
  const texts = ['', '']
  for (const e of events) {
    if (e.data === '[DONE]' || e.data === null) continue
    const c = (JSON.parse(e.data) as { choices: Array<{ index: number, delta: { content: string } }> }).choices[0]
    texts[c.index] += c.delta.content
  }
  assert.deepEqual(texts, ['zero ', 'one [CONTinue]'])
  assert.equal(filter.firstChain, 'z0')
})

test('chains are capped: the upstream id and the most recent ids are kept', () => {
  let n = 0
  const stored = ['up', ...Array.from({ length: 70 }, (_, i) => `old${i}`)].join('|')
  const messages = [{ role: 'assistant', content: 'A' }, { role: 'assistant', content: 'B' }]
  const r = injectChain(messages, stored, () => `new${++n}`)
  const ids = r.chain.split('|')
  assert.equal(ids.length, MAX_CHAIN_IDS)
  assert.equal(ids[0], 'up')
  assert.deepEqual(ids.slice(-2), ['new1', 'new2'])
  // the first message's tag carries the capped stored chain plus its own id
  const first = /\[CONTEXT_ID:([^\]]+)\]/.exec(messages[0].content)?.[1].split('|') ?? []
  assert.equal(first.length, MAX_CHAIN_IDS + 1)
  assert.equal(first[0], 'up')
})
