/**
 * Unit tests of where a key is read from and how it is compared (src/auth/keys.ts).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { lookupKey, presentedKeys, secretMatches, sha256 } from '../../src/auth/keys.js'

test('presentedKeys: every place, in order, deduplicated; other schemes and empty values ignored', () => {
  assert.deepEqual(presentedKeys({}), [])
  assert.deepEqual(presentedKeys({ authorization: 'Bearer  k1 ' }), ['k1'])
  assert.deepEqual(presentedKeys({ authorization: 'BEARER k1' }), ['k1'])
  assert.deepEqual(presentedKeys({ authorization: 'Basic abc' }), [])
  assert.deepEqual(presentedKeys({ authorization: 'Bearer ' }), [])
  assert.deepEqual(presentedKeys({ 'x-api-key': ' k2 ', 'api-key': 'k3', authorization: 'Bearer k1' }), ['k1', 'k2', 'k3'])
  assert.deepEqual(presentedKeys({ 'x-api-key': 'k1', authorization: 'Bearer k1' }), ['k1'])
  assert.deepEqual(presentedKeys({ 'x-token': 'Bearer k4', authorization: 'Bearer k1' }, 'x-token'), ['k4', 'k1'])
  assert.deepEqual(presentedKeys({ 'x-token': 'k4' }, 'x-token'), ['k4'])
  assert.deepEqual(presentedKeys({ 'x-token': 'k4' }), [], 'a header is only read when configured')
})

test('presentedKeys: the browser WebSocket sub-protocol, only on upgrade requests', () => {
  const protocols = 'realtime, openai-insecure-api-key.k5, openai-beta.realtime-v1'
  assert.deepEqual(presentedKeys({ upgrade: 'websocket', 'sec-websocket-protocol': protocols }), ['k5'])
  assert.deepEqual(presentedKeys({ upgrade: 'WebSocket', 'sec-websocket-protocol': 'openai-insecure-api-key.k5' }), ['k5'])
  assert.deepEqual(presentedKeys({ 'sec-websocket-protocol': protocols }), [])
  assert.deepEqual(presentedKeys({ upgrade: 'websocket', 'sec-websocket-protocol': 'realtime, openai-insecure-api-key.' }), [])
})

test('lookupKey and secretMatches: only the exact key matches, hashes compared whole', () => {
  const digest = sha256('the-key')
  const table = new Map([[digest.toString('hex'), { enabled: true, identity: { name: 'a' } }]])
  assert.equal(lookupKey(table, 'the-key')?.identity.name, 'a')
  for (const other of ['the-ke', 'the-key ', 'THE-KEY', '', 'x'.repeat(10_000)]) assert.equal(lookupKey(table, other), null)
  assert.equal(secretMatches(['nope', 'the-key'], digest), true)
  assert.equal(secretMatches(['nope', 'the-ke'], digest), false)
  assert.equal(secretMatches([], digest), false)
})
