/**
 * Seed 000's [CONTEXT_ID] handling through the real gateway, driven by the official SDKs against
 * the embedded mock (which tags its answers, splits the tag across deltas and events across
 * packets on request).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { gzipSync } from 'node:zlib'
import OpenAI from 'openai'
import Anthropic from '@anthropic-ai/sdk'
import { request } from 'undici'
import { startGateway, startMock } from '../helper.js'
import type { MockUpstream } from '../../mock/upstream.js'

const TAG_HEADER = '0123456789abcdef0123456789abcdef'
const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}'

interface ChatBody { messages: Array<{ role: string, content: unknown }> }

function lastChat (mock: MockUpstream): ChatBody {
  const seen = mock.requests.filter(r => r.path === '/v1/chat/completions').at(-1)
  assert.ok(seen !== undefined)
  return seen.json as ChatBody
}

async function setup (t: import('node:test').TestContext, env: Record<string, string> = {}): Promise<{ mock: MockUpstream, url: string }> {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, ...env }, argv: ['-nocid'] })
  return { mock, url: gw.url }
}

test('JSON: the client never sees the tag; the next request carries the chain', async (t) => {
  const { mock, url } = await setup(t)
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-client-a', maxRetries: 0 })
  const first = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-context-id': 'up-1', 'x-mock-chunks': '3' } })
  const answer = first.choices[0].message.content ?? ''
  assert.equal(answer, 'tok0 tok1 tok2 \n')
  assert.equal(mock.requests.at(-1)?.headers['accept-encoding'], 'identity', 'upstream asked for an uncompressed body')

  await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: answer }, { role: 'user', content: 'more' }]
  })
  const sent = lastChat(mock)
  assert.match(String(sent.messages[1].content), new RegExp(`^tok0 tok1 tok2\\n\\[CONTEXT_ID:up-1\\|${UUID}\\]$`))
  assert.equal(sent.messages[0].content, 'hi')
  assert.equal(sent.messages[2].content, 'more')
})

test('JSON: content-length matches the rewritten body', async (t) => {
  const { url } = await setup(t)
  const res = await request(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer sk-x', 'x-mock-context-id': 'abc' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
  })
  const body = Buffer.from(await res.body.arrayBuffer())
  assert.equal(res.statusCode, 200)
  assert.equal(Number(res.headers['content-length']), body.length)
  assert.equal(res.headers['transfer-encoding'], undefined)
  assert.ok(!body.toString().includes('CONTEXT_ID'))
})

test('stream: a tag split across deltas and network packets never reaches the client, and is stored', async (t) => {
  const { mock, url } = await setup(t)
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-client-s', maxRetries: 0 })
  const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] }, {
    headers: { 'x-mock-context-id': 'split-id-42', 'x-mock-split-tag': '1', 'x-mock-split-network': '1', 'x-mock-chunks': '4' }
  })
  let text = ''
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
  assert.ok(!text.includes('['), `client saw ${JSON.stringify(text)}`)
  assert.equal(text, 'tok0 héllo wörld 你好 tok1 héllo wörld 你好 tok2 héllo wörld 你好 tok3 héllo wörld 你好 \n')

  await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'assistant', content: text }, { role: 'user', content: 'q' }] })
  assert.match(String(lastChat(mock).messages[0].content), new RegExp(`\\n\\[CONTEXT_ID:split-id-42\\|${UUID}\\]$`))
})

test('chains grow per assistant message and the upstream tag replaces the stored chain', async (t) => {
  const { mock, url } = await setup(t)
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-client-g', maxRetries: 0 })
  const history = [{ role: 'user' as const, content: 'a' }, { role: 'assistant' as const, content: 'A' }, { role: 'user' as const, content: 'b' }, { role: 'assistant' as const, content: 'B' }, { role: 'user' as const, content: 'c' }]
  await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-mock-context-id': 't1' } })
  await client.chat.completions.create({ model: 'gpt-4o-mini', messages: history })
  const sent = lastChat(mock).messages
  const c1 = /\[CONTEXT_ID:([^\]]+)\]$/.exec(String(sent[1].content))?.[1] ?? ''
  const c2 = /\[CONTEXT_ID:([^\]]+)\]$/.exec(String(sent[3].content))?.[1] ?? ''
  assert.equal(c1.split('|').length, 2)
  assert.equal(c2.split('|').length, 3)
  assert.ok(c2.startsWith(`${c1}|`) && c1.startsWith('t1|'))
  // no tag in that answer: the request's own chain was stored and continues
  await client.chat.completions.create({ model: 'gpt-4o-mini', messages: history.slice(0, 3) })
  const c3 = /\[CONTEXT_ID:([^\]]+)\]$/.exec(String(lastChat(mock).messages[1].content))?.[1] ?? ''
  assert.ok(c3.startsWith(`${c2}|`))
  // the upstream's next tag wins
  await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-mock-context-id': 't2' } })
  await client.chat.completions.create({ model: 'gpt-4o-mini', messages: history.slice(0, 3) })
  assert.match(String(lastChat(mock).messages[1].content), new RegExp(`^A\\n\\[CONTEXT_ID:t2\\|${UUID}\\]$`))
})

test('two clients without tag headers never see each other\'s context', async (t) => {
  const { mock, url } = await setup(t)
  const alice = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-alice', maxRetries: 0 })
  const bob = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-bob', maxRetries: 0 })
  await alice.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-mock-context-id': 'alice-secret' } })
  await bob.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'assistant', content: 'B' }, { role: 'user', content: 'y' }] })
  const bobChain = String(lastChat(mock).messages[0].content)
  assert.ok(!bobChain.includes('alice-secret'), bobChain)
  assert.match(bobChain, new RegExp(`^B\\n\\[CONTEXT_ID:${UUID}\\]$`))
  await alice.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'assistant', content: 'A' }, { role: 'user', content: 'y' }] })
  assert.match(String(lastChat(mock).messages[0].content), /\[CONTEXT_ID:alice-secret\|/)
})

test('tag headers pick the conversation within one client, and are forwarded', async (t) => {
  const { mock, url } = await setup(t)
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-tags', maxRetries: 0 })
  const conv1 = { [TAG_HEADER]: '[tag]' }
  await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }, { headers: { ...conv1, 'x-mock-context-id': 'conv-1' } })
  assert.equal(mock.requests.at(-1)?.headers[TAG_HEADER], '[tag]')
  await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'assistant', content: 'A' }] })
  assert.ok(!String(lastChat(mock).messages[0].content).includes('conv-1'), 'no tag headers: another conversation')
  await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'assistant', content: 'A' }] }, { headers: conv1 })
  assert.match(String(lastChat(mock).messages[0].content), /\[CONTEXT_ID:conv-1\|/)
})

test('concurrent requests of one conversation all carry the stored chain', async (t) => {
  const { mock, url } = await setup(t)
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-conc', maxRetries: 0 })
  await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-mock-context-id': 'base' } })
  mock.reset()
  await Promise.all(Array.from({ length: 12 }, () =>
    client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'assistant', content: 'A' }, { role: 'user', content: 'q' }] })))
  assert.equal(mock.requests.length, 12)
  // each request sees a complete chain: `base`, perhaps followed by ids another request stored
  // first (seed 000 deleted the chain while a request was in flight, so others saw none)
  for (const r of mock.requests) {
    assert.match(String((r.json as ChatBody).messages[0].content), new RegExp(`^A\\n\\[CONTEXT_ID:base(\\|${UUID})+\\]$`))
  }
})

test('non-string content is kept: the tag goes on the last text part; tool-call messages stay', async (t) => {
  const { mock, url } = await setup(t)
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-parts', maxRetries: 0 })
  await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [
      { role: 'user', content: 'x' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: 'result' },
      { role: 'assistant', content: [{ type: 'text', text: 'part one' }, { type: 'text', text: 'part two' }] }
    ]
  })
  const sent = lastChat(mock).messages as Array<Record<string, unknown>>
  assert.equal(sent[1].content, null)
  assert.deepEqual((sent[1].tool_calls as unknown[]).length, 1)
  const parts = sent[3].content as Array<{ text: string }>
  assert.equal(parts[0].text, 'part one')
  assert.match(parts[1].text, new RegExp(`^part two\\n\\[CONTEXT_ID:${UUID}\\|${UUID}\\]$`))
})

test('Anthropic stream and JSON: no tag reaches the SDK', async (t) => {
  const { url } = await setup(t)
  const client = new Anthropic({ baseURL: url, apiKey: 'sk-ant-client', maxRetries: 0 })
  const msg = await client.messages.create({ model: 'claude-3-5-sonnet-latest', max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-context-id': 'ant-1', 'x-mock-chunks': '2' } })
  assert.equal(msg.content[0].type === 'text' ? msg.content[0].text : '', 'tok0 tok1 \n')
  const stream = client.messages.stream({ model: 'claude-3-5-sonnet-latest', max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] }, {
    headers: { 'x-mock-context-id': 'ant-2', 'x-mock-split-tag': '1', 'x-mock-split-network': '1', 'x-mock-chunks': '2' }
  })
  let text = ''
  stream.on('text', (delta) => { text += delta })
  const final = await stream.finalMessage()
  assert.equal(text, 'tok0 héllo wörld 你好 tok1 héllo wörld 你好 \n')
  assert.equal(final.content[0].type === 'text' ? final.content[0].text : '', text)
})

test('an upstream that compresses anyway is decompressed; other content types pass untouched', async (t) => {
  const { mock, url } = await setup(t)
  const tagged = JSON.stringify({ id: 'x', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'hi\n[CONTEXT_ID:gz-1]' }, finish_reason: 'stop' }] })
  mock.override('/v1/chat/completions', (_req, res) => {
    const body = gzipSync(tagged)
    res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': body.length })
    res.end(body)
  })
  const plain = 'text with [CONTEXT_ID:stays] in it'
  mock.override('/v1/files/file-1/content', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(plain) })
    res.end(plain)
  })
  const res = await request(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
  })
  assert.equal(res.headers['content-encoding'], undefined)
  const body = await res.body.json() as { choices: Array<{ message: { content: string } }> }
  assert.equal(body.choices[0].message.content, 'hi\n')
  const file = await request(`${url}/v1/files/file-1/content`)
  assert.equal(await file.body.text(), plain)
})

test('a 1 MiB event with multi-byte characters split at chunk edges passes intact; its tag is cut', async (t) => {
  const { url, mock } = await setup(t)
  const big = 'é你🎉'.repeat(120_000)
  const event = `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: big } }] })}\n\n`
  const tagEvent = `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: '\n[CONTEXT_ID:big-1]' } }] })}\n\n`
  const payload = Buffer.from(event + tagEvent + 'data: [DONE]\n\n')
  assert.ok(Buffer.byteLength(event) > 1024 * 1024)
  mock.override('/v1/chat/completions', async (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    for (let i = 0; i < payload.length; i += 65_537) {
      res.write(payload.subarray(i, i + 65_537)) // odd size: characters are cut between chunks
      await new Promise(resolve => setImmediate(resolve))
    }
    res.end()
  })
  const res = await request(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] })
  })
  const text = await res.body.text()
  const expected = event + `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: '\n' } }] })}\n\n` + 'data: [DONE]\n\n'
  assert.equal(createHash('sha256').update(text).digest('hex'), createHash('sha256').update(expected).digest('hex'))
})

test('off (no -nocid): tags pass through and bodies are forwarded byte for byte', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const raw = '{"model":  "gpt-4o-mini", "messages": [{"role":"assistant","content":"A"}], "seed": 12345678901234567890}'
  const res = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-mock-context-id': 'visible', 'accept-encoding': 'gzip' },
    body: raw
  })
  const body = await res.body.json() as { choices: Array<{ message: { content: string } }> }
  assert.ok(body.choices[0].message.content.endsWith('\n[CONTEXT_ID:visible]'))
  const seen = mock.requests.at(-1)
  assert.equal(seen?.bodySha256, createHash('sha256').update(raw).digest('hex'))
  assert.equal(seen?.headers['accept-encoding'], 'gzip')
  assert.ok(!gw.app.printRoutes({ includeHooks: true }).includes('contextIdRequest'), 'no context-id hook when off')
})

test('with the stream stage in place, a client abort still closes the upstream; a reset still ends with an error event', async (t) => {
  const { mock, url } = await setup(t)
  const body = JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] })
  const ac = new AbortController()
  const res = await request(`${url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-mock-chunks': '400', 'x-mock-delay-ms': '20' }, body, signal: ac.signal
  })
  res.body.once('data', () => ac.abort())
  await new Promise(resolve => res.body.once('error', resolve).once('close', resolve))
  let aborted = false
  for (let i = 0; i < 200 && !aborted; i++) {
    aborted = mock.streams.at(-1)?.aborted === true
    if (!aborted) await new Promise(resolve => setTimeout(resolve, 25))
  }
  assert.ok(aborted, 'upstream stream aborted')
  assert.ok((mock.streams.at(-1)?.chunksSent ?? 400) < 400)

  const reset = await request(`${url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-mock-fault': 'reset-mid-stream', 'x-mock-context-id': 'r' }, body
  })
  const text = await reset.body.text()
  assert.match(text.trim().split('\n\n').at(-1) ?? '', /^data: \{"error":/)
})
