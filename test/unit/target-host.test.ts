/**
 * X-Target-Host through `inject`: off by default (ignored, never forwarded); on, an allowlisted
 * host selects its target and every SSRF form is a 400 with one message, nothing sent upstream.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startMock, twoTargets } from '../helper.js'
import { injectGateway } from './gateway.js'

test('off by default: the header is ignored and never forwarded', async (t) => {
  const mock = await startMock(t)
  const gw = await injectGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const res = await gw.app.inject({ url: '/v1/models', headers: { 'x-target-host': '169.254.169.254' } })
  assert.equal(res.statusCode, 200)
  assert.equal(mock.requests.at(-1)!.headers['x-target-host'], undefined)
})

test('on: an allowlisted host selects its target, the header is not forwarded; SSRF forms are one 400, nothing sent', async (t) => {
  const a = await startMock(t)
  const b = await startMock(t)
  // the model-list cache off: every request that is let through reaches an upstream
  const gw = await injectGateway(t, { env: { GATEWAY_MODELS_CACHE_TTL_MS: '0' }, yaml: twoTargets(a.url, b.url, `routing:\n  targetHeader:\n    enabled: true\n    allowHosts: ["*", "127.0.0.1:${b.port}"]\n`) })
  for (const value of [`127.0.0.1:${b.port}`, `https://127.0.0.1:${b.port}`]) {
    const res = await gw.app.inject({ url: '/v1/models', headers: { 'x-target-host': value } })
    assert.equal(res.statusCode, 200, value)
    assert.equal(b.requests.at(-1)!.headers['x-which'], 'b')
    assert.equal(b.requests.at(-1)!.headers['x-target-host'], undefined)
  }
  const p = a.port
  const tricks = [
    '127.0.0.1', `127.0.0.1:${p}`, '127.1', '2130706433', '0x7f000001', '0177.0.0.1', '0.0.0.0', '[::1]', `[::1]:${p}`, '::1',
    '[::ffff:127.0.0.1]', '[::ffff:7f00:1]', '169.254.169.254', 'metadata.google.internal', '100.100.100.200', '[fd00:ec2::254]',
    '[fe80::1]', '10.0.0.1', '172.16.0.1', '192.168.1.1', 'localhost', `localhost:${p}`, 'foo.localhost', 'printer.local', 'vm',
    'user@api.openai.com', 'api.openai.com@127.0.0.1', 'api.openai.com:8080', 'api.openai.com/v1/models?', 'api.openai.com?x=1',
    'api.openai.com#frag', 'api.openai.com%2f..', 'http://api.openai.com', '.openai.com', 'a..b.com', '-a.example.com', 'x'.repeat(300) + '.com', ''
  ]
  for (const value of tricks) {
    const res = await gw.app.inject({ url: '/v1/models', headers: { 'x-target-host': value } })
    assert.equal(res.statusCode, 400, `X-Target-Host: ${value} must be refused`)
    assert.deepEqual(res.json().error, { message: 'X-Target-Host names a host that is not allowed', type: 'invalid_request_error', code: 'target_host_not_allowed' })
  }
  assert.equal(a.count(), 0)
  assert.equal(b.count(), 2)
  const plain = await gw.app.inject({ url: '/v1/models' })
  assert.equal(plain.statusCode, 200)
  assert.equal(a.count(), 1, 'without the header, normal routing')
})
