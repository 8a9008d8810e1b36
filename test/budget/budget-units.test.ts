/**
 * The budget pieces without a server: calendar windows in UTC, the worst-case estimate, and the
 * memory store's all-or-nothing reservations, idempotent settlement and expiry.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { secondsUntil, windowOf } from '../../src/budget/periods.js'
import { estimate, outputTokens, worstCaseUsd } from '../../src/budget/estimate.js'
import { MemoryBudgetStore } from '../../src/budget/memory-store.js'
import { countersOf, holdsOf } from '../../src/budget/counters.js'
import { loadTokenizer } from '../../src/budget/tokenizer.js'
import { routeKind } from '../../src/budget/routes.js'
import { join } from 'node:path'
import { loadConfig, ConfigError } from '../../config/load.js'
import { preflight } from '../../config/preflight.js'
import { tempDir } from '../tmp.js'

test('periods are calendar windows in UTC; weeks start on Monday; total never ends', () => {
  const now = Date.parse('2026-12-06T21:58:46.123Z') // a Sunday
  assert.equal(windowOf('minute', now).end, Date.parse('2026-12-06T21:59:00Z'))
  assert.equal(windowOf('hour', now).end, Date.parse('2026-12-06T22:00:00Z'))
  assert.equal(windowOf('day', now).id, String(Date.parse('2026-12-06T00:00:00Z')))
  assert.equal(windowOf('week', now).id, String(Date.parse('2026-11-30T00:00:00Z')), 'the Monday before')
  assert.equal(windowOf('week', Date.parse('2026-11-30T00:00:00Z')).id, String(Date.parse('2026-11-30T00:00:00Z')), 'a Monday starts its own week')
  assert.equal(windowOf('month', now).end, Date.parse('2027-01-01T00:00:00Z'))
  assert.equal(windowOf('total', now).end, Infinity)
  assert.equal(secondsUntil(windowOf('hour', now).end, now), 74)
  assert.equal(secondsUntil(Infinity, now), null)
})

test('the estimate: tokenizer for OpenAI models, bytes otherwise; the output cap, else the default, times n', async () => {
  const tokenize = await loadTokenizer()
  const opts = { defaultMaxOutputTokens: 4096, tokenizeMaxBytes: 1 << 15, tokenize }
  const json = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello, how are you today?' }], max_tokens: 50, n: 2 }
  const raw = Buffer.from(JSON.stringify(json))
  const price = { price: { input: 0.15, output: 0.6 }, contextWindow: 128000 }
  const e = estimate(raw, json, '/v1/chat/completions', 'gpt-4o-mini', price, opts)
  assert.equal(e.inputTokens, tokenize('gpt-4o-mini', raw.toString()))
  assert.ok(e.inputTokens < raw.length, 'fewer tokens than bytes')
  assert.ok(e.inputTokens > 7, 'more than the content alone (an upper bound of the chat format)')
  assert.equal(e.outputTokens, 100)
  assert.equal(e.usd, (e.inputTokens * 0.15 + 100 * 0.6) / 1e6)
  const other = estimate(raw, { ...json, model: 'claude-x' }, '/v1/messages', 'claude-x', null, opts)
  assert.equal(other.inputTokens, raw.length, 'no tokenizer: one token per byte')
  assert.equal(other.usd, null)
  assert.equal(estimate(raw, json, '/v1/chat/completions', 'gpt-4o-mini', null, { ...opts, tokenizeMaxBytes: 10 }).inputTokens, raw.length, 'above the size limit: bytes')
  assert.equal(outputTokens({}, '/v1/chat/completions', null, opts), 4096)
  assert.equal(outputTokens({}, '/v1/chat/completions', 1000, opts), 1000, 'never above the context window')
  assert.equal(outputTokens({ max_completion_tokens: 7 }, '/v1/chat/completions', null, opts), 7)
  assert.equal(outputTokens({ max_output_tokens: 9 }, '/v1/responses', null, opts), 9)
  assert.equal(outputTokens({ max_tokens: 9 }, '/v1/embeddings', null, opts), 0)
  assert.equal(outputTokens({ max_tokens: 9, n: 2, prompt: ['a', 'b', 'c'] }, '/v1/completions', null, opts), 54, 'a completion per prompt')
  // Anthropic's input may be written to a one-hour cache at twice the input price
  assert.equal(worstCaseUsd(100, 10, { input: 3, output: 15, cacheWrite: 3.75, cacheWrite1h: 6 }, false), (100 * 6 + 10 * 15) / 1e6)
  assert.equal(worstCaseUsd(100, 10, { input: 4, output: 16, audioInput: 32, audioOutput: 64 }, true), (100 * 32 + 10 * 64) / 1e6)
})

test('routes: priced, free or unpriced', () => {
  assert.equal(routeKind('POST', '/v1/chat/completions'), 'priced')
  assert.equal(routeKind('POST', '/openai/deployments/d/chat/completions'), 'priced')
  assert.equal(routeKind('POST', '/v1/messages'), 'priced')
  assert.equal(routeKind('POST', '/v1/messages/count_tokens'), 'free')
  assert.equal(routeKind('GET', '/v1/models'), 'free')
  assert.equal(routeKind('GET', '/v1/files/file-1/content'), 'free')
  assert.equal(routeKind('GET', '/v1/batches'), 'free')
  assert.equal(routeKind('POST', '/v1/batches'), 'unpriced')
  assert.equal(routeKind('POST', '/v1/images/generations'), 'unpriced')
  assert.equal(routeKind('DELETE', '/v1/models/ft-1'), 'unpriced')
})

test('memory store: all or nothing, settled once, unsettled reservations expire', () => {
  let now = Date.parse('2026-12-06T12:00:00Z')
  const store = new MemoryBudgetStore({ now: () => now })
  const counters = [...countersOf('key', 'a', [{ usd: 1, period: 'day' }, { tokens: 100, period: 'day' }]), ...countersOf('target', 't', [{ usd: 0.5, period: 'hour' }])]
  assert.equal(counters.length, 2, 'budgets of one period share a counter')
  const holds = holdsOf(counters, now)
  const charge = { nanos: 200_000_000, tokens: 10 }
  assert.equal(store.reserve('r1', holds, charge, 1000).ok, true)
  assert.equal(store.reserve('r2', holds, charge, 1000).ok, true)
  const third = store.reserve('r3', holds, charge, 1000)
  assert.equal(third.ok, false)
  assert.equal(!third.ok && third.refused.counter.scope, 'target', 'the hour budget of the target is the one that refused')
  assert.deepEqual(store.read(holds)[0], { spentNanos: 0, spentTokens: 0, reservedNanos: 400_000_000, reservedTokens: 20 }, 'nothing of r3 was reserved')

  store.settle('r1', holds, { nanos: 50_000_000, tokens: 3 })
  store.settle('r1', holds, { nanos: 50_000_000, tokens: 3 })
  assert.deepEqual(store.read(holds)[0], { spentNanos: 50_000_000, spentTokens: 3, reservedNanos: 200_000_000, reservedTokens: 10 }, 'settled once')

  // r2's gateway died: its reservation is given back after the ttl
  now += 1001
  assert.deepEqual(store.read(holds)[1], { spentNanos: 50_000_000, spentTokens: 3, reservedNanos: 0, reservedTokens: 0 })
  // a request that outlived its reservation still counts what it spent
  store.settle('r2', holds, { nanos: 10, tokens: 1 })
  assert.equal(store.read(holds)[1].spentNanos, 50_000_010)
  // the token limit: used + charge above it refuses; an exhausted budget refuses even a free charge
  const tokenHolds = holdsOf(countersOf('key', 'b', [{ tokens: 10, period: 'minute' }]), now)
  assert.equal(store.reserve('t1', tokenHolds, { nanos: 0, tokens: 10 }, 1000).ok, true)
  assert.equal(store.reserve('t2', tokenHolds, { nanos: 0, tokens: 0 }, 1000).ok, false)
})

test('configuration: budgets on keys (YAML or the env JSON form) and targets; each needs a limit; usage must be on', () => {
  const cwd = tempDir()
  const keys = JSON.stringify([{ name: 'a', key: 'sk-a-0000', budgets: [{ usd: 5, period: 'day' }, { tokens: 200000, period: 'minute' }] }])
  const { config } = loadConfig({ argv: [], env: { GATEWAY_CLIENT_KEYS: keys, GATEWAY_TARGETS: '{"t":{"url":"http://127.0.0.1:1","budgets":[{"usd":100,"period":"month"}]}}' }, cwd })
  assert.deepEqual(config.auth.keys[0].budgets, [{ usd: 5, period: 'day' }, { tokens: 200000, period: 'minute' }])
  assert.deepEqual(config.targets.t.budgets, [{ usd: 100, period: 'month' }])
  assert.equal(config.budgets.failMode, 'closed')
  assert.throws(() => loadConfig({ argv: [], env: { GATEWAY_CLIENT_KEYS: JSON.stringify([{ name: 'a', key: 'sk-a-0000', budgets: [{ period: 'day' }] }]) }, cwd }), /expected usd or tokens/)
  assert.throws(() => loadConfig({ argv: [], env: { GATEWAY_CLIENT_KEYS: JSON.stringify([{ name: 'a', key: 'sk-a-0000', budgets: [{ usd: 1, period: 'fortnight' }] }]) }, cwd }))
  assert.throws(() => loadConfig({ argv: [], env: { GATEWAY_CLIENT_KEYS: keys, GATEWAY_USAGE: 'false' }, cwd }), /usage must be on/)
})

test('pricing.file: a file that cannot be read stops the boot with one line, before anything starts', () => {
  const cwd = tempDir()
  const { config, origins } = loadConfig({ argv: [], env: { GATEWAY_PRICING_FILE: join(cwd, 'missing.yaml') }, cwd })
  assert.throws(() => preflight(config, origins), (err: unknown) => err instanceof ConfigError && /pricing\.file \(env GATEWAY_PRICING_FILE\).*cannot be read \(ENOENT/.test(err.message))
})
