/**
 * The cost of each usage shape, against figures computed by hand from the price table
 * (@pydantic/genai-prices 0.1.8, USD per million tokens):
 *   gpt-4o-mini   input 0.15, cached input 0.075, output 0.6
 *   gpt-4o        input 2.5,  cached input 1.25,  output 10
 *   claude-sonnet-4 (-20250514)  input 3, cache read 0.3, cache write 3.75, 1-hour write 6, output 15
 *   gpt-realtime  input 4, cached input 0.4, audio input 32, output 16, audio output 64
 * The usage objects go through the same code as a response (the stream tap, the realtime
 * counter), so what is priced is what a request would record.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ResponseUsage } from '../../src/usage/stages.js'
import { UsageAccumulator } from '../../src/usage/tokens.js'
import { PriceTable, PriceError, readPriceFile, deploymentModels } from '../../src/usage/prices.js'
import { costOf, requestCost } from '../../src/usage/cost.js'
import { UsageCounter } from '../../src/realtime/usage.js'
import { tempDir } from '../tmp.js'

const bundled = new PriceTable({ models: {}, file: null })

/** Costs are sums of products of decimals: equal to the hand figure within float rounding. */
function near (actual: number | null, expected: number, what: string): void {
  assert.ok(actual !== null, `${what}: priced`)
  assert.ok(Math.abs(actual - expected) < 1e-12, `${what}: ${actual} ≠ ${expected}`)
}

/** Feeds an SSE body (in pieces, as a network would) through the usage tap. */
function tapped (usage: ResponseUsage, events: unknown[], cutAfter = events.length): void {
  const tap = usage.eventTap(1 << 20)
  const text = events.slice(0, cutAfter).map(e => `data: ${JSON.stringify(e)}\n\n`).join('')
  for (let i = 0; i < text.length; i += 37) tap.write(Buffer.from(text.slice(i, i + 37)))
  // an aborted stream ends without its last events
  tap.end()
}

test('the bundled table: names as the providers spell them, dated snapshots, provider prefixes, Azure deployments', () => {
  assert.deepEqual(bundled.lookup('gpt-4o-mini', 'openai')?.price, { input: 0.15, output: 0.6, cachedInput: 0.075 })
  assert.equal(bundled.lookup('gpt-4o-mini-2024-07-18', 'openai')?.model, 'gpt-4o-mini')
  assert.equal(bundled.lookup('openai/gpt-4o', null)?.model, 'gpt-4o')
  assert.deepEqual(bundled.lookup('claude-sonnet-4-20250514', 'anthropic')?.price, { input: 3, output: 15, cachedInput: 0.3, cacheWrite: 3.75, cacheWrite1h: 6 })
  assert.equal(bundled.lookup('no-such-model-xyz', 'openai'), null)
  const azure = new PriceTable({ models: {}, file: null, deployments: deploymentModels([{ azure: { deployments: { 'gpt-4o': 'prod-chat' } } }]) })
  assert.equal(azure.lookup('prod-chat', 'azure')?.model, 'gpt-4o', 'a deployment is priced as the model it serves')
  assert.equal(azure.lookup('prod-chat', 'openai'), null, 'only on Azure targets')
  // an embeddings model: input only
  near(requestCost(bundled, 'text-embedding-3-small', 'openai', { ...new UsageAccumulator('openai').counts(), promptTokens: 1000, totalTokens: 1000 }), 1000 * 0.02 / 1e6, 'embeddings')
})

test('OpenAI chat stream: the last cumulative usage, cached tokens at the cache rate, reasoning inside output', () => {
  const usage = new ResponseUsage('openai')
  tapped(usage, [
    { choices: [{ delta: { content: 'a' } }], usage: null },
    // some compatible servers send running totals on every chunk: only the last one counts
    { choices: [{ delta: { content: 'b' } }], usage: { prompt_tokens: 1000, completion_tokens: 10, total_tokens: 1010 } },
    { choices: [], usage: { prompt_tokens: 1000, completion_tokens: 200, total_tokens: 1200, prompt_tokens_details: { cached_tokens: 400 }, completion_tokens_details: { reasoning_tokens: 50 } } }
  ])
  // 600 uncached × 0.15 + 400 cached × 0.075 + 200 output (reasoning included) × 0.6
  near(requestCost(bundled, 'gpt-4o-mini', 'openai', usage.counts()), (600 * 0.15 + 400 * 0.075 + 200 * 0.6) / 1e6, 'chat stream')
})

test('reasoning priced apart when the table prices it apart (pricing.models)', () => {
  const table = new PriceTable({ models: { 'r-model': { input: 1, output: 4, reasoning: 8 } }, file: null })
  const acc = new UsageAccumulator('openai')
  acc.observe({ usage: { prompt_tokens: 100, completion_tokens: 300, total_tokens: 400, completion_tokens_details: { reasoning_tokens: 200 } } })
  near(requestCost(table, 'r-model', 'openai', acc.counts()), (100 * 1 + 100 * 4 + 200 * 8) / 1e6, 'reasoning')
})

test('Anthropic stream: message_start + message_delta, cache reads, five-minute and one-hour cache writes', () => {
  const usage = new ResponseUsage('anthropic')
  const start = { type: 'message_start', message: { usage: { input_tokens: 100, cache_read_input_tokens: 2000, cache_creation_input_tokens: 500, cache_creation: { ephemeral_5m_input_tokens: 300, ephemeral_1h_input_tokens: 200 }, output_tokens: 1 } } }
  tapped(usage, [start, { type: 'content_block_delta' }, { type: 'message_delta', usage: { output_tokens: 120 } }, { type: 'message_delta', usage: { output_tokens: 250 } }, { type: 'message_stop' }])
  const counts = usage.counts()
  assert.equal(counts.promptTokens, 2600)
  assert.equal(counts.cacheCreation1hTokens, 200)
  // 100 × 3 + 2000 × 0.3 + 300 × 3.75 + 200 × 6 + 250 × 15
  near(requestCost(bundled, 'claude-sonnet-4-20250514', 'anthropic', counts), (300 + 600 + 1125 + 1200 + 3750) / 1e6, 'anthropic stream')
})

test('an aborted stream is priced on the usage the upstream had reported when it was cut', () => {
  const usage = new ResponseUsage('anthropic')
  const events = [
    { type: 'message_start', message: { usage: { input_tokens: 1000, output_tokens: 1 } } },
    { type: 'message_delta', usage: { output_tokens: 40 } },
    { type: 'message_delta', usage: { output_tokens: 90 } }
  ]
  tapped(usage, events, 2)
  near(requestCost(bundled, 'claude-sonnet-4-20250514', 'anthropic', usage.counts()), (1000 * 3 + 40 * 15) / 1e6, 'cut after the first delta')
})

test('Responses API: response.completed, response.incomplete and response.failed each carry the usage priced', () => {
  const shapes: Array<[string, number, number]> = [['response.completed', 500, 0.00725], ['response.incomplete', 300, 0.00525], ['response.failed', 0, 0.00225]]
  for (const [type, output, expected] of shapes) {
    const usage = new ResponseUsage('openai')
    tapped(usage, [
      { type: 'response.created', response: { usage: null } },
      { type: 'response.output_text.delta', delta: 'x' },
      { type, response: { status: type.slice(9), usage: { input_tokens: 1000, input_tokens_details: { cached_tokens: 200 }, output_tokens: output, output_tokens_details: { reasoning_tokens: Math.min(100, output) }, total_tokens: 1000 + output } } }
    ])
    // 800 × 2.5 + 200 × 1.25 + output × 10 (reasoning is output here)
    near(requestCost(bundled, 'gpt-4o', 'openai', usage.counts()), expected, type)
    near(expected, (800 * 2.5 + 200 * 1.25 + output * 10) / 1e6, `${type} hand figure`)
  }
})

test('realtime: each response.done adds up; cached audio at the cache rate, the rest of the audio at audio rates', () => {
  const counter = new UsageCounter()
  const done = (usage: unknown): Buffer => Buffer.from(JSON.stringify({ type: 'response.done', response: { usage } }))
  counter.observe(Buffer.from('{"type":"response.audio.delta","delta":"AAAA"}'))
  counter.observe(done({
    total_tokens: 1500,
    input_tokens: 1000,
    output_tokens: 500,
    input_token_details: { text_tokens: 400, audio_tokens: 600, cached_tokens: 300, cached_tokens_details: { text_tokens: 100, audio_tokens: 200 } },
    output_token_details: { text_tokens: 100, audio_tokens: 400 }
  }))
  counter.observe(done({ total_tokens: 250, input_tokens: 200, output_tokens: 50, input_token_details: { text_tokens: 200, audio_tokens: 0 }, output_token_details: { text_tokens: 50, audio_tokens: 0 } }))
  const counts = counter.usage?.counts
  assert.ok(counts !== undefined)
  assert.equal(counts.audioInputTokens, 400, 'audio input not read from the cache')
  // first: 300 text × 4 + 300 cached × 0.4 + 400 audio × 32 + 100 text out × 16 + 400 audio out × 64; second: 200 × 4 + 50 × 16
  const first = 300 * 4 + 300 * 0.4 + 400 * 32 + 100 * 16 + 400 * 64
  const second = 200 * 4 + 50 * 16
  near(requestCost(bundled, 'gpt-realtime', 'openai', counts), (first + second) / 1e6, 'realtime')
})

test('unknown models cost null, never 0; a request without a model and without tokens costs 0', () => {
  const counts = { ...new UsageAccumulator('openai').counts(), promptTokens: 10, completionTokens: 5, totalTokens: 15 }
  assert.equal(requestCost(bundled, 'my-private-model', 'openai-compatible', counts), null)
  assert.equal(requestCost(bundled, null, null, counts), null, 'tokens without a model cannot be priced')
  assert.equal(requestCost(bundled, null, null, new UsageAccumulator('openai').counts()), 0)
})

test('pricing.models overrides and adds; pricing.file replaces the table; tiers by input size', () => {
  const table = new PriceTable({ models: { 'gpt-4o-mini': { input: 1, output: 2 }, 'my-model': { input: 10, output: 20, cachedInput: 1 } }, file: null })
  assert.deepEqual(table.lookup('gpt-4o-mini', 'openai')?.price, { input: 1, output: 2 })
  assert.equal(table.lookup('gpt-4o-mini', 'openai')?.source, 'config')
  assert.equal(table.lookup('gpt-4o', 'openai')?.source, 'genai-prices', 'the rest of the bundled table stays')

  const file = join(tempDir(), 'prices.yaml')
  writeFileSync(file, 'models:\n  big:\n    input: { base: 1, tiers: [{ start: 200000, price: 2 }] }\n    output: 5\n')
  const replaced = new PriceTable({ models: {}, file: readPriceFile(file) })
  assert.equal(replaced.lookup('gpt-4o', 'openai'), null, 'a replacement table is the whole table')
  const price = replaced.lookup('big', null)?.price
  assert.ok(price !== undefined)
  const input = (n: number): ReturnType<UsageAccumulator['counts']> => ({ ...new UsageAccumulator('openai').counts(), promptTokens: n, completionTokens: 10 })
  near(costOf(input(100_000), price), (100_000 * 1 + 10 * 5) / 1e6, 'below the tier')
  near(costOf(input(300_000), price), (300_000 * 2 + 10 * 5) / 1e6, 'above the tier: all input at the tier price')

  writeFileSync(file, 'models:\n  bad: { input: -1, output: 1 }\n')
  assert.throws(() => readPriceFile(file), PriceError)
  writeFileSync(file, 'models:\n  bad: { input: 1 }\n')
  assert.throws(() => readPriceFile(file), /input and output prices are required/)
  assert.throws(() => readPriceFile(join(tempDir(), 'missing.yaml')), /pricing\.file/)
})
