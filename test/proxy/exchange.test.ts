/**
 * The forwarder's undici handler (src/proxy/exchange.ts) against a real server on 127.0.0.1: the
 * body that arrives before a sink is attached is replayed in order, a full sink pauses the
 * upstream until resumed, an abort before the connection cancels the request, and a failure
 * before the headers rejects the answer.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent } from 'undici'
import { UpstreamExchange, bodyReadable } from '../../src/proxy/exchange.js'

async function server (t: import('node:test').TestContext, handler: Parameters<typeof createServer>[1]): Promise<string> {
  const s = createServer(handler)
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  t.after(() => { s.closeAllConnections(); s.close() })
  return `http://127.0.0.1:${(s.address() as { port: number }).port}`
}

test('a body that arrived before attach() is replayed in order, then the rest follows', async (t) => {
  const origin = await server(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.write('first,')
    setTimeout(() => res.end('second'), 20)
  })
  const agent = new Agent()
  t.after(() => agent.close())
  const exchange = new UpstreamExchange()
  agent.dispatch({ origin, path: '/', method: 'GET' }, exchange)
  const answer = await exchange.answer
  assert.equal(answer.statusCode, 200)
  assert.equal(answer.headers['content-type'], 'text/plain')
  await sleep(10) // the first chunk is queued by now
  let text = ''
  await new Promise<void>((resolve, reject) => exchange.attach({ data: (c) => { text += c.toString(); return true }, end: resolve, error: reject }))
  assert.equal(text, 'first,second')
})

test('a full sink pauses the upstream until resume(); as a Readable, reading resumes it', async (t) => {
  // well over what loopback socket buffers can absorb, so the stall is the pause, not the kernel
  const size = 32 * 1024 * 1024
  let written = 0
  const origin = await server(t, (_req, res) => {
    res.writeHead(200)
    const chunk = Buffer.alloc(64 * 1024, 120)
    const pump = (): void => {
      while (written < size) {
        written += chunk.length
        if (!res.write(chunk)) { res.once('drain', pump); return }
      }
      res.end()
    }
    pump()
  })
  const agent = new Agent()
  t.after(() => agent.close())
  const exchange = new UpstreamExchange()
  agent.dispatch({ origin, path: '/', method: 'GET' }, exchange)
  await exchange.answer
  const body = bodyReadable(exchange)
  await sleep(200) // nobody reads: the upstream must stall well short of the whole body
  assert.ok(written < size, `the server wrote ${written} of ${size} bytes with nobody reading`)
  let received = 0
  for await (const chunk of body) received += (chunk as Buffer).length
  assert.equal(received, size)
})

test('abort() before the connection cancels the request; a failure before the headers rejects', async (t) => {
  let requests = 0
  const origin = await server(t, (_req, res) => { requests++; res.end('x') })
  const agent = new Agent()
  t.after(() => agent.close())
  const early = new UpstreamExchange()
  early.abort()
  agent.dispatch({ origin, path: '/', method: 'GET' }, early)
  await assert.rejects(early.answer)
  assert.equal(requests, 0)

  const refused = new UpstreamExchange()
  agent.dispatch({ origin: 'http://127.0.0.1:1', path: '/', method: 'GET' }, refused)
  await assert.rejects(refused.answer, (err: Error & { code?: string }) => err.code === 'ECONNREFUSED')
})
