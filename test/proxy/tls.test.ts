/**
 * Upstream TLS is verified: a self-signed upstream is refused unless its CA is configured.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { startGateway, startMock } from '../helper.js'
import { selfSigned } from '../tls.js'

test('a self-signed upstream is refused, and accepted once its certificate is trusted', async (t) => {
  const tls = selfSigned()
  const mock = await startMock(t, { tls: { key: tls.key, cert: tls.cert } })
  assert.match(mock.url, /^https:/)

  const strict = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const refused = await request(`${strict.url}/v1/models`)
  assert.equal(refused.statusCode, 502)
  assert.equal((await refused.body.json() as { error: { code: string } }).error.code, 'upstream_tls_error')
  assert.equal(mock.count(), 0, 'nothing reached the untrusted upstream')

  const trusting = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_CA_FILE: tls.certFile } })
  const ok = await request(`${trusting.url}/v1/models`)
  assert.equal(ok.statusCode, 200)
  await ok.body.dump()
})
