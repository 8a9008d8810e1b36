/**
 * Usage totals behind `GET /admin/usage`: requests, errors and tokens per time bucket and per
 * (client key name, model, target). In memory by default; `RedisUsageStore` (redis-store.ts)
 * adds the same buckets up in Redis so that every replica's traffic is counted together.
 *
 * Bounded three ways: buckets older than the retention are dropped, a bucket holds at most
 * `maxGroups` distinct groups (model names come from clients; later groups fold into "other"),
 * and the memory store's estimated size stays within `maxBytes`: beyond it the oldest buckets go
 * first (with one warn line), before their retention.
 *
 * A query over a large table is read in slices with a turn of the event loop between them, so
 * the gateway answers other requests while `/admin/usage` adds up a day of buckets.
 */
import type { TokenCounts } from './tokens.js'

/** `costNanos`: cost in nano-USD (an integer, so Redis adds it exactly); `unpricedRequests`: requests whose model has no price */
export const TOTAL_FIELDS = ['requests', 'errors', 'promptTokens', 'completionTokens', 'totalTokens', 'cacheReadTokens', 'cacheCreationTokens', 'costNanos', 'unpricedRequests'] as const
export type TotalField = typeof TOTAL_FIELDS[number]
export type UsageTotals = Record<TotalField, number>

/** `day`: the UTC day of the bucket */
export const GROUPS = ['key', 'model', 'target', 'day'] as const
export type UsageGroup = typeof GROUPS[number]

export const OTHER = 'other'
/** the client name of requests no client key identified */
export const ANONYMOUS = 'anonymous'

export interface UsageEntry {
  /** ms since the epoch */
  time: number
  client: string | null
  model: string | null
  target: string | null
  counts: TokenCounts
  error: boolean
  /** USD; null when the model has no price (unset: not priced at all, counted as 0) */
  costUsd?: number | null
}

export interface UsageQuery {
  since: number
  until: number
  group: UsageGroup | null
}

export interface UsageRow {
  /** the client key name, model or target the row is about */
  name: string
  totals: UsageTotals
}

export interface UsageReport {
  totals: UsageTotals
  rows: UsageRow[]
}

export interface UsageStore {
  readonly kind: 'memory' | 'redis'
  add: (entry: UsageEntry) => void
  query: (q: UsageQuery) => Promise<UsageReport>
  close: () => Promise<void>
}

export interface StoreSettings {
  bucketSeconds: number
  retentionHours: number
  maxGroups: number
  /** estimated bytes the memory store may hold; the oldest buckets are dropped beyond it */
  maxMemoryBytes?: number
  /** told once, the first time a bucket is dropped before its retention to keep the bound */
  onBound?: () => void
}

/**
 * Estimated heap bytes of one group of a bucket: its key (counted as two-byte characters), the
 * totals object and the Map entry. Measured at about 270 bytes for a 30-character key.
 */
export function groupBytes (key: string): number {
  return GROUP_OVERHEAD + 2 * key.length
}
const GROUP_OVERHEAD = 240
const BUCKET_OVERHEAD = 160

/** groups added to a report between two turns of the event loop */
const QUERY_SLICE = 2000

/** Lets the event loop run (I/O included) before the caller goes on. */
export function nextTurn (): Promise<void> {
  return new Promise(resolve => setImmediate(resolve))
}

export function emptyTotals (): UsageTotals {
  return { requests: 0, errors: 0, promptTokens: 0, completionTokens: 0, totalTokens: 0, cacheReadTokens: 0, cacheCreationTokens: 0, costNanos: 0, unpricedRequests: 0 }
}

export function addTotals (into: UsageTotals, from: UsageTotals): void {
  // field by field, not a loop over TOTAL_FIELDS: a keyed access by nine names is a megamorphic
  // lookup each time, on every request (test/unit/usage-totals.test.ts checks no field is missing)
  into.requests += from.requests
  into.errors += from.errors
  into.promptTokens += from.promptTokens
  into.completionTokens += from.completionTokens
  into.totalTokens += from.totalTokens
  into.cacheReadTokens += from.cacheReadTokens
  into.cacheCreationTokens += from.cacheCreationTokens
  into.costNanos += from.costNanos
  into.unpricedRequests += from.unpricedRequests
}

const SEP = '\u0000'
const MAX_NAME = 200

/** Names become parts of keys: the separator cannot occur in them, and their length is bounded. */
function part (value: string | null, empty: string): string {
  if (value === null || value === '') return empty
  const clean = value.includes(SEP) ? value.replaceAll(SEP, '') : value
  return clean.length > MAX_NAME ? clean.slice(0, MAX_NAME) : clean
}

export function groupKey (entry: UsageEntry): string {
  return part(entry.client, ANONYMOUS) + SEP + part(entry.model, '-') + SEP + part(entry.target, '-')
}

export const OTHER_GROUP = OTHER + SEP + OTHER + SEP + OTHER

export function splitGroupKey (key: string): [string, string, string] {
  const [client, model, target] = key.split(SEP)
  return [client ?? OTHER, model ?? OTHER, target ?? OTHER]
}

const GROUP_INDEX: Record<Exclude<UsageGroup, 'day'>, number> = { key: 0, model: 1, target: 2 }
const DAY_MS = 86_400_000

/** The row a group key (and its bucket's start, ms) adds to. */
function rowName (group: UsageGroup, key: string, bucket: number): string {
  if (group === 'day') return new Date(bucket - (bucket % DAY_MS)).toISOString().slice(0, 10)
  return splitGroupKey(key)[GROUP_INDEX[group]]
}

export function entryTotals (entry: UsageEntry): UsageTotals {
  const c = entry.counts
  return {
    requests: 1,
    errors: entry.error ? 1 : 0,
    promptTokens: c.promptTokens ?? 0,
    completionTokens: c.completionTokens ?? 0,
    totalTokens: c.totalTokens ?? 0,
    cacheReadTokens: c.cacheReadTokens ?? 0,
    cacheCreationTokens: c.cacheCreationTokens ?? 0,
    costNanos: Math.round((entry.costUsd ?? 0) * 1e9),
    unpricedRequests: entry.costUsd === null ? 1 : 0
  }
}

/** Totals per bucket start (ms) and group key, with their estimated size. */
export class BucketTable {
  readonly buckets = new Map<number, Map<string, UsageTotals>>()
  readonly #bucketMs: number
  readonly #maxGroups: number
  readonly #bucketBytes = new Map<number, number>()
  #bytes = 0

  constructor (bucketSeconds: number, maxGroups: number) {
    this.#bucketMs = bucketSeconds * 1000
    this.#maxGroups = maxGroups
  }

  bucketOf (time: number): number {
    return time - (time % this.#bucketMs)
  }

  get bucketMs (): number {
    return this.#bucketMs
  }

  /** estimated heap bytes of every bucket */
  get bytes (): number {
    return this.#bytes
  }

  add (bucket: number, key: string, totals: UsageTotals): void {
    let groups = this.buckets.get(bucket)
    if (groups === undefined) {
      groups = new Map()
      this.buckets.set(bucket, groups)
      this.#grow(bucket, BUCKET_OVERHEAD)
    }
    let into = groups.get(key)
    if (into === undefined) {
      // the fold group may always be created, so a full bucket still counts everything
      if (groups.size >= this.#maxGroups && key !== OTHER_GROUP) {
        this.add(bucket, OTHER_GROUP, totals)
        return
      }
      into = emptyTotals()
      groups.set(key, into)
      this.#grow(bucket, groupBytes(key))
    }
    addTotals(into, totals)
  }

  #grow (bucket: number, bytes: number): void {
    this.#bytes += bytes
    this.#bucketBytes.set(bucket, (this.#bucketBytes.get(bucket) ?? 0) + bytes)
  }

  delete (bucket: number): void {
    if (!this.buckets.delete(bucket)) return
    this.#bytes -= this.#bucketBytes.get(bucket) ?? 0
    this.#bucketBytes.delete(bucket)
  }

  /** Drops buckets that started before `before` (ms). */
  prune (before: number): void {
    for (const bucket of this.buckets.keys()) if (bucket < before) this.delete(bucket)
  }

  /** The oldest bucket's start, or null when the table is empty. */
  oldest (): number | null {
    let oldest: number | null = null
    for (const bucket of this.buckets.keys()) if (oldest === null || bucket < oldest) oldest = bucket
    return oldest
  }
}

/** Adds rows of (group key, totals) into a report grouped by one dimension. */
export class ReportBuilder {
  readonly #group: UsageGroup | null
  readonly #totals = emptyTotals()
  readonly #rows = new Map<string, UsageTotals>()

  constructor (group: UsageGroup | null) {
    this.#group = group
  }

  add (key: string, totals: UsageTotals, bucket: number): void {
    addTotals(this.#totals, totals)
    if (this.#group === null) return
    const name = rowName(this.#group, key, bucket)
    let row = this.#rows.get(name)
    if (row === undefined) {
      row = emptyTotals()
      this.#rows.set(name, row)
    }
    addTotals(row, totals)
  }

  build (): UsageReport {
    const rows = [...this.#rows].map(([name, totals]) => ({ name, totals }))
    rows.sort((a, b) => b.totals.totalTokens - a.totals.totalTokens || b.totals.requests - a.totals.requests || a.name.localeCompare(b.name))
    return { totals: this.#totals, rows }
  }
}

export class MemoryUsageStore implements UsageStore {
  readonly kind = 'memory'
  readonly #table: BucketTable
  readonly #retentionMs: number
  readonly #maxBytes: number
  readonly #onBound: (() => void) | undefined
  #newest = 0
  #boundTold = false

  constructor (settings: StoreSettings) {
    this.#table = new BucketTable(settings.bucketSeconds, settings.maxGroups)
    this.#retentionMs = settings.retentionHours * 3_600_000
    this.#maxBytes = settings.maxMemoryBytes ?? Infinity
    this.#onBound = settings.onBound
  }

  /** estimated heap bytes of the totals kept */
  get bytes (): number {
    return this.#table.bytes
  }

  /** how many buckets are kept */
  get bucketCount (): number {
    return this.#table.buckets.size
  }

  add (entry: UsageEntry): void {
    const bucket = this.#table.bucketOf(entry.time)
    if (bucket > this.#newest) {
      // a new bucket began: the oldest may have fallen out of the retention
      this.#newest = bucket
      this.#table.prune(bucket - this.#retentionMs)
    }
    this.#table.add(bucket, groupKey(entry), entryTotals(entry))
    if (this.#table.bytes > this.#maxBytes) this.#shrink(bucket)
  }

  /** Drops the oldest buckets until the table fits its bound (the one being written stays). */
  #shrink (current: number): void {
    while (this.#table.bytes > this.#maxBytes) {
      const oldest = this.#table.oldest()
      if (oldest === null || oldest === current) return
      this.#table.delete(oldest)
      if (!this.#boundTold) {
        this.#boundTold = true
        this.#onBound?.()
      }
    }
  }

  async query (q: UsageQuery): Promise<UsageReport> {
    const report = new ReportBuilder(q.group)
    const from = this.#table.bucketOf(q.since)
    const wanted: number[] = []
    for (const bucket of this.#table.buckets.keys()) if (bucket >= from && bucket <= q.until) wanted.push(bucket)
    let added = 0
    for (const bucket of wanted) {
      // a bucket dropped during a pause is simply no longer there
      const groups = this.#table.buckets.get(bucket)
      if (groups === undefined) continue
      for (const [key, totals] of groups) {
        report.add(key, totals, bucket)
        if (++added % QUERY_SLICE === 0) await nextTurn()
      }
    }
    return report.build()
  }

  async close (): Promise<void> {}
}
