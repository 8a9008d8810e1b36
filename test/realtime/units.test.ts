/**
 * The small pure parts of the relay: close-code lifting, reasons, sub-protocol choice, usage sums.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { closeReason, isSendableCode, liftCloseCode } from '../../src/realtime/close-codes.js'
import { chooseProtocol, keyFromProtocols, offeredProtocols, upstreamProtocols } from '../../src/realtime/protocols.js'
import { UsageCounter } from '../../src/realtime/usage.js'

test('reserved close codes are lifted to sendable ones, per direction', () => {
  assert.equal(liftCloseCode(1005, 'to-client'), 1000)
  assert.equal(liftCloseCode(1005, 'to-upstream'), 1000)
  assert.equal(liftCloseCode(1006, 'to-client'), 1011)
  assert.equal(liftCloseCode(1006, 'to-upstream'), 1001)
  assert.equal(liftCloseCode(1004, 'to-client'), 1011)
  assert.equal(liftCloseCode(1015, 'to-client'), 1011)
  for (const code of [1000, 1001, 1008, 1009, 1011, 1013, 3000, 4999]) {
    assert.equal(liftCloseCode(code, 'to-client'), code)
    assert.ok(isSendableCode(code))
  }
  assert.equal(liftCloseCode(2000, 'to-client'), 1011)
})

test('close reasons fit in a close frame without splitting a character', () => {
  assert.equal(closeReason('', 'fallback'), 'fallback')
  assert.equal(closeReason('own', 'fallback'), 'own')
  const cut = closeReason('é'.repeat(100))
  assert.ok(Buffer.byteLength(cut) <= 123)
  assert.equal(cut, 'é'.repeat(61))
})

test('sub-protocols: realtime preferred, the key never chosen nor offered upstream', () => {
  const offered = offeredProtocols('openai-insecure-api-key.sk-1, openai-beta.realtime-v1,realtime')
  assert.deepEqual(offered, ['openai-insecure-api-key.sk-1', 'openai-beta.realtime-v1', 'realtime'])
  assert.equal(chooseProtocol(new Set(offered)), 'realtime')
  assert.deepEqual(upstreamProtocols(offered, 'realtime'), ['realtime', 'openai-beta.realtime-v1'])
  assert.equal(keyFromProtocols(offered), 'sk-1')
  assert.equal(chooseProtocol(new Set(['openai-insecure-api-key.sk-1'])), false)
  assert.equal(chooseProtocol(new Set(['openai-insecure-api-key.sk-1', 'openai-beta.realtime-v1'])), 'openai-beta.realtime-v1')
  assert.deepEqual(upstreamProtocols(['openai-insecure-api-key.sk-1'], ''), [])
  assert.deepEqual(offeredProtocols(undefined), [])
})

test('usage: response.done events summed; other events ignored even when they mention it', () => {
  const usage = new UsageCounter()
  assert.equal(usage.usage, null)
  usage.observe(Buffer.from(JSON.stringify({ type: 'response.output_text.delta', delta: '"response.done"' })))
  assert.equal(usage.usage, null)
  usage.observe(Buffer.from(JSON.stringify({ type: 'response.done', response: { usage: { input_tokens: 10, output_tokens: 20, total_tokens: 30 } } })))
  usage.observe(Buffer.from(JSON.stringify({ type: 'response.done', response: { usage: { input_tokens: 40, output_tokens: 5 } } })))
  usage.observe(Buffer.from(JSON.stringify({ type: 'response.done', response: { usage: null } })))
  usage.observe(Buffer.from('{"type":"response.done", broken'))
  // read again: the assertion above narrowed `usage.usage` to null
  const summary = (usage as UsageCounter).usage
  assert.ok(summary !== null)
  const { counts, ...totals } = summary
  assert.deepEqual(totals, { responses: 3, inputTokens: 50, outputTokens: 25, totalTokens: 75 })
  // every token category, summed the same way, for the record and its cost
  assert.equal(counts.promptTokens, 50)
  assert.equal(counts.completionTokens, 25)
  assert.equal(counts.totalTokens, 75)
})
