/**
 * `GET /admin/usage`: totals and groups from the memory store after real traffic, the query
 * forms, and the admin token. The store itself: buckets, grouping by client key name, bounds.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { request } from 'undici'
import { startGateway, startMock } from '../helper.js'
import { MemoryUsageStore, type UsageEntry } from '../../src/usage/store.js'
import { NO_TOKENS } from '../../src/usage/tokens.js'
import { parseUsageQuery } from '../../src/usage/query.js'

const ADMIN = 'admin-usage-SECRET-5566'

interface UsageAnswer {
  object: string
  group: string | null
  source: string
  since: string
  until: string
  totals: Record<string, number>
  data: Array<Record<string, string | number>>
}

async function getUsage (url: string, query: string, token: string | null = ADMIN): Promise<{ status: number, body: UsageAnswer }> {
  const res = await request(`${url}/admin/usage${query}`, { headers: token !== null ? { authorization: `Bearer ${token}` } : {} })
  return { status: res.statusCode, body: await res.body.json() as UsageAnswer }
}

test('totals by model and target after traffic; bad queries are 400; the admin token guards it', async (t) => {
  const mock = await startMock(t)
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: mock.url, ADMIN_TOKEN: ADMIN } })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-any-client-1234567', maxRetries: 0 })
  const headers = { 'x-mock-chunks': '2' }
  await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'a' }] }, { headers })
  await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'b' }] }, { headers })
  const stream = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'c' }], stream: true }, { headers })
  for await (const _c of stream) { /* drain */ }
  await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-mock-status': '500' }, body: '{"model":"gpt-4o","messages":[]}' }).then(r => r.body.dump())

  // the last request is counted when the server saw it end
  let answer = await getUsage(gw.url, '?group=model&since=1h')
  for (let i = 0; i < 200 && answer.body.totals.requests !== 4; i++) {
    await new Promise(resolve => setTimeout(resolve, 10))
    answer = await getUsage(gw.url, '?group=model&since=1h')
  }
  assert.equal(answer.status, 200)
  assert.equal(answer.body.object, 'usage')
  assert.equal(answer.body.source, 'memory')
  assert.deepEqual(answer.body.totals, { requests: 4, errors: 1, promptTokens: 30, completionTokens: 6, totalTokens: 36, cacheReadTokens: 0, cacheCreationTokens: 0 })
  assert.deepEqual(answer.body.data, [
    { model: 'gpt-4o-mini', requests: 2, errors: 0, promptTokens: 20, completionTokens: 4, totalTokens: 24, cacheReadTokens: 0, cacheCreationTokens: 0 },
    { model: 'gpt-4o', requests: 2, errors: 1, promptTokens: 10, completionTokens: 2, totalTokens: 12, cacheReadTokens: 0, cacheCreationTokens: 0 }
  ])

  const byTarget = await getUsage(gw.url, '?group=target')
  assert.deepEqual(byTarget.body.data.map(r => [r.target, r.requests]), [['default', 4]])
  const byKey = await getUsage(gw.url, '?group=key')
  assert.deepEqual(byKey.body.data.map(r => [r.key, r.requests]), [['anonymous', 4]])
  const totalsOnly = await getUsage(gw.url, '')
  assert.equal(totalsOnly.body.group, null)
  assert.deepEqual(totalsOnly.body.data, [])
  assert.equal(totalsOnly.body.totals.requests, 4)
  const future = await getUsage(gw.url, `?since=${Math.floor(Date.now() / 1000) + 3600}`)
  assert.equal(future.body.totals.requests, 0)

  const bad = await getUsage(gw.url, '?since=yesterday-ish')
  assert.equal(bad.status, 400)
  assert.match(JSON.stringify(bad.body), /since=/)
  assert.equal((await getUsage(gw.url, '?group=colour')).status, 400)
  assert.equal((await getUsage(gw.url, '?since=1h&until=2h')).status, 400)
  assert.equal((await getUsage(gw.url, '', null)).status, 401)
  assert.equal((await getUsage(gw.url, '', 'not-the-token')).status, 401)
})

test('without an admin token the usage API is not there', async (t) => {
  const gw = await startGateway(t, { env: { GATEWAY_UPSTREAM_URL: 'http://127.0.0.1:9' } })
  assert.equal((await getUsage(gw.url, '')).status, 404)
})

function entry (over: Partial<UsageEntry>): UsageEntry {
  return { time: 1_700_000_000_000, client: 'alice', model: 'm1', target: 't1', counts: { ...NO_TOKENS, promptTokens: 1, completionTokens: 2, totalTokens: 3 }, error: false, ...over }
}

test('memory store: grouping by client key name, time range by bucket, retention and group bounds', async () => {
  const store = new MemoryUsageStore({ bucketSeconds: 60, retentionHours: 1, maxGroups: 3 })
  const t0 = 1_700_000_000_000 - (1_700_000_000_000 % 60_000)
  store.add(entry({ time: t0 }))
  store.add(entry({ time: t0 + 1000, client: 'bob' }))
  store.add(entry({ time: t0 + 61_000, client: 'bob', model: 'm2', error: true }))
  store.add(entry({ time: t0 + 62_000, client: null }))
  const all = await store.query({ since: t0, until: t0 + 120_000, group: 'key' })
  assert.deepEqual(all.rows.map(r => [r.name, r.totals.requests, r.totals.totalTokens]), [['bob', 2, 6], ['alice', 1, 3], ['anonymous', 1, 3]])
  assert.equal(all.totals.errors, 1)
  const later = await store.query({ since: t0 + 60_000, until: t0 + 120_000, group: 'model' })
  assert.deepEqual(later.rows.map(r => [r.name, r.totals.requests]), [['m1', 1], ['m2', 1]])

  // a fourth distinct group in one bucket folds into "other"; nothing is lost
  for (const model of ['a', 'b', 'c', 'd']) store.add(entry({ time: t0 + 180_000, model }))
  const folded = await store.query({ since: t0 + 180_000, until: t0 + 180_000, group: 'model' })
  assert.deepEqual(folded.rows.map(r => r.name).sort(), ['a', 'b', 'c', 'other'])
  assert.equal(folded.totals.requests, 4)

  // a bucket past the retention goes once a newer bucket starts
  store.add(entry({ time: t0 + 2 * 3_600_000 }))
  const old = await store.query({ since: t0, until: t0 + 3_600_000, group: null })
  assert.equal(old.totals.requests, 0)
})

test('query forms: ISO, epoch seconds and ms, durations; clamped to the retention', () => {
  const now = Date.parse('2025-01-02T00:00:00Z')
  const day = 86_400_000
  assert.equal(parseUsageQuery({ since: '2025-01-01T12:00:00Z' }, now, day).since, Date.parse('2025-01-01T12:00:00Z'))
  assert.equal(parseUsageQuery({ since: String((now - 1000) / 1000) }, now, day).since, now - 1000)
  assert.equal(parseUsageQuery({ since: String(now - 5) }, now, day).since, now - 5)
  assert.equal(parseUsageQuery({ since: '15m' }, now, day).since, now - 15 * 60_000)
  assert.equal(parseUsageQuery({ since: '30d' }, now, day).since, now - day, 'nothing older than the retention exists')
  assert.equal(parseUsageQuery({}, now, day).since, now - day)
  assert.equal(parseUsageQuery({ group: 'client' }, now, day).group, 'key')
  assert.throws(() => parseUsageQuery({ since: ['1h', '2h'] }, now, day), /more than once/)
})
