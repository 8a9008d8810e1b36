/**
 * A configured key goes only to the target it is configured for (src/routing/credentials.ts): a
 * client's mapped `upstreamKey` to the targets it names (a bare key: the default target), a pool
 * key and per-target headers to their own target. Elsewhere a mapped client is refused with 403
 * before anything is sent, and an `X-Target-Host` host that is no configured target gets no
 * configured key, over HTTP, on the realtime dial and for the model list alike. Every upstream
 * here is a real mock that records the credentials it got.
 */
import { test, type TestContext } from 'node:test'
import { writeFileSync } from 'node:fs'
import assert from 'node:assert/strict'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { request } from 'undici'
import { WebSocket } from 'ws'
import { startGateway, startMock, type GatewayHandle } from '../helper.js'
import { loadConfig } from '../../config/load.js'
import { secretsOf } from '../../config/secrets.js'
import { ConfigError } from '../../config/errors.js'
import type { MockUpstream } from '../../mock/upstream.js'
import { selfSigned } from '../tls.js'
import { tempDir } from '../tmp.js'

const ALICE = 'ck-alice-bare-0001' // bare upstreamKey: the default target only
const BOB = 'ck-bob-per-target-0002' // {default, claude}
const CAROL = 'ck-carol-no-map-0003' // no mapping: each target's own pool
const ALICE_UP = 'sk-alice-openai-only-1111'
const BOB_OA = 'sk-bob-openai-2222'
const BOB_ANT = 'sk-ant-bob-anthropic-3333'
const POOL_OA = 'sk-pool-openai-4444'
const POOL_ANT = 'sk-ant-pool-anthropic-5555'
const HEADER_OA = 'org-default-header-6666'
const HEADER_ANT = 'claude-header-value-7777'
const CONFIGURED = [ALICE_UP, BOB_OA, BOB_ANT, POOL_OA, POOL_ANT, HEADER_OA, HEADER_ANT]

interface Setup { gw: GatewayHandle, oa: MockUpstream, ant: MockUpstream, other: MockUpstream }

async function setup (t: TestContext): Promise<Setup> {
  const tls = selfSigned()
  const other = await startMock(t, { tls: { key: tls.key, cert: tls.cert } })
  const oa = await startMock(t)
  const ant = await startMock(t)
  const gw = await startGateway(t, {
    yaml: `
upstream:
  url: ${oa.url}
  provider: openai
  caFile: ${tls.certFile}
  keys: [${POOL_OA}]
  headers: { x-org: ${HEADER_OA} }
targets:
  claude:
    url: ${ant.url}
    provider: anthropic
    keys: [${POOL_ANT}]
    headers: { x-claude-extra: ${HEADER_ANT} }
routing:
  targetHeader:
    enabled: true
    allowHosts: ['127.0.0.1:${other.port}', '127.0.0.1:${ant.port}']
auth:
  keys:
    - { name: alice, key: ${ALICE}, upstreamKey: ${ALICE_UP} }
    - { name: bob, key: ${BOB}, upstreamKey: { default: ${BOB_OA}, claude: ${BOB_ANT} } }
    - { name: carol, key: ${CAROL} }
`
  })
  return { gw, oa, ant, other }
}

const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'hi' }] }
const message = { model: 'claude-3-5-sonnet-latest', max_tokens: 16, messages: [{ role: 'user' as const, content: 'hi' }] }

function openai (gw: GatewayHandle, key: string, headers: Record<string, string> = {}): OpenAI {
  return new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0, defaultHeaders: headers })
}

function claude (gw: GatewayHandle, key: string, headers: Record<string, string> = {}): Anthropic {
  return new Anthropic({ baseURL: `${gw.url}/claude`, apiKey: key, maxRetries: 0, defaultHeaders: headers })
}

/** No configured key or target header in anything a mock received. */
function assertNoConfiguredSecret (mock: MockUpstream, allowed: readonly string[] = []): void {
  for (const r of [...mock.requests, ...mock.wsConnections]) {
    const seen = JSON.stringify(r.headers)
    for (const secret of CONFIGURED) if (!allowed.includes(secret)) assert.ok(!seen.includes(secret), `${secret} reached ${r.url}`)
  }
}

test('a bare upstreamKey goes to the default target only; another provider\'s target refuses the client with 403, before anything is sent', async (t) => {
  const { gw, oa, ant } = await setup(t)
  await openai(gw, ALICE).chat.completions.create(chat)
  assert.equal(oa.requests.at(-1)!.headers.authorization, `Bearer ${ALICE_UP}`)

  await assert.rejects(claude(gw, ALICE).messages.create(message), (err: unknown) => {
    assert.ok(err instanceof Anthropic.PermissionDeniedError, String(err))
    assert.equal((err.error as { error: { type: string } }).error.type, 'permission_error')
    return true
  })
  const res = await request(`${gw.url}/claude/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${ALICE}`, 'content-type': 'application/json' }, body: JSON.stringify(chat) })
  assert.equal(res.statusCode, 403)
  // a Chat client on the Anthropic target is translated (docs/translation.md): it reads OpenAI's shape
  assert.deepEqual(await res.body.json(), { error: { type: 'permission_error', code: 'upstream_key_not_for_target', message: 'This API key has no upstream credentials for this upstream' } })
  // the model list of the other target: refused too, nothing fetched with her key
  const list = await request(`${gw.url}/claude/v1/models`, { headers: { 'x-api-key': ALICE, 'anthropic-version': '2023-06-01' } })
  assert.equal(list.statusCode, 403)
  await list.body.dump()
  assert.equal(ant.requests.length, 0, 'the Anthropic target never saw the OpenAI key')
  assert.match(gw.logText(), /"errorClass":"upstream_key_not_for_target"/)
})

test('a per-target upstreamKey sends each target its own key, in its provider\'s header; pool keys and headers stay with their target', async (t) => {
  const { gw, oa, ant } = await setup(t)
  await openai(gw, BOB).chat.completions.create(chat)
  assert.equal(oa.requests.at(-1)!.headers.authorization, `Bearer ${BOB_OA}`)
  assert.equal(oa.requests.at(-1)!.headers['x-org'], HEADER_OA)
  await claude(gw, BOB).messages.create(message)
  assert.equal(ant.requests.at(-1)!.headers['x-api-key'], BOB_ANT)
  assert.equal(ant.requests.at(-1)!.headers['x-claude-extra'], HEADER_ANT)
  const listed = await claude(gw, BOB).models.list()
  assert.ok(listed.data.length > 0)
  assert.equal(ant.requests.at(-1)!.path, '/v1/models')
  assert.equal(ant.requests.at(-1)!.headers['x-api-key'], BOB_ANT, 'the model list is fetched with the key for that target')

  // a client without a mapping: each target's own pool
  await claude(gw, CAROL).messages.create(message)
  assert.equal(ant.requests.at(-1)!.headers['x-api-key'], POOL_ANT)
  await openai(gw, CAROL).chat.completions.create(chat)
  assert.equal(oa.requests.at(-1)!.headers.authorization, `Bearer ${POOL_OA}`)

  assertNoConfiguredSecret(oa, [BOB_OA, POOL_OA, HEADER_OA])
  assertNoConfiguredSecret(ant, [BOB_ANT, POOL_ANT, HEADER_ANT])
})

test('X-Target-Host: a host that is no configured target never gets a mapped key (403), a pool key or target headers; a configured target\'s host keeps its own', async (t) => {
  const { gw, oa, ant, other } = await setup(t)
  const toOther = { 'x-target-host': `127.0.0.1:${other.port}` }
  for (const key of [ALICE, BOB]) {
    await assert.rejects(openai(gw, key, toOther).chat.completions.create(chat), (err: unknown) => {
      assert.ok(err instanceof OpenAI.PermissionDeniedError, String(err))
      assert.equal(err.code, 'upstream_key_not_for_target')
      return true
    })
    const list = await request(`${gw.url}/v1/models`, { headers: { ...toOther, authorization: `Bearer ${key}` } })
    assert.equal(list.statusCode, 403)
    await list.body.dump()
  }
  assert.equal(other.requests.length, 0, 'a mapped client reaches no other host')

  // a client without a mapping: its own credentials only
  await openai(gw, CAROL, toOther).chat.completions.create(chat)
  assert.equal(other.requests.at(-1)!.headers.authorization, `Bearer ${CAROL}`)
  assertNoConfiguredSecret(other)

  // naming the Anthropic target's own host keeps that target's keys and headers
  await openai(gw, BOB, { 'x-target-host': `127.0.0.1:${ant.port}` }).chat.completions.create(chat)
  assert.equal(ant.requests.at(-1)!.headers['x-api-key'], BOB_ANT)
  assertNoConfiguredSecret(ant, [BOB_ANT, POOL_ANT, HEADER_ANT])
  assertNoConfiguredSecret(oa, [ALICE_UP, BOB_OA, POOL_OA, HEADER_OA])
})

function openRealtime (url: string, headers: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['realtime'], { headers })
    ws.once('message', (data: Buffer) => { resolve((JSON.parse(data.toString()) as { type: string }).type); ws.close() })
    ws.once('unexpected-response', (_req, res) => { res.resume(); resolve(`refused ${String(res.statusCode)}`) })
    ws.once('error', reject)
  })
}

test('the realtime dial: a mapped key only to its target; an X-Target-Host host gets none and a mapped client is refused before the upgrade', async (t) => {
  const { gw, oa, ant, other } = await setup(t)
  const url = `${gw.url.replace('http', 'ws')}/v1/realtime?model=gpt-4o-realtime-preview`
  assert.equal(await openRealtime(url, { authorization: `Bearer ${ALICE}` }), 'session.created')
  assert.equal(oa.wsConnections.at(-1)!.headers.authorization, `Bearer ${ALICE_UP}`)

  const toOther = { 'x-target-host': `127.0.0.1:${other.port}` }
  assert.equal(await openRealtime(url, { ...toOther, authorization: `Bearer ${ALICE}` }), 'refused 403')
  assert.equal(await openRealtime(url.replace('/v1/', '/claude/v1/'), { authorization: `Bearer ${ALICE}` }), 'refused 403')
  assert.equal(other.wsConnections.length + ant.wsConnections.length, 0)

  assert.equal(await openRealtime(url, { ...toOther, authorization: `Bearer ${CAROL}` }), 'session.created')
  assert.equal(other.wsConnections.length, 1)
  assertNoConfiguredSecret(other)
})

test('an unknown caller let through by passThroughUnknown gets neither a pool key nor target headers: HTTP, model list and realtime', async (t) => {
  const oa = await startMock(t)
  const gw = await startGateway(t, {
    yaml: `
upstream:
  url: ${oa.url}
  keys: [${POOL_OA}]
  headers: { x-org: ${HEADER_OA} }
models:
  cacheTtlMs: 0
auth:
  passThroughUnknown: true
  keys:
    - { name: carol, key: ${CAROL} }
`
  })
  const own = 'sk-caller-own-key-8888'
  await openai(gw, own).chat.completions.create(chat)
  await openai(gw, own).models.list()
  assert.equal(await openRealtime(`${gw.url.replace('http', 'ws')}/v1/realtime?model=gpt-4o-realtime-preview`, { authorization: `Bearer ${own}` }), 'session.created')
  assert.deepEqual(oa.requests.map(r => r.path).filter(p => p !== '/v1/realtime'), ['/v1/chat/completions', '/v1/models'])
  assert.equal(oa.wsConnections.length, 1)
  for (const r of [...oa.requests, ...oa.wsConnections]) {
    assert.equal(r.headers.authorization, `Bearer ${own}`, r.url)
    assert.equal(r.headers['x-org'], undefined, r.url)
  }
  // a known client still gets both
  await openai(gw, CAROL).chat.completions.create(chat)
  assert.equal(oa.requests.at(-1)!.headers.authorization, `Bearer ${POOL_OA}`)
  assert.equal(oa.requests.at(-1)!.headers['x-org'], HEADER_OA)
})

function load (yaml: string, env: Record<string, string> = {}): ReturnType<typeof loadConfig>['config'] {
  const cwd = tempDir()
  const file = `${cwd}/gateway.yaml`
  writeFileSync(file, yaml)
  return loadConfig({ argv: ['--config', file], env, cwd }).config
}

test('config: the per-target form names configured targets; a bare key needs a default target; both forms are secrets', () => {
  const targets = 'upstream: { url: https://api.openai.com }\ntargets:\n  claude: { url: https://api.anthropic.com }\n'
  assert.throws(() => load(`${targets}auth:\n  keys: [{ name: a, key: ck-a-000001, upstreamKey: { claud: sk-x-0001 } }]\n`),
    (err: unknown) => err instanceof ConfigError && /upstreamKey: no target is named "claud": expected one of default, claude/.test(err.message) && !err.message.includes('sk-x-0001'))
  assert.throws(() => load(`${targets}routing: { defaultTarget: none }\nauth:\n  keys: [{ name: a, key: ck-a-000001, upstreamKey: sk-bare-0001 }]\n`),
    (err: unknown) => err instanceof ConfigError && /a bare key belongs to the default target, and routing.defaultTarget is none/.test(err.message) && !err.message.includes('sk-bare-0001'))
  // the env form takes the per-target map too
  const fromEnv = load(targets, { GATEWAY_CLIENT_KEYS: JSON.stringify([{ name: 'b', key: 'ck-b-000002', upstreamKey: { claude: 'sk-ant-env-0002' } }]) })
  assert.deepEqual(fromEnv.auth.keys[0].upstreamKey, { claude: 'sk-ant-env-0002' })
  assert.ok(secretsOf(fromEnv).includes('sk-ant-env-0002'))
})
