/**
 * Providers decide the upstream auth header, the path and the error shape: Anthropic through
 * @anthropic-ai/sdk with streaming, Azure deployment paths with `api-key` and `api-version`
 * (OpenAI client and AzureOpenAI client), and per-target path rewrites (seed 004's proxy_url_path).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI, { AzureOpenAI } from 'openai'
import { startGateway, startMock } from '../helper.js'

const MESSAGE = { model: 'claude-3-5-sonnet-latest', max_tokens: 64, messages: [{ role: 'user' as const, content: 'Hello' }] }

test('Anthropic target: @anthropic-ai/sdk streams through /claude, the upstream gets x-api-key from the pool', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, {
    yaml: `
targets:
  claude:
    url: ${mock.url}
    provider: anthropic
    keys: [sk-ant-upstream-pool-1]
`
  })
  const client = new Anthropic({ baseURL: `${gw.url}/claude`, apiKey: 'gateway-client-key', maxRetries: 0 })
  const stream = client.messages.stream(MESSAGE, { headers: { 'x-mock-chunks': '5', 'anthropic-beta': 'prompt-caching-2024-07-31' } })
  const events: string[] = []
  stream.on('streamEvent', (e) => events.push(e.type))
  const final = await stream.finalMessage()
  assert.equal(final.content[0].type === 'text' && final.content[0].text, 'tok0 tok1 tok2 tok3 tok4 ')
  assert.equal(final.usage.output_tokens, 5)
  assert.equal(events[0], 'message_start')
  assert.equal(events.at(-1), 'message_stop')

  const seen = mock.requests.at(-1)!
  assert.equal(seen.path, '/v1/messages')
  assert.equal(seen.headers['x-api-key'], 'sk-ant-upstream-pool-1')
  assert.equal(seen.headers.authorization, undefined, 'no OpenAI-style credential reaches Anthropic')
  assert.ok(seen.headers['anthropic-version'] !== undefined, 'the client\'s anthropic-version passes')
  assert.equal(seen.headers['anthropic-beta'], 'prompt-caching-2024-07-31')
})

test('Anthropic target: gateway errors use Anthropic\'s shape on every path', async (t) => {
  const gw = await startGateway(t, {
    yaml: `
targets:
  claude:
    url: http://127.0.0.1:9
    provider: anthropic
`
  })
  const res = await request(`${gw.url}/claude/v1/models`)
  assert.equal(res.statusCode, 502)
  const body = await res.body.json() as { type: string, error: { type: string, message: string } }
  assert.equal(body.type, 'error')
  assert.equal(body.error.type, 'api_error')
  assert.ok(!JSON.stringify(body).includes('127.0.0.1'))
})

test('Azure target: /v1/chat/completions with a model → deployment path, api-key header, api-version query', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, {
    yaml: `
targets:
  az:
    url: ${mock.url}
    provider: azure
    keys: [azure-upstream-key-1]
    azure:
      apiVersion: 2024-10-21
      deployments: { gpt-4o-mini: prod-mini }
`
  })
  const client = new OpenAI({ baseURL: `${gw.url}/az/v1`, apiKey: 'gateway-client-key', maxRetries: 0 })
  const done = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
  assert.equal(done.object, 'chat.completion')
  let seen = mock.requests.at(-1)!
  assert.equal(seen.url, '/openai/deployments/prod-mini/chat/completions?api-version=2024-10-21')
  assert.equal(seen.headers['api-key'], 'azure-upstream-key-1')
  assert.equal(seen.headers.authorization, undefined)

  const stream = await client.chat.completions.create({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'hi' }] })
  let text = ''
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
  assert.ok(text.length > 0)
  assert.equal(mock.requests.at(-1)!.url, '/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21', 'an unlisted model is its own deployment')

  const emb = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'x' })
  assert.equal(emb.data.length, 1)
  assert.equal(mock.requests.at(-1)!.url, '/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21')

  // a model is client input: it cannot walk out of the deployment segment
  await request(`${gw.url}/az/v1/chat/completions?x=1`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: '../../admin?', messages: [] }) }).then(r => r.body.dump())
  seen = mock.requests.at(-1)!
  assert.equal(seen.url, '/openai/deployments/..%2F..%2Fadmin%3F/chat/completions?x=1&api-version=2024-10-21')
})

test('Azure target: the AzureOpenAI client\'s own paths pass through /openai/…', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, {
    yaml: `
routing:
  defaultTarget: az
targets:
  az:
    url: ${mock.url}
    provider: azure
    keys: [azure-upstream-key-2]
`
  })
  const client = new AzureOpenAI({ endpoint: gw.url, apiKey: 'gateway-client-key', apiVersion: '2024-06-01', deployment: 'dep-1', maxRetries: 0 })
  const done = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
  assert.equal(done.object, 'chat.completion')
  const seen = mock.requests.at(-1)!
  assert.equal(seen.url, '/openai/deployments/dep-1/chat/completions?api-version=2024-06-01', 'the client\'s api-version is kept')
  assert.equal(seen.headers['api-key'], 'azure-upstream-key-2')
})

test('seed 004 proxy_url_path sends /v1/chat/completions to the configured upstream path', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { yaml: `base_url: ${mock.url}\nproxy_url_path: /openai/deployments/d4/chat/completions\n` })
  const res = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [] }) })
  assert.equal(res.statusCode, 200)
  await res.body.json()
  assert.equal(mock.requests.at(-1)!.path, '/openai/deployments/d4/chat/completions')
  await request(`${gw.url}/v1/models`).then(r => r.body.dump())
  assert.equal(mock.requests.at(-1)!.path, '/v1/models', 'other paths unchanged')
})

test('path rewrites: exact and prefix rules, the client query kept', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, {
    yaml: `
upstream:
  url: ${mock.url}
  pathRewrites:
    /v1/chat/completions: /v1/chat/completions?source=gw
    /v1/*: /api/v1/*
`
  })
  await request(`${gw.url}/v1/chat/completions?a=1`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"gpt-4o-mini","messages":[]}' }).then(r => r.body.dump())
  assert.equal(mock.requests.at(-1)!.url, '/v1/chat/completions?source=gw&a=1')
  await request(`${gw.url}/v1/models?limit=1`).then(r => r.body.dump())
  assert.equal(mock.requests.at(-1)!.url, '/api/v1/models?limit=1')
})
