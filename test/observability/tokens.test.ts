/**
 * Token counting rules: the last cumulative value counts (never a sum), both providers end up in
 * one normal form, and the stream stages read usage without changing what the client asked for.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { finished } from 'node:stream/promises'
import type { Transform } from 'node:stream'
import { UsageAccumulator, addCounts, realtimeEventCounts, usageDialect, takesStreamOptions } from '../../src/usage/tokens.js'
import { ResponseUsage, hiddenUsageStage, mayCarryUsage, usageKeyAt } from '../../src/usage/stages.js'
import { asTransform, type ChunkStage } from '../../src/proxy/chunk-stages.js'

/** A synchronous stage runs as a Transform here (`asTransform`, as in a mixed chain). */
async function run (chunkStage: Transform | ChunkStage, chunks: string[]): Promise<string> {
  const stage = asTransform(chunkStage, (err) => { throw err })
  const out: Buffer[] = []
  stage.on('data', (c: Buffer) => out.push(Buffer.from(c)))
  for (const c of chunks) stage.write(Buffer.from(c))
  stage.end()
  await finished(stage)
  return Buffer.concat(out).toString('utf8')
}

const limits = { maxJsonBytes: 1024, maxEventSize: 1024 * 1024 }

test('Anthropic: message_start then running totals in message_delta; each field keeps its last value', () => {
  const acc = new UsageAccumulator('anthropic')
  acc.observe({ type: 'message_start', message: { usage: { input_tokens: 100, output_tokens: 1, cache_read_input_tokens: 40, cache_creation_input_tokens: 10 } } })
  acc.observe({ type: 'message_delta', usage: { output_tokens: 5 } })
  acc.observe({ type: 'message_delta', usage: { input_tokens: 100, output_tokens: 12 } })
  acc.observe({ type: 'message_delta', usage: { output_tokens: 20 } })
  assert.deepEqual(acc.counts(), {
    promptTokens: 150, // input plus both cache counts: all the input the model read
    completionTokens: 20,
    totalTokens: 170,
    cacheReadTokens: 40,
    cacheCreationTokens: 10,
    reasoningTokens: null,
    cacheCreation1hTokens: null,
    audioInputTokens: null,
    audioOutputTokens: null
  })
})

test('OpenAI: chat, Responses API and embeddings usage objects; the latest replaces the earlier', () => {
  const chat = new UsageAccumulator('openai')
  chat.observe({ usage: { prompt_tokens: 9, completion_tokens: 3, total_tokens: 12, prompt_tokens_details: { cached_tokens: 4 }, completion_tokens_details: { reasoning_tokens: 2 } } })
  assert.deepEqual(chat.counts(), { promptTokens: 9, completionTokens: 3, totalTokens: 12, cacheReadTokens: 4, cacheCreationTokens: null, reasoningTokens: 2, cacheCreation1hTokens: null, audioInputTokens: null, audioOutputTokens: null })
  chat.observe({ usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 } })
  assert.equal(chat.counts().totalTokens, 15)

  const responses = new UsageAccumulator('openai')
  responses.observe({ type: 'response.created', response: { usage: null } })
  responses.observe({ type: 'response.completed', response: { usage: { input_tokens: 7, output_tokens: 8, total_tokens: 15, input_tokens_details: { cached_tokens: 1 } } } })
  assert.deepEqual(responses.counts(), { promptTokens: 7, completionTokens: 8, totalTokens: 15, cacheReadTokens: 1, cacheCreationTokens: null, reasoningTokens: null, cacheCreation1hTokens: null, audioInputTokens: null, audioOutputTokens: null })

  const embeddings = new UsageAccumulator('openai')
  embeddings.observe({ object: 'list', data: [], usage: { prompt_tokens: 6, total_tokens: 6 } })
  assert.equal(embeddings.counts().promptTokens, 6)
  assert.equal(embeddings.counts().completionTokens, null)
  assert.equal(embeddings.counts().totalTokens, 6)

  const none = new UsageAccumulator('openai')
  none.observe({ error: { message: 'x' } })
  assert.equal(none.seen, false)
  assert.equal(none.counts().totalTokens, null)
})

test('realtime: response.done events of one session add up', () => {
  const done = { type: 'response.done', response: { usage: { total_tokens: 30, input_tokens: 10, output_tokens: 20, input_token_details: { cached_tokens: 2 } } } }
  const one = realtimeEventCounts(done)
  assert.ok(one !== null)
  assert.equal(realtimeEventCounts({ type: 'response.created', response: {} }), null)
  const two = addCounts(one, one)
  assert.equal(two.totalTokens, 60)
  assert.equal(two.cacheReadTokens, 4)
  assert.equal(two.cacheCreationTokens, null)
})

test('which paths carry usage, and which take stream_options', () => {
  assert.equal(usageDialect('/v1/chat/completions'), 'openai')
  assert.equal(usageDialect('/openai/deployments/gpt/chat/completions'), 'openai')
  assert.equal(usageDialect('/v1/embeddings'), 'openai')
  assert.equal(usageDialect('/v1/responses'), 'openai')
  assert.equal(usageDialect('/v1/messages'), 'anthropic')
  assert.equal(usageDialect('/v1/messages/count_tokens'), null)
  assert.equal(usageDialect('/v1/models'), null)
  assert.equal(takesStreamOptions('/v1/chat/completions'), true)
  assert.equal(takesStreamOptions('/v1/embeddings'), false)
})

const chunk = (choices: string, usage?: string): string =>
  `data: {"id":"c1","object":"chat.completion.chunk","choices":${choices}${usage !== undefined ? `,"usage":${usage}` : ''}}\n\n`

test('hidden usage: the usage-only chunk and the "usage": null fields are taken out, and counted', async () => {
  const usage = new ResponseUsage('openai')
  usage.hideStreamUsage = true
  const stage = hiddenUsageStage(usage, limits, (err) => { throw err })
  const out = await run(stage, [
    chunk('[{"index":0,"delta":{"content":"Hi"}}]', 'null'),
    ': keep-alive\n\n',
    chunk('[{"index":0,"delta":{},"finish_reason":"stop"}]', 'null'),
    chunk('[]', '{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}'),
    'data: [DONE]\n\n'
  ])
  assert.equal(out, [
    chunk('[{"index":0,"delta":{"content":"Hi"}}]'),
    ': keep-alive\n\n',
    chunk('[{"index":0,"delta":{},"finish_reason":"stop"}]'),
    'data: [DONE]\n\n'
  ].join(''))
  assert.equal(usage.counts().totalTokens, 5)
  assert.equal(usage.streamed, true)
})

test('hidden usage on a choice chunk (some compatible servers): the field goes, the chunk stays', async () => {
  const usage = new ResponseUsage('openai')
  usage.hideStreamUsage = true
  const out = await run(hiddenUsageStage(usage, limits, (err) => { throw err }), [
    chunk('[{"index":0,"delta":{},"finish_reason":"stop"}]', '{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}'),
    'data: {"choices":[{"delta":{"content":"the \\"usage\\" word"}}],"usage": null, "x": 1}\n\n'
  ])
  assert.equal(out, chunk('[{"index":0,"delta":{},"finish_reason":"stop"}]') + 'data: {"choices":[{"delta":{"content":"the \\"usage\\" word"}}],"x":1}\n\n')
  assert.equal(usage.counts().totalTokens, 2)
})

/** A body on its way to the client through the usage plugin's tap stage (as a Transform here). */
async function watched (kind: 'events' | 'json', usage: ResponseUsage, chunks: Array<string | Buffer>, maxBytes = 1024): Promise<string> {
  const tap = asTransform(kind === 'events' ? usage.eventTap(1024 * 1024) : usage.jsonTap(maxBytes), (err) => { throw err })
  const out: Buffer[] = []
  tap.on('data', (c: Buffer) => out.push(Buffer.from(c)))
  for (const c of chunks) tap.write(typeof c === 'string' ? Buffer.from(c) : c)
  tap.end()
  await finished(tap)
  return Buffer.concat(out).toString('utf8')
}

test('a stream the client asked usage for is only watched; errors and pings are tolerated', async () => {
  const usage = new ResponseUsage('anthropic')
  const input = [
    'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":11,"output_tokens":1}}}\n\n',
    'event: ping\ndata: {"type": "ping"}\n\n',
    ': comment\n\n',
    'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":4}}\n\n',
    'event: message_delta\ndata: {"type":"message_delta","usa',
    'ge":{"output_tokens":9}}\n\n',
    'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',
    'event: message_delta\ndata: not json "usage"\n\n'
  ]
  assert.equal(await watched('events', usage, input), input.join(''))
  assert.equal(usage.counts().promptTokens, 11)
  assert.equal(usage.counts().completionTokens, 9)
})

test('JSON bodies: usage read from the whole body once it ended; a body over the bound is not read', async () => {
  const usage = new ResponseUsage('openai')
  const body = '{"id":"x","choices":[{"message":{"content":"héllo"}}],"usage":{"prompt_tokens":4,"completion_tokens":6,"total_tokens":10}}'
  const buf = Buffer.from(body)
  const at = buf.indexOf('é') + 1 // between the two bytes of é
  assert.equal(await watched('json', usage, [buf.subarray(0, at), buf.subarray(at)]), body)
  assert.equal(usage.counts().totalTokens, 10)

  const big = new ResponseUsage('openai')
  const padded = `{"pad":"${'x'.repeat(2000)}","usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`
  assert.equal(await watched('json', big, [padded.slice(0, 700), padded.slice(700)]), padded)
  assert.equal(big.seen, false)
})

test('which event data can carry usage', () => {
  assert.equal(mayCarryUsage('{"choices":[],"usage":{"prompt_tokens":1}}'), true)
  assert.equal(mayCarryUsage('{"choices":[{"delta":{}}],"usage":null}'), false)
  assert.equal(mayCarryUsage('{"choices":[],"usage": null}'), false)
  assert.equal(mayCarryUsage('{"type":"message_start","message":{"usage":{"input_tokens":3}}}'), true)
  assert.equal(mayCarryUsage('{"type":"content_block_delta","delta":{"text":"hello"}}'), false)
  assert.equal(mayCarryUsage('{"type":"content_block_delta","delta":{"text":"usage"}}'), true, 'a pre-filter: parsing finds no usage there')
  assert.equal(mayCarryUsage('{"usage":null,"response":{"usage":{"input_tokens":1}}}'), true)
  assert.equal(mayCarryUsage('{"max_usage":{"n":1},"usage":null}'), false, 'a key that only ends in usage is not usage')
  assert.equal(mayCarryUsage('{"usage":null,"x":{"usage":{"n":1}}}'), true)
})

test('the usage key is found where it first stands, whatever stands before it', () => {
  assert.equal(usageKeyAt('"usage":1', 0), 0)
  assert.equal(usageKeyAt('{"max_usage":1,"usage":2}', 0), 15)
  assert.equal(usageKeyAt('{"text":"no \\"usage\\" here"}', 0), -1, 'an escaped quote inside a string is no key')
  assert.equal(usageKeyAt('{"usage":1,"usage":2}', 2), 11)
  assert.equal(usageKeyAt('{"use":1}', 0), -1)
})
