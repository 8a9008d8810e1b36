/**
 * The shared blacklist's full re-read against the change messages it races with. The hash and the
 * messages travel on different Redis connections, so a read sent before another replica's change
 * can be answered after that change's message arrived; such a read must not put the old list
 * back. Redis is a stand-in here (a real one cannot hold a reply back on cue); the same path with
 * a real Redis and two gateways is test/abuse/redis-shared.test.ts.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { pino } from 'pino'
import type { Redis } from 'ioredis'
import { BlacklistSync } from '../../src/abuse/blacklist-sync.js'
import { Blacklist, type BlacklistEntry } from '../../src/abuse/blacklist.js'
import { RedisHealth } from '../../src/redis/health.js'

const ENTRY: BlacklistEntry = { ip: '203.0.113.50', reason: 'abuse report', addedAt: '2026-11-23T00:00:00.000Z', expiresAt: null }

/** Just what BlacklistSync calls; `hgetall` answers from `reads`, in order, when the test says so. */
function fakeRedis () {
  const subscriber = Object.assign(new EventEmitter(), { subscribe: async () => 1, disconnect: () => {} })
  const reads: Array<{ answer: Record<string, string>, release: Promise<void> }> = []
  const redis = {
    duplicate: () => subscriber,
    get: async () => '1',
    hgetall: async () => {
      const next = reads.shift()
      if (next === undefined) return {}
      await next.release
      return next.answer
    },
    multi: () => {
      const tx = { hset: () => tx, hdel: () => tx, publish: () => tx, set: () => tx, exec: async () => [] }
      return tx
    }
  }
  return { redis: redis as unknown as Redis, subscriber, reads }
}

test('a full re-read answered after a removal message does not bring the removed address back', async () => {
  const { redis, subscriber, reads } = fakeRedis()
  const blacklist = new Blacklist()
  const log = pino({ level: 'silent' })
  const sync = new BlacklistSync({ redis, health: new RedisHealth(log), prefix: 't:', syncIntervalMs: 60_000, blacklist, log, onRemoteChange: () => {} })
  reads.push({ answer: { [ENTRY.ip]: JSON.stringify(ENTRY) }, release: Promise.resolve() })
  await sync.start()
  assert.equal(blacklist.has(ENTRY.ip), true, 'the shared list was read at start')

  // a re-read goes out while the address is still in the hash; its answer is held back
  let release!: () => void
  reads.push({ answer: { [ENTRY.ip]: JSON.stringify(ENTRY) }, release: new Promise<void>((resolve) => { release = resolve }) })
  const resync = sync.resync()
  await new Promise((resolve) => setImmediate(resolve))
  // another replica removes it: its message arrives before the old answer
  subscriber.emit('message', 't:blacklist:changes', JSON.stringify({ op: 'remove', ip: ENTRY.ip, origin: 'another replica' }))
  assert.equal(blacklist.has(ENTRY.ip), false)
  release()
  await resync
  assert.equal(blacklist.has(ENTRY.ip), false, 'the older read did not undo the removal')
  await sync.close()
})

test('a full re-read with no change during it replaces the copy (what pub/sub missed is repaired)', async () => {
  const { redis, reads } = fakeRedis()
  const blacklist = new Blacklist()
  const log = pino({ level: 'silent' })
  const sync = new BlacklistSync({ redis, health: new RedisHealth(log), prefix: 't:', syncIntervalMs: 60_000, blacklist, log, onRemoteChange: () => {} })
  await sync.start()
  assert.equal(blacklist.has(ENTRY.ip), false)
  reads.push({ answer: { [ENTRY.ip]: JSON.stringify(ENTRY) }, release: Promise.resolve() })
  await sync.resync()
  assert.equal(blacklist.get(ENTRY.ip)?.reason, 'abuse report')
  await sync.close()
})
