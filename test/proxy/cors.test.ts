import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { startGateway, startMock } from '../helper.js'

test('preflight is answered 204 with CORS headers, without reaching the upstream', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const res = await request(`${gw.url}/v1/chat/completions`, {
    method: 'OPTIONS',
    headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' }
  })
  assert.equal(res.statusCode, 204)
  assert.equal(res.headers['access-control-allow-origin'], '*')
  assert.match(String(res.headers['access-control-allow-headers']), /Authorization/)
  assert.match(String(res.headers['access-control-allow-methods']), /POST/)
  await res.body.dump()
  assert.equal(mock.count(), 0)
  const normal = await request(`${gw.url}/v1/models`, { headers: { origin: 'https://app.example' } })
  assert.equal(normal.headers['access-control-allow-origin'], '*')
  await normal.body.dump()
})

test('an origin list allows only its origins; "none" turns CORS off', async (t) => {
  const mock = await startMock(t)
  const listed = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_CORS_ORIGINS: 'https://a.example' } })
  const ok = await request(`${listed.url}/v1/models`, { headers: { origin: 'https://a.example' } })
  assert.equal(ok.headers['access-control-allow-origin'], 'https://a.example')
  await ok.body.dump()
  const other = await request(`${listed.url}/v1/models`, { headers: { origin: 'https://b.example' } })
  assert.equal(other.headers['access-control-allow-origin'], undefined)
  await other.body.dump()
  const off = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_CORS_ORIGINS: 'none' } })
  const res = await request(`${off.url}/v1/models`, { headers: { origin: 'https://a.example' } })
  assert.equal(res.headers['access-control-allow-origin'], undefined)
  await res.body.dump()
})
