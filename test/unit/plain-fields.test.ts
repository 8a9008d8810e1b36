/**
 * The access line's serialization (`serializePlainFields`, src/logging.ts) writes the line pino's
 * own serializer writes for the same object, secret filter included.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { kPlainFields, loggerOptions, serializePlainFields } from '../../src/logging.js'

const SECRET = 'sk-unit-secret-abcdefgh123'

function logger (plain: boolean): { log: pino.Logger, lines: string[] } {
  const lines: string[] = []
  const sink = new Writable({ write (chunk, _enc, cb) { lines.push(String(chunk)); cb() } })
  const log = pino(loggerOptions({ level: 'info', secrets: [SECRET] }), sink)
  if (plain) serializePlainFields(log)
  return { log, lines }
}

const withoutTime = (line: string): string => line.replace(/"time":\d+/, '"time":0')

test('a plain-fields line is byte for byte the line pino writes, secrets removed the same way', async () => {
  const generic = logger(false)
  const plain = logger(true)
  const fields = (): Record<string | symbol, unknown> => ({
    requestId: 'r-1',
    client: 'k"1\n\u2028',
    path: `/v1/chat/completions?key=${SECRET}`,
    durationMs: 1.5,
    ttfbMs: Number.POSITIVE_INFINITY,
    skipped: undefined,
    costUsd: null,
    stream: true,
    attemptLog: [{ target: 'a', status: 429 }]
  })
  generic.log.child({ reqId: 'abc' }).info(fields(), 'request completed')
  const marked = fields()
  marked[kPlainFields] = true
  plain.log.child({ reqId: 'abc' }).info(marked, 'request completed')
  await new Promise(resolve => setImmediate(resolve))
  assert.equal(plain.lines.length, 1)
  assert.equal(withoutTime(plain.lines[0]), withoutTime(generic.lines[0]))
  assert.ok(!plain.lines[0].includes(SECRET))
  assert.match(plain.lines[0], /\[REDACTED\]/)
})

test('an unmarked object, or a marked one with no fields, is written as pino writes it', async () => {
  const generic = logger(false)
  const plain = logger(true)
  for (const { log } of [generic, plain]) {
    log.info({ x: 1, err: new Error('boom') }, 'other')
    log.info({ [kPlainFields]: true }, 'empty')
  }
  await new Promise(resolve => setImmediate(resolve))
  assert.deepEqual(plain.lines.map(withoutTime), generic.lines.map(withoutTime))
})
