/**
 * The fixed-window counter behind the in-memory rate limit and the key-guessing limit: a window
 * starts with a key's first hit, counts until its end and starts afresh after it; each key has its
 * own window (and its own length: a client key may carry its own limit); the LRU bound holds.
 * Time is given to each call, so nothing here waits.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { FixedWindowCounter } from '../../src/abuse/fixed-window.js'
import { RefusalLimit } from '../../src/abuse/refusal-limit.js'

const T0 = 1_000_000

test('a window starts with the first hit and counts up; ttl is what is left of it', () => {
  const c = new FixedWindowCounter(10)
  assert.deepEqual(c.hit('ip:1.2.3.4', 60_000, T0), { current: 1, ttl: 60_000 })
  assert.deepEqual(c.hit('ip:1.2.3.4', 60_000, T0 + 1_000), { current: 2, ttl: 59_000 })
  assert.deepEqual(c.hit('ip:1.2.3.4', 60_000, T0 + 59_999), { current: 3, ttl: 1 })
  assert.deepEqual(c.peek('ip:1.2.3.4', T0 + 30_000), { current: 3, ttl: 30_000 }, 'peek does not count')
  assert.deepEqual(c.peek('ip:1.2.3.4', T0 + 30_000), { current: 3, ttl: 30_000 })
})

test('at the end of its window a key counts from 1 again, in a window of its own', () => {
  const c = new FixedWindowCounter(10)
  for (let i = 0; i < 5; i++) c.hit('key:a', 1_000, T0 + i)
  // the window ends at T0 + 1000 exactly: a hit then starts the next one (as @fastify/rate-limit's store)
  assert.deepEqual(c.hit('key:a', 1_000, T0 + 1_000), { current: 1, ttl: 1_000 })
  assert.deepEqual(c.hit('key:a', 1_000, T0 + 1_500), { current: 2, ttl: 500 })
  assert.equal(c.peek('key:a', T0 + 2_000), null, 'a window that ended is no count')
  assert.equal(c.size, 0, 'and is forgotten once read')
  assert.deepEqual(c.hit('key:a', 1_000, T0 + 2_000), { current: 1, ttl: 1_000 })
})

test('each key has its own count and window: a per-key limit is compared against its own count', () => {
  const c = new FixedWindowCounter(10)
  // a client key with its own limit (max 2 per second) beside an address on the default (max 5 per minute)
  const limits = { 'key:small': { max: 2, windowMs: 1_000 }, 'ip:10.0.0.1': { max: 5, windowMs: 60_000 } }
  const exceeded = (key: keyof typeof limits, now: number): boolean => c.hit(key, limits[key].windowMs, now).current > limits[key].max
  assert.deepEqual([1, 2, 3].map(i => exceeded('key:small', T0 + i)), [false, false, true])
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(i => exceeded('ip:10.0.0.1', T0 + i)), [false, false, false, false, false, true])
  assert.equal(exceeded('key:small', T0 + 1_001), false, 'the short window ended: counted afresh')
  assert.equal(exceeded('ip:10.0.0.1', T0 + 1_001), true, 'the long one still runs')
  assert.equal(c.peek('ip:10.0.0.1', T0 + 1_001)?.ttl, 59_000)
})

test('the LRU bound: at most maxKeys keys, the least recently counted dropped first', () => {
  const c = new FixedWindowCounter(3)
  c.hit('a', 60_000, T0)
  c.hit('b', 60_000, T0)
  c.hit('c', 60_000, T0)
  c.hit('a', 60_000, T0 + 1) // a is now the most recent; b the least
  c.hit('d', 60_000, T0 + 2)
  assert.equal(c.size, 3)
  assert.equal(c.peek('b', T0 + 3), null, 'b was dropped')
  assert.equal(c.peek('a', T0 + 3)?.current, 2)
  for (let i = 0; i < 1_000; i++) c.hit(`flood-${i}`, 60_000, T0 + 4)
  assert.equal(c.size, 3, 'a flood of keys does not grow it')
})

test('key guessing counts refusals per address network with the same counter: blocked at max, free after the window', () => {
  const limit = new RefusalLimit({ max: 3, windowMs: 10_000, ipv6Subnet: 64, maxTracked: 100 })
  assert.equal(limit.blockedFor('2001:db8::1', T0), 0, 'nothing refused yet')
  limit.record('2001:db8::1', T0)
  limit.record('2001:db8::2', T0 + 1) // the same /64
  assert.equal(limit.blockedFor('2001:db8::3', T0 + 2), 0, 'two refusals: under the limit')
  limit.record('2001:db8::1', T0 + 2_000)
  assert.equal(limit.blockedFor('2001:db8::9', T0 + 4_000), 6_000, 'blocked until the window from the first refusal ends')
  assert.equal(limit.blockedFor('2001:db8:0:1::1', T0 + 4_000), 0, 'another /64 is not')
  assert.equal(limit.blockedFor('2001:db8::1', T0 + 10_000), 0, 'free once the window ended')
})
