/**
 * docs/migration/ai-proxy.md: the guide's `.env` file with `OPENAI_API_HOST` and
 * `CLAUDE_API_HOST` pointed at two mock upstreams. Those settings are bare hosts, always https (as
 * in ai-proxy), so the mocks serve TLS with a certificate the gateway is told to trust, and
 * `BASE_PATH` is a temporary folder. The clients' addresses come from `X-Forwarded-For` sent by
 * the test on loopback, trusted through `GATEWAY_TRUSTED_PROXIES`, since loopback itself is exempt
 * from the blacklist.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { startMock, tempDir } from '../helper.js'
import { until } from '../poll.js'
import type { MockUpstream } from '../../mock/upstream.js'
import { blocks, dotenv, gatewayCommand, guide, loopbackCert, startAsGuide } from './guide.js'
import type { GatewayHandle } from '../helper.js'

const section = guide('ai-proxy')
const env = dotenv(section)
const command = gatewayCommand(section)

interface Setup { gw: GatewayHandle, openai: MockUpstream, claude: MockUpstream, dataDir: string }

async function setup (t: TestContext, files: Record<string, string> = {}): Promise<Setup> {
  const tls = loopbackCert()
  const openai = await startMock(t, { tls: { key: tls.key, cert: tls.cert } })
  const claude = await startMock(t, { tls: { key: tls.key, cert: tls.cert } })
  const dataDir = tempDir('gw-base-path-')
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dataDir, name), text)
  const gw = await startAsGuide(t, {
    argv: command.argv,
    env: {
      ...env,
      BASE_PATH: dataDir,
      OPENAI_API_HOST: `127.0.0.1:${openai.port}`,
      CLAUDE_API_HOST: `127.0.0.1:${claude.port}`,
      // test-only lines: trust the mocks' certificate, and the test's X-Forwarded-For
      GATEWAY_UPSTREAM_CA_FILE: tls.certFile,
      GATEWAY_TRUSTED_PROXIES: '127.0.0.1'
    }
  })
  return { gw, openai, claude, dataDir }
}

test('the guide is ai-proxy\'s own variables plus the two hosts and the browser origins, and its docker line', () => {
  assert.deepEqual(Object.keys(env).sort(), ['BASE_PATH', 'CLAUDE_API_HOST', 'ERROR_WINDOW', 'GATEWAY_CORS_ORIGINS', 'IP_ERROR_THRESHOLD', 'OPENAI_API_HOST', 'PROXY_PORT', 'RATE_LIMIT_INTERVAL', 'RATE_LIMIT_REQUESTS'])
  assert.equal(env.OPENAI_API_HOST, 'api.openai.com')
  assert.equal(env.CLAUDE_API_HOST, 'api.anthropic.com')
  assert.deepEqual(command, { env: {}, argv: ['-l', '0.0.0.0'] })
  assert.ok(blocks(section, 'sh')[0].text.includes('docker run -d -p 6543:6543 --env-file .env -v /path/to/your/data:/app/data'))
})

test('Host openai.api.* and claude.api.* go to their hosts over https with the clients\' own keys; /ping; preflight', async (t) => {
  const { gw, openai, claude } = await setup(t)
  assert.equal(gw.config.server.port, 6543)
  assert.equal(gw.config.rateLimit.max, Number(env.RATE_LIMIT_REQUESTS))
  assert.equal(gw.config.rateLimit.windowMs, Number(env.RATE_LIMIT_INTERVAL))
  assert.equal(gw.config.blacklist.threshold, Number(env.IP_ERROR_THRESHOLD))
  assert.equal(gw.config.blacklist.windowMs, Number(env.ERROR_WINDOW))

  const chat = await request(`${gw.url}/v1/chat/completions?x=1`, {
    method: 'POST',
    headers: { host: 'openai.api.my-domain.com:6543', 'content-type': 'application/json', authorization: 'Bearer sk-own-openai', 'openai-organization': 'org-1' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
  })
  assert.equal(chat.statusCode, 200)
  assert.equal((await chat.body.json() as { object: string }).object, 'chat.completion')
  const o = openai.requests.at(-1)
  assert.equal(o?.url, '/v1/chat/completions?x=1')
  assert.equal(o?.headers.authorization, 'Bearer sk-own-openai')
  assert.equal(o?.headers['openai-organization'], 'org-1', 'ai-proxy dropped it')

  const messages = await request(`${gw.url}/v1/messages`, {
    method: 'POST',
    headers: { host: 'claude.api.my-domain.com', 'content-type': 'application/json', 'x-api-key': 'sk-ant-own', 'anthropic-version': '2023-06-01' },
    body: JSON.stringify({ model: 'claude-3-5-sonnet-latest', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] })
  })
  assert.equal(messages.statusCode, 200)
  assert.equal((await messages.body.json() as { type: string }).type, 'message')
  assert.equal(claude.requests.at(-1)?.headers['x-api-key'], 'sk-ant-own')
  assert.equal(openai.count('/v1/messages'), 0)

  const ping = await request(`${gw.url}/ping`)
  assert.equal(ping.statusCode, 200)
  assert.equal(typeof (await ping.body.json() as { pong: number }).pong, 'number')

  // CORS for the origins the guide names (ai-proxy answered every origin)
  const preflight = (origin: string) => request(`${gw.url}/v1/chat/completions`, {
    method: 'OPTIONS', headers: { host: 'openai.api.my-domain.com', origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type,x-stainless-helper-method' }
  })
  const app = await preflight(env.GATEWAY_CORS_ORIGINS)
  assert.equal(app.statusCode, 204)
  assert.equal(app.headers['access-control-allow-origin'], env.GATEWAY_CORS_ORIGINS)
  assert.match(String(app.headers['access-control-allow-headers']), /x-stainless-helper-method/)
  await app.body.dump()
  const stranger = await preflight('https://elsewhere.example')
  assert.equal(stranger.headers['access-control-allow-origin'], undefined)
  await stranger.body.dump()
})

test('blacklist: ai-proxy\'s black.json is read as is; IP_ERROR_THRESHOLD gateway errors block the address that made them', async (t) => {
  const { gw, dataDir } = await setup(t, { 'black.json': JSON.stringify({ blacks: ['192.0.2.50'], ip_error_counter: {} }) })
  const from = (ip: string, path = '/v1/models') => request(`${gw.url}${path}`, { headers: { host: 'openai.api.my-domain.com', 'x-forwarded-for': ip, authorization: 'Bearer sk-own' } })

  const listed = await from('192.0.2.50')
  assert.equal(listed.statusCode, 403)
  await listed.body.dump()

  const ip = '203.0.113.7'
  for (let i = 0; i < Number(env.IP_ERROR_THRESHOLD); i++) {
    const res = await from(ip, '/not-an-api-path')
    assert.equal(res.statusCode, 404)
    await res.body.dump()
  }
  const blocked = await from(ip)
  assert.equal(blocked.statusCode, 403, 'ai-proxy recorded IPv4 clients but never blocked them')
  assert.equal((await blocked.body.json() as { error: { code: string } }).error.code, 'ip_blacklisted')
  const other = await from('203.0.113.8')
  assert.equal(other.statusCode, 200, 'other addresses are untouched')
  await other.body.dump()
  // ai-proxy answered preflights before its blacklist
  const preflight = await request(`${gw.url}/v1/models`, {
    method: 'OPTIONS', headers: { host: 'openai.api.my-domain.com', 'x-forwarded-for': ip, origin: env.GATEWAY_CORS_ORIGINS, 'access-control-request-method': 'GET' }
  })
  assert.equal(preflight.statusCode, 403, 'a blacklisted address gets no preflight answer')
  await preflight.body.dump()

  await until('black.json holds the new entry', () => readFileSync(join(dataDir, 'black.json'), 'utf8').includes(ip))
  const saved = JSON.parse(readFileSync(join(dataDir, 'black.json'), 'utf8')) as { entries: Array<{ ip: string }> }
  assert.deepEqual(saved.entries.map(e => e.ip).sort(), ['192.0.2.50', ip])
})

test('rate limit: RATE_LIMIT_REQUESTS per RATE_LIMIT_INTERVAL per address, enforced (ai-proxy\'s never was)', async (t) => {
  const { gw } = await setup(t)
  const max = Number(env.RATE_LIMIT_REQUESTS)
  const call = (ip: string) => request(`${gw.url}/v1/models`, { headers: { host: 'openai.api.my-domain.com', 'x-forwarded-for': ip, authorization: 'Bearer sk-own' } })
  for (let i = 0; i < max; i++) {
    const res = await call('198.51.100.4')
    assert.equal(res.statusCode, 200, `request ${i + 1}`)
    await res.body.dump()
  }
  const limited = await call('198.51.100.4')
  assert.equal(limited.statusCode, 429)
  assert.ok(Number(limited.headers['retry-after']) > 0)
  assert.equal((await limited.body.json() as { error: { code: string } }).error.code, 'rate_limit_exceeded')
  const other = await call('198.51.100.5')
  assert.equal(other.statusCode, 200)
  await other.body.dump()
})

test('the two host lines matter: without them claude.api.* goes to the default upstream; GATEWAY_DEFAULT_TARGET=none answers 404 for other hosts', async (t) => {
  const fallback = await startMock(t)
  const withoutHosts = Object.fromEntries(Object.entries(env).filter(([k]) => !k.endsWith('_API_HOST')))
  const gw = await startAsGuide(t, { argv: command.argv, env: { ...withoutHosts, BASE_PATH: tempDir(), GATEWAY_UPSTREAM_URL: fallback.url } })
  assert.deepEqual(Object.keys(gw.config.targets), [])
  const res = await request(`${gw.url}/v1/messages`, {
    method: 'POST',
    headers: { host: 'claude.api.my-domain.com', 'content-type': 'application/json', 'x-api-key': 'sk-ant-own' },
    body: JSON.stringify({ model: 'claude-3-5-sonnet-latest', max_tokens: 16, messages: [] })
  })
  await res.body.dump()
  assert.equal(fallback.count('/v1/messages'), 1, 'routed to the default upstream')

  const strict = await startAsGuide(t, { argv: command.argv, env: { ...env, BASE_PATH: tempDir(), GATEWAY_DEFAULT_TARGET: 'none' } })
  const other = await request(`${strict.url}/v1/models`, { headers: { host: 'api.other-domain.com', authorization: 'Bearer sk-own' } })
  assert.equal(other.statusCode, 404, 'ai-proxy: 404 不支持的API')
  await other.body.dump()
})
