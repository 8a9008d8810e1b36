/**
 * Stream continuation (`streamResume`): a chat stream that breaks after the client received part
 * of it goes on at the group's next deployment, which is asked to continue the text received so
 * far; what it repeats is cut. The official OpenAI SDK reads one uninterrupted answer with one usage
 * chunk. Real upstreams on loopback cut their streams midway.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import type { ServerResponse } from 'node:http'
import OpenAI from 'openai'
import { request } from 'undici'
import { startGateway, startMock, type GatewayHandle } from '../helper.js'
import type { MockUpstream } from '../../mock/upstream.js'
import { CONTINUE_INSTRUCTION } from '../../src/upstream/attempt.js'

const CHAT = '/v1/chat/completions'

function chunk (delta: Record<string, unknown>, finish: string | null = null): string {
  return `data: ${JSON.stringify({ id: 'chatcmpl-up', object: 'chat.completion.chunk', created: 1, model: 'up', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
}

function words (from: number, to: number): string[] {
  return Array.from({ length: to - from + 1 }, (_, i) => `tok${from + i} `)
}

/** An upstream that streams `events`, then ends as `end` says. */
async function streaming (t: TestContext, events: string[], end: 'cut' | 'done'): Promise<MockUpstream> {
  const mock = await startMock(t)
  mock.override(CHAT, (_req, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    for (const e of events) res.write(e)
    if (end === 'done') res.end('data: [DONE]\n\n')
    // the socket goes once what was written is on its way
    else res.write('', () => setTimeout(() => res.socket?.destroy(), 10))
  })
  return mock
}

const CONTINUATION = [chunk({ role: 'assistant', content: '' }), ...words(3, 9).map(w => chunk({ content: w })), chunk({}, 'stop'),
  `data: ${JSON.stringify({ id: 'chatcmpl-next', object: 'chat.completion.chunk', created: 2, model: 'next', choices: [], usage: { prompt_tokens: 30, completion_tokens: 7, total_tokens: 37 } })}\n\n`]

async function gateway (t: TestContext, first: MockUpstream, next: MockUpstream): Promise<GatewayHandle> {
  return await startGateway(t, {
    yaml: `
targets:
  first: { url: "${first.url}" }
  next: { url: "${next.url}" }
modelGroups:
  smart:
    streamResume: true
    deployments: [{ target: first, model: m1 }, { target: next, model: m2 }]
`
  })
}

test('a stream cut after 5 chunks continues on the next deployment: one answer, no repeated text, one usage chunk', async (t) => {
  const first = await streaming(t, [chunk({ role: 'assistant', content: '' }), ...words(0, 4).map(w => chunk({ content: w }))], 'cut')
  const next = await streaming(t, CONTINUATION, 'done')
  const gw = await gateway(t, first, next)
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'client', maxRetries: 0 })
  const stream = await client.chat.completions.create({ model: 'smart', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'count' }] })
  let text = ''
  const usages: unknown[] = []
  const ids = new Set<string>()
  for await (const c of stream) {
    text += c.choices[0]?.delta?.content ?? ''
    ids.add(c.id)
    if (c.usage != null) usages.push(c.usage)
  }
  assert.equal(text, words(0, 9).join(''), 'the concatenation the upstreams meant, the overlap cut')
  assert.deepEqual(usages, [{ prompt_tokens: 30, completion_tokens: 7, total_tokens: 37 }])
  assert.deepEqual([...ids], ['chatcmpl-up'], 'one stream, named as it began')

  const asked = next.requests[0].json as { model: string, messages: unknown[] }
  assert.equal(asked.model, 'm2')
  assert.deepEqual(asked.messages, [
    { role: 'user', content: 'count' },
    { role: 'assistant', content: words(0, 4).join('') },
    { role: 'user', content: CONTINUE_INSTRUCTION }
  ])
  const line = gw.logs.map(l => JSON.parse(l) as Record<string, unknown>).find(l => l.msg === 'request completed' && l.path === CHAT)
  const log = line?.attemptLog as Array<Record<string, unknown>>
  assert.deepEqual(log.map(a => [a.target, a.status, a.errorClass ?? null]), [['first', 200, 'upstream_reset'], ['next', 200, null]])
  assert.equal(line?.errorClass, null, 'the request succeeded')
})

test('an in-band error event midway continues too; raw bytes end in exactly one [DONE]', async (t) => {
  const first = await streaming(t, [chunk({ role: 'assistant', content: '' }), ...words(0, 2).map(w => chunk({ content: w })),
    'data: {"error":{"message":"overloaded","type":"server_error"}}\n\n'], 'cut')
  const next = await streaming(t, CONTINUATION, 'done')
  const gw = await gateway(t, first, next)
  const res = await request(`${gw.url}${CHAT}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'smart', stream: true, messages: [{ role: 'user', content: 'count' }] }) })
  const body = await res.body.text()
  assert.equal(body.match(/\[DONE\]/g)?.length, 1)
  assert.doesNotMatch(body, /overloaded/, 'the error event is not the client\'s')
  const text = body.split('\n\n').filter(e => e.startsWith('data: {')).map(e => (JSON.parse(e.slice(6)) as { choices: Array<{ delta?: { content?: string } }> }).choices[0]?.delta?.content ?? '').join('')
  assert.equal(text, words(0, 9).join(''), 'no overlap to cut: the continuation follows on')
})

test('no continuation when a tool call was in progress: the error event ends the stream', async (t) => {
  const first = await streaming(t, [chunk({ role: 'assistant', content: null, tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'f', arguments: '{"a":' } }] })], 'cut')
  const next = await streaming(t, CONTINUATION, 'done')
  const gw = await gateway(t, first, next)
  const res = await request(`${gw.url}${CHAT}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'smart', stream: true, messages: [] }) })
  const body = await res.body.text()
  assert.match(body, /"error"/)
  assert.equal(next.count(CHAT), 0)
})
