/**
 * Usage and cost of translated requests (the money issue's records): priced from the usage the
 * upstream reported in its own dialect, at the model the answering target was asked for. Prices
 * are set in the config, so every figure is known.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { startGateway, startMock } from '../helper.js'
import { recordOf } from '../observability/helpers.js'

const PRICES = {
  'gpt-4o-mini': { input: 1, output: 2, cachedInput: 0.5 },
  'claude-x': { input: 3, output: 15, cachedInput: 0.3 }
}

function near (actual: unknown, expected: number, what: string): void {
  assert.equal(typeof actual, 'number', what)
  assert.ok(Math.abs((actual as number) - expected) < 1e-12, `${what}: ${String(actual)} ≠ ${expected}`)
}

test('costUsd of translated requests: each direction, and a group\'s answering deployment', async (t) => {
  const chat = await startMock(t)
  const claude = await startMock(t)
  const gw = await startGateway(t, {
    env: { GATEWAY_PRICING_MODELS: JSON.stringify(PRICES) },
    yaml: `
upstream: { url: "${chat.url}", provider: openai, key: sk-up-1 }
targets:
  claude: { url: "${claude.url}", provider: anthropic, keys: [sk-ant-1] }
modelGroups:
  mixed:
    deployments:
      - { target: claude, model: claude-x }
`
  })
  const anthropic = new Anthropic({ baseURL: gw.url, apiKey: 'sk-client-c1', maxRetries: 0 })
  const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client-c1', maxRetries: 0 })

  // Messages client on the Chat upstream: 2 chat messages × 10 prompt tokens, 4 of them cached, 3 out
  await anthropic.messages.create({ model: 'gpt-4o-mini', max_tokens: 10, system: 'be brief', messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-chunks': '3', 'x-mock-cached-tokens': '4' } })
  const one = await recordOf(gw, chat.requests.at(-1)?.headers['x-request-id'] as string)
  assert.deepEqual([one.promptTokens, one.cacheReadTokens, one.completionTokens], [20, 4, 3])
  near(one.costUsd, (16 * 1 + 4 * 0.5 + 3 * 2) / 1e6, 'Messages → Chat')

  // Chat client on the Anthropic target (its path prefix): 10 input tokens, 6 read from the cache, 2 out, streamed
  const stream = await new OpenAI({ baseURL: `${gw.url}/claude/v1`, apiKey: 'sk-client-c1', maxRetries: 0 }).chat.completions.create(
    { model: 'claude-x', stream: true, messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-chunks': '2', 'x-mock-cached-tokens': '6' } })
  for await (const chunk of stream) assert.ok(chunk.object === 'chat.completion.chunk')
  const two = await recordOf(gw, claude.requests.at(-1)?.headers['x-request-id'] as string)
  assert.deepEqual([two.promptTokens, two.cacheReadTokens, two.completionTokens], [16, 6, 2])
  near(two.costUsd, (10 * 3 + 6 * 0.3 + 2 * 15) / 1e6, 'Chat → Messages, streamed')

  // a group: priced at the model its answering deployment was asked for, not the group's name
  await openai.chat.completions.create({ model: 'mixed', messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-chunks': '2' } })
  const three = await recordOf(gw, claude.requests.at(-1)?.headers['x-request-id'] as string)
  assert.equal(three.model, 'mixed')
  assert.equal((three as unknown as { upstreamModel: string }).upstreamModel, 'claude-x')
  near(three.costUsd, (10 * 3 + 2 * 15) / 1e6, 'group → Anthropic deployment')
})
