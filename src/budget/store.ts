/**
 * What budgets are made of, and the store that enforces them.
 *
 * A counter is one budget of one key or target for one period (`key:alice:day`); budgets of the
 * same owner and period share it (a `$5/day` and a `1M tokens/day` budget: one counter, two
 * limits). Each counter has one entry per window of its period holding what was spent and what
 * is reserved, in nano-USD (integers, so sums are exact in Redis and in memory) and tokens.
 *
 * A request's reservation is taken on every counter it falls under, all or nothing, under one
 * reservation id; settling replaces it with the actual charge, once. A reservation that is never
 * settled (the process died) expires after `ttlMs` and gives its amount back.
 */
import type { Period, Window } from './periods.js'

export const NANOS_PER_USD = 1e9

export interface Counter {
  /** `<scope>:<name>:<period>`: the same on every replica */
  id: string
  scope: 'key' | 'target'
  name: string
  period: Period
  /** limits; null: this counter does not limit that unit */
  limitNanos: number | null
  limitTokens: number | null
}

export interface Charge {
  nanos: number
  tokens: number
}

/** A counter in the window a request falls in. */
export interface Hold {
  counter: Counter
  window: Window
}

export interface CounterState {
  spentNanos: number
  spentTokens: number
  reservedNanos: number
  reservedTokens: number
}

export type ReserveResult =
  | { ok: true, states: CounterState[] }
  | { ok: false, refused: Hold }

export interface BudgetStore {
  readonly kind: 'memory' | 'redis'
  /** Reserves `charge` on every hold or on none; `states` after the reservation, in the holds' order. */
  reserve: (id: string, holds: readonly Hold[], charge: Charge, ttlMs: number) => ReserveResult | Promise<ReserveResult>
  /** Replaces reservation `id` with `actual`; a second call for the same id does nothing. */
  settle: (id: string, holds: readonly Hold[], actual: Charge) => void | Promise<void>
  /** What each hold's window has spent and reserved. */
  read: (holds: readonly Hold[]) => CounterState[] | Promise<CounterState[]>
  close: () => Promise<void>
}

/**
 * The charge fits the counter's limits on top of what is spent and reserved; an exhausted budget
 * takes nothing more, not even a request that reserves 0 (an unpriced one). The Lua scripts of
 * redis-store.ts apply the same rule.
 */
export function fits (state: CounterState, counter: Counter, charge: Charge): boolean {
  return within(state.spentNanos + state.reservedNanos, charge.nanos, counter.limitNanos) &&
    within(state.spentTokens + state.reservedTokens, charge.tokens, counter.limitTokens)
}

function within (used: number, charge: number, limit: number | null): boolean {
  return limit === null || (used < limit && used + charge <= limit)
}

export function toNanos (usd: number): number {
  return Math.round(usd * NANOS_PER_USD)
}
