/**
 * One blacklist for all replicas, through Redis:
 * - a hash `<prefix>blacklist` (address → entry JSON) holds the shared list;
 * - every change is published on `<prefix>blacklist:changes`, so another replica refuses a newly
 *   blacklisted address as soon as the message arrives;
 * - a full re-read on every (re)connect and every `syncIntervalMs` repairs anything pub/sub missed
 *   (messages are not queued while a subscriber is disconnected).
 *
 * Redis is not required for checking: each replica checks its own copy in memory, so while Redis is
 * down refusals continue from the last copy. Changes made during an outage are remembered and
 * written to Redis when it is back. A Redis that lost its data (restarted without persistence) is
 * recognised by a missing marker key and refilled from the replicas' copies, instead of emptying
 * every replica's list.
 *
 * Whatever Redis holds or carries is input from outside, like the file: anyone who can write to
 * it could put anything there. Every entry passes `parseEntry`, and nothing read from Redis may
 * throw out of a callback (an exception in a subscriber's listener would end the process): a bad
 * message is skipped with one warn line, bad hash fields are named in one line per change of them.
 */
import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import type { RedisHealth } from '../redis/health.js'
import { parseEntry, type Blacklist, type BlacklistEntry } from './blacklist.js'
import { canonicalIp } from '../lib/ip.js'

type Change = { op: 'add', entry: BlacklistEntry } | { op: 'remove', ip: string }

export interface BlacklistSyncOptions {
  redis: Redis
  health: RedisHealth
  prefix: string
  syncIntervalMs: number
  blacklist: Blacklist
  log: FastifyBaseLogger
  /** the list in memory changed because of another replica (save the file) */
  onRemoteChange: () => void
}

export class BlacklistSync {
  readonly #o: BlacklistSyncOptions
  readonly #hash: string
  readonly #marker: string
  readonly #channel: string
  readonly #origin = randomUUID()
  /** changes that could not be written to Redis yet, by address (the last one wins) */
  readonly #pending = new Map<string, Change>()
  #subscriber: Redis | null = null
  #timer: NodeJS.Timeout | null = null
  #syncing: Promise<void> | null = null
  /**
   * Counts changes made while a full read may be on its way: another replica's message, or a
   * change of our own. A read that saw this move may be older than the change (the hash and the
   * message travel on different connections) and must not replace the list with it.
   */
  #changes = 0
  /** the invalid hash fields the last warn line named, so a re-read every interval does not repeat it */
  #badFields = ''

  constructor (opts: BlacklistSyncOptions) {
    this.#o = opts
    this.#hash = `${opts.prefix}blacklist`
    this.#marker = `${opts.prefix}blacklist:present`
    this.#channel = `${opts.prefix}blacklist:changes`
  }

  /** Subscribes, and reads the shared list once before the gateway starts serving. */
  async start (): Promise<void> {
    // the subscriber may wait for Redis as long as it takes; only its own connection is blocked
    const sub = this.#o.redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, commandTimeout: undefined })
    this.#subscriber = sub
    sub.on('error', () => {}) // reported through the main connection's health
    sub.on('message', (_channel: string, text: string) => this.#onMessage(text))
    // after every reconnect: whatever was published meanwhile is lost, so read the whole list
    sub.on('ready', () => { this.resync().catch(() => {}) })
    sub.subscribe(this.#channel).catch(() => {})
    this.#timer = setInterval(() => { this.resync().catch(() => {}) }, this.#o.syncIntervalMs)
    this.#timer.unref()
    await this.resync()
  }

  async close (): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#subscriber?.disconnect()
    await this.#syncing
  }

  /** Writes an addition to Redis and tells the other replicas. */
  async added (entry: BlacklistEntry): Promise<void> {
    await this.#push({ op: 'add', entry })
  }

  async removed (ip: string): Promise<void> {
    await this.#push({ op: 'remove', ip })
  }

  /** Pushes pending changes, then replaces the copy in memory with the shared list. */
  resync (): Promise<void> {
    this.#syncing ??= this.#resync().finally(() => { this.#syncing = null })
    return this.#syncing
  }

  async #resync (): Promise<void> {
    const { redis, health, blacklist } = this.#o
    try {
      // the marker first: pushing pending changes into an emptied Redis must not make it look complete
      if (await redis.get(this.#marker) === null) {
        await this.#seed()
        health.recovered()
        return
      }
      for (const change of [...this.#pending.values()]) await this.#push(change, true)
      // a change during the read: read again; under a steady stream of changes the messages keep
      // the copy current and the next interval tries again
      for (let attempt = 0; attempt < 3; attempt++) {
        const before = this.#changes
        const hash = await redis.hgetall(this.#hash)
        if (this.#changes !== before) continue
        if (blacklist.replaceAll(this.#entriesOf(hash))) this.#o.onRemoteChange()
        break
      }
      health.recovered()
    } catch (err) {
      health.failed(err, 'blacklist sync')
    }
  }

  /**
   * Redis has no list (new, flushed, or restarted without persistence): fill it from ours, which
   * already holds this replica's pending changes, and tell the others.
   */
  async #seed (): Promise<void> {
    const local = this.#o.blacklist.list()
    const tx = this.#o.redis.multi()
    for (const entry of local) {
      tx.hset(this.#hash, entry.ip, JSON.stringify(entry))
      tx.publish(this.#channel, JSON.stringify({ op: 'add', entry, origin: this.#origin }))
    }
    tx.set(this.#marker, '1')
    await exec(tx)
    this.#pending.clear()
    if (local.length > 0) this.#o.log.info({ entries: local.length }, 'shared blacklist in redis filled from this replica')
  }

  async #push (change: Change, throwOnFailure = false): Promise<void> {
    this.#changes++
    const { redis, health } = this.#o
    const ip = change.op === 'add' ? change.entry.ip : change.ip
    const tx = redis.multi()
    if (change.op === 'add') tx.hset(this.#hash, ip, JSON.stringify(change.entry))
    else tx.hdel(this.#hash, ip)
    tx.publish(this.#channel, JSON.stringify({ ...change, origin: this.#origin }))
    try {
      await exec(tx)
      this.#pending.delete(ip)
      health.recovered()
    } catch (err) {
      this.#pending.set(ip, change)
      health.failed(err, 'blacklist write')
      if (throwOnFailure) throw err
    }
  }

  /** The subscriber's listener: whatever arrives, it returns normally. */
  #onMessage (text: string): void {
    let problem: string | null
    try {
      problem = this.#applyMessage(text)
    } catch (err) {
      problem = `could not be applied (${(err as Error)?.message ?? String(err)})`
    }
    if (problem !== null) this.#o.log.warn({ channel: this.#channel, problem, bytes: typeof text === 'string' ? text.length : 0 }, 'blacklist change message from redis skipped')
  }

  /** Applies one change message; returns why it was skipped, or null. */
  #applyMessage (text: string): string | null {
    let msg: unknown
    try { msg = JSON.parse(text) } catch { return 'not JSON' }
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) return 'not a JSON object'
    const m = msg as { op?: unknown, entry?: unknown, ip?: unknown, origin?: unknown }
    if (m.origin === this.#origin) return null
    let changed = false
    if (m.op === 'add') {
      const entry = parseEntry(m.entry)
      if (typeof entry === 'string') return entry
      this.#changes++
      changed = this.#o.blacklist.set(entry)
      if (changed) this.#o.log.info({ clientIp: entry.ip, reason: entry.reason }, 'address blacklisted by another replica')
    } else if (m.op === 'remove') {
      const ip = typeof m.ip === 'string' ? canonicalIp(m.ip) : null
      if (ip === null) return 'remove without a valid "ip"'
      this.#changes++
      changed = this.#o.blacklist.delete(ip)
    } else {
      return 'op is neither "add" nor "remove"'
    }
    if (changed) this.#o.onRemoteChange()
    return null
  }

  /** The valid entries of the shared hash; invalid fields are named in one warn line. */
  #entriesOf (hash: Record<string, string>): BlacklistEntry[] {
    const entries: BlacklistEntry[] = []
    const problems: string[] = []
    for (const [field, text] of Object.entries(hash)) {
      let parsed: BlacklistEntry | string
      try {
        parsed = parseEntry(JSON.parse(text))
      } catch {
        parsed = 'not JSON'
      }
      if (typeof parsed === 'string') problems.push(`${field.slice(0, 64)}: ${parsed}`)
      else entries.push(parsed)
    }
    const bad = `${problems.length}:${problems.slice(0, 5).join('\n')}`
    if (problems.length > 0 && bad !== this.#badFields) {
      this.#o.log.warn({ hash: this.#hash, ignored: problems.length, problems: problems.slice(0, 5) }, 'shared blacklist in redis: invalid entries ignored')
    }
    this.#badFields = bad
    return entries
  }
}

/** MULTI/EXEC where any failed command counts as a failure. */
async function exec (tx: ReturnType<Redis['multi']>): Promise<void> {
  const results = await tx.exec()
  if (results === null) throw new Error('redis transaction aborted')
  for (const [err] of results) if (err !== null) throw err
}
