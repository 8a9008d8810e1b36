import { test } from 'node:test'
import assert from 'node:assert/strict'
import { LineBatch, type BatchTarget } from '../../src/lib/line-batch.js'

function recorder (): BatchTarget & { writes: string[], flushed: number, ended: boolean } {
  return {
    writes: [],
    flushed: 0,
    ended: false,
    write (chunk: string) { this.writes.push(chunk); return true },
    flushSync () { this.flushed++ },
    end () { this.ended = true }
  }
}

test('lines reach the destination in one write per batch, in order, nothing lost or doubled', () => {
  const target = recorder()
  const batch = new LineBatch(target, 100, 60_000)
  const lines = Array.from({ length: 50 }, (_, i) => `{"n":${i},"msg":"line"}\n`)
  for (const line of lines) batch.write(line)
  assert.ok(target.writes.length > 1 && target.writes.length < lines.length, `${target.writes.length} writes for ${lines.length} lines`)
  for (const w of target.writes) assert.ok(w.length >= 100, 'a batch is written once it holds the size')
  batch.flushSync()
  assert.equal(target.flushed, 1)
  assert.equal(target.writes.join(''), lines.join(''))
  batch.end()
  assert.equal(target.ended, true)
})

test('a quiet logger still writes its lines within the flush interval', async () => {
  const target = recorder()
  const batch = new LineBatch(target, 4096, 20)
  batch.write('one line\n')
  assert.deepEqual(target.writes, [])
  for (let i = 0; i < 100 && target.writes.length === 0; i++) await new Promise(resolve => setTimeout(resolve, 10))
  assert.deepEqual(target.writes, ['one line\n'])
  batch.end()
})

test('end writes what is left; a destroyed destination gets nothing more', () => {
  const target = recorder()
  const batch = new LineBatch(target, 4096, 60_000)
  batch.write('a\n')
  batch.end()
  assert.deepEqual(target.writes, ['a\n'])
  target.destroyed = true
  batch.write('b\n')
  batch.flushSync()
  assert.deepEqual(target.writes, ['a\n'])
})
