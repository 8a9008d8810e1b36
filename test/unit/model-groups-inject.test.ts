/**
 * Model groups through `inject` (the unit tier): fallback and stream continuation against mocks
 * that fail, the admin page, and a Redis-backed cooldown store on the fake Redis (what it writes,
 * and that a cooldown another replica wrote is read back).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { ServerResponse } from 'node:http'
import { startMock } from '../helper.js'
import { injectGateway } from './gateway.js'
import { FakeRedisServer } from './fake-redis.js'
import { RedisCooldowns } from '../../src/routing/health.js'
import { RedisHealth } from '../../src/redis/health.js'
import type { FastifyBaseLogger } from 'fastify'

const CHAT = '/v1/chat/completions'
const ADMIN = 'admin-token-inject-4b5c6d'

function chunk (content: string): string {
  return `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`
}

test('inject: a 503 goes to the next deployment; a stream cut midway continues there; the admin page lists both', async (t) => {
  const broken = await startMock(t)
  broken.override(CHAT, (_req, res: ServerResponse, record) => {
    if ((record.json as { stream?: boolean }).stream !== true) {
      res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"message":"busy"}}')
      return
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write(chunk('one two '), () => setTimeout(() => res.socket?.destroy(), 10))
  })
  const good = await startMock(t)
  good.override(CHAT, (_req, res: ServerResponse, record) => {
    if ((record.json as { stream?: boolean }).stream !== true) {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}')
      return
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.end(chunk('one two three ') + 'data: [DONE]\n\n')
  })
  const gw = await injectGateway(t, {
    env: { ADMIN_TOKEN: ADMIN },
    yaml: `
targets:
  broken: { url: "${broken.url}" }
  good: { url: "${good.url}" }
modelGroups:
  g:
    streamResume: true
    deployments: [{ target: broken, model: a }, { target: good, model: b }]
`
  })
  const plain = await gw.app.inject({ method: 'POST', url: CHAT, payload: { model: 'g', messages: [] } })
  assert.equal(plain.statusCode, 200)
  assert.equal(plain.headers['x-gateway-target'], 'good')
  assert.equal(plain.headers['x-gateway-attempts'], '2')

  const streamed = await gw.app.inject({ method: 'POST', url: CHAT, payload: { model: 'g', stream: true, messages: [{ role: 'user', content: 'count' }] } })
  const text = streamed.body.split('\n\n').filter(e => e.startsWith('data: {')).map(e => (JSON.parse(e.slice(6)) as { choices: Array<{ delta?: { content?: string } }> }).choices[0]?.delta?.content ?? '').join('')
  assert.equal(text, 'one two three ', 'the continuation\'s repeat of "one two " was cut')
  assert.equal(streamed.body.match(/\[DONE\]/g)?.length, 1)

  const page = await gw.app.inject({ method: 'GET', url: '/admin/targets', headers: { authorization: `Bearer ${ADMIN}` } })
  const body = page.json() as { targets: Array<{ name: string, deployments: Array<{ id: string, failures: number, successes: number }> }>, groups: Array<{ name: string }> }
  const broke = body.targets.find(x => x.name === 'broken')?.deployments[0]
  assert.equal(broke?.id, 'broken/a')
  assert.equal(broke?.failures, 2, 'the 503 and the stream that broke')
  assert.deepEqual(body.groups.map(g => g.name), ['g'])
})

test('Redis cooldowns on the fake Redis: a failure is counted with a TTL, a cooldown written with one, another replica reads it', async () => {
  const server = new FakeRedisServer()
  const log = { warn () {}, info () {}, debug () {}, error () {} } as unknown as FastifyBaseLogger
  const a = new RedisCooldowns(server.client(), new RedisHealth(log), 'p:', ['t/m'], log)
  const b = new RedisCooldowns(server.client(), new RedisHealth(log), 'p:', ['t/m'], log)
  try {
    const now = Date.now()
    assert.equal(a.fail('t/m', { allowedFails: 1, cooldownMs: 5000 }, 0, now), now + 5000)
    await new Promise(resolve => setTimeout(resolve, 10))
    assert.equal(server.strings.get('p:health:cool:t/m'), String(now + 5000))
    assert.equal(server.ttls.get('p:health:cool:t/m'), 5000)
    for (let i = 0; i < 100 && b.until('t/m') === 0; i++) await new Promise(resolve => setTimeout(resolve, 10))
    assert.equal(b.until('t/m'), now + 5000, 'the other replica read it')
    a.clear('t/m')
    assert.equal(a.until('t/m'), 0)
  } finally {
    a.close()
    b.close()
  }
})
