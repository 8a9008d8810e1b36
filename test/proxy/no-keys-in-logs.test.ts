/**
 * At debug level, with keys sent in every place a client can put one, no key reaches the logs.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { request } from 'undici'
import { startGateway, startMock } from '../helper.js'

const UPSTREAM_KEY = 'sk-upstream-SECRET-aaaa1111'
const CLIENT_KEY = 'sk-client-SECRET-bbbb2222'
const ODD_KEY = 'zz-odd-format-SECRET-cccc3333' // not key-shaped: only header/query handling hides it

test('no key appears anywhere in debug output', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEY: UPSTREAM_KEY, LOG_LEVEL: 'debug', DEBUG_MODE: 'true' } })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 })
  await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `my key is ${CLIENT_KEY}` }] })
  const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true })
  for await (const _c of stream) { /* drain */ }
  const res = await request(`${gw.url}/v1/models?key=${ODD_KEY}&api-key=${CLIENT_KEY}`, {
    headers: { 'x-api-key': ODD_KEY, 'api-key': ODD_KEY, cookie: `session=${ODD_KEY}`, authorization: `Bearer ${ODD_KEY}` }
  })
  await res.body.dump()
  // an upstream failure path logs too
  await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-mock-fault': 'reset-before-headers', authorization: `Bearer ${ODD_KEY}` }, body: '{}' }).then(r => r.body.dump())

  const text = gw.logText()
  assert.ok(gw.logs.length > 5, 'debug logging produced lines')
  assert.ok(text.includes('"request"') || text.includes('request completed'))
  for (const key of [UPSTREAM_KEY, CLIENT_KEY, ODD_KEY]) {
    assert.ok(!text.includes(key), `${key} leaked into the logs`)
  }
  for (const line of gw.logs) JSON.parse(line) // every line is JSON
})

test('debug output: credentials in headers outside the fixed list, a short client key and target header values never appear', async (t) => {
  const mock = await startMock(t)
  const SHORT_KEY = 'q9z' // a weak client key is still a key
  const HEADER_VALUE = 'hv-SECRET-dddd4444' // a target header value: a secret like the keys
  const gw = await startGateway(t, {
    yaml: `upstream:\n  url: ${mock.url}\n  headers: { x-org-token: ${HEADER_VALUE} }\nauth:\n  keys: [{ name: weak, key: ${SHORT_KEY} }]\nlog:\n  level: debug\n`
  })
  const res = await request(`${gw.url}/v1/models`, {
    headers: { authorization: `Bearer ${SHORT_KEY}`, 'x-goog-api-key': ODD_KEY, 'ocp-apim-subscription-key': ODD_KEY, 'x-note': `key ${SHORT_KEY} here` }
  })
  assert.equal(res.statusCode, 200)
  await res.body.dump()
  assert.equal(mock.requests.at(-1)!.headers['x-org-token'], HEADER_VALUE)
  const text = gw.logText()
  assert.match(text, /"x-goog-api-key":"\[REDACTED\]"/)
  assert.match(text, /"ocp-apim-subscription-key":"\[REDACTED\]"/)
  assert.match(text, /"x-note":"key \[REDACTED\] here"/)
  for (const secret of [ODD_KEY, HEADER_VALUE]) assert.ok(!text.includes(secret), `${secret} leaked into the logs`)
  for (const line of gw.logs) JSON.parse(line)
})
