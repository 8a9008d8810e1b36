/**
 * JsonRewriteStream against a budget shared by every rewriting response (HeldBytes): the bytes
 * held together never pass it, a response that would pass it goes on unrewritten and whole, and
 * what a response held is given back when it ends or is destroyed.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { HeldBytes, JsonRewriteStream } from '../../src/lib/json-transform.js'

const upper = (value: unknown): unknown => ({ ...(value as object), rewritten: true })

function rewriting (held: HeldBytes, told: string[], name: string): { stream: JsonRewriteStream, out: Buffer[] } {
  const stream = new JsonRewriteStream({ rewrite: upper, maxBytes: 1024 * 1024, held, onHeldFull: () => told.push(name) })
  const out: Buffer[] = []
  stream.on('data', (c: Buffer) => out.push(c))
  return { stream, out }
}

test('responses held at once share one bound: the one that would pass it goes on unrewritten', async () => {
  const held = new HeldBytes(1000)
  const told: string[] = []
  const body = (n: number): string => JSON.stringify({ pad: 'x'.repeat(n) })
  const a = rewriting(held, told, 'a')
  const b = rewriting(held, told, 'b')
  const aText = body(590)
  const bText = body(590)
  a.stream.write(aText.slice(0, 300))
  b.stream.write(bText.slice(0, 300))
  a.stream.write(aText.slice(300))
  assert.ok(held.used <= held.max, `${held.used} held`)
  b.stream.write(bText.slice(300)) // 300 + 300 + 302 fit, another 302 would not
  assert.deepEqual(told, ['b'])
  assert.ok(held.used <= held.max, `${held.used} held`)
  a.stream.end()
  b.stream.end()
  await Promise.all([once(a.stream, 'end'), once(b.stream, 'end')])
  assert.deepEqual(JSON.parse(Buffer.concat(a.out).toString()), { pad: 'x'.repeat(590), rewritten: true })
  assert.equal(Buffer.concat(b.out).toString(), bText, 'passed on whole and unchanged')
  assert.equal(held.used, 0, 'everything given back')
})

test('a destroyed response (its client left) gives back what it held', () => {
  const held = new HeldBytes(1000)
  const a = rewriting(held, [], 'a')
  a.stream.write('{"pad":"' + 'x'.repeat(500))
  assert.ok(held.used > 500)
  a.stream.destroy()
  assert.equal(held.used, 0)
})
