/**
 * `reply.forward(options)` (plugins/forwarder.ts) under @fastify/reply-from's names, and the stage
 * registry: a route of the test's own plans the request by hand (the target and the upstream
 * path, as the routing plugin would) and forwards it to the embedded mock with each option.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { ForwardOptions } from '../../src/proxy/forward.js'
import { startMock } from '../helper.js'
import { injectGateway } from './gateway.js'

/** A gateway with one extra route, `/test/forward`, that forwards GET /v1/models with `options`. */
async function gatewayWithRoute (t: TestContext, options: () => ForwardOptions, upstreamUrl?: string): Promise<{ app: FastifyInstance, mock: Awaited<ReturnType<typeof startMock>> }> {
  const mock = await startMock(t)
  const { app } = await injectGateway(t, {
    env: { GATEWAY_UPSTREAM_URL: upstreamUrl ?? mock.url },
    prepare (app) {
      app.get('/test/forward', async function forwardByHand (request, reply) {
        request.upstream.target = app.upstreams.default
        request.upstream.path = '/v1/models'
        return reply.forward(options())
      })
    }
  })
  return { app, mock }
}

/** An upstream that answers only after `delayMs`. */
async function slowUpstream (t: TestContext, delayMs: number): Promise<string> {
  const server = createServer((_req, res) => {
    const timer = setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{"data":[]}'), delayMs)
    res.once('close', () => clearTimeout(timer))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.after(() => { server.closeAllConnections(); server.close() })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

test('rewriteRequestHeaders sees the headers of the attempt and its result goes upstream; rewriteHeaders shapes the answer', async (t) => {
  const seen: Array<Record<string, string | string[]>> = []
  const { app, mock } = await gatewayWithRoute(t, () => ({
    rewriteRequestHeaders (_request, headers) {
      seen.push({ ...headers })
      return { ...headers, 'x-added-by-route': 'yes' }
    },
    rewriteHeaders (headers) {
      return { ...headers, 'x-answer-rewritten': '1' }
    }
  }))
  const res = await app.inject({ method: 'GET', url: '/test/forward', headers: { 'x-forwarded-for': '203.0.113.9' } })
  assert.equal(res.statusCode, 200)
  assert.equal(res.headers['x-answer-rewritten'], '1')
  assert.ok(Array.isArray(res.json().data), 'the model list passed through')
  assert.equal(mock.requests.at(-1)?.headers['x-added-by-route'], 'yes')
  // the gateway's own rules ran first: the client's address header is gone before the hook saw them
  assert.equal(seen.length, 1)
  assert.equal(seen[0]['x-forwarded-for'], undefined)
  assert.equal(typeof seen[0]['x-request-id'], 'string')
})

test('onResponse takes the answer instead of the deliver phase', async (t) => {
  const { app } = await gatewayWithRoute(t, () => ({
    onResponse (_request, reply, res) {
      res.body.resume()
      reply.code(299).send({ upstreamStatus: res.statusCode, type: res.headers['content-type'] })
    }
  }))
  const res = await app.inject({ method: 'GET', url: '/test/forward' })
  assert.equal(res.statusCode, 299)
  assert.deepEqual(res.json(), { upstreamStatus: 200, type: 'application/json' })
})

test('firstByteTimeoutMs overrides the target: a slow upstream fails, and onError answers it', async (t) => {
  const errors: string[] = []
  const slow = await slowUpstream(t, 2000)
  const { app } = await gatewayWithRoute(t, () => ({
    firstByteTimeoutMs: 50,
    onError (reply, { error }) {
      errors.push((error as Error & { code?: string }).code ?? error.name)
      reply.code(503).send({ handled: true })
    }
  }), slow)
  const res = await app.inject({ method: 'GET', url: '/test/forward' })
  assert.equal(res.statusCode, 503)
  assert.deepEqual(res.json(), { handled: true })
  assert.equal(errors.length, 1)
  assert.match(errors[0], /TIMEOUT/i)
})

test('without onError, the shaped error answers; the forwarder lists its stages in the order they run', async (t) => {
  const slow = await slowUpstream(t, 2000)
  const { app } = await gatewayWithRoute(t, () => ({ firstByteTimeoutMs: 50 }), slow)
  const res = await app.inject({ method: 'GET', url: '/test/forward' })
  assert.equal(res.statusCode, 504)
  assert.equal(typeof res.json().error.message, 'string')
  const names = app.forwarder.stages.map(s => s.name)
  assert.deepEqual(names, ['metrics-open-streams', 'usage', 'translate'], 'with the defaults: the open-stream count, the usage tap, then dialect translation (usage reads the upstream\'s dialect)')
})
