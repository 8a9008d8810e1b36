/**
 * Choosing the target: Host (first label, seed 003's dash form, seed 002's prefixes), path prefix,
 * default target, 404 without one, seed 003's stage prefixes, per-key allowed targets.
 * Real HTTP with real Host headers; each target marks its requests with a configured header.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { startGateway, startMock } from '../helper.js'
import { startGatewayWithClient } from './support.js'

function yamlTargets (mockUrl: string, extra = ''): string {
  return `
upstream:
  url: ${mockUrl}
  headers: { x-which: default }
targets:
  oa:
    url: ${mockUrl}
    headers: { x-which: oa }
  my-team:
    url: ${mockUrl}
    headers: { x-which: my-team }
${extra}`
}

async function which (url: string, headers: Record<string, string> = {}): Promise<{ status: number, body: string }> {
  const res = await request(url, { headers })
  return { status: res.statusCode, body: await res.body.text() }
}

test('Host: first label, the oa-anything form, case, port; anything else → default target', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { yaml: yamlTargets(mock.url) })
  const cases: Array<[string, string]> = [
    ['oa.mydomain.com', 'oa'],
    ['oa-anything.mydomain.com', 'oa'],
    ['OA.MyDomain.com:8443', 'oa'],
    ['my-team.example.org', 'my-team'],
    ['my-team-eu.example.org', 'my-team'],
    ['other.mydomain.com', 'default'],
    ['oab.mydomain.com', 'default'],
    ['127.0.0.1:9001', 'default'],
    ['[::1]:9001', 'default']
  ]
  for (const [host, expected] of cases) {
    const r = await which(`${gw.url}/v1/models`, { host })
    assert.equal(r.status, 200, host)
    assert.equal(mock.requests.at(-1)!.headers['x-which'], expected, `Host ${host}`)
    assert.equal(mock.requests.at(-1)!.url, '/v1/models')
  }
})

test('path prefix /{target}/v1/… selects the target, wins over Host, keeps the query; unknown prefixes are 404', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { yaml: yamlTargets(mock.url) })
  assert.equal((await which(`${gw.url}/oa/v1/models?limit=2`)).status, 200)
  assert.equal(mock.requests.at(-1)!.url, '/v1/models?limit=2')
  assert.equal(mock.requests.at(-1)!.headers['x-which'], 'oa')

  await which(`${gw.url}/my-team/v1/models`, { host: 'oa.mydomain.com' })
  assert.equal(mock.requests.at(-1)!.headers['x-which'], 'my-team', 'the path beats the Host')

  await which(`${gw.url}/default/v1/models`, { host: 'oa.mydomain.com' })
  assert.equal(mock.requests.at(-1)!.headers['x-which'], 'default')

  const res = await request(`${gw.url}/oa/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [] })
  })
  assert.equal(res.statusCode, 200)
  await res.body.json()
  assert.equal(mock.requests.at(-1)!.path, '/v1/chat/completions')

  const before = mock.count()
  const unknown = await which(`${gw.url}/nope/v1/models`)
  assert.equal(unknown.status, 404)
  assert.equal(JSON.parse(unknown.body).error.code, 'not_found')
  assert.equal(mock.count(), before)
})

test('seed 003: OPENAI_PROXY_TARGETS and repeated -targets; key-suffix Host form', async (t) => {
  const a = await startMock(t)
  const b = await startMock(t)
  const c = await startMock(t)
  const gw = await startGateway(t, {
    env: { OPENAI_PROXY_TARGETS: `a:${a.url}`, GATEWAY_DEFAULT_TARGET: 'none' },
    argv: ['-targets', `b:${b.url}`, '-targets', `c:${c.url}`]
  })
  for (const [host, mock] of [['a-proxy.example.net', a], ['b.example.net', b], ['c-x.example.net:9001', c]] as const) {
    const r = await which(`${gw.url}/v1/models`, { host })
    assert.equal(r.status, 200, host)
    assert.equal(mock.count('/v1/models'), 1, host)
  }
})

test('seed 002: openai.api.* → OPENAI_API_HOST, claude.api.* → CLAUDE_API_HOST (Anthropic: x-api-key, version)', async (t) => {
  const openai = await startMock(t)
  const claude = await startMock(t)
  const gw = await startGateway(t, { env: { OPENAI_API_HOST: openai.url, CLAUDE_API_HOST: claude.url } })
  const o = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { host: 'openai.api.example.com:6543', 'content-type': 'application/json', authorization: 'Bearer sk-client-own-openai' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
  })
  assert.equal(o.statusCode, 200)
  await o.body.json()
  assert.equal(openai.requests.at(-1)!.headers.authorization, 'Bearer sk-client-own-openai', 'clients bring their own key')

  const c = await request(`${gw.url}/v1/messages`, {
    method: 'POST',
    headers: { host: 'claude.api.example.com', 'content-type': 'application/json', 'x-api-key': 'sk-ant-client-own', 'anthropic-beta': 'tools-2024-04-04' },
    body: JSON.stringify({ model: 'claude-3-5-sonnet-latest', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] })
  })
  assert.equal(c.statusCode, 200)
  assert.equal((await c.body.json() as { type: string }).type, 'message')
  const seen = claude.requests.at(-1)!.headers
  assert.equal(seen['x-api-key'], 'sk-ant-client-own')
  assert.equal(seen['anthropic-beta'], 'tools-2024-04-04', 'anthropic-beta passes through')
  assert.equal(seen['anthropic-version'], '2023-06-01', 'a missing anthropic-version gets the stable default')
  assert.equal(openai.count('/v1/messages'), 0)
})

test('no match and no default target → 404 JSON naming nothing internal; /healthz still answers', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { yaml: yamlTargets(mock.url, 'routing:\n  defaultTarget: none\n') })
  for (const path of ['/v1/models', '/v1/messages']) {
    const r = await which(`${gw.url}${path}`, { host: 'unknown.example.com' })
    assert.equal(r.status, 404)
    for (const secretish of [String(mock.port), '127.0.0.1', 'oa', 'my-team', 'default']) {
      assert.ok(!r.body.includes(secretish), `404 body must not mention ${secretish}: ${r.body}`)
    }
    const body = JSON.parse(r.body)
    if (path === '/v1/messages') assert.equal(body.error.type, 'not_found_error', 'Anthropic shape on /v1/messages')
    else assert.equal(body.error.code, 'not_found')
  }
  assert.equal(mock.count(), 0)
  assert.equal((await which(`${gw.url}/healthz`, { host: 'unknown.example.com' })).status, 200)
  assert.equal((await which(`${gw.url}/v1/models`, { host: 'oa.example.com' })).status, 200, 'Host routing still works')
})

test('seed 003 stage prefixes: stripped only as a leading segment and only when enabled', async (t) => {
  const mock = await startMock(t)
  const off = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  assert.equal((await which(`${off.url}/release/v1/models`)).status, 404, 'off by default')
  assert.equal(mock.count(), 0)

  const on = await startGateway(t, { yaml: yamlTargets(mock.url), env: { GATEWAY_STRIP_STAGE_PREFIXES: 'true' } })
  await which(`${on.url}/release/v1/models/test-model-release`)
  assert.equal(mock.requests.at(-1)!.url, '/v1/models/test-model-release', 'segments further in are untouched')
  await which(`${on.url}/test/v1/models?q=/test`)
  assert.equal(mock.requests.at(-1)!.url, '/v1/models?q=/test')
  await which(`${on.url}/release/oa/v1/models`)
  assert.equal(mock.requests.at(-1)!.url, '/v1/models')
  assert.equal(mock.requests.at(-1)!.headers['x-which'], 'oa', 'stage prefix, then target prefix')
  assert.equal((await which(`${on.url}/releases/v1/models`)).status, 404, 'only the whole segment')
})

test('per-key allowed targets: 403 in the client\'s SDK shape, nothing forwarded', async (t) => {
  const mock = await startMock(t)
  const gw = await startGatewayWithClient(t, { yaml: yamlTargets(mock.url) }, () => ({ name: 'team-a', allowedTargets: ['oa'] }))
  assert.equal((await which(`${gw.url}/v1/models`, { host: 'oa.example.com' })).status, 200)
  assert.equal((await which(`${gw.url}/oa/v1/models`)).status, 200)
  const before = mock.count()

  const denied = await which(`${gw.url}/v1/models`)
  assert.equal(denied.status, 403)
  assert.deepEqual(JSON.parse(denied.body).error, { message: 'This API key may not use this upstream', type: 'permission_error', code: 'target_not_allowed' })

  const anthropic = await request(`${gw.url}/my-team/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"claude-3-5-sonnet-latest","max_tokens":1,"messages":[]}' })
  assert.equal(anthropic.statusCode, 403)
  assert.equal((await anthropic.body.json() as { type: string, error: { type: string } }).error.type, 'permission_error')
  assert.equal(mock.count(), before, 'refused requests never reach the upstream')
  assert.match(gw.logText(), /"client":"team-a".*"status":403|"status":403.*"client":"team-a"/)
})
