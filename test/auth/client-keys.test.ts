/**
 * Client keys against the real gateway and mock, as the official SDKs see them: every header form
 * a seed's clients use, refusals shaped per API, hashed keys, disabled keys, allowed models, and
 * the pass-through mode.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { request } from 'undici'
import WebSocket from 'ws'
import { startGateway, startMock, type GatewayHandle } from '../helper.js'

const ALICE = 'ck-alice-0001-secret'
const BOB = 'ck-bob-0002-secret'
const UPSTREAM = 'sk-upstream-auth-9999'
const REFUSAL = { message: 'Invalid or missing authorization token', type: 'invalid_request_error', code: 'invalid_api_key' }
const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'hi' }] }

function openai (gw: GatewayHandle, apiKey: string): OpenAI {
  return new OpenAI({ baseURL: `${gw.url}/v1`, apiKey, maxRetries: 0 })
}

/** This SDK version sends its key as `Authorization: Bearer`; `xApiKey` makes it send the classic `x-api-key`. */
function anthropic (gw: GatewayHandle, key: string, xApiKey = false): Anthropic {
  return xApiKey
    ? new Anthropic({ baseURL: gw.url, apiKey: null, defaultHeaders: { 'x-api-key': key }, maxRetries: 0 })
    : new Anthropic({ baseURL: gw.url, apiKey: key, maxRetries: 0 })
}

async function statusOf (gw: GatewayHandle, path: string, headers: Record<string, string>): Promise<number> {
  const res = await request(`${gw.url}${path}`, { headers })
  await res.body.dump()
  return res.statusCode
}

function sha256 (text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

test('OpenAI SDK: a configured key is accepted, a wrong one gets 401 invalid_api_key with WWW-Authenticate', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_UPSTREAM_KEY: UPSTREAM, GATEWAY_CLIENT_KEYS: `${ALICE},${BOB}` } })

  const done = await openai(gw, ALICE).chat.completions.create(chat)
  assert.equal(done.object, 'chat.completion')
  assert.equal(mock.requests.at(-1)!.headers.authorization, `Bearer ${UPSTREAM}`, 'the client key is replaced by the upstream key')
  await openai(gw, BOB).models.list()

  const before = mock.count()
  await assert.rejects(openai(gw, 'ck-wrong-0003-secret').chat.completions.create(chat), (err: unknown) => {
    assert.ok(err instanceof OpenAI.AuthenticationError)
    assert.equal(err.status, 401)
    assert.deepEqual(err.error, REFUSAL)
    assert.equal(err.code, 'invalid_api_key')
    assert.equal(err.headers.get('www-authenticate'), 'Bearer')
    return true
  })
  // a prefix of a valid key, and the key with a suffix, are not the key
  await assert.rejects(openai(gw, ALICE.slice(0, -1)).models.list(), OpenAI.AuthenticationError)
  await assert.rejects(openai(gw, `${ALICE}x`).models.list(), OpenAI.AuthenticationError)
  assert.equal(mock.count(), before, 'refused requests never reach the upstream')

  const line = gw.logs.map(l => JSON.parse(l)).find(l => l.msg === 'request completed' && l.path === '/v1/chat/completions' && l.status === 200)
  assert.equal(line.client, 'key-1', 'logs name the key, never show it')
})

test('every header form is accepted: Bearer (any case), x-api-key, api-key; a missing key or another scheme is refused', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_CLIENT_KEYS: ALICE } })
  assert.equal(await statusOf(gw, '/v1/models', { authorization: `Bearer ${ALICE}` }), 200)
  assert.equal(await statusOf(gw, '/v1/models', { authorization: `bearer   ${ALICE}` }), 200)
  assert.equal(await statusOf(gw, '/v1/models/gpt-4o', { 'x-api-key': ALICE }), 200)
  assert.equal(await statusOf(gw, '/v1/models/gpt-4o-mini', { 'api-key': ALICE }), 200)

  const missing = await request(`${gw.url}/v1/models`)
  assert.equal(missing.statusCode, 401)
  assert.equal(missing.headers['www-authenticate'], 'Bearer')
  assert.deepEqual(await missing.body.json(), { error: REFUSAL })
  assert.equal(await statusOf(gw, '/v1/models', { authorization: `Basic ${Buffer.from(`u:${ALICE}`).toString('base64')}` }), 401)
  assert.equal(await statusOf(gw, '/v1/models', { authorization: ALICE }), 401, 'a bare Authorization value is not a bearer token')
  assert.equal(await statusOf(gw, '/v1/models', { 'x-api-key': '' }), 401)
  // a client carrying other credentials beside its gateway key is still recognised
  assert.equal(await statusOf(gw, '/v1/models', { authorization: 'Bearer sk-its-own-provider-key', 'x-api-key': ALICE }), 200)
  // unknown routes are not probeable without a key; public probes need none
  assert.equal(await statusOf(gw, '/nowhere', {}), 401)
  assert.equal(await statusOf(gw, '/healthz', {}), 200)
  assert.equal(await statusOf(gw, '/ping', {}), 200)
})

test('Anthropic SDK: its key accepted as Bearer and as x-api-key; a wrong key gets the Anthropic-shaped 401', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_CLIENT_KEYS: ALICE } })
  const params = { model: 'claude-3-5-sonnet-latest', max_tokens: 16, messages: [{ role: 'user' as const, content: 'hi' }] }
  const msg = await anthropic(gw, ALICE, true).messages.create(params)
  assert.equal(msg.type, 'message')
  assert.equal(mock.requests.at(-1)!.headers['x-api-key'], ALICE, 'no upstream key: the client credentials pass through')
  await anthropic(gw, ALICE).messages.create(params)
  assert.equal(mock.requests.at(-1)!.headers.authorization, `Bearer ${ALICE}`)

  for (const client of [anthropic(gw, 'sk-ant-wrong-key-0000', true), anthropic(gw, 'sk-ant-wrong-key-0000')]) {
    await assert.rejects(client.messages.create(params), (err: unknown) => {
      assert.ok(err instanceof Anthropic.AuthenticationError)
      assert.equal(err.status, 401)
      assert.deepEqual(err.error, { type: 'error', error: { type: 'authentication_error', message: REFUSAL.message } })
      assert.equal(err.headers.get('www-authenticate'), null)
      return true
    })
  }
  await assert.rejects(anthropic(gw, 'sk-ant-wrong-key-0000', true).messages.countTokens({ model: params.model, messages: params.messages }), Anthropic.AuthenticationError)
})

test('keys given as SHA-256 hashes; disabled keys refused; per-key upstream key (mapping); allowed models', async (t) => {
  const mock = await startMock(t)
  const yaml = `
upstream:
  url: ${mock.url}
  key: ${UPSTREAM}
auth:
  keys:
    - name: alice
      keySha256: ${sha256(ALICE).toUpperCase()}
    - name: bob
      key: ${BOB}
      upstreamKey: sk-upstream-for-bob-7777
      allowedModels: [gpt-4o-mini]
    - name: carol
      keySha256: ${sha256('ck-carol-0004-secret')}
      enabled: false
`
  const gw = await startGateway(t, { yaml })
  assert.ok(!gw.config.auth.keys.some(k => k.key === ALICE), 'the config holds no plain key for alice')

  await openai(gw, ALICE).chat.completions.create({ ...chat, model: 'gpt-4o' })
  assert.equal(mock.requests.at(-1)!.headers.authorization, `Bearer ${UPSTREAM}`)

  await openai(gw, BOB).chat.completions.create(chat)
  assert.equal(mock.requests.at(-1)!.headers.authorization, 'Bearer sk-upstream-for-bob-7777', 'bob is mapped to his upstream key')

  const before = mock.count()
  await assert.rejects(openai(gw, BOB).chat.completions.create({ ...chat, model: 'gpt-4o' }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.PermissionDeniedError)
    assert.equal(err.status, 403)
    assert.equal(err.code, 'model_not_allowed')
    assert.match(err.message, /gpt-4o/)
    return true
  })
  assert.equal(mock.count(), before, 'a refused model never reaches the upstream')
  const listed = await openai(gw, BOB).models.list()
  assert.deepEqual(listed.data.map(m => m.id), ['gpt-4o-mini'], 'bob only sees the models he may use')
  await assert.rejects(openai(gw, BOB).models.retrieve('gpt-4o'), OpenAI.PermissionDeniedError)

  await assert.rejects(openai(gw, 'ck-carol-0004-secret').models.list(), (err: unknown) => {
    assert.ok(err instanceof OpenAI.AuthenticationError)
    assert.deepEqual(err.error, REFUSAL, 'a disabled key looks like any refused key')
    return true
  })
})

test('seed 004 api_keys: client key mapped to its real key; unknown keys refused unless pass-through is set', async (t) => {
  const mock = await startMock(t)
  const yaml = `
base_url: ${mock.url}
api_keys:
  frontend-key-0001: sk-real-upstream-0001
`
  const gw = await startGateway(t, { yaml })
  await openai(gw, 'frontend-key-0001').chat.completions.create(chat)
  assert.equal(mock.requests.at(-1)!.headers.authorization, 'Bearer sk-real-upstream-0001')
  await assert.rejects(openai(gw, 'sk-someone-else-0002').chat.completions.create(chat), OpenAI.AuthenticationError)

  const passing = await startGateway(t, { yaml: `${yaml}\nauth:\n  passThroughUnknown: true\n`, env: { GATEWAY_UPSTREAM_KEY: UPSTREAM } })
  assert.ok(passing.logs.some(l => l.includes('passThroughUnknown')), 'the open setting is announced')
  await openai(passing, 'frontend-key-0001').chat.completions.create(chat)
  assert.equal(mock.requests.at(-1)!.headers.authorization, 'Bearer sk-real-upstream-0001')
  await openai(passing, 'sk-someone-else-0002').chat.completions.create(chat)
  assert.equal(mock.requests.at(-1)!.headers.authorization, 'Bearer sk-someone-else-0002', 'an unknown key goes upstream unchanged, never swapped for the gateway key')
  const res = await request(`${passing.url}/v1/models`)
  assert.equal(res.statusCode, 200)
  await res.body.dump()
  assert.equal(mock.requests.at(-1)!.headers.authorization, undefined, 'no key: nothing is added')
})

test('seed 000: -bearer defaults to -key, so clients must send the upstream key; -bearer sets its own', async (t) => {
  const mock = await startMock(t)
  const same = await startGateway(t, { argv: ['-api', mock.url, '-key', 'sk-seed000-up-1111'] })
  await openai(same, 'sk-seed000-up-1111').chat.completions.create(chat)
  assert.equal(mock.requests.at(-1)!.headers.authorization, 'Bearer sk-seed000-up-1111')
  await assert.rejects(openai(same, 'anything-else-123').chat.completions.create(chat), OpenAI.AuthenticationError)

  const own = await startGateway(t, { argv: ['-api', mock.url, '-key', 'sk-seed000-up-1111', '-bearer', 'client-bearer-2222'] })
  await openai(own, 'client-bearer-2222').chat.completions.create(chat)
  assert.equal(mock.requests.at(-1)!.headers.authorization, 'Bearer sk-seed000-up-1111')
  await assert.rejects(openai(own, 'sk-seed000-up-1111').chat.completions.create(chat), OpenAI.AuthenticationError)

  // the native upstream key does not turn into a client key
  const native = await startGateway(t, { argv: ['--upstream', mock.url, '--upstream-key', 'sk-native-up-3333'] })
  await openai(native, 'whatever-client-4444').models.list()
})

test('seed 001: AUTH_VALIDATION + ALLOWED_TOKENS + DEFAULT_AUTH_HEADER (with or without Bearer), header not forwarded', async (t) => {
  const mock = await startMock(t)
  const env = { TARGET_HOST: mock.url, AUTH_BEARER: UPSTREAM, AUTH_VALIDATION: 'true', ALLOWED_TOKENS: 'token-one-1111, token-two-2222', DEFAULT_AUTH_HEADER: 'X-Api-Token' }
  const gw = await startGateway(t, { env })
  const res = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-token': 'token-one-1111' }, body: JSON.stringify(chat) })
  assert.equal(res.statusCode, 200)
  await res.body.json()
  const seen = mock.requests.at(-1)!.headers
  assert.equal(seen['x-api-token'], undefined, 'the client-auth header never goes upstream')
  assert.equal(seen.authorization, `Bearer ${UPSTREAM}`)
  assert.equal(await statusOf(gw, '/v1/models', { 'x-api-token': 'Bearer token-two-2222' }), 200)
  assert.equal(await statusOf(gw, '/v1/models', { 'x-api-token': 'bearer token-two-2222' }), 200)
  assert.equal(await statusOf(gw, '/v1/models', { authorization: 'Bearer token-two-2222' }), 200, 'the standard headers still work')
  assert.equal(await statusOf(gw, '/v1/models', { 'x-api-token': 'token-three' }), 401)

  // AUTH_VALIDATION=false: seed 001 did not check tokens; neither do we, and we say so: with
  // AUTH_BEARER set, that is an open relay (everyone spends the upstream key)
  const open = await startGateway(t, { env: { ...env, AUTH_VALIDATION: 'false' } })
  assert.equal(await statusOf(open, '/v1/models', { 'x-api-token': 'token-three' }), 200)
  assert.equal(mock.requests.at(-1)!.headers['x-api-token'], undefined, 'still consumed, never forwarded')
  assert.equal(open.logs.filter(l => l.includes('(open-relay mode)')).length, 1)
})

test('no client keys configured: pass-through mode, announced by exactly one warn line', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url } })
  const warns = gw.logs.map(l => JSON.parse(l)).filter(l => l.level === 40 && /pass-through mode/.test(l.msg))
  assert.equal(warns.length, 1)
  await openai(gw, 'sk-any-key-at-all-5555').models.list()
  assert.equal(await statusOf(gw, '/v1/models', {}), 200)
  await openai(gw, 'sk-any-key-at-all-5555').models.list()
  assert.equal(gw.logs.map(l => JSON.parse(l)).filter(l => l.level === 40 && /pass-through mode/.test(l.msg)).length, 1, 'said once, at start')
})

/** Opens a WebSocket and reports the HTTP status of the refused or unanswered upgrade. */
function upgradeStatus (url: string, protocols: string[], headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers })
    ws.once('unexpected-response', (_req, res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
      ws.terminate()
    })
    ws.once('open', () => { ws.close(); resolve(101) })
    ws.once('error', reject)
  })
}

/** Opens an accepted session and resolves with the first event relayed from the upstream. */
function firstRelayedEvent (url: string, protocols: string[], headers: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers })
    ws.once('message', (data: Buffer) => {
      resolve((JSON.parse(data.toString()) as { type: string }).type)
      ws.close()
    })
    ws.once('unexpected-response', (_req, res) => { res.resume(); reject(new Error(`refused with ${String(res.statusCode)}`)) })
    ws.once('error', reject)
  })
}

test('WebSocket upgrades are authenticated, including the browser sub-protocol form', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, GATEWAY_CLIENT_KEYS: ALICE } })
  const url = `${gw.url.replace('http', 'ws')}/v1/realtime?model=gpt-4o-realtime-preview`

  assert.equal(await upgradeStatus(url, ['realtime', 'openai-insecure-api-key.ck-wrong-key-0000']), 401)
  assert.equal(await upgradeStatus(url, ['realtime']), 401)
  assert.equal(mock.count('/v1/realtime'), 0, 'refused upgrades never reach the upstream')

  // accepted: the session is relayed to the upstream, which greets it
  assert.equal(await firstRelayedEvent(url, ['realtime', `openai-insecure-api-key.${ALICE}`, 'openai-beta.realtime-v1']), 'session.created')
  assert.equal(mock.count('/v1/realtime'), 1)
  assert.equal(await firstRelayedEvent(url, ['realtime'], { authorization: `Bearer ${ALICE}` }), 'session.created')
  assert.equal(mock.count('/v1/realtime'), 2)
})
