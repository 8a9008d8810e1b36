/**
 * Direction 3 end to end: the official `openai` client's `responses` API against the gateway in
 * front of the embedded mock speaking Chat Completions only (`provider: openai-compatible`).
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { startGateway, startMock, type GatewayHandle } from '../helper.js'
import { recordOf } from '../observability/helpers.js'
import type { MockUpstream } from '../../mock/upstream.js'

async function setup (t: TestContext, env: Record<string, string> = {}): Promise<{ mock: MockUpstream, client: OpenAI, gw: GatewayHandle }> {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_PROVIDER: 'openai-compatible', GATEWAY_UPSTREAM_KEY: 'sk-upstream-t3', ...env } })
  return { mock, gw, client: new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client-t3', maxRetries: 0 }) }
}

const WEATHER: OpenAI.Responses.FunctionTool = {
  type: 'function',
  name: 'get_weather',
  description: 'Weather of a city',
  strict: false,
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }
}

test('responses.create on a Chat upstream: instructions and input as chat messages, output_text and usage back', async (t) => {
  const { mock, client, gw } = await setup(t)
  const res = await client.responses.create({
    model: 'gpt-4o-mini',
    instructions: 'be brief',
    input: 'hi',
    max_output_tokens: 50,
    text: { format: { type: 'json_schema', name: 'answer', schema: { type: 'object' }, strict: true } }
  }, { headers: { 'x-mock-chunks': '2', 'x-mock-cached-tokens': '5' } })
  assert.equal(res.object, 'response')
  assert.equal(res.status, 'completed')
  assert.equal(res.output_text, 'tok0 tok1 ')
  assert.deepEqual(res.usage, { input_tokens: 20, input_tokens_details: { cached_tokens: 5 }, output_tokens: 2, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 22 })
  const seen = mock.requests.at(-1)
  assert.equal(seen?.path, '/v1/chat/completions')
  assert.deepEqual(seen?.json, {
    model: 'gpt-4o-mini',
    messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }],
    max_tokens: 50,
    response_format: { type: 'json_schema', json_schema: { name: 'answer', schema: { type: 'object' }, strict: true } }
  })
  const record = await recordOf(gw, seen?.headers['x-request-id'] as string)
  assert.equal(record.promptTokens, 20)
  assert.equal(record.cacheReadTokens, 5)
})

test('responses.stream with a function tool: typed events through response.completed, arguments whole', async (t) => {
  const { mock, client } = await setup(t)
  const types: string[] = []
  const stream = client.responses.stream({
    model: 'gpt-4o-mini',
    input: [{ role: 'user', content: [{ type: 'input_text', text: 'weather in Paris?' }] }],
    tools: [WEATHER],
    tool_choice: 'required'
  })
  stream.on('event', (e) => types.push(e.type))
  const final = await stream.finalResponse()
  const call = final.output.find(o => o.type === 'function_call')
  assert.ok(call !== undefined && call.type === 'function_call')
  assert.equal(call.name, 'get_weather')
  assert.deepEqual(JSON.parse(call.arguments), { city: 'mock-city' })
  assert.equal(final.status, 'completed')
  assert.equal(final.usage?.total_tokens, 30)
  assert.deepEqual(types, [
    'response.created', 'response.in_progress', 'response.output_item.added',
    'response.function_call_arguments.delta', 'response.function_call_arguments.delta', 'response.function_call_arguments.delta',
    'response.function_call_arguments.done', 'response.output_item.done', 'response.completed'
  ])
  const sent = mock.requests.at(-1)?.json as { tools: unknown[], tool_choice: unknown, stream_options: unknown }
  assert.deepEqual(sent.tools, [{ type: 'function', function: { name: 'get_weather', description: 'Weather of a city', parameters: WEATHER.parameters, strict: false } }])
  assert.equal(sent.tool_choice, 'required')
  assert.deepEqual(sent.stream_options, { include_usage: true })
})

test('function_call and function_call_output items continue a conversation as tool messages', async (t) => {
  const { mock, client } = await setup(t)
  await client.responses.create({
    model: 'gpt-4o-mini',
    input: [
      { role: 'user', content: 'weather?' },
      { type: 'function_call', call_id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' },
      { type: 'function_call_output', call_id: 'call_1', output: 'sunny' }
    ],
    tools: [WEATHER]
  })
  const sent = mock.requests.at(-1)?.json as { messages: unknown[] }
  assert.deepEqual(sent.messages, [
    { role: 'user', content: 'weather?' },
    { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
    { role: 'tool', tool_call_id: 'call_1', content: 'sunny' }
  ])
})

test('previous_response_id and hosted tools are refused with a 400 naming them; upstream errors are typed', async (t) => {
  const { mock, client } = await setup(t)
  const before = mock.requests.length
  await assert.rejects(client.responses.create({ model: 'm', input: 'more', previous_response_id: 'resp_1' }),
    (err: unknown) => err instanceof OpenAI.BadRequestError && /'previous_response_id' cannot be served/.test(err.message))
  await assert.rejects(client.responses.create({ model: 'm', input: 'x', tools: [{ type: 'web_search' }] }),
    (err: unknown) => err instanceof OpenAI.BadRequestError && /'tools\[0\]\.type'/.test(err.message))
  assert.equal(mock.requests.length, before)
  await assert.rejects(client.responses.create({ model: 'm', input: 'x' }, { headers: { 'x-mock-status': '429' } }),
    (err: unknown) => err instanceof OpenAI.RateLimitError && err.status === 429)
})

test('an upstream that offers Responses (dialects: [chat, responses]) gets the request untouched', async (t) => {
  const { mock, client } = await setup(t, { GATEWAY_UPSTREAM_DIALECTS: 'chat,responses' })
  // the mock has no /v1/responses: its 404 shows the request went there as it was
  await assert.rejects(client.responses.create({ model: 'm', input: 'x' }), (err: unknown) => err instanceof OpenAI.NotFoundError)
  assert.equal(mock.requests.at(-1)?.path, '/v1/responses')
  assert.deepEqual(mock.requests.at(-1)?.json, { model: 'm', input: 'x' })
})

test('responses.create and responses.stream on an Anthropic Messages upstream (the directions composed)', async (t) => {
  const { mock, client, gw } = await setup(t, { GATEWAY_UPSTREAM_PROVIDER: 'anthropic' })
  const res = await client.responses.create({ model: 'claude-3-5-sonnet-latest', instructions: 'be brief', input: 'hi' }, { headers: { 'x-mock-chunks': '2', 'x-mock-cached-tokens': '3' } })
  assert.equal(res.output_text, 'tok0 tok1 ')
  assert.equal(res.status, 'completed')
  assert.deepEqual(res.usage, { input_tokens: 13, input_tokens_details: { cached_tokens: 3 }, output_tokens: 2, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 15 })
  const seen = mock.requests.at(-1)
  assert.equal(seen?.path, '/v1/messages')
  assert.equal(seen?.headers['x-api-key'], 'sk-upstream-t3')
  assert.deepEqual(seen?.json, { model: 'claude-3-5-sonnet-latest', messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }], max_tokens: 4096, system: [{ type: 'text', text: 'be brief' }] })
  const record = await recordOf(gw, seen?.headers['x-request-id'] as string)
  assert.equal(record.promptTokens, 13)
  assert.equal(record.cacheReadTokens, 3)

  const stream = client.responses.stream({ model: 'claude-3-5-sonnet-latest', input: 'weather?', tools: [WEATHER], tool_choice: 'required' }, { headers: { 'x-mock-reasoning': '2' } })
  const final = await stream.finalResponse()
  assert.deepEqual(final.output.map(o => o.type), ['reasoning', 'function_call'])
  const call = final.output[1]
  assert.ok(call.type === 'function_call')
  assert.equal(call.call_id, 'toolu_mock_0')
  assert.deepEqual(JSON.parse(call.arguments), { city: 'mock-city' })
  assert.equal(final.usage?.output_tokens, 20)
  assert.deepEqual((mock.requests.at(-1)?.json as { tool_choice: unknown }).tool_choice, { type: 'any' })
})
