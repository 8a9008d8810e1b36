/**
 * docs/migration/openai-proxy.md: the guide's command line, with
 * `OPENAI_PROXY_TARGETS` naming two mock upstreams in the seed's own `key:domain` form. A bare
 * domain means https (as in openai-proxy), so the mocks serve TLS with a certificate the gateway is
 * told to trust. The `azure` key points at a loopback mock, so it is no Azure host here (Azure
 * mapping has its own tests in test/routing/providers.test.ts).
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { request } from 'undici'
import { startMock } from '../helper.js'
import type { MockUpstream } from '../../mock/upstream.js'
import type { GatewayHandle } from '../helper.js'
import { gatewayCommand, guide, loopbackCert, startAsGuide } from './guide.js'

const section = guide('openai-proxy')
const command = gatewayCommand(section)

interface Setup { gw: GatewayHandle, oa: MockUpstream, azure: MockUpstream }

async function setup (t: TestContext, extraEnv: Record<string, string> = {}): Promise<Setup> {
  const tls = loopbackCert()
  const oa = await startMock(t, { tls: { key: tls.key, cert: tls.cert } })
  const azure = await startMock(t, { tls: { key: tls.key, cert: tls.cert } })
  const gw = await startAsGuide(t, {
    argv: command.argv,
    env: {
      ...command.env,
      OPENAI_PROXY_TARGETS: `oa:127.0.0.1:${oa.port},azure:127.0.0.1:${azure.port}`,
      GATEWAY_UPSTREAM_CA_FILE: tls.certFile, // test-only: trust the mocks' certificate
      ...extraEnv
    }
  })
  return { gw, oa, azure }
}

const get = (gw: GatewayHandle, path: string, headers: Record<string, string>) => request(`${gw.url}${path}`, { headers: { authorization: 'Bearer sk-client-own', ...headers } })

test('the guide is openai-proxy\'s own variable and flag', () => {
  assert.deepEqual(command, { env: { OPENAI_PROXY_TARGETS: 'oa:api.openai.com,azure:your-azure.openai.azure.com' }, argv: ['-listen=:9000'] })
  assert.ok(section.includes(`OPENAI_PROXY_TARGETS=${command.env.OPENAI_PROXY_TARGETS} ./openai-proxy -listen=:9000`))
})

test('Host routing in both forms, clients\' own keys, whole answers (openai-proxy lost their ends)', async (t) => {
  const { gw, oa, azure } = await setup(t)
  assert.equal(gw.config.server.host, '0.0.0.0')
  assert.equal(gw.config.server.port, 9000)
  assert.deepEqual(Object.keys(gw.config.targets).sort(), ['azure', 'oa'])

  for (const host of ['oa.mydomain.com', 'oa-anything.mydomain.com:9000', 'OA.MyDomain.com']) {
    const res = await get(gw, '/v1/models', { host, 'x-forwarded-for': '6.6.6.6', 'x-target-host': 'evil.example.com' })
    assert.equal(res.statusCode, 200, host)
    const body = await res.body.text()
    assert.equal(Number(res.headers['content-length'] ?? body.length), body.length)
    assert.ok((JSON.parse(body) as { data: unknown[] }).data.length > 0, `${host}: the small body arrives whole`)
    const seen = oa.requests.at(-1)
    assert.equal(seen?.headers.authorization, 'Bearer sk-client-own')
    assert.equal(seen?.headers['x-forwarded-for'], undefined)
    assert.equal(seen?.headers['x-target-host'], undefined, 'ignored while off, and never forwarded')
  }
  assert.equal(azure.count(), 0)
  const toAzure = await get(gw, '/v1/models', { host: 'azure.mydomain.com', 'api-key': 'az-key' })
  assert.equal(toAzure.statusCode, 200)
  await toAzure.body.dump()
  assert.equal(azure.requests.at(-1)?.headers['api-key'], 'az-key')

  // the stream's last event and [DONE] arrive (openai-proxy dropped the data read with EOF)
  const stream = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { host: 'oa.mydomain.com', authorization: 'Bearer sk-client-own', 'content-type': 'application/json', 'x-mock-chunks': '5' },
    body: JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] })
  })
  assert.equal(stream.statusCode, 200)
  const events = (await stream.body.text()).split('\n\n').filter(e => e.startsWith('data: '))
  assert.equal(events.at(-1), 'data: [DONE]')
  assert.ok(events.some(e => e.includes('"finish_reason":"stop"')), 'the final chunk arrives')

  // a small error body arrives too (openai-proxy answered them empty: geekr-dev/openai-proxy#19)
  const error = await request(`${gw.url}/v1/embeddings`, {
    method: 'POST',
    headers: { host: 'oa.mydomain.com', authorization: 'Bearer sk-client-own', 'content-type': 'application/json', 'x-mock-status': '401' },
    body: JSON.stringify({ model: 'text-embedding-3-small', input: 'x' })
  })
  assert.equal(error.statusCode, 401)
  assert.ok((await error.body.json() as { error: unknown }).error !== undefined)
})

test('an unreachable target is a 502 JSON error naming no host (openai-proxy: 500 with the URL)', async (t) => {
  const closed = createServer()
  closed.listen(0, '127.0.0.1')
  await once(closed, 'listening')
  const port = (closed.address() as { port: number }).port
  closed.close()
  const gw = await startAsGuide(t, { argv: command.argv, env: { OPENAI_PROXY_TARGETS: `oa:127.0.0.1:${port}` } })
  const res = await get(gw, '/v1/models', { host: 'oa.mydomain.com' })
  assert.equal(res.statusCode, 502)
  const body = await res.body.text()
  assert.ok(!body.includes('127.0.0.1') && !body.includes(String(port)), body)
  assert.equal(typeof (JSON.parse(body) as { error: { message: string } }).error.message, 'string')
})

test('the one-line switches: X-Target-Host (allowlisted), stage prefixes, 404 for unknown hosts; flags beat the variable', async (t) => {
  const { gw, oa, azure } = await setup(t, { GATEWAY_TARGET_HEADER: 'true', GATEWAY_STRIP_STAGE_PREFIXES: 'true', GATEWAY_DEFAULT_TARGET: 'none' })
  // a configured target's host is allowed; anything else is refused, never proxied
  const viaHeader = await get(gw, '/v1/models', { host: 'proxy.example.com', 'x-target-host': `127.0.0.1:${azure.port}` })
  assert.equal(viaHeader.statusCode, 200)
  await viaHeader.body.dump()
  assert.equal(azure.count('/v1/models'), 1)
  const refused = await get(gw, '/v1/models', { host: 'proxy.example.com', 'x-target-host': 'localhost:22' })
  assert.equal(refused.statusCode, 400)
  await refused.body.dump()

  const staged = await get(gw, '/release/v1/files/test-file', { host: 'oa.mydomain.com' })
  await staged.body.dump()
  assert.equal(oa.requests.at(-1)?.path, '/v1/files/test-file', 'only the leading /release is removed')

  const unknown = await get(gw, '/v1/models', { host: 'proxy.example.com' })
  assert.equal(unknown.statusCode, 404)
  await unknown.body.dump()

  const flagged = await startAsGuide(t, {
    argv: [...command.argv, '-targets', `oa:127.0.0.1:${azure.port}`, '-targets', 'b:b.example.com'],
    env: { OPENAI_PROXY_TARGETS: `oa:127.0.0.1:${oa.port}` }
  })
  assert.equal(flagged.config.targets.oa.url, `https://127.0.0.1:${azure.port}`, 'openai-proxy let the variable win')
  assert.equal(flagged.config.targets.b.url, 'https://b.example.com')
})
