/**
 * The forwarder's undici handler (src/proxy/exchange.ts) against a real server on 127.0.0.1: the
 * body that arrives before a sink is attached is replayed in order, a full sink pauses the
 * upstream until resumed, an abort before the connection cancels the request, and a failure
 * before the headers rejects the answer. Informational answers (103) are not the answer, and a
 * sink that throws fails its exchange without anything leaving the callbacks.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent } from 'undici'
import { StreamFault, UpstreamExchange, bodyReadable } from '../../src/proxy/exchange.js'

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

test('informational answers (103 Early Hints, 102) are skipped: the answer is the final status', async (t) => {
  const origin = await server(t, (_req, res) => {
    res.writeEarlyHints({ link: '</a.css>; rel=preload' })
    res.writeProcessing()
    res.writeHead(201, { 'content-type': 'text/plain' })
    res.end('made')
  })
  const agent = new Agent()
  t.after(() => agent.close())
  const exchange = new UpstreamExchange()
  agent.dispatch({ origin, path: '/', method: 'GET' }, exchange)
  const answer = await exchange.answer
  assert.equal(answer.statusCode, 201)
  assert.equal(answer.headers['content-type'], 'text/plain')
  let text = ''
  await new Promise<void>((resolve, reject) => exchange.attach({ data: (c) => { text += c.toString(); return true }, end: resolve, error: reject }))
  assert.equal(text, 'made')
})

test('a sink that throws: its exchange fails with a StreamFault, the upstream is released; a throwing error() reaches onFault', async (t) => {
  const closed: Array<Promise<unknown>> = []
  const origin = await server(t, (_req, res) => {
    closed.push(once(res, 'close'))
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write('data: boom\n\n') // the upstream goes on; the gateway has to leave
  })
  const agent = new Agent()
  t.after(() => agent.close())

  const failing = new UpstreamExchange(() => assert.fail('error() did not throw'))
  agent.dispatch({ origin, path: '/', method: 'GET' }, failing)
  await failing.answer
  const failure = await new Promise<Error>((resolve) => failing.attach({
    data: () => { throw new Error('stage bug') },
    end: () => assert.fail('ended'),
    error: resolve
  }))
  assert.ok(failure instanceof StreamFault)
  assert.equal((failure.cause as Error).message, 'stage bug')
  await closed[0]

  const faults: unknown[] = []
  const worse = new UpstreamExchange((err) => faults.push(err))
  agent.dispatch({ origin, path: '/', method: 'GET' }, worse)
  await worse.answer
  worse.attach({
    data: () => { throw new Error('stage bug') },
    end: () => {},
    error: () => { throw new Error('handler bug') }
  })
  await closed[1]
  assert.equal(faults.length, 1)
  assert.equal((faults[0] as Error).message, 'handler bug')
})
