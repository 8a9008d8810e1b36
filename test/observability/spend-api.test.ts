/**
 * `GET /admin/spend`: cost and tokens summed over a time range, grouped by key, model, target or
 * day, from the same store as `/admin/usage`; unpriced requests counted apart, never as $0.
 * Hand figures (USD per million tokens): gpt-4o-mini input 0.15, output 0.6 (@pydantic/genai-prices 0.1.8);
 * `m-test` input 1000, output 2000 (pricing.models). The mock answers 10 prompt tokens per message.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { startGateway, startMock } from '../helper.js'
import { until } from '../poll.js'
import { MemoryUsageStore } from '../../src/usage/store.js'
import { NO_TOKENS } from '../../src/usage/tokens.js'

const ADMIN = 'admin-spend-SECRET-7788'
const KEYS = JSON.stringify([{ name: 'alice', key: 'sk-alice-spend-0001' }, { name: 'bob', key: 'sk-bob-spend-0002' }])

interface SpendAnswer {
  object: string
  group: string | null
  source: string
  totals: Record<string, number>
  data: Array<Record<string, string | number>>
}

async function spend (url: string, query: string, token = ADMIN): Promise<{ status: number, body: SpendAnswer }> {
  const res = await request(`${url}/admin/spend${query}`, { headers: { authorization: `Bearer ${token}` } })
  return { status: res.statusCode, body: await res.body.json() as SpendAnswer }
}

function near (a: unknown, b: number, what: string): void {
  assert.ok(typeof a === 'number' && Math.abs(a - b) < 1e-12, `${what}: ${String(a)} ≠ ${b}`)
}

test('spend by key, model and day after real traffic; unpriced requests apart; the admin token guards it', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, ADMIN_TOKEN: ADMIN, GATEWAY_CLIENT_KEYS: KEYS, GATEWAY_PRICING_MODELS: '{"m-test":{"input":1000,"output":2000}}' } })
  const call = async (key: string, model: string): Promise<void> => {
    const res = await request(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'x-mock-chunks': '4' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'x' }] })
    })
    assert.equal(res.statusCode, 200)
    await res.body.dump()
  }
  await call('sk-alice-spend-0001', 'gpt-4o-mini')
  await call('sk-alice-spend-0001', 'm-test')
  await call('sk-bob-spend-0002', 'm-test')
  await call('sk-bob-spend-0002', 'private-llm')
  await until('four requests counted', async () => (await spend(gw.url, '?since=1h')).body.totals.requests === 4)

  const mini = (10 * 0.15 + 4 * 0.6) / 1e6
  const mtest = 10 * 0.001 + 4 * 0.002
  const byKey = await spend(gw.url, '?since=1h&group=key')
  assert.equal(byKey.status, 200)
  assert.equal(byKey.body.object, 'spend')
  assert.equal(byKey.body.source, 'memory')
  near(byKey.body.totals.costUsd, mini + 2 * mtest, 'total')
  assert.equal(byKey.body.totals.unpricedRequests, 1)
  assert.equal(byKey.body.totals.totalTokens, 4 * 14)
  assert.deepEqual(byKey.body.data.map(r => r.key), ['alice', 'bob'], 'sorted by cost')
  near(byKey.body.data[0].costUsd, mini + mtest, 'alice')
  near(byKey.body.data[1].costUsd, mtest, 'bob')
  assert.equal(byKey.body.data[1].unpricedRequests, 1)

  const byModel = await spend(gw.url, '?since=1h&group=model')
  assert.deepEqual(byModel.body.data.map(r => [r.model, r.requests]), [['m-test', 2], ['gpt-4o-mini', 1], ['private-llm', 1]])
  near(byModel.body.data.find(r => r.model === 'private-llm')?.costUsd, 0, 'no price: nothing added')

  const byDay = await spend(gw.url, '?since=1h&group=day')
  assert.deepEqual(byDay.body.data.map(r => r.day), [new Date().toISOString().slice(0, 10)].slice(0, byDay.body.data.length))
  const byTarget = await spend(gw.url, '?since=1h&group=target')
  assert.deepEqual(byTarget.body.data.map(r => r.target), ['default'])

  assert.equal((await spend(gw.url, '?group=week')).status, 400)
  assert.equal((await spend(gw.url, '', 'wrong')).status, 401)
  // /admin/usage keeps its token totals
  const usage = await request(`${gw.url}/admin/usage?since=1h`, { headers: { authorization: `Bearer ${ADMIN}` } })
  assert.ok(!('costNanos' in ((await usage.body.json()) as { totals: object }).totals))
})

test('group by day: each UTC day of the range is its own row', async () => {
  const store = new MemoryUsageStore({ bucketSeconds: 3600, retentionHours: 72, maxGroups: 10 })
  const day1 = Date.parse('2026-12-04T23:30:00Z')
  const day2 = Date.parse('2026-12-05T00:30:00Z')
  for (const [time, cost] of [[day1, 0.5], [day2, 0.25], [day2, null]] as const) {
    store.add({ time, client: 'a', model: 'm', target: 't', counts: { ...NO_TOKENS, totalTokens: 1 }, error: false, costUsd: cost })
  }
  const report = await store.query({ since: day1 - 3_600_000, until: day2 + 3_600_000, group: 'day' })
  assert.deepEqual(report.rows.map(r => [r.name, r.totals.costNanos, r.totals.unpricedRequests]).sort(), [['2026-12-04', 500_000_000, 0], ['2026-12-05', 250_000_000, 1]])
})
