/**
 * Budget metrics, in the gateway's registry: the remaining USD of each budget (read at scrape
 * time from what admissions last saw: nothing per request but a Map write), settle failures and
 * the degraded state (Redis unreachable, `failMode: open`). Refusals count in
 * `gateway_refusals_total{reason}` with the other refusals.
 */
import { Counter, Gauge, type Registry } from 'prom-client'
import type { Counter as Budget } from './store.js'

export class BudgetMetrics {
  readonly #remaining = new Map<Budget, number>()
  readonly settleFailures: Counter
  readonly degraded: Gauge

  constructor (registry: Registry) {
    const remaining = this.#remaining
    // eslint-disable-next-line no-new -- registered in the registry, read at scrape time
    new Gauge({
      name: 'gateway_budget_remaining_usd',
      help: 'USD left in each budget after the latest reservation this gateway made, by scope (key or target), name and period',
      labelNames: ['scope', 'name', 'period'],
      registers: [registry],
      collect () {
        for (const [b, usd] of remaining) this.set({ scope: b.scope, name: b.name, period: b.period }, usd)
      }
    })
    this.settleFailures = new Counter({ name: 'gateway_budget_settle_failures_total', help: 'Settlements the budget store did not take (the reservation then expires)', registers: [registry] })
    this.degraded = new Gauge({ name: 'gateway_budget_degraded', help: '1 while budgets are counted in this process only because Redis is unreachable (failMode open)', registers: [registry] })
  }

  remaining (budget: Budget, usd: number): void {
    this.#remaining.set(budget, usd)
  }
}
