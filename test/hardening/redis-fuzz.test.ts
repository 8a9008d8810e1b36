/**
 * Property-based fuzzing (fast-check) of what the gateway reads from a shared Redis: random JSON,
 * near-valid blacklist changes (addresses in any form, times out of any range) and text that is not
 * JSON at all, published on every channel the gateway subscribes to (asked of Redis itself with
 * PUBSUB CHANNELS, so a channel added later is fuzzed too) and stored in the shared blacklist hash.
 * Afterwards:
 * - the process is alive and serves (an exception thrown out of a Redis listener would end it);
 * - every blacklist entry is sane: an address in normal form, dates a Date can hold, a bounded reason;
 * - the admin API lists it.
 *
 * Seeded and bounded: the same payloads on every run. HARDENING_REDIS_FUZZ_RUNS raises the count;
 * HARDENING_FUZZ_SEED changes the seed.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { Redis } from 'ioredis'
import { request } from 'undici'
import { canonicalIp } from '../../src/lib/ip.js'
import type { BlacklistEntry } from '../../src/abuse/blacklist.js'
import { startGateway, startMock, type GatewayHandle } from '../helper.js'
import { until } from '../poll.js'
import { startRedis } from '../redis.js'

const RUNS = Number(process.env.HARDENING_REDIS_FUZZ_RUNS ?? 40)
const SEED = Number(process.env.HARDENING_FUZZ_SEED ?? 20261122)
const TOKEN = 'redis-fuzz-admin-token'
const PREFIX = 'llm-gateway:'
const HASH = `${PREFIX}blacklist`
const CLIENT = '192.0.2.200'

// ------------------------------------------------------------------------------- arbitraries

const ipArb = fc.oneof(
  fc.ipV4(), fc.ipV6(), fc.ipV4().map(ip => `::ffff:${ip}`), fc.ipV6().map(ip => `[${ip}]`),
  fc.constantFrom('fe80::1%eth0', '10.0.0.0/8', '1.2.3.4:80', '', ' ', '::', '0.0.0.0', '256.1.1.1'),
  fc.string({ maxLength: 40 })
)

/** Times around every edge: Date's range (±8.64e15 ms), negative, fractional, strings, wrong types. */
const timeArb = fc.oneof(
  fc.constantFrom(1e16, 9e15, 8.64e15, 8.64e15 + 1, -1, -8.64e15, 0, 1.5, Number.MAX_SAFE_INTEGER, Number.MAX_VALUE),
  fc.double(), fc.integer(), fc.date({ noInvalidDate: true }).map(d => d.toISOString()),
  fc.constantFrom('+275760-09-13T00:00:00.001Z', '+275760-09-13T00:00:00.000Z', '-000001-01-01T00:00:00Z', 'yesterday', '1e16', ''),
  fc.string({ maxLength: 30 }), fc.jsonValue({ maxDepth: 2 })
)

const entryArb = fc.record({
  ip: ipArb,
  addedAt: timeArb,
  expiresAt: fc.oneof(fc.constant(null), timeArb),
  reason: fc.oneof(fc.string({ maxLength: 40 }), fc.string({ minLength: 490, maxLength: 700 }), fc.jsonValue({ maxDepth: 2 }))
}, { requiredKeys: [] })

const changeArb = fc.record({
  op: fc.oneof({ weight: 5, arbitrary: fc.constantFrom('add', 'remove') }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) }),
  entry: fc.oneof({ weight: 5, arbitrary: entryArb }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) }),
  ip: fc.oneof(ipArb, fc.jsonValue({ maxDepth: 1 })),
  origin: fc.oneof(fc.uuid(), fc.jsonValue({ maxDepth: 1 }))
}, { requiredKeys: [] })

/** One payload as Redis carries it: text, JSON or not. */
const payloadArb = fc.oneof(
  { weight: 6, arbitrary: changeArb.map(c => JSON.stringify(c)) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map(v => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 80 }) },
  { weight: 1, arbitrary: fc.constantFrom('{"op":"add","entry":{"ip":"198.51.100.7","addedAt":1e16}}', '{', 'null', '[]', '"add"', '{"op":"add"}', '{"op":"remove"}') }
)

// ----------------------------------------------------------------------------------- checks

function assertSane (entries: readonly BlacklistEntry[]): void {
  for (const e of entries) {
    assert.equal(canonicalIp(e.ip), e.ip, `address in normal form: ${JSON.stringify(e.ip)}`)
    assert.ok(Number.isFinite(Date.parse(e.addedAt)), `addedAt is a date: ${e.addedAt}`)
    assert.ok(e.expiresAt === null || Number.isFinite(Date.parse(e.expiresAt)), `expiresAt is a date: ${e.expiresAt}`)
    assert.equal(typeof e.reason, 'string')
    assert.ok(e.reason.length <= 500)
  }
}

async function stillServes (gw: GatewayHandle): Promise<void> {
  // the test client stands behind a trusted proxy, as an address no payload can blacklist for long
  await gw.app.blacklist.remove(CLIENT)
  const models = await request(`${gw.url}/v1/models`, { headers: { 'x-forwarded-for': CLIENT } })
  await models.body.dump()
  assert.equal(models.statusCode, 200)
  const listed = await request(`${gw.url}/admin/blacklist`, { headers: { authorization: `Bearer ${TOKEN}`, 'x-forwarded-for': CLIENT } })
  const body = await listed.body.json() as { entries: BlacklistEntry[], count: number }
  assert.equal(listed.statusCode, 200)
  assertSane(body.entries)
  assert.equal(body.count, body.entries.length)
}

async function fuzzedGateway (t: Parameters<typeof startGateway>[0], syncIntervalMs: number): Promise<{ gw: GatewayHandle, direct: Redis }> {
  const mock = await startMock(t)
  const redis = await startRedis(t)
  const gw = await startGateway(t, {
    env: {
      GATEWAY_UPSTREAM_URL: mock.url,
      REDIS_URL: redis.url,
      GATEWAY_TRUSTED_PROXIES: '127.0.0.1',
      GATEWAY_ADMIN_TOKEN: TOKEN,
      GATEWAY_RATE_LIMIT_ENABLED: 'false',
      GATEWAY_REDIS_SYNC_INTERVAL_MS: String(syncIntervalMs)
    }
  })
  const direct = new Redis(redis.url)
  t.after(() => direct.disconnect())
  return { gw, direct }
}

// ------------------------------------------------------------------------------------ tests

test('random payloads on every channel the gateway subscribes to: it keeps serving and its blacklist stays sane', async (t) => {
  // no periodic re-read here: what the list holds came through the messages
  const { gw, direct } = await fuzzedGateway(t, 600_000)
  const channels = await direct.pubsub('CHANNELS', `${PREFIX}*`) as string[]
  assert.ok(channels.includes(`${PREFIX}blacklist:changes`), `the gateway subscribes: ${channels.join(', ')}`)

  let run = 0
  await fc.assert(fc.asyncProperty(fc.array(payloadArb, { minLength: 1, maxLength: 6 }), async (payloads) => {
    run++
    for (const channel of channels) {
      for (const payload of payloads) await direct.publish(channel, payload)
    }
    // messages on one channel arrive in order: once this one is applied, so were those before it
    const sentinel = `2001:db8:f::${run.toString(16)}`
    await direct.publish(`${PREFIX}blacklist:changes`, JSON.stringify({ op: 'add', entry: { ip: sentinel, reason: 'sentinel' } }))
    await until(`sentinel ${run} applied`, () => gw.app.blacklist.has(sentinel))
    assertSane(gw.app.blacklist.list())
  }), { seed: SEED, numRuns: RUNS, endOnFailure: true, includeErrorInReport: true })

  await stillServes(gw)
  const skipped = gw.logs.map(l => JSON.parse(l)).filter(l => l.msg === 'blacklist change message from redis skipped')
  assert.ok(skipped.length > 0, 'bad messages were seen, and each left a warn line')
  assert.ok(skipped.every(l => l.level === 40 && typeof l.problem === 'string'))
  assert.equal(gw.logs.filter(l => JSON.parse(l).level >= 50).length, 0, 'nothing logged at error level')
})

test('random values in the shared blacklist hash: every re-read skips what is invalid; the gateway keeps serving', async (t) => {
  const { gw, direct } = await fuzzedGateway(t, 100)
  let run = 0
  await fc.assert(fc.asyncProperty(fc.array(fc.tuple(fc.oneof(ipArb, fc.string({ maxLength: 20 })), payloadArb, entryArb), { minLength: 1, maxLength: 4 }), async (fields) => {
    run++
    for (const [field, payload, entry] of fields) {
      await direct.hset(HASH, field, payload)
      await direct.hset(HASH, `${field}#entry`, JSON.stringify(entry))
    }
    // a valid field written without a message: once it is in the list, a re-read took in the rest
    const sentinel = `2001:db8:e::${run.toString(16)}`
    await direct.hset(HASH, sentinel, JSON.stringify({ ip: sentinel, reason: 'sentinel' }))
    await until(`re-read ${run} done`, () => gw.app.blacklist.has(sentinel))
    assertSane(gw.app.blacklist.list())
  }), { seed: SEED + 1, numRuns: Math.max(1, Math.ceil(RUNS / 4)), endOnFailure: true, includeErrorInReport: true })

  await stillServes(gw)
  assert.equal(gw.logs.filter(l => JSON.parse(l).level >= 50).length, 0, 'nothing logged at error level')
})
