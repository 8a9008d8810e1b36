/**
 * The gateway's Prometheus metrics (prom-client), one registry per gateway instance, plus the
 * process metrics (`collectDefaultMetrics`) in one registry per process.
 *
 * Cardinality stays bounded: targets come from config, routes are a fixed list of API endpoints
 * (see routes.ts), statuses are three digits, and client names and models (models come from
 * clients) are limited to the first N distinct values, later ones show as "other".
 *
 * Hot path: the per-request metrics are `FastCounter`/`FastHistogram` (fast-metrics.ts): a
 * string join and a Map lookup per metric instead of prom-client's label hashing.
 */
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import { FastCounter, FastHistogram } from './fast-metrics.js'
import type { TokenCounts } from '../usage/tokens.js'

export const OTHER_LABEL = 'other'

/** The first `max` distinct values are labels of their own; every later one is "other". */
export class LabelLimiter {
  readonly #known = new Set<string>()
  readonly #max: number

  constructor (max: number) {
    this.#max = max
  }

  label (value: string | null | undefined, none = 'none'): string {
    if (value === null || value === undefined || value === '') return none
    if (this.#known.has(value)) return value
    if (this.#known.size >= this.#max || value.length > 200) return OTHER_LABEL
    this.#known.add(value)
    return value
  }
}

// LLM requests run from milliseconds to minutes
const SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]

export type RefusalReason = 'rate_limited' | 'unauthorised' | 'blacklisted' | 'ip_denied' | 'forbidden' | 'budget_exceeded' | 'route_not_budgeted' | 'budget_unavailable'

/** Budget refusals (src/budget/errors.ts) are told apart by their error class. */
const BUDGET_REFUSALS = new Set<RefusalReason>(['budget_exceeded', 'route_not_budgeted', 'budget_unavailable'])

const BLACKLISTED = new Set(['ip_blacklisted', 'blacklisted'])
const IP_DENIED = new Set(['ip_not_allowed', 'ip_denied'])

/**
 * Refusals are told apart by the final status and error class alone, so no plugin has to report
 * them: a status the upstream sent is never a refusal of ours.
 */
export function refusalReason (status: number, errorClass: string | null, upstreamStatus: number): RefusalReason | null {
  if (upstreamStatus !== 0) return null
  if (errorClass !== null && BUDGET_REFUSALS.has(errorClass as RefusalReason)) return errorClass as RefusalReason
  if (status === 429) return 'rate_limited'
  if (status === 401) return 'unauthorised'
  if (status !== 403) return null
  if (errorClass !== null && BLACKLISTED.has(errorClass)) return 'blacklisted'
  if (errorClass !== null && IP_DENIED.has(errorClass)) return 'ip_denied'
  return 'forbidden'
}

/** What went wrong upstream: a transport failure's class, or the HTTP status family it answered with. */
export function upstreamErrorClass (errorClass: string | null, upstreamStatus: number): string | null {
  if (errorClass !== null && errorClass.startsWith('upstream_')) return errorClass
  if (upstreamStatus === 429) return 'http_429'
  if (upstreamStatus >= 500) return 'http_5xx'
  return null
}

export interface RequestObservation {
  target: string
  route: string
  status: number
  durationMs: number
  ttfbMs: number | null
  errorClass: string | null
  upstreamStatus: number
  /** the response's X-Cache header (the models cache says HIT or MISS) */
  cache: unknown
}

let processRegistry: Registry | null = null

/** Process metrics are per process, not per gateway instance (tests start many). */
function processMetrics (): Registry {
  if (processRegistry === null) {
    processRegistry = new Registry()
    collectDefaultMetrics({ register: processRegistry })
  }
  return processRegistry
}

export interface MetricsSettings {
  maxClientLabels: number
  maxModelLabels: number
}

export class GatewayMetrics {
  readonly registry = new Registry()
  readonly clients: LabelLimiter
  readonly models: LabelLimiter

  readonly requests = new FastCounter({ name: 'gateway_requests_total', help: 'Requests answered, by upstream target, route and status', labelNames: ['target', 'route', 'status'], registers: [this.registry] })
  readonly duration = new FastHistogram({ name: 'gateway_request_duration_seconds', help: 'Time from request start to the last byte of the response', labelNames: ['target', 'route'], buckets: SECONDS_BUCKETS, registers: [this.registry] })
  readonly ttfb = new FastHistogram({ name: 'gateway_upstream_ttfb_seconds', help: 'Time from request start to the upstream response headers', labelNames: ['target'], buckets: SECONDS_BUCKETS, registers: [this.registry] })
  readonly tokens = new FastCounter({ name: 'gateway_tokens_total', help: 'Tokens reported by the upstream, by client key name, model and kind (cache tokens are part of prompt tokens)', labelNames: ['client', 'model', 'kind'], registers: [this.registry] })
  readonly spend = new FastCounter({ name: 'gateway_spend_usd_total', help: 'What the answered tokens cost in USD at the price table, by client key name, target and model', labelNames: ['client', 'target', 'model'], registers: [this.registry] })
  readonly costUnknown = new FastCounter({ name: 'gateway_cost_unknown_total', help: 'Requests whose model is not in the price table (their cost is null, never 0), by model', labelNames: ['model'], registers: [this.registry] })
  readonly activeStreams = new Gauge({
    name: 'gateway_active_streams',
    help: 'Event-stream responses being sent right now',
    registers: [this.registry],
    collect: () => { this.activeStreams.set(this.#openStreams) }
  })

  readonly realtimeSessions = new Gauge({ name: 'gateway_realtime_sessions', help: 'Realtime WebSocket sessions open right now', registers: [this.registry] })
  readonly refusals = new FastCounter({ name: 'gateway_refusals_total', help: 'Requests the gateway refused itself, by reason', labelNames: ['reason'], registers: [this.registry] })
  readonly cache = new FastCounter({ name: 'gateway_cache_requests_total', help: 'Cache lookups (X-Cache: HIT or MISS), by route and result', labelNames: ['route', 'result'], registers: [this.registry] })
  readonly upstreamErrors = new FastCounter({ name: 'gateway_upstream_errors_total', help: 'Upstream failures by target and class (transport failures, 429 and 5xx answers)', labelNames: ['target', 'class'], registers: [this.registry] })
  readonly attempts = new FastCounter({ name: 'gateway_upstream_attempts_total', help: 'Upstream attempts of model group requests, by target and outcome (success, or the failure class)', labelNames: ['target', 'outcome'], registers: [this.registry] })
  readonly cooldowns = new FastCounter({ name: 'gateway_deployment_cooldowns_total', help: 'Times a deployment (target/model) was taken out of rotation', labelNames: ['deployment'], registers: [this.registry] })
  readonly failovers = new FastCounter({ name: 'gateway_failovers_total', help: 'Attempts sent to another deployment of a model group after one failed', labelNames: ['group'], registers: [this.registry] })
  readonly clientAborts = new FastCounter({ name: 'gateway_client_aborts_total', help: 'Requests whose client went away before the response was complete', labelNames: ['target', 'route'], registers: [this.registry] })

  /** streams open right now; the gauge reads it at scrape time (no prom-client call per stream) */
  #openStreams = 0

  constructor (settings: MetricsSettings) {
    this.clients = new LabelLimiter(settings.maxClientLabels)
    this.models = new LabelLimiter(settings.maxModelLabels)
    // now, not at the first scrape: the process CPU counters count from their creation
    processMetrics()
  }

  /** One finished (or abandoned) request. */
  observe (o: RequestObservation): void {
    this.requests.inc([o.target, o.route, statusLabel(o.status)])
    this.duration.observe([o.target, o.route], o.durationMs / 1000)
    if (o.ttfbMs !== null) this.ttfb.observe([o.target], o.ttfbMs / 1000)
    const refusal = refusalReason(o.status, o.errorClass, o.upstreamStatus)
    if (refusal !== null) this.refusals.inc([refusal])
    const upstream = upstreamErrorClass(o.errorClass, o.upstreamStatus)
    if (upstream !== null) this.upstreamErrors.inc([o.target, upstream])
    if (o.errorClass === 'client_abort') this.clientAborts.inc([o.target, o.route])
    if (o.cache === 'HIT' || o.cache === 'MISS') this.cache.inc([o.route, o.cache === 'HIT' ? 'hit' : 'miss'])
  }

  /** Tokens of one response. */
  countTokens (client: string | null, model: string | null, counts: TokenCounts): void {
    const c = this.clients.label(client, 'anonymous')
    const m = this.models.label(model)
    if (counts.promptTokens !== null && counts.promptTokens > 0) this.tokens.inc([c, m, 'prompt'], counts.promptTokens)
    if (counts.completionTokens !== null && counts.completionTokens > 0) this.tokens.inc([c, m, 'completion'], counts.completionTokens)
    if (counts.cacheReadTokens !== null && counts.cacheReadTokens > 0) this.tokens.inc([c, m, 'cache_read'], counts.cacheReadTokens)
    if (counts.cacheCreationTokens !== null && counts.cacheCreationTokens > 0) this.tokens.inc([c, m, 'cache_creation'], counts.cacheCreationTokens)
  }

  /** The cost of one request; null: its model is not in the price table. */
  countCost (client: string | null, target: string | null, model: string | null, costUsd: number | null): void {
    if (costUsd === null) {
      this.costUnknown.inc([this.models.label(model)])
      return
    }
    if (costUsd > 0) this.spend.inc([this.clients.label(client, 'anonymous'), target ?? 'none', this.models.label(model)], costUsd)
  }

  streamStarted (): void { this.#openStreams++ }
  streamEnded (): void { this.#openStreams-- }
  /** for the realtime relay: call once when a session opens and once when it closes */
  realtimeSessionOpened (): void { this.realtimeSessions.inc() }
  realtimeSessionClosed (): void { this.realtimeSessions.dec() }

  /** The exposition text: this gateway's metrics, then the process metrics. */
  async text (): Promise<string> {
    const [own, proc] = await Promise.all([this.registry.metrics(), processMetrics().metrics()])
    return own.endsWith('\n') ? own + proc : `${own}\n${proc}`
  }

  get contentType (): string {
    return this.registry.contentType
  }
}

const STATUS_LABELS = new Map<number, string>()

function statusLabel (status: number): string {
  if (status < 100 || status > 599) return 'other'
  let label = STATUS_LABELS.get(status)
  if (label === undefined) {
    label = String(status)
    STATUS_LABELS.set(status, label)
  }
  return label
}
