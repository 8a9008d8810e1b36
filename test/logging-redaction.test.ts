/**
 * The logger's header redaction names its paths (no `*.headers` wildcard, which the benchmark
 * showed costing most of an access line): credential headers are still masked at the top level
 * and under every key that carries headers, with keys that are not key-shaped (only the path
 * redaction can hide those), and access-line fields pass through untouched.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { pino } from 'pino'
import { captureLogs } from './helper.js'
import { CREDENTIAL_HEADERS, REDACTED, loggerOptions, redactHeaders } from '../src/logging.js'

const ODD = 'zz-odd-format-SECRET-4242' // not key-shaped: the last-chance filter would not catch it

function credentialHeaders (): Record<string, string> {
  const headers: Record<string, string> = { accept: 'application/json' }
  for (const name of CREDENTIAL_HEADERS) headers[name] = `Bearer ${ODD}`
  return headers
}

test('credential headers are masked at the top level and one level down', () => {
  const { stream, lines } = captureLogs()
  const log = pino(loggerOptions({ level: 'info', secrets: [] }), stream)
  log.info({ headers: credentialHeaders() }, 'top level')
  for (const holder of ['res', 'request', 'response', 'err', 'error']) {
    log.info({ [holder]: { status: 200, headers: credentialHeaders() } }, holder)
  }
  log.info({ req: { method: 'GET', url: '/v1/models?key=x', headers: credentialHeaders() } }, 'req')
  assert.equal(lines.length, 7)
  for (const line of lines) {
    assert.ok(!line.includes(ODD), `a credential leaked: ${line}`)
    JSON.parse(line)
  }
  const top = JSON.parse(lines[0]) as { headers: Record<string, string> }
  assert.equal(top.headers.authorization, REDACTED)
  assert.equal(top.headers.accept, 'application/json')
  const nested = JSON.parse(lines[1]) as { res: { status: number, headers: Record<string, string> } }
  assert.equal(nested.res.headers['x-api-key'], REDACTED)
  assert.equal(nested.res.status, 200)
})

test('access-line fields are written as given', () => {
  const { stream, lines } = captureLogs()
  const log = pino(loggerOptions({ level: 'info', secrets: [] }), stream)
  const fields = { method: 'POST', path: '/v1/chat/completions', status: 200, durationMs: 1.5, upstream: 'default', model: 'gpt-4o-mini', stream: true }
  log.info(fields, 'request completed')
  const line = JSON.parse(lines[0]) as Record<string, unknown>
  for (const [key, value] of Object.entries(fields)) assert.deepEqual(line[key], value)
})

test('credential headers outside the fixed list are masked by their names; other headers are not', () => {
  const headers = {
    'x-goog-api-key': ODD,
    'Ocp-Apim-Subscription-Key': ODD,
    'x-auth-token': ODD,
    'x-amz-security-token': ODD,
    'x-client-secret': ODD,
    accept: 'application/json',
    'keep-alive': 'timeout=5',
    'x-stainless-helper-method': 'stream',
    'anthropic-version': '2023-06-01'
  }
  const out = redactHeaders(headers)
  for (const name of ['x-goog-api-key', 'Ocp-Apim-Subscription-Key', 'x-auth-token', 'x-amz-security-token', 'x-client-secret']) assert.equal(out[name], REDACTED, name)
  for (const name of ['accept', 'keep-alive', 'x-stainless-helper-method', 'anthropic-version']) assert.equal(out[name], headers[name as keyof typeof headers], name)
})

test('short configured secrets are redacted where they stand alone, and every line stays JSON; Google-shaped keys too', () => {
  const { stream, lines } = captureLogs()
  // a 3-character client key and a 2-digit header value: below what the filter used to look at
  const log = pino(loggerOptions({ level: 'info', secrets: ['k7q', '42', 'zz-odd-format-SECRET-4242'] }), stream)
  log.info({ durationMs: 42, note: 'Bearer k7q sent 42 times', path: '/v1/k7q', word: 'k7qx ak7q 420' }, 'short')
  log.info({ key: 'AIzaSyA1234567890abcdefghijklmnopqrstu' }, 'google')
  const first = JSON.parse(lines[0]) as Record<string, unknown>
  assert.equal(first.durationMs, 42, 'numbers are not strings: untouched')
  assert.equal(first.note, `Bearer ${REDACTED} sent ${REDACTED} times`)
  assert.equal(first.path, `/v1/${REDACTED}`)
  assert.equal(first.word, 'k7qx ak7q 420', 'inside other words they are something else')
  assert.equal((JSON.parse(lines[1]) as { key: string }).key, REDACTED)
})
