/**
 * Budgets as configured → counters (store.ts), and what a client may read of them.
 */
import type { BudgetConfig } from '../../config/sections/budgets.js'
import { windowOf, type Period } from './periods.js'
import { NANOS_PER_USD, toNanos, type Counter, type CounterState, type Hold } from './store.js'

/** One counter per period; budgets of the same period share it, each unit at its tightest limit. */
export function countersOf (scope: Counter['scope'], name: string, budgets: readonly BudgetConfig[] | undefined): Counter[] {
  const byPeriod = new Map<Period, Counter>()
  for (const b of budgets ?? []) {
    let c = byPeriod.get(b.period)
    if (c === undefined) {
      c = { id: `${scope}:${name}:${b.period}`, scope, name, period: b.period, limitNanos: null, limitTokens: null }
      byPeriod.set(b.period, c)
    }
    if (b.usd !== undefined) c.limitNanos = Math.min(c.limitNanos ?? Infinity, toNanos(b.usd))
    if (b.tokens !== undefined) c.limitTokens = Math.min(c.limitTokens ?? Infinity, b.tokens)
  }
  return [...byPeriod.values()]
}

export function holdsOf (counters: readonly Counter[], now: number): Hold[] {
  return counters.map(counter => ({ counter, window: windowOf(counter.period, now) }))
}

/** `key "alice": $5.00 per day` — what a refusal names. */
export function describe (c: Counter): string {
  const limits: string[] = []
  if (c.limitNanos !== null) limits.push(`$${(c.limitNanos / NANOS_PER_USD).toFixed(2)}`)
  if (c.limitTokens !== null) limits.push(`${c.limitTokens} tokens`)
  return `${c.scope} ${JSON.stringify(c.name)}: ${limits.join(' and ')} ${c.period === 'total' ? 'in total' : `per ${c.period}`}`
}

/** USD left in the tightest USD budget after a reservation; null when none limits USD. */
export function tightestUsd (holds: readonly Hold[], states: readonly CounterState[]): number | null {
  let min: number | null = null
  holds.forEach((h, i) => {
    const limit = h.counter.limitNanos
    if (limit === null) return
    const left = Math.max(0, limit - states[i].spentNanos - states[i].reservedNanos)
    min = min === null ? left : Math.min(min, left)
  })
  return min === null ? null : min / NANOS_PER_USD
}

export interface BudgetView {
  scope: Counter['scope']
  name: string
  period: Period
  usd: number | null
  tokens: number | null
  spentUsd: number
  reservedUsd: number
  remainingUsd: number | null
  spentTokens: number
  reservedTokens: number
  remainingTokens: number | null
  /** when the period's window ends (ISO 8601); null for `total` */
  resetsAt: string | null
}

export function viewOf (h: Hold, s: CounterState): BudgetView {
  const c = h.counter
  return {
    scope: c.scope,
    name: c.name,
    period: c.period,
    usd: c.limitNanos === null ? null : c.limitNanos / NANOS_PER_USD,
    tokens: c.limitTokens,
    spentUsd: s.spentNanos / NANOS_PER_USD,
    reservedUsd: s.reservedNanos / NANOS_PER_USD,
    remainingUsd: c.limitNanos === null ? null : Math.max(0, c.limitNanos - s.spentNanos - s.reservedNanos) / NANOS_PER_USD,
    spentTokens: s.spentTokens,
    reservedTokens: s.reservedTokens,
    remainingTokens: c.limitTokens === null ? null : Math.max(0, c.limitTokens - s.spentTokens - s.reservedTokens),
    resetsAt: Number.isFinite(h.window.end) ? new Date(h.window.end).toISOString() : null
  }
}
