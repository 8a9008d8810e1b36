/**
 * After a burst of requests and a quiet period the gateway runs one garbage collection (memory
 * back to the OS after load), once per burst; a few requests now and then never trigger it.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Pool } from 'undici'
import { setTimeout as sleep } from 'node:timers/promises'
import { startGateway } from './../helper.js'

const COLLECTED = 'quiet after a burst: memory collected'

test('one collection after a burst and a quiet period; none for a trickle', async (t) => {
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: 'mock', GATEWAY_IDLE_GC_MS: '300', GATEWAY_LOG_LEVEL: 'debug', GATEWAY_RATE_LIMIT_ENABLED: 'false' } })
  const pool = new Pool(gw.url, { connections: 8 })
  t.after(() => pool.close())
  const collections = (): number => gw.logs.filter((l) => l.includes(COLLECTED)).length

  const get = async (): Promise<void> => {
    const res = await pool.request({ path: '/healthz', method: 'GET' })
    await res.body.dump()
    assert.equal(res.statusCode, 200)
  }
  for (let i = 0; i < 10; i++) await get()
  await sleep(700)
  assert.equal(collections(), 0, 'ten requests are not a burst')

  const burst = Array.from({ length: 1100 }, get)
  await Promise.all(burst)
  for (let i = 0; i < 100 && collections() === 0; i++) await sleep(50)
  assert.equal(collections(), 1, 'collected once the burst was over')
  await sleep(700)
  assert.equal(collections(), 1, 'and not again while it stays quiet')
})
