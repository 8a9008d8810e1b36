/**
 * One budget across replicas: gateways sharing a real `redis-server` (test/redis.ts).
 *
 * Prices make every request cost exactly what it reserved: `m-test` has free input and $1000
 * per million output tokens, requests ask for `max_tokens: 10` and the mock answers with as many
 * (`x-mock-chunks: 10`), so a request costs $0.01 reserved and $0.01 settled, and a $1 budget
 * admits exactly 100 requests whatever the interleaving.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import OpenAI from 'openai'
import Anthropic from '@anthropic-ai/sdk'
import { request } from 'undici'
import { startGateway, startMock, tempDir, type GatewayHandle } from '../helper.js'
import { until } from '../poll.js'
import { startRedis, startRedisClient } from '../redis.js'
import { RedisBudgetStore } from '../../src/budget/redis-store.js'
import { countersOf, holdsOf } from '../../src/budget/counters.js'
import type { MockUpstream } from '../../mock/types.js'

const ALICE = 'sk-alice-redis-budget-0000'
const ADMIN = 'admin-redis-budget-SECRET-01'
const PRICES = '{"m-test":{"input":0,"output":1000}}'
const keys = (usd: number): string => JSON.stringify([{ name: 'alice', key: ALICE, budgets: [{ usd, period: 'day' }] }])

interface View { spentUsd: number, reservedUsd: number, spentTokens: number }

async function budgetOf (gw: { url: string }): Promise<View> {
  const res = await request(`${gw.url}/v1/gateway/budget`, { headers: { authorization: `Bearer ${ALICE}` } })
  assert.equal(res.statusCode, 200)
  return ((await res.body.json()) as { budgets: View[] }).budgets[0]
}

function env (mock: MockUpstream, redisUrl: string, usd: number, extra: Record<string, string> = {}): Record<string, string> {
  return {
    GATEWAY_UPSTREAM_URL: mock.url,
    REDIS_URL: redisUrl,
    GATEWAY_CLIENT_KEYS: keys(usd),
    GATEWAY_PRICING_MODELS: PRICES,
    GATEWAY_RATE_LIMIT_ENABLED: 'false',
    GATEWAY_REDIS_COOL_DOWN_MS: '100',
    GATEWAY_ADMIN_TOKEN: ADMIN,
    ...extra
  }
}

test('two replicas, one budget: a few hundred concurrent SDK requests never spend more than it, and exactly as many are admitted as it holds', async (t) => {
  const mock = await startMock(t, { record: false })
  const redis = await startRedis(t)
  const a = await startGateway(t, { env: env(mock, redis.url, 1) })
  const b = await startGateway(t, { env: env(mock, redis.url, 1) })
  const headers = { 'x-mock-chunks': '10' }
  const clients = [a, b].map(gw => ({
    openai: new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: ALICE, maxRetries: 0, defaultHeaders: headers }),
    anthropic: new Anthropic({ baseURL: gw.url, apiKey: ALICE, maxRetries: 0, defaultHeaders: headers })
  }))
  const outcomes = await Promise.all(Array.from({ length: 300 }, async (_, i) => {
    const c = clients[i % 2]
    try {
      if (i % 4 < 2) await c.openai.chat.completions.create({ model: 'm-test', max_tokens: 10, messages: [{ role: 'user', content: `q${i}` }] })
      else await c.anthropic.messages.create({ model: 'm-test', max_tokens: 10, messages: [{ role: 'user', content: `q${i}` }] })
      return 'ok'
    } catch (err) {
      if (err instanceof OpenAI.RateLimitError && err.code === 'budget_exceeded') return 'refused'
      if (err instanceof Anthropic.RateLimitError && /Budget exceeded: key "alice"/.test((err.error as { error: { message: string } }).error.message)) return 'refused'
      throw err
    }
  }))
  const admitted = outcomes.filter(o => o === 'ok').length
  assert.equal(admitted, 100, 'a $1 budget holds exactly 100 requests of $0.01')
  assert.equal(outcomes.filter(o => o === 'refused').length, 200, 'every other one refused as a rate-limit error')
  await until('every reservation settled', async () => (await budgetOf(a)).reservedUsd === 0)
  const view = await budgetOf(b)
  assert.ok(Math.abs(view.spentUsd - 1) < 1e-9, `spent ${view.spentUsd}`)
  assert.ok(view.spentUsd <= 1)
  assert.equal(view.spentTokens, 100 * 20, 'each answer: 10 prompt tokens (one message) and 10 completion tokens')
  // /admin/spend on either replica reads the spend of both (usage totals in Redis)
  await until('both replicas\' usage totals are in Redis', async () => {
    const res = await request(`${a.url}/admin/spend?since=1h&group=key`, { headers: { authorization: `Bearer ${ADMIN}` } })
    const body = await res.body.json() as { source: string, totals: { costUsd: number, requests: number } }
    // the budget reads are requests too (free ones)
    return body.source === 'redis' && body.totals.requests >= 300 && Math.abs(body.totals.costUsd - 1) < 1e-9
  }, 200, 50)
})

test('an aborted stream settles its partial usage in Redis', async (t) => {
  const mock = await startMock(t)
  const redis = await startRedis(t)
  const gw = await startGateway(t, { env: env(mock, redis.url, 5) })
  const client = new Anthropic({ baseURL: gw.url, apiKey: ALICE, maxRetries: 0 })
  const controller = new AbortController()
  const stream = await client.messages.create({ model: 'm-test', max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'hi' }] },
    { headers: { 'x-mock-chunks': '40', 'x-mock-delay-ms': '30' }, signal: controller.signal })
  let deltas = 0
  try {
    for await (const event of stream) if (event.type === 'content_block_delta' && ++deltas === 2) controller.abort()
  } catch {
    // the abort surfaces as an error
  }
  await until('settled', async () => (await budgetOf(gw)).reservedUsd === 0)
  const view = await budgetOf(gw)
  // message_start: 10 input tokens (free) and 1 output token ($0.001) when the client left
  assert.ok(Math.abs(view.spentUsd - 0.001) < 1e-12, `spent ${view.spentUsd}`)
  assert.equal(view.spentTokens, 11)
})

const TSX = import.meta.resolve('tsx')
const CLI = ['--import', TSX, fileURLToPath(new URL('../../src/cli.ts', import.meta.url))]

async function startCli (t: TestContext, vars: Record<string, string>): Promise<{ child: ChildProcess, url: string }> {
  const child = spawn(process.execPath, CLI, { env: { PATH: process.env.PATH, GATEWAY_PORT: '0', ...vars }, cwd: tempDir(), stdio: ['ignore', 'pipe', 'ignore'] })
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const reader = createInterface({ input: child.stdout! })
  const url = await new Promise<string>((resolve, reject) => {
    reader.on('line', (line) => {
      const entry = JSON.parse(line) as Record<string, unknown>
      if (entry.msg === 'gateway listening') resolve(String(entry.url))
    })
    child.once('exit', () => reject(new Error('the gateway exited before listening')))
  })
  return { child, url }
}

test('a replica killed with SIGKILL mid-request: its reservation expires and the budget recovers', async (t) => {
  const mock = await startMock(t)
  const redis = await startRedis(t)
  // room for one request's worst case ($0.01) at a time
  const vars = env(mock, redis.url, 0.015, { GATEWAY_BUDGETS_RESERVATION_TTL_SECONDS: '1' })
  const doomed = await startCli(t, vars)
  const survivor = await startGateway(t, { env: vars })
  const body = JSON.stringify({ model: 'm-test', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'hi' }] })
  const post = async (url: string) => await request(`${url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${ALICE}`, 'content-type': 'application/json', 'x-mock-hold': 'never', 'x-mock-chunks': '10' }, body })
  const inFlight = await post(doomed.url)
  assert.equal(inFlight.statusCode, 200, 'admitted: its reservation is in Redis')
  inFlight.body.on('error', () => {})
  const exited = new Promise(resolve => doomed.child.once('exit', resolve))
  doomed.child.kill('SIGKILL')
  await exited
  const refused = await post(survivor.url)
  assert.equal(refused.statusCode, 429, 'the dead replica\'s reservation still holds the budget')
  await refused.body.dump()
  // it expires after its ttl (Redis' clock): the budget has room again
  await until('the reservation expired', async () => (await budgetOf(survivor)).reservedUsd === 0, 200, 25)
  const again = await request(`${survivor.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${ALICE}`, 'content-type': 'application/json', 'x-mock-chunks': '10' }, body: body.replace('"stream":true', '"stream":false') })
  assert.equal(again.statusCode, 200)
  await again.body.dump()
})

async function status (gw: GatewayHandle): Promise<{ status: number, code: string | null }> {
  const res = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ALICE}`, 'content-type': 'application/json', 'x-mock-chunks': '10' },
    body: JSON.stringify({ model: 'm-test', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] })
  })
  const text = await res.body.text()
  return { status: res.statusCode, code: res.statusCode === 200 ? null : (JSON.parse(text) as { error: { code: string } }).error.code }
}

test('Redis stopped: failMode closed refuses with 503 budget_unavailable, open serves and counts locally; both recover when it is back', async (t) => {
  const mock = await startMock(t)
  const redis = await startRedis(t)
  const closed = await startGateway(t, { env: env(mock, redis.url, 5) })
  const open = await startGateway(t, { env: env(mock, redis.url, 5, { GATEWAY_BUDGETS_FAIL_MODE: 'open' }) })
  assert.deepEqual(await status(closed), { status: 200, code: null })
  assert.deepEqual(await status(open), { status: 200, code: null })
  await until('both settled', async () => (await budgetOf(closed)).spentUsd === 0.02)

  await redis.stop()
  assert.deepEqual(await status(closed), { status: 503, code: 'budget_unavailable' })
  assert.deepEqual(await status(open), { status: 200, code: null })
  const degraded = await open.app.metrics?.text() ?? ''
  assert.match(degraded, /^gateway_budget_degraded 1$/m)
  assert.equal(open.logs.filter(l => l.includes('counting in this process only')).length, 1, 'warned once')

  await redis.start()
  await until('the closed replica admits again', async () => (await status(closed)).status === 200, 200, 50)
  await until('the open replica counts in Redis again', async () => (await status(open)).status === 200 && (await open.app.metrics?.text() ?? '').includes('gateway_budget_degraded 0'), 200, 50)
  // Redis came back empty (no persistence here): what is spent from now on is shared again
  await until('settled in redis', async () => (await budgetOf(closed)).spentUsd > 0)
})

test('the Redis store: all or nothing, settlements batched per turn and taken once, expiry on Redis\' clock', async (t) => {
  const redis = await startRedisClient(t)
  const store = new RedisBudgetStore(redis, { keyPrefix: 'unit:' })
  const now = Date.now()
  const holds = holdsOf([...countersOf('key', 'a', [{ usd: 1, period: 'day' }]), ...countersOf('target', 't', [{ tokens: 25, period: 'hour' }])], now)
  const charge = { nanos: 100_000_000, tokens: 10 }
  assert.equal((await store.reserve('r1', holds, charge, 60_000)).ok, true)
  assert.equal((await store.reserve('r2', holds, charge, 60_000)).ok, true)
  const third = await store.reserve('r3', holds, charge, 60_000)
  assert.equal(third.ok, false)
  assert.equal(!third.ok && third.refused.counter.scope, 'target', 'the token budget refused')
  assert.deepEqual((await store.read(holds))[0], { spentNanos: 0, spentTokens: 0, reservedNanos: 200_000_000, reservedTokens: 20 }, 'nothing of r3')
  // one turn: three settlements, one of them a replay, in one script
  await Promise.all([store.settle('r1', holds, { nanos: 5, tokens: 1 }), store.settle('r1', holds, { nanos: 5, tokens: 1 }), store.settle('r2', holds, { nanos: 7, tokens: 2 })])
  await store.settle('r1', holds, { nanos: 5, tokens: 1 })
  assert.deepEqual(await store.read(holds), [
    { spentNanos: 12, spentTokens: 3, reservedNanos: 0, reservedTokens: 0 },
    { spentNanos: 12, spentTokens: 3, reservedNanos: 0, reservedTokens: 0 }
  ])
  // a reservation nobody settles is given back after its ttl
  assert.equal((await store.reserve('r4', holds, charge, 50)).ok, true)
  await until('r4 expired', async () => (await store.read(holds))[0].reservedNanos === 0)
  // large amounts stay exact (Lua numbers are doubles and print large integers in exponent form:
  // amounts travel as strings); a $5M budget is 5e15 nano-USD, below 2^53
  const big = holdsOf(countersOf('key', 'big', [{ usd: 5_000_000, period: 'total' }]), now)
  assert.equal((await store.reserve('b1', big, { nanos: 5_000_000_000_000_001, tokens: 0 }, 60_000)).ok, false, 'above the limit')
  assert.equal((await store.reserve('b2', big, { nanos: 4_567_890_123_456_789, tokens: 0 }, 60_000)).ok, true)
  await store.settle('b2', big, { nanos: 4_567_890_123_456_789, tokens: 0 })
  assert.equal((await store.read(big))[0].spentNanos, 4_567_890_123_456_789)
})

test('a settlement Redis could not take is sent again once it is back', async (t) => {
  const mock = await startMock(t)
  const redis = await startRedis(t)
  const gw = await startGateway(t, { env: env(mock, redis.url, 5) })
  const res = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ALICE}`, 'content-type': 'application/json', 'x-mock-hold': 'late', 'x-mock-chunks': '10' },
    body: JSON.stringify({ model: 'm-test', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'hi' }] })
  })
  assert.equal(res.statusCode, 200, 'reserved in Redis')
  await redis.stop()
  mock.release('late')
  await res.body.dump()
  await until('the settlement failed', async () => ((await gw.app.metrics?.text()) ?? '').includes('gateway_budget_settle_failures_total 1'))
  // Redis comes back empty here (no persistence): the retried settlement adds what was spent
  await redis.start()
  await until('settled after all', async () => {
    const r = await request(`${gw.url}/v1/gateway/budget`, { headers: { authorization: `Bearer ${ALICE}` } })
    if (r.statusCode !== 200) {
      await r.body.dump()
      return false
    }
    const view = ((await r.body.json()) as { budgets: View[] }).budgets[0]
    return Math.abs(view.spentUsd - 0.01) < 1e-12
  }, 200, 50)
})
