/**
 * Usage totals in Redis: two gateway instances sharing one Redis answer `/admin/usage` with the
 * traffic of both, wired the way operators do it (REDIS_URL). A Redis outage loses no totals.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { Redis } from 'ioredis'
import { request } from 'undici'
import { startGateway, startMock } from '../helper.js'
import { startRedis, startRedisClient } from '../redis.js'
import { RedisUsageStore } from '../../src/usage/redis-store.js'
import type { UsageEntry } from '../../src/usage/store.js'
import { NO_TOKENS } from '../../src/usage/tokens.js'

const ADMIN = 'admin-redis-SECRET-42'

async function gatewayWithRedis (t: TestContext, upstream: string, redisUrl: string): Promise<{ url: string, close: () => Promise<void> }> {
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: upstream, ADMIN_TOKEN: ADMIN, REDIS_URL: redisUrl } })
  return { url: gw.url, close: async () => { await gw.app.close() } }
}

test('two gateways, one Redis: the usage API adds both up', async (t) => {
  const server = await startRedis(t)
  const redis = new Redis(server.url)
  t.after(() => redis.disconnect())
  const mock = await startMock(t)
  const one = await gatewayWithRedis(t, mock.url, server.url)
  const two = await gatewayWithRedis(t, mock.url, server.url)
  const headers = { 'x-mock-chunks': '3' }
  for (const gw of [one, two, two]) {
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-any-12345678', maxRetries: 0 })
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }, { headers })
  }
  await two.close() // writes what it has not written yet

  let body: { source: string, totals: { requests: number, totalTokens: number }, data: Array<{ model: string, requests: number }> } | undefined
  for (let i = 0; i < 200 && body?.totals.requests !== 3; i++) {
    const res = await request(`${one.url}/admin/usage?group=model&since=10m`, { headers: { authorization: `Bearer ${ADMIN}` } })
    assert.equal(res.statusCode, 200)
    body = await res.body.json() as typeof body
    await new Promise(resolve => setTimeout(resolve, 10))
  }
  assert.equal(body?.source, 'redis')
  assert.equal(body?.totals.requests, 3)
  assert.equal(body?.totals.totalTokens, 3 * 13)
  assert.deepEqual(body?.data.map(r => [r.model, r.requests]), [['gpt-4o-mini', 3]])

  const keys = await redis.keys('llm-gateway:usage:*')
  assert.ok(keys.length >= 1)
  const ttl = await redis.pttl(keys[0])
  assert.ok(ttl > 0 && ttl <= 24 * 3_600_000 + 60_000, 'bucket hashes expire after the retention')
})

function entry (time: number): UsageEntry {
  return { time, client: 'alice', model: 'm', target: 't', counts: { ...NO_TOKENS, promptTokens: 2, completionTokens: 3, totalTokens: 5 }, error: false }
}

/** A Redis whose pipelines fail while `down` is set, and otherwise run on a real one. */
function flaky (real: Redis): { redis: Redis, down: { value: boolean } } {
  const down = { value: true }
  const redis = {
    pipeline () {
      const p = real.pipeline()
      const exec = p.exec.bind(p)
      p.exec = (async () => {
        if (down.value) throw new Error('connection is closed')
        return await exec()
      }) as typeof p.exec
      return p
    }
  } as unknown as Redis
  return { redis, down }
}

test('a Redis outage is told once and loses no totals', async (t) => {
  const real = await startRedisClient(t)
  const { redis, down } = flaky(real)
  const told: string[] = []
  const store = new RedisUsageStore(redis, {
    bucketSeconds: 60,
    retentionHours: 1,
    maxGroups: 10,
    keyPrefix: 'test:',
    flushIntervalMs: 60_000,
    onOutage: () => told.push('down'),
    onRecovery: () => told.push('up')
  })
  t.after(() => store.close())
  const now = Date.now()
  store.add(entry(now))
  await store.flush()
  store.add(entry(now))
  await store.flush()
  assert.deepEqual(told, ['down'], 'one outage, told once')
  down.value = false
  const report = await store.query({ since: now - 60_000, until: now, group: 'key' })
  assert.deepEqual(told, ['down', 'up'])
  assert.equal(report.totals.requests, 2)
  assert.equal(report.totals.totalTokens, 10)
  assert.deepEqual(report.rows.map(r => r.name), ['alice'])
})
