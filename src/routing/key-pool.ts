/**
 * A target's upstream keys: requests are spread over them by smooth weighted round robin (nginx's
 * algorithm: deterministic, and with equal weights plain round robin), and a key the upstream
 * refused with 401 is set aside for a while. Keys are only ever named in logs, never shown.
 */
import type { KeySpec } from '../../config/sections/targets.js'

export interface PoolKey {
  readonly name: string
  readonly key: string
  readonly weight: number
  /** smooth weighted round robin state */
  current: number
  /** epoch ms until which the key is set aside (0 = in use) */
  asideUntil: number
}

export class KeyPool {
  readonly keys: readonly PoolKey[]
  readonly cooldownMs: number

  constructor (specs: readonly KeySpec[], cooldownMs: number) {
    if (specs.length === 0) throw new Error('a key pool needs at least one key')
    this.keys = specs.map(s => ({ name: s.name, key: s.key, weight: s.weight, current: 0, asideUntil: 0 }))
    this.cooldownMs = cooldownMs
  }

  get size (): number {
    return this.keys.length
  }

  /**
   * The next key, skipping keys set aside and `skip` (the key that just failed). When every key
   * is set aside the one that comes back first is used: trying is better than refusing locally.
   */
  pick (skip: PoolKey | null = null, now = Date.now()): PoolKey {
    const keys = this.keys
    if (keys.length === 1) return keys[0]
    let best: PoolKey | null = null
    let total = 0
    for (const k of keys) {
      if (k === skip || k.asideUntil > now) continue
      k.current += k.weight
      total += k.weight
      if (best === null || k.current > best.current) best = k
    }
    if (best === null) return this.#soonestBack(skip)
    best.current -= total
    return best
  }

  /** A 401: the key is set aside for `cooldownMs`. Returns false when it already was. */
  setAside (key: PoolKey, now = Date.now()): boolean {
    const was = key.asideUntil > now
    key.asideUntil = now + this.cooldownMs
    return !was
  }

  /** Keys currently in use (not set aside), for status pages and tests. */
  available (now = Date.now()): string[] {
    return this.keys.filter(k => k.asideUntil <= now).map(k => k.name)
  }

  #soonestBack (skip: PoolKey | null): PoolKey {
    let best = this.keys[0] === skip && this.keys.length > 1 ? this.keys[1] : this.keys[0]
    for (const k of this.keys) if (k !== skip && k.asideUntil < best.asideUntil) best = k
    return best
  }
}
