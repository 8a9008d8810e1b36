/**
 * The conversation stores: the in-memory LRU, and Redis against a real redis-server (on a unix
 * socket in a temp dir) when one is installed.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { MemoryContextStore, RedisContextStore, type ContextStore } from '../../src/lib/context-store.js'
import { startRedisClient } from '../redis.js'

async function behavesAsAStore (store: ContextStore): Promise<void> {
  assert.equal(await store.get('k1'), undefined)
  await store.set('k1', 'a|b')
  assert.equal(await store.get('k1'), 'a|b')
  // compare-and-set: only over the value that was read
  assert.equal(await store.compareAndSet('k1', 'a|b', 'a|b|c'), true)
  assert.equal(await store.compareAndSet('k1', 'a|b', 'a|b|x'), false)
  assert.equal(await store.get('k1'), 'a|b|c')
  assert.equal(await store.compareAndSet('k2', undefined, 'n'), true)
  assert.equal(await store.compareAndSet('k2', undefined, 'm'), false)
  assert.equal(await store.clear(), 2)
  assert.equal(await store.get('k1'), undefined)
}

test('memory store: get, set, compare-and-set, clear', async () => {
  await behavesAsAStore(new MemoryContextStore({ capacity: 10, ttlMs: 0 }))
})

test('memory store: bounded by capacity (least recently used go), optional TTL', async () => {
  const store = new MemoryContextStore({ capacity: 2, ttlMs: 0 })
  await store.set('a', '1')
  await store.set('b', '2')
  await store.get('a')
  await store.set('c', '3')
  assert.equal(store.size, 2)
  assert.equal(await store.get('b'), undefined)
  assert.equal(await store.get('a'), '1')
  const ttl = new MemoryContextStore({ capacity: 2, ttlMs: 20 })
  await ttl.set('a', '1')
  let gone = false
  for (let i = 0; i < 50 && !gone; i++) {
    await sleep(10)
    gone = (await ttl.get('a')) === undefined
  }
  assert.ok(gone, 'expired')
})

test('redis store: the same behaviour, with TTL, against a real redis-server', async (t) => {
  const client = await startRedisClient(t)
  await behavesAsAStore(new RedisContextStore(client, { ttlMs: 0 }))
  const ttl = new RedisContextStore(client, { ttlMs: 60_000, prefix: 'other:' })
  await ttl.set('k', 'v')
  await ttl.compareAndSet('j', undefined, 'w')
  const pttlK = await client.pttl('other:k')
  const pttlJ = await client.pttl('other:j')
  assert.ok(pttlK > 0 && pttlK <= 60_000)
  assert.ok(pttlJ > 0 && pttlJ <= 60_000)
  // clear removes only its own prefix
  await client.set('unrelated', '1')
  assert.equal(await ttl.clear(), 2)
  assert.equal(await client.get('unrelated'), '1')
})
