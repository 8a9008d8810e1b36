/**
 * Direction 1 end to end: the official `@anthropic-ai/sdk` against the gateway in front of the
 * embedded mock speaking Chat Completions (a target with `provider: openai`).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { startGateway, startMock, type GatewayHandle } from '../helper.js'
import { recordOf } from '../observability/helpers.js'
import type { MockUpstream } from '../../mock/upstream.js'
import type { TestContext } from 'node:test'

async function setup (t: TestContext): Promise<{ mock: MockUpstream, client: Anthropic, gw: GatewayHandle }> {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_PROVIDER: 'openai', GATEWAY_UPSTREAM_KEY: 'sk-upstream-t1' } })
  const client = new Anthropic({ baseURL: gw.url, apiKey: 'sk-client-t1', maxRetries: 0 })
  return { mock, client, gw }
}

const WEATHER = {
  name: 'get_weather',
  description: 'Weather of a city',
  input_schema: { type: 'object' as const, properties: { city: { type: 'string' } }, required: ['city'] }
}

test('messages.create on a Chat upstream: the request arrives as Chat, the answer as a Message', async (t) => {
  const { mock, client, gw } = await setup(t)
  const msg = await client.messages.create({
    model: 'gpt-4o-mini',
    max_tokens: 100,
    system: [{ type: 'text', text: 'be brief' }],
    // (sampling options the SDK's current types no longer list; the API still takes them)
    ...({ temperature: 0.5 } as object),
    stop_sequences: ['###'],
    metadata: { user_id: 'u-1' },
    messages: [{ role: 'user', content: 'hi' }]
  }, { headers: { 'x-mock-chunks': '3', 'x-mock-cached-tokens': '4' } })
  assert.equal(msg.type, 'message')
  assert.equal(msg.role, 'assistant')
  assert.deepEqual(msg.content, [{ type: 'text', text: 'tok0 tok1 tok2 ' }])
  assert.equal(msg.stop_reason, 'end_turn')
  assert.equal(msg.stop_sequence, null)
  // 2 chat messages × 10 prompt tokens, 4 of them cached
  assert.deepEqual(msg.usage, { input_tokens: 16, cache_creation_input_tokens: 0, cache_read_input_tokens: 4, output_tokens: 3 })
  const seen = mock.requests.at(-1)
  const record = await recordOf(gw, seen?.headers['x-request-id'] as string)
  assert.equal(record.promptTokens, 20)
  assert.equal(record.cacheReadTokens, 4)
  assert.equal(record.completionTokens, 3)
  assert.equal(seen?.path, '/v1/chat/completions')
  assert.equal(seen?.headers.authorization, 'Bearer sk-upstream-t1')
  assert.equal(seen?.headers['anthropic-version'], undefined)
  assert.deepEqual(seen?.json, {
    model: 'gpt-4o-mini',
    messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }],
    max_completion_tokens: 100,
    temperature: 0.5,
    stop: ['###'],
    user: 'u-1'
  })
})

test('messages.stream with tool use: one block per tool call, arguments whole in finalMessage()', async (t) => {
  const { mock, client, gw } = await setup(t)
  const events: string[] = []
  const stream = client.messages.stream({
    model: 'gpt-4o-mini',
    max_tokens: 100,
    tools: [WEATHER, { ...WEATHER, name: 'get_time' }],
    tool_choice: { type: 'any' },
    messages: [{ role: 'user', content: 'weather and time in Paris?' }]
  }, { headers: { 'x-mock-reasoning': '2' } })
  // (the SDK does not surface ping events; test/translate/golden/ pins the bytes)
  stream.on('streamEvent', (e) => events.push(e.type === 'content_block_delta' ? `${e.type}:${e.delta.type}` : e.type))
  const final = await stream.finalMessage()
  assert.equal(final.stop_reason, 'tool_use')
  assert.deepEqual(final.content, [
    { type: 'thinking', thinking: 'think0 think1 ', signature: '' },
    { type: 'tool_use', id: 'call_mock_0', name: 'get_weather', input: { city: 'mock-city' } },
    { type: 'tool_use', id: 'call_mock_1', name: 'get_time', input: { city: 'mock-city' } }
  ])
  assert.deepEqual(events, [
    'message_start',
    'content_block_start', 'content_block_delta:thinking_delta', 'content_block_delta:thinking_delta', 'content_block_stop',
    'content_block_start', 'content_block_delta:input_json_delta', 'content_block_delta:input_json_delta', 'content_block_delta:input_json_delta', 'content_block_stop',
    'content_block_start', 'content_block_delta:input_json_delta', 'content_block_delta:input_json_delta', 'content_block_delta:input_json_delta', 'content_block_stop',
    'message_delta', 'message_stop'
  ])
  assert.equal(final.usage.input_tokens, 10)
  assert.equal(final.usage.output_tokens, 20)
  const sent = mock.requests.at(-1)?.json as { tool_choice: unknown, stream_options: unknown, tools: unknown[] }
  assert.equal(sent.tool_choice, 'required')
  assert.deepEqual(sent.stream_options, { include_usage: true })
  assert.deepEqual(sent.tools[0], { type: 'function', function: { name: 'get_weather', description: 'Weather of a city', parameters: WEATHER.input_schema } })
  // usage is read from the upstream's stream, before translation
  const record = await recordOf(gw, mock.requests.at(-1)?.headers['x-request-id'] as string)
  assert.equal(record.promptTokens, 10)
  assert.equal(record.completionTokens, 20)
  assert.equal(record.path, '/v1/messages')
})

test('a tool_result conversation reaches the upstream as tool messages in order', async (t) => {
  const { mock, client } = await setup(t)
  const msg = await client.messages.create({
    model: 'gpt-4o-mini',
    max_tokens: 50,
    tools: [WEATHER],
    messages: [
      { role: 'user', content: [{ type: 'text', text: 'weather?' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } }] },
      { role: 'assistant', content: [{ type: 'text', text: 'checking' }, { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } }, { type: 'tool_use', id: 'toolu_2', name: 'get_weather', input: { city: 'Rome' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'sunny' }, { type: 'tool_result', tool_use_id: 'toolu_2', is_error: true, content: [{ type: 'text', text: 'no data' }] }, { type: 'text', text: 'thanks' }] }
    ]
  }, { headers: { 'x-mock-chunks': '1' } })
  assert.equal(msg.content[0].type, 'text')
  const sent = mock.requests.at(-1)?.json as { messages: unknown[] }
  assert.deepEqual(sent.messages, [
    { role: 'user', content: [{ type: 'text', text: 'weather?' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }] },
    {
      role: 'assistant',
      content: 'checking',
      tool_calls: [
        { id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
        { id: 'toolu_2', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } }
      ]
    },
    { role: 'tool', tool_call_id: 'toolu_1', content: 'sunny' },
    { role: 'tool', tool_call_id: 'toolu_2', content: '[tool error] no data' },
    { role: 'user', content: [{ type: 'text', text: 'thanks' }] }
  ])
})

test('countTokens is answered by the gateway with OpenAI\'s tokenizer', async (t) => {
  const { mock, client } = await setup(t)
  const before = mock.requests.length
  const res = await client.messages.countTokens({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello world' }] })
  // "hello world" is 2 tokens in o200k_base, 3 per message, 3 before the answer
  assert.equal(res.input_tokens, 8)
  assert.equal(mock.requests.length, before, 'the upstream was not asked')
})

test('upstream errors reach the client as typed Anthropic errors', async (t) => {
  const { client } = await setup(t)
  const cases: Array<[string, new (...args: never[]) => Error, string]> = [
    ['429', Anthropic.RateLimitError, 'rate_limit_error'],
    ['503', Anthropic.InternalServerError, 'overloaded_error'],
    ['401', Anthropic.AuthenticationError, 'authentication_error'],
    ['400', Anthropic.BadRequestError, 'invalid_request_error']
  ]
  for (const [status, cls, type] of cases) {
    await assert.rejects(
      client.messages.create({ model: 'gpt-4o-mini', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-status': status } }),
      (err: unknown) => {
        assert.ok(err instanceof cls, `${status} → ${cls.name}`)
        assert.equal((err as InstanceType<typeof Anthropic.APIError>).status, Number(status))
        assert.deepEqual(((err as InstanceType<typeof Anthropic.APIError>).error as { error: { type: string } }).error.type, type)
        return true
      }
    )
  }
})

test('a field the Chat API cannot carry is a 400 naming it, and the upstream is not called', async (t) => {
  const { mock, client } = await setup(t)
  const before = mock.requests.length
  await assert.rejects(
    client.messages.create({ model: 'gpt-4o-mini', max_tokens: 10, ...({ top_k: 5 } as object), messages: [{ role: 'user', content: 'hi' }] }),
    (err: unknown) => err instanceof Anthropic.BadRequestError && /'top_k'/.test(err.message)
  )
  await assert.rejects(
    client.messages.create({ model: 'gpt-4o-mini', max_tokens: 10, tools: [{ type: 'web_search_20250305', name: 'web_search' }], messages: [{ role: 'user', content: 'hi' }] }),
    (err: unknown) => err instanceof Anthropic.BadRequestError && /'tools\[0\]\.type'/.test(err.message)
  )
  assert.equal(mock.requests.length, before)
})

test('a translated stream whose upstream fails mid-way ends with Anthropic\'s error event; an error status before it is a typed error', async (t) => {
  const { client, gw } = await setup(t)
  const res = await fetch(`${gw.url}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': 'sk-client-t1', 'anthropic-version': '2023-06-01', 'x-mock-fault': 'reset-mid-stream', 'x-mock-chunks': '10' },
    body: JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'hi' }] })
  })
  assert.equal(res.status, 200)
  const text = await res.text()
  assert.ok(text.startsWith('event: message_start\n'), text.slice(0, 80))
  assert.ok(text.endsWith('event: error\ndata: {"type":"error","error":{"type":"api_error","message":"The upstream stream was interrupted"}}\n\n'), text.slice(-200))
  assert.ok(!text.includes('message_stop'))
  assert.ok(!text.includes('chat.completion.chunk'), 'no byte of the upstream\'s dialect')
  await assert.rejects(
    client.messages.create({ model: 'gpt-4o-mini', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-status': '529' } }),
    (err: unknown) => err instanceof Anthropic.InternalServerError && err.status === 529 && (err.error as { error: { type: string } }).error.type === 'overloaded_error'
  )
})

test('a target that speaks Messages gets the request byte for byte, as before translation', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_PROVIDER: 'anthropic', GATEWAY_UPSTREAM_KEY: 'sk-ant-t1' } })
  const body = '{"model": "claude-3-5-sonnet-latest",  "max_tokens": 10, "top_k": 3, "messages": [{"role": "user", "content": "hi"}]}'
  const res = await fetch(`${gw.url}/v1/messages?beta=true`, { method: 'POST', headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' }, body })
  assert.equal(res.status, 200)
  assert.equal((await res.json() as { type: string }).type, 'message')
  assert.equal(mock.requests.at(-1)?.url, '/v1/messages?beta=true')
  assert.equal(mock.requests.at(-1)?.bodyText, body)
})

test('a translated request keeps the target\'s own path mapping: a /{target}/ prefix, an Azure deployment and api-version', async (t) => {
  const mock = await startMock(t)
  const targets = {
    az: { url: mock.url, provider: 'azure', keys: ['az-key-1'], azure: { apiVersion: '2024-10-21', deployments: { 'gpt-4o-mini': 'prod-mini' } } }
  }
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_TARGETS: JSON.stringify(targets) } })
  const client = new Anthropic({ baseURL: `${gw.url}/az`, apiKey: 'sk-client-t1', maxRetries: 0 })
  const msg = await client.messages.create({ model: 'gpt-4o-mini', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-chunks': '1' } })
  assert.deepEqual(msg.content, [{ type: 'text', text: 'tok0 ' }])
  const seen = mock.requests.at(-1)
  assert.equal(seen?.url, '/openai/deployments/prod-mini/chat/completions?api-version=2024-10-21')
  assert.equal(seen?.headers['api-key'], 'az-key-1')
  assert.equal((seen?.json as { max_completion_tokens: number }).max_completion_tokens, 10)
})

test('messages.stream after reasoning: the thinking block, then the whole text with its first delta', async (t) => {
  const { client, mock } = await setup(t)
  const texts: string[] = []
  const stream = client.messages.stream({ model: 'gpt-4o-mini', max_tokens: 100, thinking: { type: 'enabled', budget_tokens: 2048 }, messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-reasoning': '3', 'x-mock-chunks': '4' } })
  stream.on('text', (delta) => texts.push(delta))
  const final = await stream.finalMessage()
  assert.deepEqual(final.content, [{ type: 'thinking', thinking: 'think0 think1 think2 ', signature: '' }, { type: 'text', text: 'tok0 tok1 tok2 tok3 ' }])
  assert.deepEqual(texts, ['tok0 ', 'tok1 ', 'tok2 ', 'tok3 '])
  assert.equal(final.stop_reason, 'end_turn')
  assert.equal((mock.requests.at(-1)?.json as { reasoning_effort: string }).reasoning_effort, 'low', 'a 2,048-token budget')
})

test('usage and cost of a translated request are those of the upstream\'s answer: the same as the same answer untranslated', async (t) => {
  const { client, gw, mock } = await setup(t)
  const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client-t1', maxRetries: 0 })
  const headers = { 'x-mock-chunks': '3', 'x-mock-cached-tokens': '4' }
  await client.messages.create({ model: 'gpt-4o-mini', max_tokens: 10, system: 'be brief', messages: [{ role: 'user', content: 'hi' }] }, { headers })
  const translated = await recordOf(gw, mock.requests.at(-1)?.headers['x-request-id'] as string)
  await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }] }, { headers })
  const direct = await recordOf(gw, mock.requests.at(-1)?.headers['x-request-id'] as string)
  assert.equal(translated.path, '/v1/messages')
  assert.equal(direct.path, '/v1/chat/completions')
  for (const field of ['promptTokens', 'completionTokens', 'cacheReadTokens', 'totalTokens'] as const) assert.equal(translated[field], direct[field], field)
  const cost = (r: object): unknown => (r as { costUsd?: unknown }).costUsd
  assert.equal(typeof cost(direct), 'number')
  assert.ok((cost(direct) as number) > 0)
  assert.equal(cost(translated), cost(direct))
})
