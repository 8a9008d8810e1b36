/**
 * Cooldowns shared through a real redis-server: a cooldown set by one replica is honoured by
 * another within one second, and the replicas' failures add up towards `allowedFails`.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startGateway, startMock } from '../helper.js'
import { startRedis } from '../redis.js'
import { until } from '../poll.js'
import { ADMIN, chat, deployment, failing, yaml } from './cooldown-support.js'

const CHAT = '/v1/chat/completions'

test('with Redis, a cooldown set by one replica is honoured by another within one second; failures add up across replicas', async (t) => {
  const redis = await startRedis(t)
  const bad = await failing(t, 503)
  const good = await startMock(t)
  const config = { env: { ADMIN_TOKEN: ADMIN, GATEWAY_REDIS_URL: redis.url }, yaml: yaml(bad.url, good.url, '    allowedFails: 2\n    cooldownMs: 60000') }
  const a = await startGateway(t, config)
  const b = await startGateway(t, config)

  // one failure on each replica: the second of the two allowed, counted in Redis
  assert.equal((await chat(a, 'smart')).attempts, '2')
  assert.equal((await chat(b, 'smart')).attempts, '2')
  // both replicas learn of the cooldown, within one second (bounded polling: 40 × 25 ms)
  await until('replica a sees the cooldown', async () => !(await deployment(a, 'bad/m-bad')).healthy, 40, 25)
  await until('replica b sees the cooldown', async () => !(await deployment(b, 'bad/m-bad')).healthy, 40, 25)
  assert.deepEqual(await chat(a, 'smart'), { status: 200, target: 'good', attempts: '1' })
  assert.deepEqual(await chat(b, 'smart'), { status: 200, target: 'good', attempts: '1' })
  assert.equal(bad.count(CHAT), 2)

  // a cooldown one replica starts alone (allowedFails 1) reaches the other
  const bad2 = await failing(t, 500)
  const config2 = { env: { ADMIN_TOKEN: ADMIN, GATEWAY_REDIS_URL: redis.url }, yaml: yaml(bad2.url, good.url, '    allowedFails: 1\n    cooldownMs: 60000').replace('m-bad', 'm-bad-2') }
  const c = await startGateway(t, config2)
  const d = await startGateway(t, config2)
  assert.equal((await chat(c, 'smart')).attempts, '2')
  await until('replica d sees the cooldown set by c', async () => !(await deployment(d, 'bad/m-bad-2')).healthy, 40, 25)
  assert.deepEqual(await chat(d, 'smart'), { status: 200, target: 'good', attempts: '1' })
  assert.equal(bad2.count(CHAT), 1)
})
