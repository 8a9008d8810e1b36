/**
 * Budgets in Redis, so that any number of replicas enforce one budget: a reservation and a
 * settlement are each one Lua script, atomic over every budget the request falls under.
 *
 * Layout, per counter and window (`<prefix>budget:<scope>:<name>:<period>:<window start>`):
 * - the hash itself: `sn`/`st` spent nano-USD and tokens, `rn`/`rt` reserved;
 * - `…:r`, a sorted set of the live reservation ids by expiry time (Redis' own clock);
 * - `…:a`, a hash of reservation id → `<nanos>:<tokens>` reserved.
 * Every reservation first gives back the expired ones (a replica that died mid-request), so a
 * budget recovers by itself. The keys expire a day after their window ends (`total` never).
 * `<prefix>budget:settled:<id>` makes a settlement happen once.
 *
 * Amounts go to HINCRBY as the strings they came in: Lua's numbers are doubles and print large
 * integers in exponent form. All keys of a request are used in one script, so in a Redis
 * Cluster they would need one hash slot; the gateway uses one Redis (or a primary with replicas).
 */
import type { Redis } from 'ioredis'
import { type BudgetStore, type Charge, type CounterState, type Hold, type ReserveResult } from './store.js'

const GIVE_BACK = `
local function giveBack (h, z, a, now)
  local expired = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  for _, rid in ipairs(expired) do
    local amt = redis.call('HGET', a, rid)
    if amt then
      local sep = string.find(amt, ':')
      local n, t = string.sub(amt, 1, sep - 1), string.sub(amt, sep + 1)
      if n ~= '0' then redis.call('HINCRBY', h, 'rn', '-' .. n) end
      if t ~= '0' then redis.call('HINCRBY', h, 'rt', '-' .. t) end
      redis.call('HDEL', a, rid)
    end
  end
  if #expired > 0 then redis.call('ZREMRANGEBYSCORE', z, '-inf', now) end
end
`

// Reservations made in one turn of the event loop, in one script, each all or nothing, in order.
// ARGV[1]: how many; then per reservation: id, ttlMs, nanos, tokens, holds, then per hold
// limitNanos, limitTokens (-1: none), keyTtlMs (-1: none). KEYS: per reservation, per hold h, z, a.
// Answer, per reservation: 0 and four numbers per hold (spent and reserved after it), or the
// 1-based index of the hold that refused it.
const RESERVE = GIVE_BACK + `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
local ki, ai = 1, 2
for r = 1, tonumber(ARGV[1]) do
  local id, ttl, sn_, st_ = ARGV[ai], tonumber(ARGV[ai + 1]), ARGV[ai + 2], ARGV[ai + 3]
  local cn, ct, holds = tonumber(sn_), tonumber(st_), tonumber(ARGV[ai + 4])
  ai = ai + 5
  local states = {}
  local refused = 0
  for i = 1, holds do
    local k, a = ki + 3 * (i - 1), ai + 3 * (i - 1)
    giveBack(KEYS[k], KEYS[k + 1], KEYS[k + 2], now)
    local v = redis.call('HMGET', KEYS[k], 'sn', 'st', 'rn', 'rt')
    local sn, st, rn, rt = tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0, tonumber(v[4]) or 0
    local ln, lt = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
    if (ln >= 0 and (sn + rn >= ln or sn + rn + cn > ln)) or (lt >= 0 and (st + rt >= lt or st + rt + ct > lt)) then
      refused = i
      break
    end
    states[i] = { sn, st, rn, rt }
  end
  if refused > 0 then
    table.insert(out, refused)
  else
    table.insert(out, 0)
    for i = 1, holds do
      local k, a = ki + 3 * (i - 1), ai + 3 * (i - 1)
      local h, z, am = KEYS[k], KEYS[k + 1], KEYS[k + 2]
      if sn_ ~= '0' then redis.call('HINCRBY', h, 'rn', sn_) end
      if st_ ~= '0' then redis.call('HINCRBY', h, 'rt', st_) end
      redis.call('ZADD', z, now + ttl, id)
      redis.call('HSET', am, id, sn_ .. ':' .. st_)
      local kt = tonumber(ARGV[a + 2])
      if kt > 0 then
        redis.call('PEXPIRE', h, kt)
        redis.call('PEXPIRE', z, kt)
        redis.call('PEXPIRE', am, kt)
      end
      local s = states[i]
      table.insert(out, s[1])
      table.insert(out, s[2])
      table.insert(out, s[3] + cn)
      table.insert(out, s[4] + ct)
    end
  end
  ki = ki + 3 * holds
  ai = ai + 3 * holds
end
return out
`

// Settlements made in one turn of the event loop, in one script (one command for many requests).
// ARGV[1]: how many; then per settlement: id, nanos, tokens, markerTtlMs, holds, then a keyTtlMs per hold.
// KEYS: per settlement its settled marker, then per hold h, z, a.
const SETTLE = `
local ki, ai = 1, 2
for s = 1, tonumber(ARGV[1]) do
  local id, n, t, mttl, holds = ARGV[ai], ARGV[ai + 1], ARGV[ai + 2], ARGV[ai + 3], tonumber(ARGV[ai + 4])
  ai = ai + 5
  local fresh = redis.call('SET', KEYS[ki], '1', 'NX', 'PX', mttl)
  ki = ki + 1
  for i = 1, holds do
    if fresh then
      local h, z, a = KEYS[ki], KEYS[ki + 1], KEYS[ki + 2]
      local amt = redis.call('HGET', a, id)
      if amt then
        local sep = string.find(amt, ':')
        local rn, rt = string.sub(amt, 1, sep - 1), string.sub(amt, sep + 1)
        if rn ~= '0' then redis.call('HINCRBY', h, 'rn', '-' .. rn) end
        if rt ~= '0' then redis.call('HINCRBY', h, 'rt', '-' .. rt) end
        redis.call('HDEL', a, id)
        redis.call('ZREM', z, id)
      end
      if n ~= '0' then redis.call('HINCRBY', h, 'sn', n) end
      if t ~= '0' then redis.call('HINCRBY', h, 'st', t) end
      local kt = tonumber(ARGV[ai])
      if kt > 0 then redis.call('PEXPIRE', h, kt) end
    end
    ki = ki + 3
    ai = ai + 1
  end
end
return 1
`

// KEYS: per hold h, z, a. What each window has spent and reserved, expired reservations given back first.
const READ = GIVE_BACK + `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 1, #KEYS / 3 do
  giveBack(KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i], now)
  local v = redis.call('HMGET', KEYS[3 * i - 2], 'sn', 'st', 'rn', 'rt')
  for j = 1, 4 do table.insert(out, tonumber(v[j]) or 0) end
end
return out
`

/** how long a settlement is remembered (a replay later than this is not expected) */
const SETTLED_MARKER_MS = 2 * 86_400_000

interface SettleBatch { keys: string[], args: string[], count: number, done: Promise<void> }
interface ReserveBatch { keys: string[], args: string[], holds: Array<readonly Hold[]>, done: Promise<ReserveResult[]> }

/** The reserve script's answer, one result per reservation of the batch. */
function parseReservations (out: number[], batch: ReadonlyArray<readonly Hold[]>): ReserveResult[] {
  let at = 0
  return batch.map((holds) => {
    const status = out[at++]
    if (status !== 0) {
      const refused = holds[status - 1]
      if (refused === undefined) throw new Error('budget reserve: unexpected answer')
      return { ok: false, refused }
    }
    const states = holds.map(() => {
      const state = { spentNanos: out[at], spentTokens: out[at + 1], reservedNanos: out[at + 2], reservedTokens: out[at + 3] }
      at += 4
      return state
    })
    return { ok: true, states }
  })
}

/** how long after its window ends a counter's keys are kept (for /v1/gateway/budget and audits) */
const KEEP_AFTER_END_MS = 86_400_000

interface BudgetCommands {
  budgetReserve: (numKeys: number, ...args: string[]) => Promise<number[]>
  budgetSettle: (numKeys: number, ...args: string[]) => Promise<number>
  budgetRead: (numKeys: number, ...args: string[]) => Promise<number[]>
}

export class RedisBudgetStore implements BudgetStore {
  readonly kind = 'redis'
  readonly #redis: Redis & BudgetCommands
  readonly #prefix: string
  #batch: SettleBatch | null = null
  #reserving: ReserveBatch | null = null

  constructor (redis: Redis, opts: { keyPrefix: string }) {
    this.#prefix = opts.keyPrefix + 'budget:'
    if (!('budgetReserve' in redis)) {
      redis.defineCommand('budgetReserve', { lua: RESERVE })
      redis.defineCommand('budgetSettle', { lua: SETTLE })
      redis.defineCommand('budgetRead', { lua: READ })
    }
    this.#redis = redis as Redis & BudgetCommands
  }

  #keys (h: Hold): [string, string, string] {
    const base = this.#prefix + h.counter.id + ':' + h.window.id
    return [base, base + ':r', base + ':a']
  }

  #keyTtl (h: Hold, now: number): string {
    return Number.isFinite(h.window.end) ? String(Math.max(1, h.window.end - now + KEEP_AFTER_END_MS)) : '-1'
  }

  /**
   * Reservations wait for the end of the current turn of the event loop and go to Redis together,
   * in one script (each still all or nothing): under load one command serves many requests.
   */
  reserve (id: string, holds: readonly Hold[], charge: Charge, ttlMs: number): Promise<ReserveResult> {
    const now = Date.now()
    let batch = this.#reserving
    if (batch === null) {
      const next: ReserveBatch = { keys: [], args: [], holds: [], done: Promise.resolve([]) }
      next.done = new Promise<void>(resolve => setImmediate(resolve)).then(async () => {
        this.#reserving = null
        const out = await this.#redis.budgetReserve(next.keys.length, ...next.keys, String(next.holds.length), ...next.args)
        return parseReservations(out, next.holds)
      })
      batch = this.#reserving = next
    }
    const index = batch.holds.length
    batch.holds.push(holds)
    batch.args.push(id, String(ttlMs), String(charge.nanos), String(charge.tokens), String(holds.length))
    for (const h of holds) {
      batch.keys.push(...this.#keys(h))
      batch.args.push(String(h.counter.limitNanos ?? -1), String(h.counter.limitTokens ?? -1), this.#keyTtl(h, now))
    }
    return batch.done.then(results => results[index])
  }

  /**
   * Settlements wait for the end of the current turn of the event loop and go to Redis together,
   * in one script: under load one command settles many requests.
   */
  settle (id: string, holds: readonly Hold[], actual: Charge): Promise<void> {
    const now = Date.now()
    const keys: string[] = [this.#prefix + 'settled:' + id]
    const args: string[] = [id, String(actual.nanos), String(actual.tokens), String(SETTLED_MARKER_MS), String(holds.length)]
    for (const h of holds) {
      keys.push(...this.#keys(h))
      args.push(this.#keyTtl(h, now))
    }
    let batch = this.#batch
    if (batch === null) {
      const next: SettleBatch = { keys: [], args: [], count: 0, done: Promise.resolve() }
      next.done = new Promise<void>(resolve => setImmediate(resolve)).then(async () => {
        this.#batch = null
        await this.#redis.budgetSettle(next.keys.length, ...next.keys, String(next.count), ...next.args)
      })
      batch = this.#batch = next
    }
    batch.keys.push(...keys)
    batch.args.push(...args)
    batch.count++
    return batch.done
  }

  async read (holds: readonly Hold[]): Promise<CounterState[]> {
    const keys = holds.flatMap(h => this.#keys(h))
    const out = await this.#redis.budgetRead(keys.length, ...keys)
    return holds.map((_, i) => ({ spentNanos: out[4 * i], spentTokens: out[1 + 4 * i], reservedNanos: out[2 + 4 * i], reservedTokens: out[3 + 4 * i] }))
  }

  /** Sends the settlements still waiting for their turn. */
  async close (): Promise<void> {
    await this.#batch?.done.catch(() => {})
  }
}
