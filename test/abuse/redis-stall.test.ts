/**
 * A stalled Redis (SIGSTOP: the connection stays open, nothing is answered) against the breaker in
 * plugins/redis.ts. Without it every request would wait the command timeout once in the rate limit
 * and again in the context-id store; with it, after the first failure requests take the path they
 * have for a dead Redis without waiting, and after SIGCONT a PING closes the breaker and counting
 * in Redis resumes.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { startGateway, startMock, type GatewayHandle } from '../helper.js'
import { until } from '../poll.js'
import { startRedis } from '../redis.js'

const COMMAND_TIMEOUT_MS = 2000

async function chat (gw: GatewayHandle): Promise<{ status: number, remaining: string | undefined }> {
  const res = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }, { role: 'user', content: 'again' }] })
  })
  await res.body.dump()
  const remaining = res.headers['x-ratelimit-remaining-requests']
  return { status: res.statusCode, remaining: typeof remaining === 'string' ? remaining : undefined }
}

test('a stalled Redis costs one command timeout, not one per request; counting in Redis resumes after it answers again', async (t) => {
  const mock = await startMock(t)
  const redis = await startRedis(t)
  const gw = await startGateway(t, {
    env: {
      GATEWAY_UPSTREAM_URL: mock.url,
      REDIS_URL: redis.url,
      GATEWAY_REDIS_COMMAND_TIMEOUT_MS: String(COMMAND_TIMEOUT_MS),
      GATEWAY_REDIS_COOL_DOWN_MS: '100',
      RATE_LIMIT_REQUESTS: '1000',
      GATEWAY_CONTEXT_ID: 'true'
    }
  })
  const health = gw.app.redisHealth
  assert.deepEqual(await chat(gw), { status: 200, remaining: '999' }, 'counted in Redis')
  assert.equal(gw.app.contextIdStore?.kind, 'redis', 'conversations are kept in Redis too')

  redis.pause()
  t.after(() => { try { redis.resume() } catch {} })
  // the first request finds out: it waits one command timeout, then is let through (fail open)
  assert.deepEqual(await chat(gw), { status: 200, remaining: undefined })
  assert.equal(health.bypassed, true, 'the breaker is open')
  const unchecked = gw.app.rateLimitStats.unchecked

  // every request waiting even once would take the command timeout; ten take less than one
  const started = Date.now()
  for (let i = 0; i < 10; i++) assert.deepEqual(await chat(gw), { status: 200, remaining: undefined }, `request ${i}`)
  const elapsed = Date.now() - started
  assert.ok(elapsed < COMMAND_TIMEOUT_MS, `ten requests during the stall took ${elapsed} ms`)
  assert.equal(gw.app.rateLimitStats.unchecked, unchecked + 10, 'let through unchecked, as with a dead Redis')
  assert.equal(gw.logs.filter(l => /^redis unavailable/.test(JSON.parse(l).msg)).length, 1, 'one warn line for the stall')

  redis.resume()
  await until('a probe closed the breaker', () => !health.bypassed && health.available)
  assert.equal(gw.logs.filter(l => JSON.parse(l).msg === 'redis available again').length, 1)
  const after = await chat(gw)
  assert.equal(after.status, 200)
  assert.ok(after.remaining !== undefined && Number(after.remaining) < 999, `counted in Redis again (remaining ${after.remaining})`)
  assert.equal(gw.app.rateLimitStats.unchecked, unchecked + 10)
})
