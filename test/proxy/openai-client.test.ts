/**
 * The core pass-through, driven by the official `openai` client against the real gateway and the
 * embedded mock upstream, both on 127.0.0.1.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { startGateway, startMock } from '../helper.js'

test('chat completion (JSON) through the gateway with the upstream key swapped in', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEY: 'sk-upstream-0001' } })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client-0001', maxRetries: 0 })
  const res = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
  assert.equal(res.object, 'chat.completion')
  assert.equal(res.model, 'gpt-4o-mini')
  assert.ok(res.choices[0].message.content !== null && res.choices[0].message.content.length > 0)
  const seen = mock.requests.at(-1)
  assert.ok(seen !== undefined)
  assert.equal(seen.path, '/v1/chat/completions')
  assert.equal(seen.headers.authorization, 'Bearer sk-upstream-0001')
  assert.equal(seen.headers.host, new URL(mock.url).host)
})

test('streaming chat arrives chunk by chunk, with usage when asked', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client-0002', maxRetries: 0 })
  const stream = await client.chat.completions.create({
    model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true }
  }, { headers: { 'x-mock-chunks': '7' } })
  let text = ''
  let chunks = 0
  let usage: unknown = null
  for await (const chunk of stream) {
    chunks++
    text += chunk.choices[0]?.delta?.content ?? ''
    if (chunk.usage) usage = chunk.usage
  }
  assert.ok(chunks >= 7, `got ${chunks} chunks`)
  assert.ok(text.length > 0)
  assert.ok(usage !== null, 'usage chunk passed through')
})

test('the gateway does not buffer: the first chunk arrives while the mock holds the last', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client-0003', maxRetries: 0 })
  const stream = await client.chat.completions.create({
    model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true
  }, { headers: { 'x-mock-hold': 'unbuffered-1', 'x-mock-chunks': '5' } })
  let chunks = 0
  for await (const _chunk of stream) {
    chunks++
    // only a gateway that forwards as it receives lets us get here before the release
    if (chunks === 1) mock.release('unbuffered-1')
  }
  assert.ok(chunks >= 5)
})

test('models list through the gateway', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client-0004', maxRetries: 0 })
  const ids: string[] = []
  for await (const m of client.models.list()) ids.push(m.id)
  assert.ok(ids.includes('gpt-4o-mini'))
})

test('a dead upstream gives a 502 that the SDK reports as a 502', async (t) => {
  const mock = await startMock(t)
  const deadUrl = mock.url
  await mock.close()
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: deadUrl } })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client-0005', maxRetries: 0 })
  await assert.rejects(
    client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
    (err: unknown) => {
      assert.ok(err instanceof OpenAI.APIError)
      assert.equal(err.status, 502)
      assert.equal((err.error as { code?: string }).code, 'upstream_unreachable')
      assert.ok(!JSON.stringify(err.error).includes('ECONNREFUSED'), 'no internal error text')
      return true
    }
  )
})

test('upstream 4xx passes through unchanged, for streams too', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client-0006', maxRetries: 0 })
  for (const stream of [false, true]) {
    await assert.rejects(
      client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream }, { headers: { 'x-mock-status': '429' } }),
      (err: unknown) => err instanceof OpenAI.RateLimitError && err.status === 429
    )
  }
})
