/**
 * Outbound proxy: HTTP_PROXY / HTTPS_PROXY / NO_PROXY, a per-target proxy (seed 004's `proxy`),
 * seed 003's ENV=local default, through a real forward proxy started here (CONNECT tunnels for
 * https upstreams, with TLS verified end to end; absolute-form for http upstreams).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { startGateway, startMock, tempDir } from '../helper.js'
import { loadConfig } from '../../config/load.js'
import { proxyUrlFor } from '../../plugins/upstreams.js'
import { noProxyMatches, resolveProxy } from '../../src/routing/outbound.js'
import { startForwardProxy } from './support.js'
import { selfSigned } from '../tls.js'

const chat = (stream = false): string => JSON.stringify({ model: 'gpt-4o-mini', stream, messages: [{ role: 'user', content: 'hi' }] })

test('HTTP_PROXY: http upstreams go through the proxy in absolute form, streams included', async (t) => {
  const mock = await startMock(t)
  const proxy = await startForwardProxy(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, HTTP_PROXY: proxy.url } })
  assert.equal(proxyUrlFor(gw.app.upstreams.default), proxy.url)

  const res = await request(`${gw.url}/v1/models?limit=1`)
  assert.equal(res.statusCode, 200)
  await res.body.json()
  assert.deepEqual(proxy.seen, [`GET ${mock.url}/v1/models?limit=1`])

  const s = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat(true) })
  assert.equal(s.statusCode, 200)
  assert.ok((await s.body.text()).trimEnd().endsWith('data: [DONE]'))
  assert.equal(proxy.seen.at(-1), `POST ${mock.url}/v1/chat/completions`)
  assert.equal(mock.count(), 2)
})

test('NO_PROXY: matching hosts are reached directly; a port in the entry must match', async (t) => {
  const mock = await startMock(t)
  const proxy = await startForwardProxy(t)
  const direct = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, http_proxy: proxy.url, no_proxy: 'example.com,127.0.0.1' } })
  await request(`${direct.url}/v1/models`).then(r => r.body.dump())
  assert.equal(mock.count(), 1)
  assert.equal(proxy.seen.length, 0)

  const otherPort = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, HTTP_PROXY: proxy.url, NO_PROXY: `127.0.0.1:${mock.port + 1}` } })
  await request(`${otherPort.url}/v1/models`).then(r => r.body.dump())
  assert.equal(proxy.seen.length, 1)

  assert.equal(noProxyMatches('*.example.com', 'api.example.com', 443), true)
  assert.equal(noProxyMatches('.example.com', 'example.com', 443), true)
  assert.equal(noProxyMatches('example.com', 'badexample.com', 443), false)
  assert.equal(noProxyMatches('*', 'anything', 1), true)
})

test('HTTPS_PROXY: https upstreams are tunnelled with CONNECT and their certificate is still verified', async (t) => {
  const tls = selfSigned()
  const mock = await startMock(t, { tls: { key: tls.key, cert: tls.cert } })
  const proxy = await startForwardProxy(t)
  const untrusted = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, HTTPS_PROXY: proxy.url } })
  const refused = await request(`${untrusted.url}/v1/models`)
  assert.equal(refused.statusCode, 502)
  assert.equal((await refused.body.json() as { error: { code: string } }).error.code, 'upstream_tls_error')
  assert.equal(mock.count(), 0)
  assert.deepEqual(proxy.seen, [`CONNECT 127.0.0.1:${mock.port}`])

  const trusted = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, HTTPS_PROXY: proxy.url, GATEWAY_UPSTREAM_CA_FILE: tls.certFile } })
  const s = await request(`${trusted.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat(true) })
  assert.equal(s.statusCode, 200)
  assert.ok((await s.body.text()).trimEnd().endsWith('data: [DONE]'))
  assert.equal(mock.count(), 1)
  assert.equal(proxy.seen.at(-1), `CONNECT 127.0.0.1:${mock.port}`)
})

test('per-target proxy beats the environment; "direct" ignores it; proxy credentials go to the proxy only and stay out of logs', async (t) => {
  const mock = await startMock(t)
  const envProxy = await startForwardProxy(t)
  const own = await startForwardProxy(t)
  const ownUrl = own.url.replace('http://', 'http://gwuser:proxy-pass-42@')
  const gw = await startGateway(t, {
    env: { HTTP_PROXY: envProxy.url },
    yaml: `
upstream:
  url: ${mock.url}
targets:
  viaown:
    url: ${mock.url}
    proxy: ${ownUrl}
  nodetour:
    url: ${mock.url}
    proxy: direct
`
  })
  assert.equal(proxyUrlFor(gw.app.upstreams.byName.get('viaown')!), ownUrl)
  assert.equal(proxyUrlFor(gw.app.upstreams.byName.get('nodetour')!), null)

  await request(`${gw.url}/viaown/v1/models`).then(r => r.body.dump())
  assert.equal(own.seen.length, 1)
  assert.deepEqual(own.auth, [`Basic ${Buffer.from('gwuser:proxy-pass-42').toString('base64')}`])
  assert.equal(mock.requests.at(-1)!.headers['proxy-authorization'], undefined)

  await request(`${gw.url}/nodetour/v1/models`).then(r => r.body.dump())
  await request(`${gw.url}/v1/models`).then(r => r.body.dump())
  assert.equal(own.seen.length, 1)
  assert.equal(envProxy.seen.length, 1, 'only the default target used the environment proxy')
  assert.equal(mock.count(), 3)
  assert.ok(!gw.logText().includes('proxy-pass-42'))
})

test('seed 004 `proxy` key; an unreachable proxy → 502 JSON', async (t) => {
  const mock = await startMock(t)
  const proxy = await startForwardProxy(t)
  const gw = await startGateway(t, { yaml: `base_url: ${mock.url}\nproxy: ${proxy.url}\n` })
  const res = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat() })
  assert.equal(res.statusCode, 200)
  await res.body.json()
  assert.deepEqual(proxy.seen, [`POST ${mock.url}/v1/chat/completions`])

  const dead = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, HTTP_PROXY: 'http://127.0.0.1:9' } })
  const failed = await request(`${dead.url}/v1/models`)
  assert.equal(failed.statusCode, 502)
  assert.equal((await failed.body.json() as { error: { code: string } }).error.code, 'upstream_unreachable')
})

test('seed 003 ENV=local: default proxy 127.0.0.1:10809 unless HTTP(S)_PROXY is set; bad proxy URLs refused at boot', () => {
  const cwd = tempDir()
  const local = loadConfig({ env: { ENV: 'local' }, cwd }).config
  assert.equal(local.outbound.httpProxy, 'http://127.0.0.1:10809')
  assert.equal(resolveProxy('https://api.openai.com', '', local.outbound), 'http://127.0.0.1:10809', 'https upstreams use the http proxy too')
  assert.equal(loadConfig({ env: { ENV: 'local', HTTPS_PROXY: 'http://10.0.0.2:3128' }, cwd }).config.outbound.httpProxy, '')
  assert.equal(loadConfig({ env: { ENV: 'production' }, cwd }).config.outbound.httpProxy, '')
  assert.throws(() => loadConfig({ env: { HTTP_PROXY: 'socks9://x' }, cwd }), /outbound\.httpProxy.*http:\/\/ or https:\/\//)
  assert.throws(() => loadConfig({ env: { GATEWAY_UPSTREAM_PROXY: 'not a url' }, cwd }), /upstream\.proxy/)
})
