/**
 * Two gateway replicas sharing one real Redis (a `redis-server` started by the test on a free
 * loopback port): one rate limit, one blacklist, shared error counts; Redis stopped mid-test leaves
 * both serving, and they reconnect by themselves. The test client stands behind a trusted proxy
 * (127.0.0.1), so X-Forwarded-For lets it act as several client addresses.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { request } from 'undici'
import { startGateway, startMock, tempDir, type GatewayHandle } from '../helper.js'
import { until } from '../poll.js'
import { startRedis, type RedisServer } from '../redis.js'

const TOKEN = 'admin-token-for-redis-tests'

async function call (gw: GatewayHandle, path: string, opts: { from?: string, method?: string, body?: unknown } = {}) {
  const headers: Record<string, string> = {}
  if (opts.from !== undefined) headers['x-forwarded-for'] = opts.from
  if (path.startsWith('/admin/')) headers.authorization = `Bearer ${TOKEN}`
  if (opts.body !== undefined) headers['content-type'] = 'application/json'
  const res = await request(`${gw.url}${path}`, { method: (opts.method ?? 'GET') as 'GET', headers, body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined })
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, body: text === '' ? null : JSON.parse(text) }
}

async function status (gw: GatewayHandle, from: string, path = '/v1/models'): Promise<number> {
  return (await call(gw, path, { from })).status
}

interface Pair { a: GatewayHandle, b: GatewayHandle, redis: RedisServer, dirs: string[] }

async function twoReplicas (t: TestContext, extra: Record<string, string> = {}, redisRunning = true): Promise<Pair> {
  const mock = await startMock(t)
  const redis = await startRedis(t, redisRunning)
  const dirs = [tempDir(), tempDir()]
  const env = (dir: string): Record<string, string> => ({
    GATEWAY_UPSTREAM_URL: mock.url,
    REDIS_URL: redis.url,
    GATEWAY_TRUSTED_PROXIES: '127.0.0.1',
    RATE_LIMIT_REQUESTS: '10',
    RATE_LIMIT_INTERVAL: '60000',
    IP_ERROR_THRESHOLD: '4',
    GATEWAY_ADMIN_TOKEN: TOKEN,
    GATEWAY_REDIS_SYNC_INTERVAL_MS: '500',
    GATEWAY_DATA_DIR: dir,
    ...extra
  })
  const a = await startGateway(t, { env: env(dirs[0]) })
  const b = await startGateway(t, { env: env(dirs[1]) })
  return { a, b, redis, dirs }
}

function lines (gw: GatewayHandle, pattern: RegExp): number {
  return gw.logs.filter(l => pattern.test(JSON.parse(l).msg)).length
}

test('one limit across replicas: with 10 per minute the 11th request, on either instance, gets 429', async (t) => {
  const { a, b, redis } = await twoReplicas(t)
  assert.equal(await a.app.redis!.ping(), 'PONG', 'the Redis client is shared as fastify.redis')
  const client = '198.51.100.11'
  for (let i = 1; i <= 10; i++) {
    const res = await call(i % 2 === 0 ? a : b, '/v1/models', { from: client })
    assert.equal(res.status, 200, `request ${i}`)
    assert.equal(res.headers['x-ratelimit-remaining-requests'], String(10 - i), 'one count for both instances')
  }
  assert.equal(await status(b, client), 429)
  assert.equal(await status(a, client), 429)
  assert.equal(await status(a, '198.51.100.12'), 200, 'another client has its own count')

  const direct = new Redis(redis.url)
  t.after(() => direct.disconnect())
  const keys = await direct.keys('llm-gateway:ratelimit:*')
  assert.ok(keys.some(k => k.endsWith('ip:198.51.100.11')), `counters live in Redis: ${keys.join(', ')}`)
})

test('an address blacklisted through one instance is refused by the other; errors add up across instances', async (t) => {
  const { a, b, dirs } = await twoReplicas(t)
  const added = await call(a, '/admin/blacklist', { method: 'POST', body: { ip: '203.0.113.50', reason: 'abuse report' } })
  assert.equal(added.status, 201)
  await until('B refuses 203.0.113.50', async () => await status(b, '203.0.113.50') === 403)
  await until("B's black.json holds the entry", () => {
    const file = join(dirs[1], 'black.json')
    return existsSync(file) && JSON.parse(readFileSync(file, 'utf8')).entries.some((e: { ip: string }) => e.ip === '203.0.113.50')
  })
  assert.equal(b.app.blacklist.get('203.0.113.50')?.reason, 'abuse report')

  assert.equal((await call(b, '/admin/blacklist/203.0.113.50', { method: 'DELETE' })).status, 200)
  await until('A serves 203.0.113.50 again', async () => await status(a, '203.0.113.50') === 200)

  // threshold 4: two errors on each instance
  const offender = '203.0.113.60'
  assert.equal(await status(a, offender, '/nope'), 404)
  assert.equal(await status(b, offender, '/nope'), 404)
  assert.equal(await status(a, offender, '/nope'), 404)
  await until('three errors are counted in Redis', async () => await a.app.redis!.get(`llm-gateway:errors:${offender}`) === '3')
  assert.equal(await status(a, offender), 200, 'three errors: still served')
  assert.equal(await status(b, offender, '/nope'), 404)
  await until('A refuses the offender', async () => await status(a, offender) === 403)
  await until('B refuses the offender', async () => await status(b, offender) === 403)
})

test('Redis stopped mid-test: both keep serving, refusals continue from memory, one warn line, then they reconnect by themselves', async (t) => {
  const { a, b, redis } = await twoReplicas(t)
  await call(a, '/admin/blacklist', { method: 'POST', body: { ip: '203.0.113.70' } })
  await until('B has the entry', () => b.app.blacklist.has('203.0.113.70'))

  await redis.stop()
  // past the limit of 10: rate limits fail open; the blacklist still applies on both
  for (let i = 0; i < 15; i++) {
    assert.equal(await status(a, '198.51.100.20'), 200)
    assert.equal(await status(b, '198.51.100.20'), 200)
  }
  assert.equal(await status(a, '203.0.113.70'), 403)
  assert.equal(await status(b, '203.0.113.70'), 403)
  assert.equal((await call(a, '/healthz')).status, 200)
  for (const gw of [a, b]) {
    assert.equal(lines(gw, /^redis unavailable/), 1, 'one warn line per outage')
    assert.equal(gw.app.redisHealth.outages, 1)
    assert.equal(gw.app.redisHealth.available, false)
    assert.ok(gw.app.rateLimitStats.unchecked >= 15, 'requests let through unchecked are counted')
  }
  // errors are counted locally meanwhile; the addition waits to be written to Redis
  for (let i = 0; i < 4; i++) assert.equal(await status(a, '203.0.113.80', '/nope'), 404)
  await until('A blacklisted 203.0.113.80 on its own', () => a.app.blacklist.has('203.0.113.80'))

  await redis.start() // empty: no persistence
  await until('both reconnected', () => a.app.redisHealth.available && b.app.redisHealth.available)
  for (const gw of [a, b]) assert.equal(lines(gw, /^redis available again/), 1)
  // the emptied Redis is refilled from the replicas' copies, and the pending addition reaches B
  await until('B refuses 203.0.113.80', () => b.app.blacklist.has('203.0.113.80'))
  assert.ok(a.app.blacklist.has('203.0.113.70') && b.app.blacklist.has('203.0.113.70'), 'nothing lost')
  assert.equal(await status(b, '203.0.113.80'), 403)

  // shared again: one limit, and pub/sub works
  for (let i = 1; i <= 10; i++) assert.equal(await status(i % 2 === 0 ? a : b, '198.51.100.30'), 200, `request ${i}`)
  assert.equal(await status(a, '198.51.100.30'), 429)
  await call(b, '/admin/blacklist', { method: 'POST', body: { ip: '203.0.113.90' } })
  await until('A refuses 203.0.113.90', async () => await status(a, '203.0.113.90') === 403)
  assert.equal(lines(a, /^redis unavailable/), 1, 'still one line for the one outage')
})

test('fail closed: with Redis unreachable requests get 503, health probes and the blacklist still work', async (t) => {
  const { a, redis } = await twoReplicas(t, { GATEWAY_RATE_LIMIT_FAIL_CLOSED: 'true' })
  assert.equal(await status(a, '198.51.100.40'), 200)
  await redis.stop()
  const res = await call(a, '/v1/models', { from: '198.51.100.40' })
  assert.equal(res.status, 503)
  assert.equal(res.body.error.code, 'rate_limit_unavailable')
  assert.equal(res.headers['retry-after'], '1')
  assert.equal((await call(a, '/healthz')).status, 200)
  assert.ok(a.app.rateLimitStats.refusedUnavailable >= 1)
})

test('Redis down at boot: the gateway starts and serves, then connects by itself when Redis appears', async (t) => {
  const { a, b, redis } = await twoReplicas(t, {}, false)
  assert.equal(a.app.redisHealth.available, false)
  assert.equal(lines(a, /^redis unavailable/), 1)
  for (let i = 0; i < 12; i++) assert.equal(await status(a, '198.51.100.50'), 200)
  await redis.start()
  await until('both connected', () => a.app.redisHealth.available && b.app.redisHealth.available)
  for (let i = 1; i <= 10; i++) assert.equal(await status(i % 2 === 0 ? a : b, '198.51.100.51'), 200)
  assert.equal(await status(b, '198.51.100.51'), 429)
})

test('a crafted entry published on, or stored in, the shared blacklist is skipped with a warn line by every replica; none crashes', async (t) => {
  const { a, b, redis } = await twoReplicas(t)
  const direct = new Redis(redis.url)
  t.after(() => direct.disconnect())
  const channel = 'llm-gateway:blacklist:changes'
  const crafted = [
    '{"op":"add","entry":{"ip":"198.51.100.7","addedAt":1e16}}',
    '{"op":"add","entry":{"ip":"198.51.100.7","expiresAt":9e15}}',
    'not json at all',
    '{"op":"remove","ip":{"toString":1}}',
    '[1,2]'
  ]
  for (const message of crafted) await direct.publish(channel, message)
  // messages on one channel arrive in order: once this one is applied, so were those before
  await direct.publish(channel, JSON.stringify({ op: 'add', entry: { ip: '198.51.100.99', reason: 'sentinel' } }))
  await until('both applied the sentinel', () => a.app.blacklist.has('198.51.100.99') && b.app.blacklist.has('198.51.100.99'))
  for (const gw of [a, b]) {
    assert.equal(lines(gw, /^blacklist change message from redis skipped$/), crafted.length, 'one warn line per bad message')
    assert.equal(gw.app.blacklist.has('198.51.100.7'), false)
    assert.equal(await status(gw, '198.51.100.7'), 200, 'still serving')
  }
  const skipped = a.logs.map(l => JSON.parse(l)).find(l => l.msg === 'blacklist change message from redis skipped')
  assert.match(skipped.problem, /addedAt 10000000000000000 of 198\.51\.100\.7 is not a date in range/)

  // the same value in the shared hash: every full re-read skips it, with one warn line in all
  await direct.hset('llm-gateway:blacklist', '198.51.100.7', '{"ip":"198.51.100.7","addedAt":1e16}')
  await until('both warned about the hash', () => lines(a, /^shared blacklist in redis: invalid entries ignored$/) === 1 && lines(b, /^shared blacklist in redis: invalid entries ignored$/) === 1)
  // a valid field written without a message shows that later re-reads ran, and did not warn again
  await direct.hset('llm-gateway:blacklist', '198.51.100.98', JSON.stringify({ ip: '198.51.100.98', addedAt: Date.now(), reason: 'r', expiresAt: null }))
  await until('both re-read the hash again', () => a.app.blacklist.has('198.51.100.98') && b.app.blacklist.has('198.51.100.98'))
  for (const gw of [a, b]) {
    assert.equal(lines(gw, /^shared blacklist in redis: invalid entries ignored$/), 1)
    assert.equal(gw.app.blacklist.has('198.51.100.7'), false)
    assert.equal((await call(gw, '/admin/blacklist')).status, 200)
  }
})
