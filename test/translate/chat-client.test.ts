/**
 * Direction 2 end to end: the official `openai` client against the gateway in front of the
 * embedded mock speaking Anthropic Messages (a target with `provider: anthropic`).
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { startGateway, startMock, type GatewayHandle } from '../helper.js'
import { recordOf } from '../observability/helpers.js'
import type { MockUpstream } from '../../mock/upstream.js'

async function setup (t: TestContext): Promise<{ mock: MockUpstream, client: OpenAI, gw: GatewayHandle }> {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_PROVIDER: 'anthropic', GATEWAY_UPSTREAM_KEY: 'sk-ant-upstream-t2' } })
  return { mock, gw, client: new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client-t2', maxRetries: 0 }) }
}

const WEATHER: OpenAI.ChatCompletionTool = {
  type: 'function',
  function: { name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }
}

test('chat.completions.create on a Messages upstream: system and developer become the system prompt; usage with cached tokens', async (t) => {
  const { mock, client, gw } = await setup(t)
  const { data: res, response } = await client.chat.completions.create({
    model: 'claude-3-5-sonnet-latest',
    messages: [{ role: 'system', content: 'be brief' }, { role: 'developer', content: 'in English' }, { role: 'user', content: 'hi' }],
    stop: 'END',
    user: 'u-2'
  }, { headers: { 'x-mock-chunks': '2', 'x-mock-cached-tokens': '6' } }).withResponse()
  assert.equal(res.object, 'chat.completion')
  assert.equal(res.choices[0].message.content, 'tok0 tok1 ')
  assert.equal(res.choices[0].finish_reason, 'stop')
  // the mock: 10 input tokens per message, 6 more read from the cache
  assert.deepEqual(res.usage, { prompt_tokens: 16, completion_tokens: 2, total_tokens: 18, prompt_tokens_details: { cached_tokens: 6 } })
  const seen = mock.requests.at(-1)
  assert.equal(seen?.path, '/v1/messages')
  assert.equal(seen?.headers['x-api-key'], 'sk-ant-upstream-t2')
  assert.equal(seen?.headers['anthropic-version'], '2023-06-01')
  assert.equal(seen?.headers.authorization, undefined)
  assert.deepEqual(seen?.json, {
    model: 'claude-3-5-sonnet-latest',
    messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }],
    max_tokens: 4096,
    system: [{ type: 'text', text: 'be brief' }, { type: 'text', text: 'in English' }],
    stop_sequences: ['END'],
    metadata: { user_id: 'u-2' }
  })
  const record = await recordOf(gw, response.headers.get('x-request-id') as string)
  assert.equal(record.promptTokens, 16)
  assert.equal(record.completionTokens, 2)
  assert.equal(record.cacheReadTokens, 6)
})

test('chat.completions.stream with tools and include_usage: tool-call deltas indexed, arguments whole, usage chunk', async (t) => {
  const { mock, client, gw } = await setup(t)
  const stream = client.chat.completions.stream({
    model: 'claude-3-5-sonnet-latest',
    messages: [{ role: 'user', content: 'weather in Paris and Rome?' }],
    tools: [WEATHER, { type: 'function', function: { ...WEATHER.function, name: 'get_time' } }],
    tool_choice: 'required',
    stream_options: { include_usage: true },
    max_completion_tokens: 300
  }, { headers: { 'x-mock-reasoning': '1' } })
  const chunks: OpenAI.ChatCompletionChunk[] = []
  stream.on('chunk', (c) => chunks.push(c))
  const final = await stream.finalChatCompletion()
  const calls = final.choices[0].message.tool_calls ?? []
  assert.deepEqual(calls.map(c => c.type === 'function' ? [c.id, c.function.name, JSON.parse(c.function.arguments)] : null), [
    ['toolu_mock_0', 'get_weather', { city: 'mock-city' }],
    ['toolu_mock_1', 'get_time', { city: 'mock-city' }]
  ])
  assert.equal(final.choices[0].finish_reason, 'tool_calls')
  const last = chunks.at(-1)
  assert.deepEqual(last?.choices, [])
  assert.deepEqual(last?.usage, { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30, prompt_tokens_details: { cached_tokens: 0 } })
  assert.ok(chunks.slice(0, -1).every(c => c.usage === null))
  const sent = mock.requests.at(-1)?.json as { tool_choice: unknown, max_tokens: number, tools: unknown[] }
  assert.deepEqual(sent.tool_choice, { type: 'any' })
  assert.equal(sent.max_tokens, 300)
  assert.deepEqual(sent.tools[0], { name: 'get_weather', description: 'Weather of a city', input_schema: WEATHER.function.parameters })
  // the gateway's request id, as it told the upstream
  const record = await recordOf(gw, mock.requests.at(-1)?.headers['x-request-id'] as string)
  assert.equal(record.totalTokens, 30)
})

test('a tool conversation and an image arrive as Anthropic blocks, tool results joined into one user turn', async (t) => {
  const { mock, client } = await setup(t)
  await client.chat.completions.create({
    model: 'claude-3-5-sonnet-latest',
    messages: [
      { role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }] },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }, { id: 'c2', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } }] },
      { role: 'tool', tool_call_id: 'c1', content: 'sunny' },
      { role: 'tool', tool_call_id: 'c2', content: 'rain' }
    ],
    tools: [WEATHER],
    parallel_tool_calls: false
  })
  const sent = mock.requests.at(-1)?.json as { messages: unknown, tool_choice: unknown }
  assert.deepEqual(sent.messages, [
    { role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } }] },
    { role: 'assistant', content: [{ type: 'tool_use', id: 'c1', name: 'get_weather', input: { city: 'Paris' } }, { type: 'tool_use', id: 'c2', name: 'get_weather', input: { city: 'Rome' } }] },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'c1', content: 'sunny' }, { type: 'tool_result', tool_use_id: 'c2', content: 'rain' }] }
  ])
  assert.deepEqual(sent.tool_choice, { type: 'auto', disable_parallel_tool_use: true })
})

test('response_format json_schema: carried as a forced tool, answered as JSON text', async (t) => {
  const { mock, client } = await setup(t)
  const res = await client.chat.completions.create({
    model: 'claude-3-5-sonnet-latest',
    messages: [{ role: 'user', content: 'where?' }],
    response_format: { type: 'json_schema', json_schema: { name: 'place', schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }
  })
  assert.deepEqual(JSON.parse(res.choices[0].message.content ?? ''), { city: 'mock-city' })
  assert.equal(res.choices[0].finish_reason, 'stop')
  assert.equal(res.choices[0].message.tool_calls, undefined)
  const sent = mock.requests.at(-1)?.json as { tool_choice: unknown }
  assert.deepEqual(sent.tool_choice, { type: 'tool', name: 'json_response' })
})

test('n > 1 and other untranslatable fields are refused with a 400 naming them; upstream errors keep their status in OpenAI\'s shape', async (t) => {
  const { mock, client } = await setup(t)
  const before = mock.requests.length
  await assert.rejects(client.chat.completions.create({ model: 'c', n: 2, messages: [{ role: 'user', content: 'hi' }] }),
    (err: unknown) => err instanceof OpenAI.BadRequestError && /'n' above 1/.test(err.message) && err.type === 'invalid_request_error')
  await assert.rejects(client.chat.completions.create({ model: 'c', logit_bias: { 1: 2 }, messages: [{ role: 'user', content: 'hi' }] }),
    (err: unknown) => err instanceof OpenAI.BadRequestError && /'logit_bias'/.test(err.message))
  assert.equal(mock.requests.length, before)
  const cases: Array<[string, new (...args: never[]) => Error]> = [['429', OpenAI.RateLimitError], ['529', OpenAI.InternalServerError], ['404', OpenAI.NotFoundError]]
  for (const [status, cls] of cases) {
    await assert.rejects(client.chat.completions.create({ model: 'c', messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-status': status } }),
      (err: unknown) => {
        assert.ok(err instanceof cls, `${status} → ${cls.name}`)
        const e = err as InstanceType<typeof OpenAI.APIError>
        assert.equal(e.status, Number(status))
        assert.equal(typeof e.message, 'string')
        assert.ok(e.error !== undefined && typeof (e.error as { message?: unknown }).message === 'string', 'OpenAI-shaped body')
        return true
      })
  }
})

test('a translated chat stream whose upstream fails mid-way ends with an OpenAI error chunk, which the SDK throws', async (t) => {
  const { client } = await setup(t)
  const stream = await client.chat.completions.create({ model: 'c', stream: true, messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-fault': 'reset-mid-stream', 'x-mock-chunks': '10' } })
  const roles: unknown[] = []
  await assert.rejects((async () => {
    for await (const chunk of stream) roles.push(chunk.choices[0]?.delta?.role)
  })(), (err: unknown) => err instanceof OpenAI.APIError && /interrupted/.test(err.message))
  // the mock fails after two events (message_start, content_block_start): the role chunk arrived
  assert.deepEqual(roles, ['assistant'])
})
