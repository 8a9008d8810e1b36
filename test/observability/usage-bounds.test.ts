/**
 * The in-memory usage totals are bounded in (estimated) bytes, oldest buckets first, and adding
 * up a large table does not hold the event loop: other callbacks and other requests run while
 * `/admin/usage` works. No timing assertions: the order in which things happen is what counts.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { request } from 'undici'
import { startGateway } from '../helper.js'
import { MemoryUsageStore, groupKey, groupBytes, type UsageEntry } from '../../src/usage/store.js'
import { NO_TOKENS } from '../../src/usage/tokens.js'

const ADMIN = 'admin-bounds-SECRET-7788'
const MINUTE = 60_000

function entry (time: number, group: number): UsageEntry {
  return { time, client: `client-${group % 40}`, model: `model-${group}`, target: 'default', counts: { ...NO_TOKENS, promptTokens: 1, completionTokens: 2, totalTokens: 3 }, error: false }
}

/** `groups` distinct groups in each of `minutes` one-minute buckets ending now. */
function fill (store: { add: (e: UsageEntry) => void }, minutes: number, groups: number, now = Date.now()): number {
  const start = now - (now % MINUTE) - (minutes - 1) * MINUTE
  for (let m = 0; m < minutes; m++) for (let g = 0; g < groups; g++) store.add(entry(start + m * MINUTE, g))
  return start
}

/** A full collection, without starting the process with --expose-gc. */
function collectGarbage (): void {
  setFlagsFromString('--expose-gc')
  ;(runInNewContext('gc') as () => void)()
}

test('the memory store stays within its byte budget: the oldest minutes go first, the newest stay whole', async () => {
  const maxMemoryBytes = 2 * 1024 * 1024
  let told = 0
  const store = new MemoryUsageStore({ bucketSeconds: 60, retentionHours: 24, maxGroups: 1000, maxMemoryBytes, onBound: () => told++ })
  const perBucket = 500 * groupBytes(groupKey(entry(0, 100)))
  const now = Date.now()
  const start = fill(store, 120, 500, now)
  assert.ok(store.bytes <= maxMemoryBytes, `${store.bytes} estimated bytes held, bound ${maxMemoryBytes}`)
  assert.ok(store.bytes > maxMemoryBytes - 2 * perBucket, 'the budget is used, not emptied')
  assert.equal(told, 1, 'one warn line, not one per dropped bucket')
  const kept = store.bucketCount
  assert.ok(kept < 120 && kept > 1, `${kept} buckets kept`)

  // the newest minutes are whole, the oldest are gone
  const newest = await store.query({ since: now - (now % MINUTE) - (kept - 1) * MINUTE, until: now, group: null })
  assert.equal(newest.totals.requests, kept * 500)
  const oldest = await store.query({ since: start, until: start, group: null })
  assert.equal(oldest.totals.requests, 0)

  // the estimate is not an under-count of what the heap holds: measured from a store 4 times as large
  // (collected before each reading: garbage of the fill would otherwise count as held)
  const big = new MemoryUsageStore({ bucketSeconds: 60, retentionHours: 24, maxGroups: 1000 })
  collectGarbage()
  const heapBefore = process.memoryUsage().heapUsed
  fill(big, 60, 500, now)
  collectGarbage()
  const grown = process.memoryUsage().heapUsed - heapBefore
  assert.ok(big.bytes >= grown * 0.8, `estimated ${big.bytes} bytes, the heap grew ${grown}`)
})

test('a large query lets the event loop run: a callback scheduled after it starts runs before it ends', async () => {
  const store = new MemoryUsageStore({ bucketSeconds: 60, retentionHours: 24, maxGroups: 1000 })
  const now = Date.now()
  fill(store, 60, 500, now)
  const order: string[] = []
  const query = store.query({ since: now - 3_600_000, until: now, group: 'model' }).then((report) => {
    order.push('query')
    return report
  })
  setImmediate(() => order.push('other callback'))
  const report = await query
  assert.deepEqual(order, ['other callback', 'query'])
  assert.equal(report.totals.requests, 60 * 500)
  assert.equal(report.rows.length, 500)
})

test('/admin/usage over a day of totals: another request is answered while it adds up', async (t) => {
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: 'http://127.0.0.1:9', ADMIN_TOKEN: ADMIN, GATEWAY_USAGE_MAX_MEMORY_BYTES: String(256 * 1024 * 1024) } })
  const store = gw.app.usageStore as MemoryUsageStore
  fill(store, 1440, 100)
  let begun: () => void = () => {}
  const started = new Promise<void>((resolve) => { begun = resolve })
  const query = store.query.bind(store)
  store.query = async (q) => {
    begun()
    return query(q)
  }
  const order: string[] = []
  const usage = request(`${gw.url}/admin/usage?group=model`, { headers: { authorization: `Bearer ${ADMIN}` } })
    .then(async (res) => { order.push('usage'); return { status: res.statusCode, body: await res.body.json() as { totals: { requests: number } } } })
  await started
  const health = await request(`${gw.url}/healthz`)
  order.push('health')
  assert.equal(health.statusCode, 200)
  await health.body.dump()
  const answered = await usage
  assert.equal(answered.status, 200)
  assert.equal(answered.body.totals.requests, 1440 * 100)
  assert.deepEqual(order, ['health', 'usage'])
})
