/**
 * Refused authentications per address network (IPv6 per /64, as the rate limit counts): key
 * guessing. A refused request never reaches the rate limiter's per-key count, so without this an
 * address could try keys as fast as it can send them. Once an address has had `max` refusals in
 * its window, every request from it is refused with 429 until the window ends, one with a valid
 * key too: answering a right guess differently from a wrong one would let the guessing go on.
 *
 * Fixed windows from the first refusal, counted by the same bounded counter as the in-memory rate
 * limit (fixed-window.ts: a flood from many addresses cannot grow memory). In this process only:
 * the check runs before every authentication, where a Redis round trip would cost every request.
 */
import { networkKey } from '../lib/ip.js'
import { FixedWindowCounter } from './fixed-window.js'

export interface RefusalLimitOptions {
  /** refusals allowed per window (rateLimit.max) */
  max: number
  windowMs: number
  /** IPv6 prefix length addresses are grouped by */
  ipv6Subnet: number
  /** addresses counted at once */
  maxTracked: number
}

export class RefusalLimit {
  readonly #refused: FixedWindowCounter
  readonly #opts: RefusalLimitOptions

  constructor (opts: RefusalLimitOptions) {
    this.#opts = opts
    this.#refused = new FixedWindowCounter(opts.maxTracked)
  }

  /** ms until the address may try again; 0 while it is under the limit */
  blockedFor (ip: string, now = Date.now()): number {
    // nothing refused anywhere (the usual case): no address arithmetic
    if (this.#refused.size === 0) return 0
    const w = this.#refused.peek(this.#scope(ip), now)
    return w !== null && w.current >= this.#opts.max ? Math.max(1, w.ttl) : 0
  }

  record (ip: string, now = Date.now()): void {
    this.#refused.hit(this.#scope(ip), this.#opts.windowMs, now)
  }

  #scope (ip: string): string {
    return networkKey(ip, this.#opts.ipv6Subnet)
  }
}
