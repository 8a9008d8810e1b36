/**
 * The in-flight counts per scope (src/abuse/in-flight.ts): the cap, releasing once, and the idle
 * scopes kept between requests and forgotten together once there are more than the bound.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { InFlight } from '../../src/abuse/in-flight.js'

test('a scope takes up to its cap; a release frees one slot, however often it is called', () => {
  const f = new InFlight()
  const a = f.take('key-a', 2)
  const b = f.take('key-a', 2)
  assert.ok(a !== null && b !== null)
  assert.equal(f.take('key-a', 2), null, 'the third request of a scope capped at 2 is refused')
  assert.ok(f.take('key-b', 2) !== null, 'another scope has its own slots')
  assert.equal(f.total, 3)
  a()
  a()
  assert.equal(f.total, 2, 'a second release of the same slot changes nothing')
  const c = f.take('key-a', 2)
  assert.ok(c !== null, 'the freed slot can be taken again')
  assert.equal(f.take('key-a', 2), null)
})

test('idle scopes are kept up to the bound, then forgotten together; busy scopes stay', () => {
  const f = new InFlight(3)
  const busy = f.take('busy', 5)
  assert.ok(busy !== null)
  for (const scope of ['s1', 's2', 's3']) f.take(scope, 1)?.()
  assert.equal(f.scopes, 4, 'three idle scopes and the busy one are remembered')
  f.take('s4', 1)?.()
  assert.equal(f.scopes, 1, 'the fourth idle scope is one over the bound: every idle scope is forgotten')
  assert.equal(f.total, 1)
  const again = f.take('s1', 1)
  assert.ok(again !== null, 'a forgotten scope starts again from nothing')
  assert.equal(f.take('s1', 1), null)
  busy()
  again()
  assert.equal(f.total, 0)
})

test('a refused request leaves no slot taken and the idle count right', () => {
  const f = new InFlight(1)
  const first = f.take('k', 1)
  assert.ok(first !== null)
  assert.equal(f.take('k', 1), null)
  first()
  assert.equal(f.total, 0)
  assert.equal(f.scopes, 1, 'one idle scope is within the bound of 1')
  f.take('other', 1)?.()
  assert.equal(f.scopes, 0, 'two idle scopes are over it')
})
