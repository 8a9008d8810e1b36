/**
 * Cooldowns of model group deployments: `allowedFails` failures within `cooldownMs` take a
 * deployment out of rotation for `cooldownMs` (or a longer Retry-After), here per process (shared
 * through Redis: cooldowns-redis.test.ts). `GET /admin/targets` shows it, and the metrics count
 * attempts, cooldowns and failovers.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { ADMIN, chat, deployment, failing, yaml } from './cooldown-support.js'
import { startGateway, startMock } from '../helper.js'

const CHAT = '/v1/chat/completions'

test('allowedFails within cooldownMs cool a deployment down: skipped until it ends; admin page and metrics say so', async (t) => {
  const bad = await failing(t, 500)
  const good = await startMock(t)
  const gw = await startGateway(t, { env: { ADMIN_TOKEN: ADMIN }, yaml: yaml(bad.url, good.url, '    allowedFails: 2\n    cooldownMs: 60000') })

  assert.deepEqual(await chat(gw, 'smart'), { status: 200, target: 'good', attempts: '2' })
  assert.equal((await deployment(gw, 'bad/m-bad')).healthy, true, 'one failure of two allowed')
  assert.deepEqual(await chat(gw, 'smart'), { status: 200, target: 'good', attempts: '2' })
  const cooled = await deployment(gw, 'bad/m-bad')
  assert.equal(cooled.healthy, false)
  const left = Date.parse(cooled.coolingUntil ?? '') - Date.now()
  assert.ok(left > 50_000 && left <= 60_000, `cooling for cooldownMs (${left} ms left)`)
  assert.deepEqual(cooled.recentFailures.map(f => f.errorClass), ['upstream_5xx', 'upstream_5xx'])
  assert.equal(cooled.inFlight, 0)

  // out of rotation: the next requests go straight to the next deployment
  assert.deepEqual(await chat(gw, 'smart'), { status: 200, target: 'good', attempts: '1' })
  assert.deepEqual(await chat(gw, 'smart'), { status: 200, target: 'good', attempts: '1' })
  assert.equal(bad.count(CHAT), 2)
  assert.equal(good.count(CHAT), 4)
  const goodView = await deployment(gw, 'good/gpt-4o')
  assert.equal(goodView.healthy, true)
  assert.equal(typeof goodView.latencyMs, 'number')

  const res = await request(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })
  const text = await res.body.text()
  assert.match(text, /gateway_upstream_attempts_total\{target="bad",outcome="upstream_5xx"\} 2/)
  assert.match(text, /gateway_upstream_attempts_total\{target="good",outcome="success"\} 4/)
  assert.match(text, /gateway_deployment_cooldowns_total\{deployment="bad\/m-bad"\} 1/)
  assert.match(text, /gateway_failovers_total\{group="smart"\} 2/)
  // the page is behind the admin token
  assert.equal((await request(`${gw.url}/admin/targets`)).statusCode, 401)
})

test('a Retry-After longer than cooldownMs is honoured', async (t) => {
  const bad = await failing(t, 429, { 'retry-after': '120' })
  const good = await startMock(t)
  const gw = await startGateway(t, { env: { ADMIN_TOKEN: ADMIN }, yaml: yaml(bad.url, good.url, '    allowedFails: 1\n    cooldownMs: 1000') })
  assert.deepEqual(await chat(gw, 'smart'), { status: 200, target: 'good', attempts: '2' })
  const left = Date.parse((await deployment(gw, 'bad/m-bad')).coolingUntil ?? '') - Date.now()
  assert.ok(left > 100_000 && left <= 120_000, `cooling for the Retry-After (${left} ms left)`)
})
