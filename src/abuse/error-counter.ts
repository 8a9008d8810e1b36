/**
 * Counts each address's errors within a window that starts at its first counted error (the rule
 * existing blacklist settings mean: `count >= threshold` within `window` of the first error).
 *
 * In memory the counters live in an LRU with a fixed size, so a flood from any number of distinct
 * addresses cannot grow memory past the bound (an unbounded Map could be filled with spoofed
 * X-Forwarded-For values); under such a flood the least recently seen
 * addresses lose their count, which only delays their blacklisting. With Redis the counters are
 * shared by all replicas and expire by themselves; if Redis fails the local counters take over.
 */
import { LRUCache } from 'lru-cache'
import type { Redis } from 'ioredis'
import type { RedisHealth } from '../redis/health.js'

/** INCR, and start the window on the first error. */
const COUNT_SCRIPT = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`

export interface ErrorCounterOptions {
  windowMs: number
  maxTracked: number
  redis: Redis | null
  health: RedisHealth
  /** Redis key prefix */
  prefix: string
}

export class ErrorCounter {
  readonly #local: LRUCache<string, { count: number }>
  readonly #opts: ErrorCounterOptions

  constructor (opts: ErrorCounterOptions) {
    this.#opts = opts
    // noUpdateTTL: the window runs from the first error and is not pushed back by later ones
    this.#local = new LRUCache({ max: opts.maxTracked, ttl: opts.windowMs, noUpdateTTL: true })
  }

  /** addresses counted in memory (never more than maxTracked) */
  get tracked (): number {
    return this.#local.size
  }

  /** Counts one error and returns the address's count within its window. */
  async record (ip: string): Promise<number> {
    const { redis, health } = this.#opts
    // while Redis is failing (or stalled) the count is local, without waiting for a timeout
    if (redis !== null && !health.bypassed) {
      try {
        const n = await redis.eval(COUNT_SCRIPT, 1, this.#key(ip), this.#opts.windowMs) as number
        health.recovered()
        return n
      } catch (err) {
        health.failed(err, 'error counter')
      }
    }
    return this.#recordLocal(ip)
  }

  async reset (ip: string): Promise<void> {
    this.#local.delete(ip)
    await this.#opts.redis?.del(this.#key(ip)).catch(() => {})
  }

  #recordLocal (ip: string): number {
    const entry = this.#local.get(ip)
    if (entry !== undefined) return ++entry.count
    this.#local.set(ip, { count: 1 })
    return 1
  }

  #key (ip: string): string {
    return `${this.#opts.prefix}errors:${ip}`
  }
}
