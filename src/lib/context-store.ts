/**
 * Where conversation chains live between requests: an in-memory LRU bounded by capacity, with an
 * optional TTL, or Redis when the gateway runs as several instances.
 *
 * Concurrency: a get → delete → set would let a request arriving between another's delete and
 * set see no chain at all. So a chain is read without being taken, and the request side
 * writes its chain only if the stored value is still the one it read (compare-and-set), so a slow
 * request never overwrites the tag a newer response stored. Response tags are plain writes: the
 * latest answer of the conversation wins.
 */
import { LRUCache } from 'lru-cache'

export interface ContextStore {
  readonly kind: 'memory' | 'redis'
  get: (key: string) => Promise<string | undefined>
  set: (key: string, chain: string) => Promise<void>
  /** writes `chain` only if the stored value is still `expected` (undefined: absent); true if written */
  compareAndSet: (key: string, expected: string | undefined, chain: string) => Promise<boolean>
  /** forgets every conversation; returns how many entries there were */
  clear: () => Promise<number>
}

export interface StoreOptions {
  capacity: number
  /** 0: entries never expire */
  ttlMs: number
}

export class MemoryContextStore implements ContextStore {
  readonly kind = 'memory'
  readonly #cache: LRUCache<string, string>

  constructor (opts: StoreOptions) {
    this.#cache = new LRUCache<string, string>({ max: opts.capacity, ...(opts.ttlMs > 0 ? { ttl: opts.ttlMs } : {}) })
  }

  get size (): number {
    return this.#cache.size
  }

  async get (key: string): Promise<string | undefined> {
    return this.#cache.get(key)
  }

  async set (key: string, chain: string): Promise<void> {
    this.#cache.set(key, chain)
  }

  // synchronous inside: nothing can run between the read and the write
  async compareAndSet (key: string, expected: string | undefined, chain: string): Promise<boolean> {
    if (this.#cache.get(key) !== expected) return false
    this.#cache.set(key, chain)
    return true
  }

  async clear (): Promise<number> {
    return this.clearNow()
  }

  /** The synchronous form, for callers that cannot wait. */
  clearNow (): number {
    const n = this.#cache.size
    this.#cache.clear()
    return n
  }
}

/**
 * The part of an ioredis client this store needs (ioredis' `call`), so a client from the Redis
 * plugin or a test can be handed in as it is.
 */
export interface RedisLike {
  call: (command: string, ...args: Array<string | number>) => Promise<unknown>
}

/**
 * The shared Redis breaker (plugins/redis.ts `RedisHealth`): while it is open the store fails at
 * once instead of making the request wait for a stalled Redis's command timeout, and the store
 * reports its own failures and successes to it.
 */
export interface RedisBreaker {
  readonly bypassed: boolean
  failed: (err: unknown, operation: string) => void
  recovered: () => void
}

/** Atomic compare-and-set: '' stands for "absent" (a stored chain is never empty). */
const CAS_SCRIPT = `
local current = redis.call('GET', KEYS[1])
if current == false then current = '' end
if current ~= ARGV[1] then return 0 end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1`

/**
 * Chains in Redis under `<prefix><conversation key>`. Redis cannot bound one prefix by count, so
 * capacity is not enforced there: set a TTL (or a maxmemory policy) to bound it.
 */
export class RedisContextStore implements ContextStore {
  readonly kind = 'redis'
  readonly #redis: RedisLike
  readonly #prefix: string
  readonly #ttlMs: number
  readonly #breaker: RedisBreaker | null

  constructor (redis: RedisLike, opts: { ttlMs: number, prefix?: string, breaker?: RedisBreaker | null }) {
    this.#redis = redis
    this.#ttlMs = opts.ttlMs
    this.#prefix = opts.prefix ?? 'gateway:context-id:'
    this.#breaker = opts.breaker ?? null
  }

  async #call (command: string, ...args: Array<string | number>): Promise<unknown> {
    const breaker = this.#breaker
    if (breaker?.bypassed === true) throw new Error('redis is failing: context id store skipped until it answers again')
    try {
      const result = await this.#redis.call(command, ...args)
      breaker?.recovered()
      return result
    } catch (err) {
      breaker?.failed(err, 'context id')
      throw err
    }
  }

  async get (key: string): Promise<string | undefined> {
    const value = await this.#call('GET', this.#prefix + key)
    return typeof value === 'string' ? value : undefined
  }

  async set (key: string, chain: string): Promise<void> {
    if (this.#ttlMs > 0) await this.#call('SET', this.#prefix + key, chain, 'PX', this.#ttlMs)
    else await this.#call('SET', this.#prefix + key, chain)
  }

  async compareAndSet (key: string, expected: string | undefined, chain: string): Promise<boolean> {
    const written = await this.#call('EVAL', CAS_SCRIPT, 1, this.#prefix + key, expected ?? '', chain, this.#ttlMs)
    return written === 1
  }

  /** SCAN (never KEYS, which blocks the server) and UNLINK in batches. */
  async clear (): Promise<number> {
    let cursor = '0'
    let removed = 0
    do {
      const [next, keys] = await this.#call('SCAN', cursor, 'MATCH', `${escapeGlob(this.#prefix)}*`, 'COUNT', 500) as [string, string[]]
      cursor = next
      if (keys.length > 0) removed += Number(await this.#call('UNLINK', ...keys))
    } while (cursor !== '0')
    return removed
  }
}

function escapeGlob (text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&')
}
