/**
 * One usage record per request, with the tokens the upstream reported, read with the official
 * SDKs as clients: OpenAI streams with and without include_usage (the client sees exactly what it
 * asked for either way), JSON answers, Anthropic streams with cumulative usage counted once, and
 * a client that goes away mid-stream.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import OpenAI from 'openai'
import Anthropic from '@anthropic-ai/sdk'
import { request } from 'undici'
import { startGateway, startMock } from '../helper.js'
import { eventually, recordOf, usageRecords } from './helpers.js'

const CLIENT_KEY = 'sk-client-usage-SECRET-1234abcd'

test('OpenAI stream without include_usage: the client gets no usage, the record has the tokens', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 })
  const { data: stream, response } = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yes' }, { role: 'user', content: 'more' }],
    stream: true
  }, { headers: { 'x-mock-chunks': '5' } }).withResponse()
  const chunks = []
  for await (const c of stream) chunks.push(c)
  assert.ok(chunks.length >= 6)
  for (const c of chunks) {
    assert.ok(!('usage' in c), 'no usage field on any chunk')
    assert.ok(c.choices.length > 0, 'no usage-only chunk')
  }
  const sent = mock.requests.at(-1)?.json as { stream_options?: { include_usage?: boolean } }
  assert.equal(sent.stream_options?.include_usage, true, 'the gateway asked the upstream for usage')

  const record = await recordOf(gw, response.headers.get('x-request-id') as string)
  assert.equal(record.promptTokens, 30) // the mock: 10 per message
  assert.equal(record.completionTokens, 5)
  assert.equal(record.totalTokens, 35)
  assert.equal(record.stream, true)
  assert.equal(record.status, 200)
  assert.equal(record.model, 'gpt-4o-mini')
  assert.equal(record.target, 'default')
  assert.equal(record.path, '/v1/chat/completions')
  assert.equal(record.method, 'POST')
  assert.equal(record.aborted, false)
  assert.equal(record.errorClass, null)
  assert.equal(typeof record.ttfbMs, 'number')
  assert.ok(record.durationMs >= (record.ttfbMs as number))
  assert.equal(record.ip, '127.0.0.1')
})

test('OpenAI stream with include_usage: forwarded byte for byte, the client gets its usage chunk', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 })
  const { data: stream, response } = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'hi' }],
    stream: true,
    stream_options: { include_usage: true }
  }, { headers: { 'x-mock-chunks': '4' } }).withResponse()
  const chunks = []
  for await (const c of stream) chunks.push(c)
  const last = chunks.at(-1)
  assert.deepEqual(last?.choices, [])
  assert.deepEqual(last?.usage, { prompt_tokens: 10, completion_tokens: 4, total_tokens: 14 })
  assert.ok(chunks.slice(0, -1).every(c => c.usage === null), 'usage: null on the other chunks, as OpenAI sends it')
  const seen = mock.requests.at(-1)
  assert.equal(seen?.bodySha256, createHash('sha256').update(seen?.bodyText ?? '').digest('hex'))
  assert.deepEqual((seen?.json as { stream_options: unknown }).stream_options, { include_usage: true })

  const record = await recordOf(gw, response.headers.get('x-request-id') as string)
  assert.equal(record.totalTokens, 14)
})

test('usage.streamUsage off: the stream is left alone and the record has no tokens', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_STREAM_USAGE: 'false' } })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 })
  const { data: stream, response } = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true }).withResponse()
  for await (const _c of stream) { /* drain */ }
  assert.equal((mock.requests.at(-1)?.json as Record<string, unknown>).stream_options, undefined)
  const record = await recordOf(gw, response.headers.get('x-request-id') as string)
  assert.equal(record.totalTokens, null)
  assert.equal(record.stream, true)
})

test('JSON answers: chat completion and embeddings', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 })
  const chat = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-chunks': '7' } }).withResponse()
  assert.equal(chat.data.usage?.total_tokens, 17)
  const chatRecord = await recordOf(gw, chat.response.headers.get('x-request-id') as string)
  assert.deepEqual([chatRecord.promptTokens, chatRecord.completionTokens, chatRecord.totalTokens, chatRecord.stream], [10, 7, 17, false])

  const emb = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['a', 'b'] }).withResponse()
  const embRecord = await recordOf(gw, emb.response.headers.get('x-request-id') as string)
  assert.equal(embRecord.promptTokens, emb.data.usage.prompt_tokens)
  assert.equal(embRecord.totalTokens, emb.data.usage.total_tokens)
  assert.equal(embRecord.completionTokens, null)
})

test('Anthropic stream with running usage totals: counted once, as the SDK reports it', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const client = new Anthropic({ baseURL: gw.url, apiKey: CLIENT_KEY, maxRetries: 0 })
  const stream = client.messages.stream({
    model: 'claude-3-5-sonnet-latest',
    max_tokens: 64,
    messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'ok' }, { role: 'user', content: 'go' }]
  }, { headers: { 'x-mock-usage': 'cumulative', 'x-mock-chunks': '9' } })
  const message = await stream.finalMessage()
  const { response } = await stream.withResponse()
  assert.equal(message.usage.output_tokens, 9)
  const record = await recordOf(gw, response.headers.get('x-request-id') as string)
  assert.equal(record.completionTokens, 9, 'the last running total, not the sum 3 + 6 + 9')
  assert.equal(record.promptTokens, message.usage.input_tokens + (message.usage.cache_read_input_tokens ?? 0) + (message.usage.cache_creation_input_tokens ?? 0))
  assert.equal(record.totalTokens, 30 + 9)
  assert.equal(record.cacheReadTokens, 0)
  assert.equal(record.cacheCreationTokens, 0)
  assert.equal(record.path, '/v1/messages')
})

test('Anthropic JSON answer', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const client = new Anthropic({ baseURL: gw.url, apiKey: CLIENT_KEY, maxRetries: 0 })
  const { data, response } = await client.messages.create({ model: 'claude-3-5-sonnet-latest', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] }).withResponse()
  const record = await recordOf(gw, response.headers.get('x-request-id') as string)
  assert.equal(record.promptTokens, data.usage.input_tokens)
  assert.equal(record.completionTokens, data.usage.output_tokens)
})

test('a client that goes away mid-stream: the record says so, with the usage seen until then', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const client = new Anthropic({ baseURL: gw.url, apiKey: CLIENT_KEY, maxRetries: 0 })
  const controller = new AbortController()
  const { data: stream, response } = await client.messages.create({
    model: 'claude-3-5-sonnet-latest', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'hi' }]
  }, { headers: { 'x-mock-chunks': '40', 'x-mock-delay-ms': '50' }, signal: controller.signal }).withResponse()
  let deltas = 0
  try {
    for await (const event of stream) {
      if (event.type === 'content_block_delta' && ++deltas === 2) controller.abort()
    }
  } catch {
    // the SDK may report the abort as an error
  }
  assert.equal(deltas, 2, 'the client left after two deltas')
  const record = await recordOf(gw, response.headers.get('x-request-id') as string)
  assert.equal(record.aborted, true)
  assert.equal(record.errorClass, 'client_abort')
  assert.equal(record.status, 200, 'the status the client was sent')
  assert.equal(record.promptTokens, 10, 'input tokens from message_start')
  assert.equal(record.completionTokens, 1, 'the output count known when the client left')
  await eventually(() => mock.streams.at(-1)?.aborted === true, 'the upstream stream was aborted too')
})

test('an OpenAI stream abandoned before its usage chunk is recorded as aborted, without tokens', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const res = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-mock-chunks': '40', 'x-mock-delay-ms': '50' },
    body: JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] })
  })
  await new Promise(resolve => res.body.once('data', resolve))
  res.body.destroy() // first bytes, then gone
  const record = await recordOf(gw, res.headers['x-request-id'] as string)
  assert.equal(record.aborted, true)
  assert.equal(record.totalTokens, null)
})

test('privacy mode leaves the client IP out; refusals and unknown routes get records; no key in any record', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_PRIVACY_MODE: 'true' } })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 })
  await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `key ${CLIENT_KEY}` }] })
  const missing = await request(`${gw.url}/nowhere?key=${CLIENT_KEY}`, { headers: { authorization: `Bearer ${CLIENT_KEY}` } })
  await missing.body.dump()
  const upstreamError = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-mock-status': '500' }, body: '{"model":"gpt-4o-mini","messages":[]}'
  })
  await upstreamError.body.dump()
  await recordOf(gw, upstreamError.headers['x-request-id'] as string)
  const health = await request(`${gw.url}/healthz`)
  await health.body.dump()

  const records = usageRecords(gw)
  assert.equal(records.length, 3, 'health probes are not usage')
  for (const r of records) assert.ok(!('ip' in r), 'no client IP in privacy mode')
  const notFound = await recordOf(gw, missing.headers['x-request-id'] as string)
  assert.equal(notFound.status, 404)
  assert.equal(notFound.path, '/nowhere')
  const failed = await recordOf(gw, upstreamError.headers['x-request-id'] as string)
  assert.equal(failed.status, 500)
  assert.equal(failed.totalTokens, null)
  assert.ok(!gw.logText().includes(CLIENT_KEY), 'the client key is in no log line')
})
