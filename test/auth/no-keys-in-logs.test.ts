/**
 * At debug level with body logging, no client key, mapped upstream key or admin token reaches a
 * log line: accepted or refused, in every header form, hashed keys included (the gateway never
 * knows those in clear, so only header handling can hide them).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import OpenAI from 'openai'
import { request } from 'undici'
import WebSocket from 'ws'
import { startGateway, startMock } from '../helper.js'

// deliberately not shaped like provider keys (sk-…), which the log filter would catch anyway
const PLAIN = 'plain-client-key-AAAA1111'
const HASHED = 'hashed-client-key-BBBB2222'
const MAPPED_UPSTREAM = 'mapped-upstream-key-CCCC3333'
const ADMIN = 'admin-token-DDDD4444'
const WRONG = 'wrong-client-key-EEEE5555'
const WRONG_ADMIN = 'wrong-admin-token-FFFF6666'

test('no client key, mapped key or admin token in any log line at debug level', async (t) => {
  const mock = await startMock(t)
  const yaml = `
upstream:
  url: ${mock.url}
log:
  level: debug
  requests: true
  responses: true
auth:
  header: X-Gateway-Key
  adminToken: ${ADMIN}
  keys:
    - name: plain
      key: ${PLAIN}
      upstreamKey: ${MAPPED_UPSTREAM}
    - name: hashed
      keySha256: ${createHash('sha256').update(HASHED).digest('hex')}
`
  const gw = await startGateway(t, { yaml })
  const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'hi' }] }
  for (const key of [PLAIN, HASHED]) {
    await new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 }).chat.completions.create(chat)
  }
  await assert.rejects(new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: WRONG, maxRetries: 0 }).models.list())

  const forms: Array<Record<string, string>> = []
  for (const key of [PLAIN, HASHED, WRONG]) {
    forms.push({ 'x-api-key': key }, { 'api-key': key }, { 'x-gateway-key': key }, { 'x-gateway-key': `Bearer ${key}` }, { authorization: `Bearer ${key}` })
  }
  for (const headers of forms) {
    const res = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(chat) })
    await res.body.dump()
  }
  for (const token of [ADMIN, WRONG_ADMIN]) {
    for (const headers of [{ authorization: `Bearer ${token}` }, { 'x-gateway-key': token }]) {
      const res = await request(`${gw.url}/admin/cache/clear`, { method: 'POST', headers })
      await res.body.dump()
    }
  }
  for (const key of [HASHED, WRONG]) {
    await new Promise<void>((resolve) => {
      const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/v1/realtime`, ['realtime', `openai-insecure-api-key.${key}`])
      ws.once('unexpected-response', (_req, res) => { res.resume(); ws.terminate(); resolve() })
      ws.once('open', () => { ws.close(); resolve() })
      ws.once('error', () => resolve())
    })
  }

  const text = gw.logText()
  assert.ok(text.includes('"status":401') && text.includes('"client":"hashed"'), 'the requests were logged')
  assert.ok(text.includes('"msg":"request"'), 'request dumps were written')
  for (const secret of [PLAIN, HASHED, MAPPED_UPSTREAM, ADMIN, WRONG, WRONG_ADMIN]) {
    assert.ok(!text.includes(secret), `${secret} leaked into the logs`)
  }
  // the mapped upstream key did reach the upstream: the check above is not vacuous
  assert.ok(mock.requests.some(r => r.headers.authorization === `Bearer ${MAPPED_UPSTREAM}`))
})
