/**
 * The gateway's Redis users against an in-memory stand-in (test/unit/fake-redis.ts): the shared
 * usage store, the shared blacklist between replicas, the context-id store and the Redis breaker;
 * and the whole gateway with a Redis that cannot be reached (it starts, says so once, and keeps
 * serving by redis.failClosed). The system tier runs the same paths against a real redis-server.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { pino } from 'pino'
import type { FastifyBaseLogger } from 'fastify'
import { startMock } from '../helper.js'
import { injectGateway } from './gateway.js'
import { FakeRedisServer } from './fake-redis.js'
import { RedisUsageStore } from '../../src/usage/redis-store.js'
import type { UsageEntry } from '../../src/usage/store.js'
import { BlacklistSync } from '../../src/abuse/blacklist-sync.js'
import { Blacklist, newEntry } from '../../src/abuse/blacklist.js'
import { RedisHealth } from '../../src/redis/health.js'
import { RedisContextStore } from '../../src/lib/context-store.js'

const T0 = 1_700_000_000_000 - (1_700_000_000_000 % 60_000)
const SETTINGS = { bucketSeconds: 60, retentionHours: 1, maxGroups: 100, keyPrefix: 'gw:', flushIntervalMs: 60_000 }

function entry (over: Partial<UsageEntry> = {}): UsageEntry {
  return { time: T0, client: 'alice', model: 'm1', target: 'default', counts: { promptTokens: 1, completionTokens: 2, totalTokens: 3, cacheReadTokens: 0, cacheCreationTokens: 0 }, error: false, ...over } as UsageEntry
}

function quietLog (): { log: FastifyBaseLogger, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const log: FastifyBaseLogger = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } })
  return { log, lines }
}

test('usage in Redis: increments per bucket and field with the retention as expiry; two replicas add up in one query', async () => {
  const server = new FakeRedisServer()
  const a = new RedisUsageStore(server.client(), SETTINGS)
  const b = new RedisUsageStore(server.client(), SETTINGS)
  a.add(entry())
  a.add(entry({ time: T0 + 1000, client: 'bob' }))
  b.add(entry({ time: T0 + 61_000, model: 'm2', error: true }))
  await a.flush()
  await b.flush()
  const bucket = server.hashes.get(`gw:usage:${T0}`)
  assert.ok(bucket !== undefined, 'one hash per bucket')
  assert.equal(server.ttls.get(`gw:usage:${T0}`), 3_600_000 + 60_000, 'kept for the retention plus one bucket')
  assert.ok([...bucket.values()].every(v => /^\d+$/.test(v)))
  const byKey = await b.query({ since: T0, until: T0 + 120_000, group: 'key' })
  assert.deepEqual(byKey.rows.map(r => [r.name, r.totals.requests, r.totals.totalTokens]), [['alice', 2, 6], ['bob', 1, 3]])
  assert.equal(byKey.totals.errors, 1)
  const later = await a.query({ since: T0 + 60_000, until: T0 + 120_000, group: 'model' })
  assert.deepEqual(later.rows.map(r => [r.name, r.totals.requests]), [['m2', 1]])
  assert.equal((await a.query({ since: T0 + 120_000, until: T0 + 60_000, group: null })).totals.requests, 0, 'an empty range asks Redis nothing')
  await a.close()
  await b.close()
})

test('usage in Redis: an outage keeps the increments, reports once, and writes them when Redis is back', async () => {
  const server = new FakeRedisServer()
  const events: string[] = []
  const store = new RedisUsageStore(server.client(), { ...SETTINGS, retentionHours: 24 * 365 * 100, onOutage: () => events.push('outage'), onRecovery: () => events.push('recovery') })
  server.down = new Error('connection refused')
  store.add(entry())
  await store.flush()
  store.add(entry({ client: 'bob' }))
  await store.flush()
  assert.deepEqual(events, ['outage'], 'one report for one outage')
  assert.equal(server.hashes.size, 0)
  server.down = null
  await store.flush()
  assert.deepEqual(events, ['outage', 'recovery'])
  const report = await store.query({ since: T0, until: T0, group: 'key' })
  assert.deepEqual(report.rows.map(r => [r.name, r.totals.requests]), [['alice', 1], ['bob', 1]], 'nothing lost, nothing counted twice')
  await store.close()
})

test('shared blacklist: an addition on one replica reaches the other by message; a removal too; Redis holds the list', async () => {
  const server = new FakeRedisServer()
  const { log } = quietLog()
  const replicas = [0, 1].map(() => {
    const blacklist = new Blacklist()
    const changes: number[] = []
    const health = new RedisHealth(log)
    const sync = new BlacklistSync({ redis: server.client(), health, prefix: 'gw:', syncIntervalMs: 60_000, blacklist, log, onRemoteChange: () => changes.push(1) })
    return { blacklist, changes, health, sync }
  })
  const [a, b] = replicas
  const early = newEntry('198.51.100.1', 'seen before redis', null)
  a.blacklist.set(early)
  await a.sync.start()
  assert.equal(server.strings.get('gw:blacklist:present'), '1', 'the first replica fills the shared list')
  await b.sync.start()
  assert.equal(b.blacklist.has('198.51.100.1'), true, 'the second replica reads it')
  assert.equal(a.health.available, true)

  const added = newEntry('203.0.113.7', 'abuse', 60_000)
  a.blacklist.set(added)
  await a.sync.added(added)
  assert.equal(b.blacklist.get('203.0.113.7')?.reason, 'abuse')
  assert.equal(b.changes.length >= 1, true)
  assert.deepEqual(JSON.parse(server.hashes.get('gw:blacklist')!.get('203.0.113.7')!), added)
  a.blacklist.delete('203.0.113.7')
  await a.sync.removed('203.0.113.7')
  assert.equal(b.blacklist.has('203.0.113.7'), false)
  assert.equal(server.hashes.get('gw:blacklist')!.has('203.0.113.7'), false)
  for (const r of replicas) await r.sync.close()
})

test('shared blacklist: a write during an outage is kept and pushed on the next sync; bad messages and entries are skipped with one line', async () => {
  const server = new FakeRedisServer()
  const { log, lines } = quietLog()
  const blacklist = new Blacklist()
  const health = new RedisHealth(log)
  const sync = new BlacklistSync({ redis: server.client(), health, prefix: 'gw:', syncIntervalMs: 60_000, blacklist, log, onRemoteChange: () => {} })
  await sync.start()
  server.down = new Error('connection refused')
  const pending = newEntry('192.0.2.44', 'during the outage', null)
  await sync.added(pending)
  assert.equal(health.bypassed, true, 'the breaker opened')
  assert.ok(lines.some(l => l.msg === 'redis unavailable: rate limits follow redis.failClosed, blacklist checks use the copy in memory; reconnecting'))
  server.down = null
  await sync.resync()
  assert.equal(health.bypassed, false)
  assert.ok(server.hashes.get('gw:blacklist')!.has('192.0.2.44'), 'the pending write was pushed')
  assert.ok(lines.some(l => l.msg === 'redis available again'))

  server.run('PUBLISH', ['gw:blacklist:changes', 'not json'])
  server.run('PUBLISH', ['gw:blacklist:changes', JSON.stringify({ op: 'rename', ip: '1.2.3.4' })])
  server.run('PUBLISH', ['gw:blacklist:changes', JSON.stringify({ op: 'remove', ip: 'not-an-ip' })])
  const skipped = lines.filter(l => l.msg === 'blacklist change message from redis skipped').map(l => l.problem)
  assert.deepEqual(skipped, ['not JSON', 'op is neither "add" nor "remove"', 'remove without a valid "ip"'])
  server.run('HSET', ['gw:blacklist', '10.9.9.9', '{broken'])
  await sync.resync()
  const ignored = lines.filter(l => l.msg === 'shared blacklist in redis: invalid entries ignored')
  assert.equal(ignored.length, 1)
  assert.equal(ignored[0].ignored, 1)
  assert.equal(blacklist.has('192.0.2.44'), true, 'the valid entries still apply')
  await sync.close()
})

test('context ids in Redis: set with a TTL, compare-and-set, clear by prefix only; an open breaker skips Redis', async () => {
  const server = new FakeRedisServer()
  const redis = server.client()
  const { log } = quietLog()
  const health = new RedisHealth(log)
  const store = new RedisContextStore(redis, { ttlMs: 5000, prefix: 'cid:*', breaker: health })
  await store.set('conv-1', 'chain-a')
  assert.equal(await store.get('conv-1'), 'chain-a')
  assert.equal(server.ttls.get('cid:*conv-1'), 5000)
  assert.equal(await store.get('missing'), undefined)
  assert.equal(await store.compareAndSet('conv-1', 'chain-b', 'chain-c'), false, 'a stale expectation writes nothing')
  assert.equal(await store.compareAndSet('conv-1', 'chain-a', 'chain-c'), true)
  assert.equal(await store.compareAndSet('conv-2', undefined, 'first'), true, 'absent is expected as absent')
  server.strings.set('other:key', 'kept')
  assert.equal(await store.clear(), 2)
  assert.equal(server.strings.get('other:key'), 'kept', 'only the prefix is cleared (its * is no wildcard)')

  server.down = new Error('timeout')
  await assert.rejects(store.get('conv-1'), /timeout/)
  assert.equal(health.bypassed, true)
  const before = server.log.length
  await assert.rejects(store.get('conv-1'), /context id store skipped/)
  assert.equal(server.log.length, before, 'no command while the breaker is open')
  const untimed = new RedisContextStore(redis, { ttlMs: 0 })
  server.down = null
  await untimed.set('k', 'v')
  assert.equal(server.ttls.has('gateway:context-id:k'), false, 'no TTL when none is configured')
})

test('Redis unreachable: the gateway starts and says so once; rate limits follow failClosed (open: served, closed: 503)', async (t) => {
  const mock = await startMock(t)
  const env = { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_REDIS_URL: 'redis://127.0.0.1:9', GATEWAY_MODELS_CACHE_TTL_MS: '0' }
  const open = await injectGateway(t, { env })
  assert.equal((await open.app.inject({ url: '/v1/models' })).statusCode, 200)
  const outage = open.logs().filter(l => typeof l.msg === 'string' && (l.msg as string).startsWith('redis unavailable'))
  assert.equal(outage.length, 1)
  assert.ok(!JSON.stringify(open.logs()).includes('"stack"'))
  const closed = await injectGateway(t, { env: { ...env, GATEWAY_RATE_LIMIT_FAIL_CLOSED: 'true' } })
  const refused = await closed.app.inject({ url: '/v1/models' })
  assert.equal(refused.statusCode, 503)
  assert.equal(typeof refused.json().error.message, 'string')
  assert.equal((await closed.app.inject({ url: '/healthz' })).statusCode, 200)
})
