/**
 * Requests that are not plain `/v1/…` JSON calls still show what they were in metrics and usage
 * records: Azure-style deployment paths (route label of the operation, the deployment as model
 * when the body names none), multipart uploads (the form's model field), and realtime upgrades
 * (refused ones counted as requests of `/v1/realtime`; sessions by their own record).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { WebSocket } from 'ws'
import { startGateway, startMock } from '../helper.js'
import { recordOf } from './helpers.js'
import { endpointLabel } from '../../src/metrics/routes.js'

const ADMIN = 'admin-labels-SECRET-99aa'

async function metricsText (url: string): Promise<string> {
  const res = await request(`${url}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })
  return res.body.text()
}

test('route labels of Azure-style paths are those of the operation', () => {
  assert.equal(endpointLabel('/openai/deployments/gpt-4o/chat/completions'), '/v1/chat/completions')
  assert.equal(endpointLabel('/openai/deployments/my-embedder/embeddings'), '/v1/embeddings')
  assert.equal(endpointLabel('/openai/deployments/whisper/audio/transcriptions'), '/v1/audio/transcriptions')
  assert.equal(endpointLabel('/openai/deployments/x'), '/v1/other')
  assert.equal(endpointLabel('/openai/files'), '/v1/files')
  assert.equal(endpointLabel('/openai/realtime'), '/v1/realtime')
  assert.equal(endpointLabel('/openai/v1/responses'), '/v1/responses')
  assert.equal(endpointLabel('/openai/anything-else'), '/v1/other')
  assert.equal(endpointLabel('/v1/chat/completions'), '/v1/chat/completions')
})

test('an Azure deployment path: its operation in metrics, its deployment as the model of a body without one', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, ADMIN_TOKEN: ADMIN } })
  const res = await request(`${gw.url}/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-10-21`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] })
  })
  assert.equal(res.statusCode, 200)
  await res.body.dump()
  const record = await recordOf(gw, String(res.headers['x-request-id']))
  assert.equal(record.model, 'prod-gpt4o')
  assert.equal(record.path, '/openai/deployments/prod-gpt4o/chat/completions')
  const text = await metricsText(gw.url)
  assert.match(text, /^gateway_requests_total\{[^}]*route="\/v1\/chat\/completions"[^}]*\} 1$/m)
  assert.doesNotMatch(text, /route="\/v1\/other"/)
})

test('a multipart upload: the form\'s model field is the record\'s model', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, ADMIN_TOKEN: ADMIN } })
  const form = new FormData()
  form.append('model', 'whisper-1')
  form.append('file', new Blob([Buffer.alloc(2048, 1)], { type: 'audio/wav' }), 'a.wav')
  const res = await fetch(`${gw.url}/v1/audio/transcriptions`, { method: 'POST', body: form })
  assert.equal(res.status, 200)
  await res.arrayBuffer()
  const record = await recordOf(gw, String(res.headers.get('x-request-id')))
  assert.equal(record.model, 'whisper-1')
  assert.match(await metricsText(gw.url), /^gateway_requests_total\{[^}]*route="\/v1\/audio\/transcriptions"[^}]*\} 1$/m)
})

test('realtime: a refused upgrade is a request of /v1/realtime in the metrics; a session is not counted twice', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, ADMIN_TOKEN: ADMIN, GATEWAY_CLIENT_KEYS: 'sk-client-rt-0123456789' } })
  const refused = new WebSocket(`${gw.url.replace('http', 'ws')}/v1/realtime?model=gpt-4o-realtime-preview`, ['realtime'])
  const status = await new Promise<number>((resolve) => refused.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)))
  assert.equal(status, 401)
  const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/v1/realtime?model=gpt-4o-realtime-preview`, ['realtime'], { headers: { authorization: 'Bearer sk-client-rt-0123456789' } })
  await new Promise<void>((resolve, reject) => {
    ws.on('message', (data: Buffer) => { if ((JSON.parse(data.toString()) as { type: string }).type === 'session.created') resolve() })
    ws.once('error', reject)
  })
  ws.close()
  let text = ''
  for (let i = 0; i < 200; i++) {
    text = await metricsText(gw.url)
    if (/^gateway_realtime_sessions 0$/m.test(text) && gw.logs.some(l => l.includes('"msg":"usage"'))) break
    await new Promise(resolve => setTimeout(resolve, 10))
  }
  assert.match(text, /^gateway_requests_total\{[^}]*route="\/v1\/realtime",status="401"[^}]*\} 1$/m)
  const realtimeLines = text.split('\n').filter(l => l.startsWith('gateway_requests_total{') && l.includes('route="/v1/realtime"'))
  assert.equal(realtimeLines.length, 1, realtimeLines.join('\n'))
  const record = gw.logs.map(l => JSON.parse(l) as { msg: string, model?: string, path?: string }).find(l => l.msg === 'usage' && l.path === '/v1/realtime')
  assert.equal(record?.model, 'gpt-4o-realtime-preview')
})
