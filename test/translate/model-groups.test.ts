/**
 * Translation inside model groups (the fallback issue's attempt loop): each deployment's attempt
 * is translated for its own target, and the answer is read in the dialect of the attempt that
 * answered. Real upstreams on loopback, the official SDKs as clients.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import type { ServerResponse } from 'node:http'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { startGateway, startMock, type GatewayHandle } from '../helper.js'
import type { MockUpstream } from '../../mock/upstream.js'

function unavailable (res: ServerResponse): void {
  res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'upstream says 503', type: 'server_error', code: null } }))
}

/** A mock whose chat completions always answer 503. */
async function failingChat (t: TestContext): Promise<MockUpstream> {
  const mock = await startMock(t)
  mock.override('/v1/chat/completions', (_req, res) => { unavailable(res) })
  return mock
}

interface Setup { gw: GatewayHandle, failing: MockUpstream, chat: MockUpstream, claude: MockUpstream }

async function setup (t: TestContext): Promise<Setup> {
  const failing = await failingChat(t)
  const chat = await startMock(t)
  const claude = await startMock(t)
  const gw = await startGateway(t, {
    yaml: `
upstream: { url: "${chat.url}", provider: openai-compatible, key: sk-default-upstream-1 }
targets:
  down: { url: "${failing.url}", provider: openai-compatible, keys: [sk-down-1] }
  chat: { url: "${chat.url}", provider: openai-compatible, keys: [sk-chat-1] }
  claude: { url: "${claude.url}", provider: anthropic, keys: [sk-ant-upstream-1] }
modelGroups:
  mixed:
    deployments:
      - { target: down, model: gpt-4o-mini }
      - { target: claude, model: claude-3-5-sonnet-latest }
  chats:
    deployments:
      - { target: down, model: gpt-4o-mini }
      - { target: chat, model: gpt-4o }
  claude-first:
    deployments:
      - { target: claude, model: claude-3-5-sonnet-latest }
      - { target: chat, model: text-embedding-3-small }
`
  })
  return { gw, failing, chat, claude }
}

test('a Chat client on a group whose Chat deployment fails with 503: the Anthropic deployment answers, translated, stream and not', async (t) => {
  const { gw, failing, claude } = await setup(t)
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client-g1', maxRetries: 0 })
  const { data: res, response } = await client.chat.completions.create({ model: 'mixed', messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-chunks': '2' } }).withResponse()
  assert.equal(res.object, 'chat.completion')
  assert.equal(res.choices[0].message.content, 'tok0 tok1 ')
  assert.equal(response.headers.get('x-gateway-target'), 'claude')
  assert.equal(failing.requests.at(-1)?.path, '/v1/chat/completions')
  assert.equal((failing.requests.at(-1)?.json as { model: string }).model, 'gpt-4o-mini', 'the first attempt went in the client\'s dialect')
  const sent = claude.requests.at(-1)
  assert.equal(sent?.path, '/v1/messages')
  assert.equal(sent?.headers['x-api-key'], 'sk-ant-upstream-1')
  assert.deepEqual(sent?.json, { model: 'claude-3-5-sonnet-latest', messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }], max_tokens: 4096 })

  const stream = await client.chat.completions.create({ model: 'mixed', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-chunks': '3' } })
  let text = ''
  let usage: unknown = null
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? ''
    if (chunk.usage != null) usage = chunk.usage
  }
  assert.equal(text, 'tok0 tok1 tok2 ')
  assert.deepEqual(usage, { prompt_tokens: 10, completion_tokens: 3, total_tokens: 13, prompt_tokens_details: { cached_tokens: 0 } })
  assert.equal(failing.requests.length, 2)
})

test('a Messages client on a group of Chat deployments: translated for each attempt, stream and not', async (t) => {
  const { gw, failing, chat } = await setup(t)
  const client = new Anthropic({ baseURL: gw.url, apiKey: 'sk-client-g2', maxRetries: 0 })
  const msg = await client.messages.create({ model: 'chats', max_tokens: 20, messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-chunks': '2' } })
  assert.equal(msg.type, 'message')
  assert.deepEqual(msg.content, [{ type: 'text', text: 'tok0 tok1 ' }])
  for (const mock of [failing, chat]) {
    const sent = mock.requests.at(-1)
    assert.equal(sent?.path, '/v1/chat/completions', 'each attempt translated for its own Chat target')
    assert.equal((sent?.json as { max_tokens: number }).max_tokens, 20)
  }
  assert.deepEqual([(failing.requests.at(-1)?.json as { model: string }).model, (chat.requests.at(-1)?.json as { model: string }).model], ['gpt-4o-mini', 'gpt-4o'])

  const final = await client.messages.stream({ model: 'chats', max_tokens: 20, messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-chunks': '3' } }).finalMessage()
  assert.deepEqual(final.content, [{ type: 'text', text: 'tok0 tok1 tok2 ' }])
  assert.equal(final.stop_reason, 'end_turn')
  assert.equal(final.usage.output_tokens, 3)
})

test('a deployment no direction translates is skipped with its log line: embeddings on an Anthropic target', async (t) => {
  const { gw, claude, chat } = await setup(t)
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client-g3', maxRetries: 0 })
  const { data: res, response } = await client.embeddings.create({ model: 'claude-first', input: 'hi' }).withResponse()
  assert.equal(res.data.length, 1)
  assert.equal(response.headers.get('x-gateway-target'), 'chat')
  assert.equal(claude.requests.length, 0, 'the Anthropic deployment was not asked')
  assert.equal(chat.requests.at(-1)?.path, '/v1/embeddings')
  assert.match(gw.logText(), /deployment skipped: its target speaks another dialect/)
})

test('a field no deployment\'s dialect can carry: each is skipped with its log line, and the client gets the 400 naming it', async (t) => {
  const { gw, failing, chat } = await setup(t)
  const client = new Anthropic({ baseURL: gw.url, apiKey: 'sk-client-g4', maxRetries: 0 })
  await assert.rejects(
    client.messages.create({ model: 'chats', max_tokens: 20, ...({ top_k: 4 } as object), messages: [{ role: 'user', content: 'hi' }] }),
    (err: unknown) => err instanceof Anthropic.BadRequestError && /'top_k'/.test(err.message)
  )
  assert.equal(failing.requests.length + chat.requests.length, 0, 'no upstream was asked')
  assert.match(gw.logText(), /deployment skipped: the request cannot be translated to its dialect/)
})
