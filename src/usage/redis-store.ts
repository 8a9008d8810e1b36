/**
 * Usage totals in Redis, so that every replica's traffic adds up in one place.
 *
 * A request never waits for Redis: totals are added up in memory and written once a second in
 * one pipeline (HINCRBY per bucket hash, with an expiry at the retention). If Redis is down the
 * unwritten totals are kept (still bounded by the bucket table) and written when it is back; the
 * outage is logged once. A query first writes what is pending, then reads the bucket hashes of its
 * time range.
 *
 * Layout: one hash per bucket, `<prefix>usage:<bucket start ms>`, fields
 * `<client>\0<model>\0<target>\0<total field>`.
 */
import type { Redis } from 'ioredis'
import {
  BucketTable, ReportBuilder, TOTAL_FIELDS, emptyTotals, entryTotals, groupKey, nextTurn,
  type StoreSettings, type TotalField, type UsageEntry, type UsageQuery, type UsageReport, type UsageStore, type UsageTotals
} from './store.js'

export interface RedisStoreOptions extends StoreSettings {
  keyPrefix: string
  flushIntervalMs?: number
  /** told once per outage, and once when Redis answers again */
  onOutage?: (err: unknown) => void
  onRecovery?: () => void
}

const SEP = '\u0000'
const FIELD_SET = new Set<string>(TOTAL_FIELDS)

/** hash fields parsed between two turns of the event loop */
const QUERY_FIELDS_SLICE = 10_000

export class RedisUsageStore implements UsageStore {
  readonly kind = 'redis'
  readonly #redis: Redis
  readonly #opts: RedisStoreOptions
  readonly #retentionMs: number
  #pending: BucketTable
  #timer: NodeJS.Timeout | null = null
  #flushing: Promise<void> | null = null
  #down = false

  constructor (redis: Redis, opts: RedisStoreOptions) {
    this.#redis = redis
    this.#opts = opts
    this.#retentionMs = opts.retentionHours * 3_600_000
    this.#pending = new BucketTable(opts.bucketSeconds, opts.maxGroups)
    this.#timer = setInterval(() => { this.flush().catch(() => {}) }, opts.flushIntervalMs ?? 1000)
    this.#timer.unref()
  }

  #key (bucket: number): string {
    return `${this.#opts.keyPrefix}usage:${bucket}`
  }

  add (entry: UsageEntry): void {
    this.#pending.add(this.#pending.bucketOf(entry.time), groupKey(entry), entryTotals(entry))
  }

  /** Writes the pending totals; on failure they are put back for the next try. */
  flush (): Promise<void> {
    if (this.#flushing !== null) return this.#flushing.then(() => this.flush())
    if (this.#pending.buckets.size === 0) return Promise.resolve()
    const batch = this.#pending
    this.#pending = new BucketTable(this.#opts.bucketSeconds, this.#opts.maxGroups)
    this.#flushing = this.#write(batch).finally(() => { this.#flushing = null })
    return this.#flushing
  }

  async #write (batch: BucketTable): Promise<void> {
    const expireMs = this.#retentionMs + batch.bucketMs
    const pipeline = this.#redis.pipeline()
    // one entry per command, to put back exactly the increments that failed (null: an expiry)
    const ops: Array<[number, string, TotalField, number] | null> = []
    for (const [bucket, groups] of batch.buckets) {
      const key = this.#key(bucket)
      for (const [group, totals] of groups) {
        for (const field of TOTAL_FIELDS) {
          if (totals[field] === 0) continue
          pipeline.hincrby(key, group + SEP + field, totals[field])
          ops.push([bucket, group, field, totals[field]])
        }
      }
      pipeline.pexpire(key, expireMs)
      ops.push(null)
    }
    let results: Array<[Error | null, unknown]> | null
    try {
      results = await pipeline.exec()
    } catch (err) {
      results = null
      this.#failed(err)
    }
    let firstError: Error | null = results === null ? new Error('pipeline failed') : null
    for (let i = 0; i < ops.length; i++) {
      const err = results === null ? firstError : results[i]?.[0] ?? null
      const op = ops[i]
      if (err === null || op === null) continue
      firstError ??= err
      this.#restore(op[0], op[1], op[2], op[3])
    }
    if (firstError !== null) this.#failed(firstError)
    else if (this.#down) {
      this.#down = false
      this.#opts.onRecovery?.()
    }
  }

  #failed (err: unknown): void {
    if (this.#down) return
    this.#down = true
    this.#opts.onOutage?.(err)
  }

  /** An increment Redis did not take goes back into the pending table, unless it is too old. */
  #restore (bucket: number, group: string, field: TotalField, delta: number): void {
    if (bucket < Date.now() - this.#retentionMs) return
    const totals = emptyTotals()
    totals[field] = delta
    this.#pending.add(bucket, group, totals)
  }

  async query (q: UsageQuery): Promise<UsageReport> {
    await this.flush()
    const bucketMs = this.#opts.bucketSeconds * 1000
    const from = q.since - (q.since % bucketMs)
    const pipeline = this.#redis.pipeline()
    let n = 0
    for (let bucket = from; bucket <= q.until; bucket += bucketMs) {
      pipeline.hgetall(this.#key(bucket))
      n++
    }
    const report = new ReportBuilder(q.group)
    if (n === 0) return report.build()
    const results = await pipeline.exec()
    let added = 0
    let bucket = from - bucketMs
    for (const [err, hash] of results ?? []) {
      if (err !== null) throw err
      bucket += bucketMs
      for (const [group, totals] of parseHash(hash as Record<string, string>)) report.add(group, totals, bucket)
      // a day of buckets is added up a few at a time: other requests are answered in between
      added += Object.keys(hash as object).length
      if (added >= QUERY_FIELDS_SLICE) {
        added = 0
        await nextTurn()
      }
    }
    return report.build()
  }

  async close (): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
    await this.flush().catch(() => {})
  }
}

/** Totals from one bucket hash; a field that is not ours, or not a number, is left out. */
function parseHash (hash: Record<string, string>): Map<string, UsageTotals> {
  const groups = new Map<string, UsageTotals>()
  for (const [field, value] of Object.entries(hash)) {
    const cut = field.lastIndexOf(SEP)
    if (cut === -1) continue
    const name = field.slice(cut + 1)
    const n = Number(value)
    if (!FIELD_SET.has(name) || !Number.isFinite(n)) continue
    const group = field.slice(0, cut)
    let totals = groups.get(group)
    if (totals === undefined) {
      totals = emptyTotals()
      groups.set(group, totals)
    }
    totals[name as TotalField] += n
  }
  return groups
}
