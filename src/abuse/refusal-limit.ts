/**
 * Refused authentications per address network (IPv6 per /64, as the rate limit counts): key
 * guessing. A refused request never reaches the rate limiter's per-key count, so without this an
 * address could try keys as fast as it can send them. Once an address has had `max` refusals in
 * its window, every request from it is refused with 429 until the window ends, one with a valid
 * key too: answering a right guess differently from a wrong one would let the guessing go on.
 *
 * Fixed windows from the first refusal, in an LRU with a fixed size (a flood from many addresses
 * cannot grow memory; the least recently refused lose their count). In this process only: the
 * check runs before every authentication, where a Redis round trip would cost every request.
 */
import { LRUCache } from 'lru-cache'
import { networkKey } from '../lib/ip.js'

export interface RefusalLimitOptions {
  /** refusals allowed per window (rateLimit.max) */
  max: number
  windowMs: number
  /** IPv6 prefix length addresses are grouped by */
  ipv6Subnet: number
  /** addresses counted at once */
  maxTracked: number
}

interface Window { refused: number, endsAt: number }

export class RefusalLimit {
  readonly #windows: LRUCache<string, Window>
  readonly #opts: RefusalLimitOptions

  constructor (opts: RefusalLimitOptions) {
    this.#opts = opts
    // noUpdateTTL: the window runs from the first refusal and is not pushed back by later ones
    this.#windows = new LRUCache({ max: opts.maxTracked, ttl: opts.windowMs, noUpdateTTL: true })
  }

  /** ms until the address may try again; 0 while it is under the limit */
  blockedFor (ip: string, now = Date.now()): number {
    // nothing refused anywhere (the usual case): no address arithmetic
    if (this.#windows.size === 0) return 0
    const w = this.#windows.get(this.#scope(ip))
    return w !== undefined && w.refused >= this.#opts.max ? Math.max(1, w.endsAt - now) : 0
  }

  record (ip: string, now = Date.now()): void {
    const scope = this.#scope(ip)
    const w = this.#windows.get(scope)
    if (w !== undefined) w.refused++
    else this.#windows.set(scope, { refused: 1, endsAt: now + this.#opts.windowMs })
  }

  #scope (ip: string): string {
    return networkKey(ip, this.#opts.ipv6Subnet)
  }
}
