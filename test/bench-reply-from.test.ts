/**
 * The bench's reply-from variant (bench/reply-from.ts) forwards correctly, so that what
 * `npm run bench:ablate -- --variant reply-from` measures (docs/adr/0001-forwarder.md) is a
 * working forwarder: the body's bytes unchanged, the upstream key swapped in, answers and streams
 * through the pass-through stage, hop-by-hop headers dropped, an unreachable upstream a 502 in the
 * OpenAI SDK's shape. No numbers are asserted.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import OpenAI from 'openai'
import { request } from 'undici'
import { startMock } from './helper.js'

async function startReplyFrom (t: TestContext, upstream: string, env: Record<string, string> = {}): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/reply-from.ts'], {
    env: { ...process.env, ...env, PIPE_UPSTREAM_URL: upstream },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.after(async () => {
    if (child.exitCode !== null) return
    child.kill('SIGTERM')
    await once(child, 'exit')
  })
  for await (const line of createInterface({ input: child.stdout })) {
    if (line.startsWith('{')) return (JSON.parse(line) as { 'reply-from': string })['reply-from']
  }
  throw new Error('bench/reply-from.ts exited before it listened')
}

for (const stage of ['pass-through', 'none']) {
  test(`the reply-from variant forwards answers and streams (stage: ${stage})`, async (t) => {
    const mock = await startMock(t)
    const url = await startReplyFrom(t, mock.url, stage === 'none' ? { RF_STAGE: 'none' } : {})
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'client-key', maxRetries: 0 })

    const body = '{"model":"gpt-4o-mini",  "messages":[{"role":"user","content":"hi"}]}'
    const raw = await request(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
    assert.equal(raw.statusCode, 200)
    assert.equal(raw.headers['keep-alive'], 'timeout=72', "the proxy's own keep-alive, not the upstream's")
    const answer = await raw.body.json() as { object: string }
    assert.equal(answer.object, 'chat.completion')
    const seen = mock.requests.at(-1)!
    assert.equal(seen.bodySha256, createHash('sha256').update(body).digest('hex'), 'the bytes as the client sent them')
    assert.equal(seen.headers.authorization, 'Bearer sk-bench-upstream-0123456789abcdef')

    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] })
    let text = ''
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
    assert.match(text, /^tok0 tok1 /)
  })
}

test('the reply-from variant answers 502 in the SDK shape when the upstream is unreachable', async (t) => {
  const mock = await startMock(t)
  const closed = mock.url
  await mock.close()
  const url = await startReplyFrom(t, closed)
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'client-key', maxRetries: 0 })
  await assert.rejects(
    client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
    (err: unknown) => err instanceof OpenAI.APIError && err.status === 502 && err.message.includes('upstream unreachable')
  )
})
