/**
 * Budgets: admission reserves, settlement corrects (docs/money.md).
 *
 * Admission (a `preHandler` of the API scope, once the body is parsed and the target chosen):
 * the budgets a request falls under are its client key's and its target's. A priced request
 * reserves its worst case (src/budget/estimate.ts) on every one of them, all or nothing, or is
 * refused: `429 budget_exceeded` naming the budget, with `Retry-After` when its period resets. A
 * free request passes; any other is refused (`403 route_not_budgeted`) unless
 * `budgets.allowUnpriced`, then it reserves nothing and its tokens are counted at settlement.
 *
 * Settlement (a settle step, plugins/settle.ts, so once per request whatever happened) replaces
 * the reservation with what the answer's usage cost (0 when no upstream answered). The store is
 * keyed by a reservation id made at admission, so a replay of the same settlement is a no-op
 * and a client choosing its request id cannot collide with another request's.
 *
 * Nothing runs per request when no budget is configured (no hook is added), and nothing but two
 * Map lookups for a request no budget applies to. A budgeted request first reserves the byte
 * bound of its input; the tokenizer runs only when that is refused (near a limit), so the exact
 * count decides there and costs nothing elsewhere.
 */
import fp from 'fastify-plugin'
import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { Redis } from 'ioredis'
import type { GatewayConfig } from '../config/schema.js'
import type { BudgetConfig } from '../config/sections/budgets.js'
import { keyedClient } from '../src/auth/client.js'
import { pathOnly } from '../src/logging.js'
import { azureDeployment } from '../src/metrics/routes.js'
import type { RedisHealth } from '../src/redis/health.js'
import { BudgetExceededError, BudgetUnavailableError, RouteNotBudgetedError } from '../src/budget/errors.js'
import { countersOf, describe, holdsOf, tightestUsd, viewOf, type BudgetView } from '../src/budget/counters.js'
import { estimate, type EstimateOptions } from '../src/budget/estimate.js'
import { MemoryBudgetStore } from '../src/budget/memory-store.js'
import { BudgetMetrics } from '../src/budget/metrics.js'
import { secondsUntil } from '../src/budget/periods.js'
import { RedisBudgetStore } from '../src/budget/redis-store.js'
import { routeKind } from '../src/budget/routes.js'
import { fits, toNanos, type BudgetStore, type Charge, type Counter, type Hold, type ReserveResult } from '../src/budget/store.js'
import { loadTokenizer } from '../src/budget/tokenizer.js'
import type { PriceEntry } from '../src/usage/prices.js'
import { pricedAs, requestCost } from '../src/usage/cost.js'
import { NO_TOKENS, type TokenCounts } from '../src/usage/tokens.js'

export interface BudgetsOptions {
  budgets: GatewayConfig['budgets']
  /** client keys with their budgets */
  keys: ReadonlyArray<{ name: string, budgets?: BudgetConfig[] }>
  /** target name → its budgets (`default`: the upstream section) */
  targets: Record<string, BudgetConfig[] | undefined>
  redis?: Redis | null
  redisHealth?: RedisHealth
  keyPrefix?: string
}

/** Charges one realtime response; resolves false once the budget is gone. */
export type RealtimeCharge = (counts: TokenCounts) => Promise<boolean>

export interface BudgetService {
  /** what a client reads at `GET /v1/gateway/budget` */
  forKey: (name: string) => Promise<BudgetView[]>
  /** every budget, of keys and targets (`GET /admin/budgets`) */
  all: () => Promise<BudgetView[]>
  /** the charge of an admitted realtime session's responses; null when no budget applies to it */
  realtimeCharge: (request: FastifyRequest) => RealtimeCharge | null
}

declare module 'fastify' {
  interface FastifyInstance {
    /** budgets of client keys; null when no budget is configured */
    budgets: BudgetService | null
  }
}

interface Reservation {
  id: string
  holds: Hold[]
  store: BudgetStore
}

interface Settlement {
  store: BudgetStore
  id: string
  holds: readonly Hold[]
  actual: Charge
}

/** settlements kept for another try while Redis does not take them */
const MAX_UNSETTLED = 10_000
const RETRY_SETTLE_MS = 1000

const kReservation = Symbol('budget reservation')
const kSession = Symbol('budget realtime session')
type Reserving = FastifyRequest & { [kReservation]: Reservation | null, [kSession]: { holds: Hold[], store: BudgetStore } | null }

/** the charge of a realtime session's admission: nothing, but the budget must not be exhausted */
const REALTIME: Charge = Object.freeze({ nanos: 0, tokens: 0 })

function tokensOf (c: TokenCounts): number {
  return c.totalTokens ?? (c.promptTokens ?? 0) + (c.completionTokens ?? 0)
}

const budgetsPlugin: FastifyPluginAsync<BudgetsOptions> = async (fastify, opts) => {
  const settings = opts.budgets
  const keyCounters = new Map<string, Counter[]>()
  for (const k of opts.keys) if ((k.budgets?.length ?? 0) > 0) keyCounters.set(k.name, countersOf('key', k.name, k.budgets))
  const targetCounters = new Map<string, Counter[]>()
  for (const [name, list] of Object.entries(opts.targets)) if ((list?.length ?? 0) > 0) targetCounters.set(name, countersOf('target', name, list))
  if (keyCounters.size === 0 && targetCounters.size === 0) {
    fastify.decorate('budgets', null)
    return
  }

  const tokenize = await loadTokenizer()
  const estimateOpts: EstimateOptions = { defaultMaxOutputTokens: settings.defaultMaxOutputTokens, tokenizeMaxBytes: settings.tokenizeMaxBytes, tokenize }
  const ttlMs = settings.reservationTtlSeconds * 1000
  const local = new MemoryBudgetStore()
  const shared = opts.redis != null ? new RedisBudgetStore(opts.redis, { keyPrefix: opts.keyPrefix ?? 'llm-gateway:' }) : null
  const health = opts.redisHealth
  const metrics = fastify.hasDecorator('metrics') && fastify.metrics !== null ? new BudgetMetrics(fastify.metrics.registry) : null
  const prices = fastify.priceTable
  let degradedTold = false

  fastify.decorateRequest(kReservation, null)
  fastify.decorateRequest(kSession, null)
  fastify.log.info({ keys: keyCounters.size, targets: targetCounters.size, store: shared === null ? 'memory' : 'redis', failMode: settings.failMode }, 'budgets enforced')

  /** The store to use now; null: Redis is down and budgets fail closed. */
  function storeNow (): BudgetStore | null {
    if (shared === null) return local
    if (health?.bypassed !== true) return shared
    return openFallback()
  }

  function openFallback (): BudgetStore | null {
    if (settings.failMode === 'closed') return null
    if (!degradedTold) {
      degradedTold = true
      fastify.log.warn('budgets: redis unreachable, counting in this process only (budgets.failMode open) until it is back')
    }
    metrics?.degraded.set(1)
    return local
  }

  function countersFor (request: FastifyRequest): Counter[] | null {
    const client = keyedClient(request.client)
    const byKey = client === null ? undefined : keyCounters.get(client.name)
    const target = request.upstream?.target?.name
    const byTarget = target === undefined ? undefined : targetCounters.get(target)
    if (byKey === undefined) return byTarget ?? null
    return byTarget === undefined ? byKey : [...byKey, ...byTarget]
  }

  /**
   * The charge to reserve (null: a free request), or a refusal for a route or model without a
   * price. `exact`: the tighter charge with the input counted by the tokenizer, tried only when
   * the byte bound is refused (the tokenizer is the costliest step of an admission).
   */
  function chargeOf (request: FastifyRequest): { charge: Charge, exact: (() => Charge) | null } | null {
    const path = pathOnly(request.upstream.apiPath)
    const kind = routeKind(request.method, path)
    if (kind === 'free') return null
    const body = request.proxyBody
    const model = request.upstream.model ?? azureDeployment(path)
    if (kind === 'realtime') {
      if (!settings.allowUnpriced && (model === null || prices.lookup(model, request.upstream.target?.provider ?? null) === null)) {
        throw new RouteNotBudgetedError(model === null ? 'this realtime session names no model (?model=) to price' : `the model ${JSON.stringify(model.slice(0, 100))} has no price (add it under pricing.models)`)
      }
      // nothing reserved up front: each response is charged when it is done
      return { charge: REALTIME, exact: null }
    }
    if (kind === 'priced' && body?.json != null && body.raw !== null) {
      const candidates = pricedCandidates(request, model)
      const unpriced = candidates.find(c => c.entry === null)
      if (unpriced === undefined || !settings.allowUnpriced) {
        if (unpriced !== undefined) throw new RouteNotBudgetedError(unpriced.model === null ? 'this request names no model to price' : `the model ${JSON.stringify(unpriced.model.slice(0, 100))} has no price (add it under pricing.models)`)
        const raw = body.raw
        const json = body.json
        // a model group may be answered by any of its deployments: the dearest is the worst case
        const charge = (exact: boolean): Charge => {
          let worst: Charge = { nanos: 0, tokens: 0 }
          for (const c of candidates) {
            const e = estimate(raw, json, path, c.model, c.entry, estimateOpts, exact)
            const nanos = Math.ceil((e.usd ?? 0) * 1e9)
            worst = { nanos: Math.max(worst.nanos, nanos), tokens: Math.max(worst.tokens, e.inputTokens + e.outputTokens) }
          }
          return worst
        }
        return { charge: charge(false), exact: () => charge(true) }
      }
    }
    if (!settings.allowUnpriced) throw new RouteNotBudgetedError(`the gateway cannot price ${request.method} ${path.slice(0, 100)} requests`)
    // unpriced but allowed: nothing reserved, its tokens counted when it settles
    return { charge: { nanos: 0, tokens: 0 }, exact: null }
  }

  /** The models a request may be answered by, with their prices: a model group's deployments, or the model it names. */
  function pricedCandidates (request: FastifyRequest, model: string | null): Array<{ model: string | null, entry: PriceEntry | null }> {
    const group = request.upstream.group
    if (group != null) return group.deployments.map(d => ({ model: d.model, entry: prices.lookup(d.model, d.target.provider) }))
    return [{ model, entry: model === null ? null : prices.lookup(model, request.upstream.target?.provider ?? null) }]
  }

  /** Reserves the byte-bound charge; refused, the tokenizer's tighter one when it is smaller. */
  function reserveIn (store: BudgetStore, id: string, holds: Hold[], charge: Charge, exact: (() => Charge) | null): ReserveResult | Promise<ReserveResult> {
    const again = (first: ReserveResult): ReserveResult | Promise<ReserveResult> => {
      if (first.ok || exact === null) return first
      const tight = exact()
      return tight.nanos < charge.nanos || tight.tokens < charge.tokens ? store.reserve(id, holds, tight, ttlMs) : first
    }
    const first = store.reserve(id, holds, charge, ttlMs)
    return first instanceof Promise ? first.then(again) : again(first)
  }

  function admitted (request: FastifyRequest, reply: FastifyReply, store: BudgetStore, id: string, holds: Hold[], result: ReserveResult): void {
    if (!result.ok) {
      const after = secondsUntil(result.refused.window.end, Date.now())
      if (after !== null) reply.header('retry-after', String(after))
      // the SDKs retry a 429 by themselves; not worth it when the budget resets in more than a minute
      if (after === null || after > 60) reply.header('x-should-retry', 'false')
      throw new BudgetExceededError(describe(result.refused.counter))
    }
    ;(request as Reserving)[kReservation] = { id, holds, store }
    const left = tightestUsd(holds, result.states)
    if (left !== null) reply.header('x-gateway-budget-remaining-usd', left.toFixed(6))
    if (metrics !== null) holds.forEach((h, i) => { if (h.counter.limitNanos !== null) metrics.remaining(h.counter, Math.max(0, h.counter.limitNanos - result.states[i].spentNanos - result.states[i].reservedNanos) / 1e9) })
  }

  // after the body parsers and the allowed-models check; callback form: the memory store answers
  // synchronously, so no promise per request there
  fastify.addHook('preHandler', function reserveBudget (request, reply, done) {
    // an unknown route is answered 404 and costs nothing
    if (request.is404) return done()
    const counters = countersFor(request)
    if (counters === null) return done()
    const priced = chargeOf(request)
    if (priced === null) return done()
    const store = storeNow()
    if (store === null) throw new BudgetUnavailableError()
    const holds = holdsOf(counters, Date.now())
    if (priced.charge === REALTIME) return admitSession(request, reply, store, holds, done)
    const id = randomUUID()
    let result: ReserveResult | Promise<ReserveResult>
    try {
      result = reserveIn(store, id, holds, priced.charge, priced.exact)
    } catch (err) {
      return done(err as Error)
    }
    if (!(result instanceof Promise)) {
      admitted(request, reply, store, id, holds, result)
      return done()
    }
    result.then((r) => {
      health?.recovered()
      if (degradedTold) {
        degradedTold = false
        metrics?.degraded.set(0)
      }
      admitted(request, reply, store, id, holds, r)
      done()
    }, (err: unknown) => {
      health?.failed(err, 'budget reserve')
      const fallback = openFallback()
      if (fallback === null) return done(new BudgetUnavailableError())
      try {
        admitted(request, reply, fallback, id, holds, reserveIn(fallback, id, holds, priced.charge, priced.exact) as ReserveResult)
        done()
      } catch (refusal) {
        done(refusal as Error)
      }
    }).catch((err: unknown) => done(err as Error))
  })

  /** A realtime session is admitted while none of its budgets is exhausted. */
  function admitSession (request: FastifyRequest, reply: FastifyReply, store: BudgetStore, holds: Hold[], done: (err?: Error) => void): void {
    Promise.resolve(store.read(holds)).then((states) => {
      const refused = holds.find((h, i) => !fits(states[i], h.counter, REALTIME))
      if (refused !== undefined) admitted(request, reply, store, '', holds, { ok: false, refused })
      ;(request as Reserving)[kSession] = { holds, store }
      const left = tightestUsd(holds, states)
      if (left !== null) reply.header('x-gateway-budget-remaining-usd', left.toFixed(6))
      done()
    }, (err: unknown) => {
      health?.failed(err, 'budget read')
      const fallback = openFallback()
      if (fallback === null || fallback === store) return done(new BudgetUnavailableError())
      admitSession(request, reply, fallback, holds, done)
    }).catch((err: unknown) => done(err as Error))
  }

  function realtimeCharge (request: FastifyRequest): RealtimeCharge | null {
    const session = (request as Reserving)[kSession]
    if (session === null) return null
    const { model, provider } = pricedAs(request)
    return async (counts) => {
      const cost = requestCost(prices, model, provider, counts)
      const actual: Charge = { nanos: cost === null ? 0 : toNanos(cost), tokens: tokensOf(counts) }
      // a settlement without a reservation adds what was spent
      await session.store.settle(randomUUID(), session.holds, actual)
      const states = await session.store.read(session.holds)
      return session.holds.every((h, i) => fits(states[i], h.counter, REALTIME))
    }
  }

  // accounting, before the usage record: the request's cost, whatever happened to it
  fastify.settle.add('account', 'budgets', function settleBudget (request) {
    const reservation = (request as Reserving)[kReservation]
    if (reservation === null) return
    ;(request as Reserving)[kReservation] = null
    const counts = request.outcome.usage?.counts() ?? NO_TOKENS
    const { model, provider } = pricedAs(request)
    const cost = requestCost(prices, model, provider, counts)
    const actual: Charge = { nanos: cost === null ? 0 : toNanos(cost), tokens: tokensOf(counts) }
    settleIn({ store: reservation.store, id: reservation.id, holds: reservation.holds, actual }, request.log)
  })

  /**
   * Settlements Redis did not take are kept (bounded) and sent again until it takes them: the
   * reservation may have expired by then, what the request spent still counts (the scripts are
   * idempotent by reservation id).
   */
  const unsettled: Settlement[] = []
  function settleIn (s: Settlement, log: FastifyBaseLogger): void {
    let settled: void | Promise<void>
    try {
      settled = s.store.settle(s.id, s.holds, s.actual)
    } catch (err) {
      settleFailed(s, err, log)
      return
    }
    if (settled instanceof Promise) settled.catch((err: unknown) => settleFailed(s, err, log))
  }

  function settleFailed (s: Settlement, err: unknown, log: FastifyBaseLogger): void {
    metrics?.settleFailures.inc()
    if (unsettled.length < MAX_UNSETTLED) {
      unsettled.push(s)
      log.warn({ cause: (err as Error)?.message }, 'budget settlement failed: sent again when the budget store answers')
    } else {
      log.error({ cause: (err as Error)?.message }, 'budget settlement failed and too many are waiting: this one is dropped, its reservation expires')
    }
  }

  if (shared !== null) {
    const retry = setInterval(() => {
      if (unsettled.length === 0 || health?.bypassed === true) return
      for (const s of unsettled.splice(0)) settleIn(s, fastify.log)
    }, RETRY_SETTLE_MS)
    retry.unref()
    fastify.addHook('onClose', async () => { clearInterval(retry) })
  }

  const everyCounter = [...keyCounters.values(), ...targetCounters.values()].flat()

  async function viewsOf (counters: Counter[]): Promise<BudgetView[]> {
    if (counters.length === 0) return []
    const holds = holdsOf(counters, Date.now())
    const store = storeNow()
    if (store === null) throw new BudgetUnavailableError()
    let states
    try {
      states = await store.read(holds)
    } catch (err) {
      health?.failed(err, 'budget read')
      throw new BudgetUnavailableError()
    }
    return holds.map((h, i) => viewOf(h, states[i]))
  }

  fastify.decorate('budgets', {
    forKey: async (name: string) => await viewsOf(keyCounters.get(name) ?? []),
    all: async () => await viewsOf(everyCounter),
    realtimeCharge
  } satisfies BudgetService)

  fastify.addHook('onClose', async () => {
    await local.close()
    await shared?.close()
  })
}

export default fp(budgetsPlugin, { name: 'gateway-budgets', fastify: '5.x', dependencies: ['gateway-request-state', 'gateway-settle', 'gateway-usage'] })
