/**
 * `costUsd` on the usage records of real requests (official SDKs, the mock upstream), and the
 * spend metrics. Hand figures from @pydantic/genai-prices 0.1.8 (USD per million tokens):
 * gpt-4o-mini input 0.15, output 0.6; claude-sonnet-4 input 3, output 15.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import Anthropic from '@anthropic-ai/sdk'
import { startGateway, startMock } from '../helper.js'
import { recordOf } from './helpers.js'

const CLIENT_KEY = 'sk-client-cost-0000aaaa'

function near (actual: number | null | undefined, expected: number, what: string): void {
  assert.ok(typeof actual === 'number', `${what}: priced (${String(actual)})`)
  assert.ok(Math.abs(actual - expected) < 1e-12, `${what}: ${actual} ≠ ${expected}`)
}

function sample (text: string, series: string): number | undefined {
  const line = text.split('\n').find(l => l.startsWith(series + ' '))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

test('a stream priced from its usage; an unknown model costs null and is counted; spend by client, target and model', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 })
  const { data: stream, response } = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }, { role: 'user', content: 'c' }],
    stream: true
  }, { headers: { 'x-mock-chunks': '5' } }).withResponse()
  for await (const _ of stream) { /* read it all */ }
  const record = await recordOf(gw, response.headers.get('x-request-id') as string)
  assert.equal(record.promptTokens, 30)
  assert.equal(record.completionTokens, 5)
  near(record.costUsd, (30 * 0.15 + 5 * 0.6) / 1e6, 'stream')

  const { response: unknown } = await client.chat.completions.create({ model: 'private-llm-7b', messages: [{ role: 'user', content: 'a' }] }).withResponse()
  const unpriced = await recordOf(gw, unknown.headers.get('x-request-id') as string)
  assert.ok((unpriced.totalTokens ?? 0) > 0, 'tokens were counted')
  assert.equal(unpriced.costUsd, null, 'not 0')

  const text = await gw.app.metrics?.text() ?? ''
  near(sample(text, 'gateway_spend_usd_total{client="anonymous",target="default",model="gpt-4o-mini"}'), (30 * 0.15 + 5 * 0.6) / 1e6, 'spend metric')
  assert.equal(sample(text, 'gateway_cost_unknown_total{model="private-llm-7b"}'), 1)
})

test('an Anthropic stream the client left: priced on the usage reported until then', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const client = new Anthropic({ baseURL: gw.url, apiKey: CLIENT_KEY, maxRetries: 0 })
  const controller = new AbortController()
  const { data: stream, response } = await client.messages.create({
    model: 'claude-sonnet-4-20250514', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'hi' }]
  }, { headers: { 'x-mock-chunks': '40', 'x-mock-delay-ms': '50' }, signal: controller.signal }).withResponse()
  let deltas = 0
  try {
    for await (const event of stream) {
      if (event.type === 'content_block_delta' && ++deltas === 2) controller.abort()
    }
  } catch {
    // the SDK may report the abort as an error
  }
  const record = await recordOf(gw, response.headers.get('x-request-id') as string)
  assert.equal(record.aborted, true)
  // message_start: 10 input tokens, 1 output token so far
  near(record.costUsd, (10 * 3 + 1 * 15) / 1e6, 'partial usage')
})

test('pricing.models prices a model the table does not have', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_PRICING_MODELS: '{"private-llm-7b":{"input":1,"output":2}}' } })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 })
  const { data, response } = await client.chat.completions.create({ model: 'private-llm-7b', messages: [{ role: 'user', content: 'a' }] }).withResponse()
  const record = await recordOf(gw, response.headers.get('x-request-id') as string)
  near(record.costUsd, ((data.usage?.prompt_tokens ?? 0) * 1 + (data.usage?.completion_tokens ?? 0) * 2) / 1e6, 'override')
})

test('a model group answer is priced at the deployment that answered, after a failed one', async (t) => {
  const failing = await startMock(t)
  const good = await startMock(t)
  failing.override('/v1/chat/completions', (_req, res) => { res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"message":"down"}}') })
  const gw = await startGateway(t, {
    env: { GATEWAY_PRICING_MODELS: '{"dear-model":{"input":1000,"output":1000},"cheap-model":{"input":1,"output":2}}' },
    yaml: `
upstream: { url: "${failing.url}" }
targets:
  good: { url: "${good.url}" }
modelGroups:
  smart:
    deployments:
      - { target: default, model: dear-model }
      - { target: good, model: cheap-model }
`
  })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 })
  const { data, response } = await client.chat.completions.create({ model: 'smart', messages: [{ role: 'user', content: 'a' }] }, { headers: { 'x-mock-chunks': '4' } }).withResponse()
  const record = await recordOf(gw, response.headers.get('x-request-id') as string)
  assert.equal(record.target, 'good')
  near(record.costUsd, ((data.usage?.prompt_tokens ?? 0) * 1 + (data.usage?.completion_tokens ?? 0) * 2) / 1e6, 'the answering deployment\'s prices')
})
