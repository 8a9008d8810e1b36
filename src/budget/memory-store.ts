/**
 * Budgets in one process: the same rules as the Redis store (redis-store.ts), in Maps.
 *
 * Reservations are kept in the order they were taken; all live the same `ttlMs`, so the expired
 * ones are always at the front and each reservation sweeps only those. Windows that ended are
 * dropped once a minute at most.
 */
import { fits, type BudgetStore, type Charge, type CounterState, type Hold, type ReserveResult } from './store.js'

interface Entry extends CounterState {
  /** ms when the window ends */
  end: number
}

interface Reservation {
  entries: Entry[]
  charge: Charge
  expiresAt: number
}

const PRUNE_EVERY_MS = 60_000

export class MemoryBudgetStore implements BudgetStore {
  readonly kind = 'memory'
  readonly #entries = new Map<string, Entry>()
  readonly #reservations = new Map<string, Reservation>()
  /** ids settled while their reservation could still have been live: a second settle is ignored */
  readonly #settled = new Map<string, number>()
  readonly #now: () => number
  #prunedAt = 0

  constructor (opts: { now?: () => number } = {}) {
    this.#now = opts.now ?? Date.now
  }

  #entry (hold: Hold): Entry {
    const key = hold.counter.id + '|' + hold.window.id
    let entry = this.#entries.get(key)
    if (entry === undefined) {
      entry = { spentNanos: 0, spentTokens: 0, reservedNanos: 0, reservedTokens: 0, end: hold.window.end }
      this.#entries.set(key, entry)
    }
    return entry
  }

  #sweep (now: number): void {
    for (const [id, r] of this.#reservations) {
      if (r.expiresAt > now) break
      this.#release(r)
      this.#reservations.delete(id)
    }
    for (const [id, expiresAt] of this.#settled) {
      if (expiresAt > now) break
      this.#settled.delete(id)
    }
    if (now - this.#prunedAt < PRUNE_EVERY_MS) return
    this.#prunedAt = now
    for (const [key, entry] of this.#entries) {
      if (entry.end < now && entry.reservedNanos === 0 && entry.reservedTokens === 0) this.#entries.delete(key)
    }
  }

  #release (r: Reservation): void {
    for (const e of r.entries) {
      e.reservedNanos -= r.charge.nanos
      e.reservedTokens -= r.charge.tokens
    }
  }

  reserve (id: string, holds: readonly Hold[], charge: Charge, ttlMs: number): ReserveResult {
    const now = this.#now()
    this.#sweep(now)
    const entries = holds.map(h => this.#entry(h))
    for (let i = 0; i < holds.length; i++) {
      if (!fits(entries[i], holds[i].counter, charge)) return { ok: false, refused: holds[i] }
    }
    for (const e of entries) {
      e.reservedNanos += charge.nanos
      e.reservedTokens += charge.tokens
    }
    this.#reservations.set(id, { entries, charge, expiresAt: now + ttlMs })
    return { ok: true, states: entries.map(stateOf) }
  }

  settle (id: string, holds: readonly Hold[], actual: Charge): void {
    if (this.#settled.has(id)) return
    const r = this.#reservations.get(id)
    let entries: Entry[]
    if (r !== undefined) {
      this.#release(r)
      this.#reservations.delete(id)
      this.#settled.set(id, r.expiresAt)
      entries = r.entries
    } else {
      // expired before the request ended (a very long one): what it spent still counts
      entries = holds.map(h => this.#entry(h))
    }
    for (const e of entries) {
      e.spentNanos += actual.nanos
      e.spentTokens += actual.tokens
    }
  }

  read (holds: readonly Hold[]): CounterState[] {
    this.#sweep(this.#now())
    return holds.map(h => stateOf(this.#entries.get(h.counter.id + '|' + h.window.id) ?? { spentNanos: 0, spentTokens: 0, reservedNanos: 0, reservedTokens: 0, end: 0 }))
  }

  async close (): Promise<void> {}
}

function stateOf (e: Entry): CounterState {
  return { spentNanos: e.spentNanos, spentTokens: e.spentTokens, reservedNanos: e.reservedNanos, reservedTokens: e.reservedTokens }
}
