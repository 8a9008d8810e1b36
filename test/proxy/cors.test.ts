/**
 * CORS: off unless origins are configured (an upstream's own CORS headers never pass); with
 * origins, the preflight the official SDKs' stream helpers cause is allowed, the headers browser
 * apps read are exposed, and a denied or blacklisted address gets its 403 for a preflight too.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { once } from 'node:events'
import OpenAI from 'openai'
import Anthropic from '@anthropic-ai/sdk'
import { request } from 'undici'
import { startGateway, startMock } from '../helper.js'
import { until } from '../poll.js'

const ORIGIN = 'https://app.example'

function preflight (url: string, requestHeaders: string, origin = ORIGIN): ReturnType<typeof request> {
  return request(url, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': requestHeaders }
  })
}

/** Lower-cased names of a comma-separated header list. */
function names (value: string | string[] | undefined): string[] {
  return String(value ?? '').split(',').map(h => h.trim().toLowerCase()).filter(Boolean)
}

/**
 * The header names a browser puts in `Access-Control-Request-Headers` for what the SDK sends:
 * every header it sets except `accept` (CORS-safelisted) and those the fetch layer owns.
 */
function preflightNames (sent: Headers): string[] {
  const owned = new Set(['accept', 'content-length', 'host', 'connection'])
  return [...sent.keys()].map(h => h.toLowerCase()).filter(h => !owned.has(h)).sort()
}

/** Runs `use` with an SDK whose fetch records the headers of each request it sends. */
function recordingFetch (): { fetch: typeof fetch, sent: Headers[] } {
  const sent: Headers[] = []
  return {
    sent,
    fetch: async (input, init) => {
      sent.push(new Headers(init?.headers))
      return await fetch(input, init)
    }
  }
}

test('CORS is off by default: no preflight answer of the gateway\'s own, and an upstream\'s CORS headers never pass', async (t) => {
  const upstream = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'access-control-allow-origin': '*', 'access-control-allow-headers': '*' })
    res.end('{"object":"list","data":[]}')
  })
  upstream.listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  t.after(() => upstream.close())
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as { port: number }).port}` } })
  assert.deepEqual(gw.config.cors.origins, [])

  const res = await preflight(`${gw.url}/v1/chat/completions`, 'authorization, content-type')
  assert.notEqual(res.statusCode, 204, 'not answered by a CORS policy')
  assert.equal(res.headers['access-control-allow-origin'], undefined, 'the upstream\'s answer to the preflight carries no CORS header either')
  assert.equal(res.headers['access-control-allow-headers'], undefined)
  await res.body.dump()
  const normal = await request(`${gw.url}/v1/models`, { headers: { origin: ORIGIN } })
  assert.equal(normal.statusCode, 200)
  assert.equal(normal.headers['access-control-allow-origin'], undefined)
  await normal.body.dump()
})

test('with origins configured, the preflight of the SDKs\' stream helpers is allowed and browser apps can read the ids and rate limits', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_CORS_ORIGINS: ORIGIN } })

  // what the official SDKs really send from their stream helpers (through the gateway, so the
  // calls succeed): the preflight a browser would make for them is built from these names
  const openaiCalls = recordingFetch()
  const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-browser-1', organization: 'org-1', project: 'proj-1', fetch: openaiCalls.fetch, dangerouslyAllowBrowser: true, maxRetries: 0 })
  const chat = openai.chat.completions.stream({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
  assert.ok((await chat.finalChatCompletion()).choices.length > 0)
  const anthropicCalls = recordingFetch()
  const anthropic = new Anthropic({ baseURL: gw.url, apiKey: 'sk-ant-browser-1', fetch: anthropicCalls.fetch, dangerouslyAllowBrowser: true, maxRetries: 0 })
  const message = anthropic.messages.stream({ model: 'claude-3-5-sonnet-latest', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] })
  assert.equal((await message.finalMessage()).type, 'message')

  const openaiNames = preflightNames(openaiCalls.sent[0])
  const anthropicNames = preflightNames(anthropicCalls.sent[0])
  for (const name of ['x-stainless-helper-method', 'x-stainless-retry-count', 'openai-organization', 'openai-project', 'authorization']) assert.ok(openaiNames.includes(name), name)
  for (const name of ['anthropic-dangerous-direct-browser-access', 'anthropic-version', 'x-stainless-helper-method']) assert.ok(anthropicNames.includes(name), name)

  for (const [sdk, requested] of [['openai', openaiNames], ['anthropic', anthropicNames]] as const) {
    const res = await preflight(`${gw.url}/v1/chat/completions`, requested.join(','))
    assert.equal(res.statusCode, 204, sdk)
    assert.equal(res.headers['access-control-allow-origin'], ORIGIN)
    const allowed = names(res.headers['access-control-allow-headers'])
    const missing = requested.filter(h => !allowed.includes(h))
    assert.deepEqual(missing, [], `${sdk}: every header the SDK sends is allowed`)
    assert.match(String(res.headers.vary), /Access-Control-Request-Headers/, 'the answer depends on the requested headers')
    await res.body.dump()
  }
  for (const name of ['x-api-key', 'api-key', 'anthropic-beta', 'openai-beta', 'idempotency-key', 'x-stainless-poll-helper', 'x-stainless-custom-poll-interval']) {
    const res = await preflight(`${gw.url}/v1/messages`, name)
    assert.ok(names(res.headers['access-control-allow-headers']).includes(name), name)
    await res.body.dump()
  }
  // only the x-stainless- prefix is open: other unknown headers are not allowed
  const other = await preflight(`${gw.url}/v1/messages`, 'x-evil-header')
  assert.ok(!names(other.headers['access-control-allow-headers']).includes('x-evil-header'))
  await other.body.dump()

  const answer = await request(`${gw.url}/v1/models`, { headers: { origin: ORIGIN, authorization: 'Bearer sk-browser-1' } })
  assert.equal(answer.headers['access-control-allow-origin'], ORIGIN)
  const exposed = names(answer.headers['access-control-expose-headers'])
  for (const name of ['x-request-id', 'x-upstream-request-id', 'request-id', 'retry-after', 'retry-after-ms', 'x-should-retry',
    'x-ratelimit-limit-requests', 'x-ratelimit-remaining-requests', 'x-ratelimit-reset-requests',
    'x-ratelimit-limit-tokens', 'x-ratelimit-remaining-tokens', 'x-ratelimit-reset-tokens',
    'anthropic-ratelimit-requests-remaining', 'anthropic-ratelimit-tokens-remaining', 'anthropic-ratelimit-input-tokens-reset', 'anthropic-ratelimit-output-tokens-limit']) {
    assert.ok(exposed.includes(name), `${name} is exposed`)
  }
  await answer.body.dump()

  const stranger = await preflight(`${gw.url}/v1/chat/completions`, 'authorization', 'https://other.example')
  assert.equal(stranger.headers['access-control-allow-origin'], undefined, 'an origin not listed gets no CORS answer')
  await stranger.body.dump()
})

test('"*" answers any origin; "none" turns CORS off', async (t) => {
  const mock = await startMock(t)
  const any = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_CORS_ORIGINS: '*' } })
  const res = await preflight(`${any.url}/v1/chat/completions`, 'authorization, content-type')
  assert.equal(res.statusCode, 204)
  assert.equal(res.headers['access-control-allow-origin'], '*')
  assert.match(String(res.headers['access-control-allow-methods']), /POST/)
  await res.body.dump()
  assert.equal(mock.count(), 0, 'a preflight never reaches the upstream')

  const off = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_CORS_ORIGINS: 'none' } })
  const plain = await request(`${off.url}/v1/models`, { headers: { origin: ORIGIN } })
  assert.equal(plain.headers['access-control-allow-origin'], undefined)
  await plain.body.dump()
})

test('a preflight from a denied or blacklisted address is refused with 403 like any other request', async (t) => {
  const mock = await startMock(t)
  const denied = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_CORS_ORIGINS: ORIGIN, GATEWAY_IP_DENY: '127.0.0.0/8' } })
  const res = await preflight(`${denied.url}/v1/chat/completions`, 'authorization, content-type')
  assert.equal(res.statusCode, 403)
  assert.equal(res.headers['access-control-allow-origin'], undefined)
  assert.equal((await res.body.json() as { error: { code: string } }).error.code, 'ip_not_allowed')

  const blacklisting = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_CORS_ORIGINS: ORIGIN, IP_ERROR_THRESHOLD: '2', GATEWAY_BLACKLIST_IGNORE: 'none' } })
  for (const path of ['/nope-1', '/nope-2']) {
    const miss = await request(`${blacklisting.url}${path}`)
    assert.equal(miss.statusCode, 404)
    await miss.body.dump()
  }
  await until('127.0.0.1 is blacklisted', () => blacklisting.app.blacklist.has('127.0.0.1'))
  const refused = await preflight(`${blacklisting.url}/v1/chat/completions`, 'authorization, content-type')
  assert.equal(refused.statusCode, 403)
  assert.equal(refused.headers['access-control-allow-origin'], undefined)
  assert.equal((await refused.body.json() as { error: { code: string } }).error.code, 'ip_blacklisted')
  assert.equal(mock.count(), 0)
})
