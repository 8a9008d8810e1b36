/**
 * Seed 004's key aliasing, with its gap fixed: arrays nested in arrays are walked too.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { aliasMap, MAX_DEPTH, mergeAliases, renameKeys, reverseAliases, TooDeepError } from '../../src/lib/alias-map.js'

test('keys are renamed at every depth, arrays in arrays included; values never change', () => {
  const map = aliasMap({ content: 'text', model: 'model_id' })
  const body = {
    model: 'gpt-4o',
    messages: [{ role: 'user', content: 'model content' }],
    nested: [[{ content: 'deep' }, [{ model: 'deeper', keep: { content: 1 } }]]],
    tools: [{ function: { parameters: { properties: { model: { type: 'string' } } } } }],
    values: ['content', 'model']
  }
  const r = renameKeys(body, map)
  assert.equal(r.changed, true)
  assert.equal(JSON.stringify(r.value), JSON.stringify({
    model_id: 'gpt-4o',
    messages: [{ role: 'user', text: 'model content' }],
    nested: [[{ text: 'deep' }, [{ model_id: 'deeper', keep: { text: 1 } }]]],
    tools: [{ function: { parameters: { properties: { model_id: { type: 'string' } } } } }],
    values: ['content', 'model']
  }))
})

test('key order is kept; one pass (no chaining); a later key wins a collision at the first position', () => {
  const chained = renameKeys({ a: 1, b: 2, z: 0 }, aliasMap({ a: 'b', b: 'c' }))
  assert.equal(JSON.stringify(chained.value), '{"b":1,"c":2,"z":0}')
  const collision = renameKeys({ a: 1, x: 9, b: 2 }, aliasMap({ a: 'b' }))
  assert.equal(JSON.stringify(collision.value), '{"b":2,"x":9}')
})

test('nothing to rename: same object, not changed; __proto__ stays an ordinary key', () => {
  const body = { a: [1, [2, { b: 3 }]] }
  const r = renameKeys(body, aliasMap({ c: 'd' }))
  assert.equal(r.changed, false)
  assert.equal(r.value, body)
  const hostile = JSON.parse('{"x":{"__proto__":{"polluted":true},"k":1}}') as unknown
  const map = aliasMap(JSON.parse('{"k":"__proto__","__proto__":"proto"}') as Record<string, string>)
  const out = renameKeys(hostile, map).value as Record<string, Record<string, unknown>>
  assert.equal(JSON.stringify(out), '{"x":{"proto":{"polluted":true},"__proto__":1}}')
  assert.equal(({} as Record<string, unknown>).polluted, undefined)
  assert.equal(Object.getPrototypeOf(out.x), Object.prototype)
})

test('reverse and merged maps; ambiguous reverse refused; depth bounded', () => {
  const map = aliasMap({ max_tokens: 'max_output_tokens', a: 'a' })
  assert.deepEqual([...map], [['max_tokens', 'max_output_tokens']])
  assert.deepEqual([...reverseAliases(map)], [['max_output_tokens', 'max_tokens']])
  assert.throws(() => reverseAliases(aliasMap({ a: 'c', b: 'c' })), /ambiguous/)
  assert.deepEqual([...mergeAliases(aliasMap({ a: 'x', b: 'y' }), aliasMap({ a: 'z' }))], [['a', 'z'], ['b', 'y']])
  let deep: unknown = { k: 1 }
  for (let i = 0; i < MAX_DEPTH + 5; i++) deep = [deep]
  assert.throws(() => renameKeys(deep, aliasMap({ k: 'j' })), TooDeepError)
})
