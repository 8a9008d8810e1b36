/**
 * Fixed-window counts per scope key, in this process: the in-memory rate limit (without Redis,
 * plugins/rate-limit.ts) and refused authentications per address (refusal-limit.ts). A window
 * starts with a key's first hit and lasts `windowMs`; a hit after its end starts a new one (the
 * arithmetic of @fastify/rate-limit's in-memory store, which the Redis-backed limit shares).
 *
 * The keys live in an LRU with a fixed size: a flood from many addresses cannot grow memory, the
 * least recently counted lose their count. Synchronous, so a limit can be decided in a callback
 * hook without a promise per request.
 */
import { LRUCache } from 'lru-cache'

/** A key's count in its current window, and the ms until that window ends. */
export interface WindowCount {
  current: number
  ttl: number
}

interface Window { count: number, endsAt: number }

export class FixedWindowCounter {
  readonly #windows: LRUCache<string, Window>

  /** `maxKeys`: keys counted at once (the LRU bound) */
  constructor (maxKeys: number) {
    this.#windows = new LRUCache({ max: maxKeys })
  }

  /** keys held, their window over or not (0: nothing counted since the last ones ended and were read) */
  get size (): number {
    return this.#windows.size
  }

  /** Counts one hit for `key`; `windowMs` is the length of the window a first hit starts. */
  hit (key: string, windowMs: number, now = Date.now()): WindowCount {
    const w = this.#windows.get(key)
    if (w === undefined || w.endsAt <= now) {
      this.#windows.set(key, { count: 1, endsAt: now + windowMs })
      return { current: 1, ttl: windowMs }
    }
    w.count++
    return { current: w.count, ttl: w.endsAt - now }
  }

  /** The count of `key`'s current window without counting; null when it has none (its window ended: forgotten). */
  peek (key: string, now = Date.now()): WindowCount | null {
    const w = this.#windows.get(key)
    if (w === undefined) return null
    if (w.endsAt <= now) {
      this.#windows.delete(key)
      return null
    }
    return { current: w.count, ttl: w.endsAt - now }
  }
}
